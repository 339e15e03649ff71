//! ONC RPC v2 messages (RFC 5531 §9), named as in the RFC.
//!
//! ```text
//! struct rpc_msg { unsigned int xid; union switch (msg_type mtype) {
//!     case CALL: call_body cbody; case REPLY: reply_body rbody; } body; };
//! struct call_body { unsigned int rpcvers; /* must be 2 */ unsigned int prog; unsigned int vers;
//!     unsigned int proc; opaque_auth cred; opaque_auth verf; /* procedure arguments follow */ };
//! union reply_body switch (reply_stat stat) {
//!     case MSG_ACCEPTED: accepted_reply areply; case MSG_DENIED: rejected_reply rreply; };
//! struct accepted_reply { opaque_auth verf; union switch (accept_stat stat) {
//!     case SUCCESS: opaque results[0]; /* procedure results follow */
//!     case PROG_MISMATCH: struct { unsigned int low; unsigned int high; } mismatch_info;
//!     default: void; } reply_data; };
//! union rejected_reply switch (reject_stat stat) {
//!     case RPC_MISMATCH: struct { unsigned int low; unsigned int high; } mismatch_info;
//!     case AUTH_ERROR: auth_stat stat; };
//! struct opaque_auth { auth_flavor flavor; opaque body<400>; };
//! struct authsys_parms { unsigned int stamp; string machinename<255>; unsigned int uid;
//!     unsigned int gid; unsigned int gids<16>; };
//! ```
//!
//! An [`RpcMessage`] holds the header only, as the RFC's structures do: a call's arguments and a
//! successful reply's results follow it in the same message (the rest of the TCP record or UDP
//! datagram) and are encoded and decoded by the program (for example [`super::log`]).

use bytes::{BufMut, Bytes};

use crate::codec::{Decode, Encode, finish};
use crate::xdr::{self, XdrError, XdrResult, fail};

/// The only RPC protocol version (`rpcvers`) of RFC 5531.
pub const RPC_VERSION: u32 = 2;
/// `MAX_AUTH_BYTES`: bound of an `opaque_auth` body.
pub const MAX_AUTH_BYTES: u32 = 400;
/// Bound of `authsys_parms.machinename`.
pub const MAX_MACHINE_NAME: u32 = 255;
/// Bound of `authsys_parms.gids`.
pub const MAX_GIDS: u32 = 16;

/// `auth_flavor` AUTH_NONE.
pub const AUTH_NONE: u32 = 0;
/// `auth_flavor` AUTH_SYS (also known as AUTH_UNIX).
pub const AUTH_SYS: u32 = 1;

const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;

/// `opaque_auth`: a credential or verifier, flavor and body (at most [`MAX_AUTH_BYTES`]).
///
/// Messages keep the body opaque, as libtirpc does when it reads a call; [`OpaqueAuth::credentials`]
/// interprets AUTH_NONE and AUTH_SYS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueAuth {
    flavor: u32,
    body: Bytes,
}

impl OpaqueAuth {
    /// AUTH_NONE with an empty body: what this crate sends as credential and verifier.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            flavor: AUTH_NONE,
            body: Bytes::new(),
        }
    }

    /// Any flavor and body; the body must be at most [`MAX_AUTH_BYTES`] long.
    pub fn new(flavor: u32, body: impl Into<Bytes>) -> Result<Self, XdrError> {
        let body = body.into();
        if body.len() > MAX_AUTH_BYTES as usize {
            return Err(XdrError::TooLong {
                what: "opaque_auth.body",
                len: body.len() as u64,
                max: MAX_AUTH_BYTES,
            });
        }
        Ok(Self { flavor, body })
    }

    /// AUTH_SYS credentials (always within the bound: an `authsys_parms` is at most 340 bytes).
    #[must_use]
    pub fn sys(params: &AuthSysParams) -> Self {
        let mut body = Vec::with_capacity(params.encoded_len());
        params.encode(&mut body);
        Self {
            flavor: AUTH_SYS,
            body: body.into(),
        }
    }

    /// The flavor.
    #[must_use]
    pub const fn flavor(&self) -> u32 {
        self.flavor
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Interprets the credentials as a libtirpc server does: AUTH_NONE accepted whatever its body,
    /// AUTH_SYS accepted when its body parses (else `AUTH_BADCRED`), other flavors unknown here.
    pub fn credentials(&self) -> Result<Credentials, AuthStat> {
        match self.flavor {
            AUTH_NONE => Ok(Credentials::None),
            AUTH_SYS => match AuthSysParams::parse(&self.body) {
                // Trailing bytes inside the body are tolerated, as libtirpc does.
                Ok((_, params)) => Ok(Credentials::Sys(params)),
                Err(_) => Err(AuthStat::BadCred),
            },
            flavor => Ok(Credentials::Other { flavor }),
        }
    }

    /// Decodes an `opaque_auth`, refusing a body over [`MAX_AUTH_BYTES`].
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        let (input, flavor) = xdr::u32(input)?;
        let (input, body) = xdr::opaque("opaque_auth.body", MAX_AUTH_BYTES)(input)?;
        Ok((
            input,
            Self {
                flavor,
                body: Bytes::copy_from_slice(body),
            },
        ))
    }
}

impl Encode for OpaqueAuth {
    /// Encodes `flavor` and `body`.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.flavor);
        xdr::put_opaque(buf, &self.body);
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        xdr::UNIT + xdr::opaque_len(self.body.len())
    }
}

/// Credentials as interpreted by [`OpaqueAuth::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// AUTH_NONE.
    None,
    /// AUTH_SYS.
    Sys(AuthSysParams),
    /// A flavor this crate does not interpret (a libtirpc server answers `AUTH_REJECTEDCRED`).
    Other {
        /// The flavor.
        flavor: u32,
    },
}

/// `authsys_parms`: the body of AUTH_SYS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSysParams {
    stamp: u32,
    machinename: Bytes,
    uid: u32,
    gid: u32,
    gids: Vec<u32>,
}

impl AuthSysParams {
    /// Builds AUTH_SYS parameters: at most [`MAX_MACHINE_NAME`] bytes of machine name and
    /// [`MAX_GIDS`] supplementary groups.
    pub fn new(
        stamp: u32,
        machinename: impl Into<Bytes>,
        uid: u32,
        gid: u32,
        gids: Vec<u32>,
    ) -> Result<Self, XdrError> {
        let machinename = machinename.into();
        if machinename.len() > MAX_MACHINE_NAME as usize {
            return Err(XdrError::TooLong {
                what: "authsys_parms.machinename",
                len: machinename.len() as u64,
                max: MAX_MACHINE_NAME,
            });
        }
        if gids.len() > MAX_GIDS as usize {
            return Err(XdrError::TooLong {
                what: "authsys_parms.gids",
                len: gids.len() as u64,
                max: MAX_GIDS,
            });
        }
        Ok(Self {
            stamp,
            machinename,
            uid,
            gid,
            gids,
        })
    }

    /// An arbitrary id chosen by the caller.
    #[must_use]
    pub const fn stamp(&self) -> u32 {
        self.stamp
    }

    /// The caller's machine name (bytes; normally ASCII).
    #[must_use]
    pub fn machinename(&self) -> &[u8] {
        &self.machinename
    }

    /// Effective user id.
    #[must_use]
    pub const fn uid(&self) -> u32 {
        self.uid
    }

    /// Effective group id.
    #[must_use]
    pub const fn gid(&self) -> u32 {
        self.gid
    }

    /// Supplementary group ids.
    #[must_use]
    pub fn gids(&self) -> &[u32] {
        &self.gids
    }

    /// Decodes the parameters, refusing over-long machine names and gid lists.
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        let (input, stamp) = xdr::u32(input)?;
        let (input, machinename) =
            xdr::opaque("authsys_parms.machinename", MAX_MACHINE_NAME)(input)?;
        let (input, uid) = xdr::u32(input)?;
        let (input, gid) = xdr::u32(input)?;
        let (mut input, count) = xdr::u32(input)?;
        if count > MAX_GIDS {
            return fail(XdrError::TooLong {
                what: "authsys_parms.gids",
                len: u64::from(count),
                max: MAX_GIDS,
            });
        }
        let mut gids = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (rest, g) = xdr::u32(input)?;
            gids.push(g);
            input = rest;
        }
        Ok((
            input,
            Self {
                stamp,
                machinename: Bytes::copy_from_slice(machinename),
                uid,
                gid,
                gids,
            },
        ))
    }
}

impl Encode for AuthSysParams {
    /// Encodes the parameters.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.stamp);
        xdr::put_opaque(buf, &self.machinename);
        xdr::put_u32(buf, self.uid);
        xdr::put_u32(buf, self.gid);
        // At most MAX_GIDS, so the count fits.
        xdr::put_u32(buf, self.gids.len() as u32);
        for gid in &self.gids {
            xdr::put_u32(buf, *gid);
        }
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        xdr::UNIT * 4 + xdr::opaque_len(self.machinename.len()) + xdr::UNIT * self.gids.len()
    }
}

/// `rpc_msg`: transaction id and body (call or reply header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMessage {
    /// Transaction id, chosen by the caller and echoed in the reply.
    pub xid: u32,
    /// Call or reply.
    pub body: MessageBody,
}

/// The `msg_type` union of `rpc_msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// CALL (0).
    Call(CallBody),
    /// REPLY (1).
    Reply(ReplyBody),
}

/// `call_body`: the header of a call; the procedure's arguments follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBody {
    /// RPC version; [`RPC_VERSION`] in every valid call (kept so that a server can refuse others).
    pub rpcvers: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number (`proc` in the RFC).
    pub procedure: u32,
    /// Credentials.
    pub cred: OpaqueAuth,
    /// Verifier.
    pub verf: OpaqueAuth,
}

/// `reply_body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// MSG_ACCEPTED (0).
    Accepted(AcceptedReply),
    /// MSG_DENIED (1).
    Denied(RejectedReply),
}

/// `accepted_reply`: verifier and status; on SUCCESS the procedure's results follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReply {
    /// The server's verifier.
    pub verf: OpaqueAuth,
    /// What happened to the call.
    pub stat: AcceptStat,
}

/// `accept_stat` with its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    /// SUCCESS (0): the results follow.
    Success,
    /// PROG_UNAVAIL (1): the program is not served here.
    ProgUnavail,
    /// PROG_MISMATCH (2): the version is not served; the supported range.
    ProgMismatch {
        /// Lowest supported version.
        low: u32,
        /// Highest supported version.
        high: u32,
    },
    /// PROC_UNAVAIL (3): no such procedure.
    ProcUnavail,
    /// GARBAGE_ARGS (4): the arguments could not be decoded.
    GarbageArgs,
    /// SYSTEM_ERR (5): e.g. memory allocation failure.
    SystemErr,
}

/// `rejected_reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedReply {
    /// RPC_MISMATCH (0): the RPC version is not supported; the supported range.
    RpcMismatch {
        /// Lowest supported RPC version.
        low: u32,
        /// Highest supported RPC version.
        high: u32,
    },
    /// AUTH_ERROR (1): authentication failed.
    AuthError {
        /// Why.
        stat: AuthStat,
    },
}

/// `auth_stat`: why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStat {
    /// AUTH_OK (0).
    Ok,
    /// AUTH_BADCRED (1): bad credential (seal broken).
    BadCred,
    /// AUTH_REJECTEDCRED (2): client must begin new session.
    RejectedCred,
    /// AUTH_BADVERF (3): bad verifier (seal broken).
    BadVerf,
    /// AUTH_REJECTEDVERF (4): verifier expired or replayed.
    RejectedVerf,
    /// AUTH_TOOWEAK (5): rejected for security reasons.
    TooWeak,
    /// AUTH_INVALIDRESP (6): bogus response verifier.
    InvalidResp,
    /// AUTH_FAILED (7): reason unknown.
    Failed,
    /// RPCSEC_GSS_CREDPROBLEM (13).
    RpcsecGssCredProblem,
    /// RPCSEC_GSS_CTXPROBLEM (14).
    RpcsecGssCtxProblem,
}

impl AuthStat {
    const ALL: [(Self, u32); 10] = [
        (Self::Ok, 0),
        (Self::BadCred, 1),
        (Self::RejectedCred, 2),
        (Self::BadVerf, 3),
        (Self::RejectedVerf, 4),
        (Self::TooWeak, 5),
        (Self::InvalidResp, 6),
        (Self::Failed, 7),
        (Self::RpcsecGssCredProblem, 13),
        (Self::RpcsecGssCtxProblem, 14),
    ];

    /// The wire value.
    #[must_use]
    pub fn code(self) -> u32 {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(7, |(_, c)| *c)
    }

    /// The status for a wire value, if known.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
    }
}

impl AcceptStat {
    /// The wire value of `accept_stat`.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::Success => 0,
            Self::ProgUnavail => 1,
            Self::ProgMismatch { .. } => 2,
            Self::ProcUnavail => 3,
            Self::GarbageArgs => 4,
            Self::SystemErr => 5,
        }
    }
}

impl RpcMessage {
    /// A call header with AUTH_NONE credential and verifier.
    #[must_use]
    pub const fn call(xid: u32, prog: u32, vers: u32, procedure: u32) -> Self {
        Self {
            xid,
            body: MessageBody::Call(CallBody {
                rpcvers: RPC_VERSION,
                prog,
                vers,
                procedure,
                cred: OpaqueAuth::none(),
                verf: OpaqueAuth::none(),
            }),
        }
    }

    /// An accepted reply with an AUTH_NONE verifier (results follow when `stat` is SUCCESS).
    #[must_use]
    pub const fn accepted(xid: u32, stat: AcceptStat) -> Self {
        Self {
            xid,
            body: MessageBody::Reply(ReplyBody::Accepted(AcceptedReply {
                verf: OpaqueAuth::none(),
                stat,
            })),
        }
    }

    /// A denied reply.
    #[must_use]
    pub const fn denied(xid: u32, reason: RejectedReply) -> Self {
        Self {
            xid,
            body: MessageBody::Reply(ReplyBody::Denied(reason)),
        }
    }

    /// Decodes a header as a nom parser; the remaining input is the arguments or results.
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        let (input, xid) = xdr::u32(input)?;
        let (input, mtype) = xdr::u32(input)?;
        let (input, body) = match mtype {
            CALL => {
                let (input, rpcvers) = xdr::u32(input)?;
                let (input, prog) = xdr::u32(input)?;
                let (input, vers) = xdr::u32(input)?;
                let (input, procedure) = xdr::u32(input)?;
                let (input, cred) = OpaqueAuth::parse(input)?;
                let (input, verf) = OpaqueAuth::parse(input)?;
                let call = CallBody {
                    rpcvers,
                    prog,
                    vers,
                    procedure,
                    cred,
                    verf,
                };
                (input, MessageBody::Call(call))
            }
            REPLY => {
                let (input, reply) = parse_reply_body(input)?;
                (input, MessageBody::Reply(reply))
            }
            value => {
                return fail(XdrError::InvalidDiscriminant {
                    what: "msg_type",
                    value,
                });
            }
        };
        Ok((input, Self { xid, body }))
    }
}

impl Encode for RpcMessage {
    /// Encodes the header.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.xid);
        match &self.body {
            MessageBody::Call(c) => {
                xdr::put_u32(buf, CALL);
                xdr::put_u32(buf, c.rpcvers);
                xdr::put_u32(buf, c.prog);
                xdr::put_u32(buf, c.vers);
                xdr::put_u32(buf, c.procedure);
                c.cred.encode(buf);
                c.verf.encode(buf);
            }
            MessageBody::Reply(r) => {
                xdr::put_u32(buf, REPLY);
                match r {
                    ReplyBody::Accepted(a) => {
                        xdr::put_u32(buf, MSG_ACCEPTED);
                        a.verf.encode(buf);
                        xdr::put_u32(buf, a.stat.code());
                        if let AcceptStat::ProgMismatch { low, high } = a.stat {
                            xdr::put_u32(buf, low);
                            xdr::put_u32(buf, high);
                        }
                    }
                    ReplyBody::Denied(d) => {
                        xdr::put_u32(buf, MSG_DENIED);
                        match *d {
                            RejectedReply::RpcMismatch { low, high } => {
                                xdr::put_u32(buf, RPC_MISMATCH);
                                xdr::put_u32(buf, low);
                                xdr::put_u32(buf, high);
                            }
                            RejectedReply::AuthError { stat } => {
                                xdr::put_u32(buf, AUTH_ERROR);
                                xdr::put_u32(buf, stat.code());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Encoded size of the header in bytes.
    fn encoded_len(&self) -> usize {
        const U: usize = xdr::UNIT;
        U + U
            + match &self.body {
                MessageBody::Call(c) => 4 * U + c.cred.encoded_len() + c.verf.encoded_len(),
                MessageBody::Reply(ReplyBody::Accepted(a)) => {
                    U + a.verf.encoded_len()
                        + U
                        + match a.stat {
                            AcceptStat::ProgMismatch { .. } => 2 * U,
                            _ => 0,
                        }
                }
                MessageBody::Reply(ReplyBody::Denied(r)) => {
                    U + U
                        + match r {
                            RejectedReply::RpcMismatch { .. } => 2 * U,
                            RejectedReply::AuthError { .. } => U,
                        }
                }
            }
    }
}

/// Decodes a header: `Ok(None)` if `input` ends too early, else the header and its length.
impl Decode for RpcMessage {
    type Error = XdrError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        finish(input, Self::parse(input))
    }
}

fn parse_reply_body(input: &[u8]) -> XdrResult<'_, ReplyBody> {
    let (input, stat) = xdr::u32(input)?;
    match stat {
        MSG_ACCEPTED => {
            let (input, verf) = OpaqueAuth::parse(input)?;
            let (input, code) = xdr::u32(input)?;
            let (input, stat) = match code {
                0 => (input, AcceptStat::Success),
                1 => (input, AcceptStat::ProgUnavail),
                2 => {
                    let (input, low) = xdr::u32(input)?;
                    let (input, high) = xdr::u32(input)?;
                    (input, AcceptStat::ProgMismatch { low, high })
                }
                3 => (input, AcceptStat::ProcUnavail),
                4 => (input, AcceptStat::GarbageArgs),
                5 => (input, AcceptStat::SystemErr),
                value => {
                    return fail(XdrError::InvalidDiscriminant {
                        what: "accept_stat",
                        value,
                    });
                }
            };
            Ok((input, ReplyBody::Accepted(AcceptedReply { verf, stat })))
        }
        MSG_DENIED => {
            let (input, code) = xdr::u32(input)?;
            match code {
                RPC_MISMATCH => {
                    let (input, low) = xdr::u32(input)?;
                    let (input, high) = xdr::u32(input)?;
                    Ok((
                        input,
                        ReplyBody::Denied(RejectedReply::RpcMismatch { low, high }),
                    ))
                }
                AUTH_ERROR => {
                    let (input, value) = xdr::u32(input)?;
                    match AuthStat::from_code(value) {
                        Some(stat) => {
                            Ok((input, ReplyBody::Denied(RejectedReply::AuthError { stat })))
                        }
                        None => fail(XdrError::InvalidDiscriminant {
                            what: "auth_stat",
                            value,
                        }),
                    }
                }
                value => fail(XdrError::InvalidDiscriminant {
                    what: "reject_stat",
                    value,
                }),
            }
        }
        value => fail(XdrError::InvalidDiscriminant {
            what: "reply_stat",
            value,
        }),
    }
}

/// A whole call message: the header ([`RpcMessage`] with a [`CallBody`]) and the procedure's
/// arguments after it, e.g. `Call<&LogEntry>` for SENDLOG, `Call<()>` for a NULL call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<A> {
    /// The header; its body is a [`MessageBody::Call`].
    pub header: RpcMessage,
    /// The procedure's arguments.
    pub args: A,
}

impl<A> Call<A> {
    /// A call with AUTH_NONE credential and verifier.
    #[must_use]
    pub const fn new(xid: u32, prog: u32, vers: u32, procedure: u32, args: A) -> Self {
        Self {
            header: RpcMessage::call(xid, prog, vers, procedure),
            args,
        }
    }
}

impl<A: Encode> Encode for Call<A> {
    fn encode(&self, buf: &mut impl BufMut) {
        self.header.encode(buf);
        self.args.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.header.encoded_len() + self.args.encoded_len()
    }
}

/// Decodes a call and its arguments (bytes after the arguments are left, as libtirpc ignores
/// them). A reply is [`XdrError::InvalidValue`].
impl<A: Decode<Error = XdrError>> Decode for Call<A> {
    type Error = XdrError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        let Some((header, used)) = finish(input, RpcMessage::parse(input))? else {
            return Ok(None);
        };
        if !matches!(header.body, MessageBody::Call(_)) {
            return Err(XdrError::InvalidValue {
                what: "call (got a reply)",
            });
        }
        Ok(A::decode(&input[used..])?.map(|(args, n)| (Self { header, args }, used + n)))
    }
}

/// Why a call did not succeed, as its reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallFailure {
    /// The server accepted the message but did not run the procedure (never [`AcceptStat::Success`]).
    #[error("call not executed: {stat:?}")]
    Accepted {
        /// The server's status.
        stat: AcceptStat,
    },
    /// The server denied the call.
    #[error("call denied: {reason:?}")]
    Denied {
        /// The server's reason.
        reason: RejectedReply,
    },
}

/// A decoded reply: its xid and the results, or why there are none.
pub type Reply<T> = (u32, Result<T, CallFailure>);

/// Decodes a complete reply message (a whole record or datagram) with `results` for the SUCCESS
/// case.
///
/// `Ok(None)`: the message ends too early. A call, or bytes after the results, are errors.
pub(crate) fn decode_reply<'a, T>(
    msg: &'a [u8],
    results: impl FnOnce(&'a [u8]) -> XdrResult<'a, T>,
) -> Result<Option<Reply<T>>, XdrError> {
    let parser = |input: &'a [u8]| -> XdrResult<'a, Reply<T>> {
        let (input, header) = RpcMessage::parse(input)?;
        let outcome = match header.body {
            MessageBody::Call(_) => {
                return fail(XdrError::InvalidValue {
                    what: "reply (got a call)",
                });
            }
            MessageBody::Reply(ReplyBody::Accepted(AcceptedReply {
                stat: AcceptStat::Success,
                ..
            })) => {
                let (input, value) = results(input)?;
                return Ok((input, (header.xid, Ok(value))));
            }
            MessageBody::Reply(ReplyBody::Accepted(a)) => CallFailure::Accepted { stat: a.stat },
            MessageBody::Reply(ReplyBody::Denied(reason)) => CallFailure::Denied { reason },
        };
        Ok((input, (header.xid, Err(outcome))))
    };
    match finish(msg, parser(msg))? {
        None => Ok(None),
        Some((_, used)) if used != msg.len() => Err(XdrError::TrailingBytes {
            count: msg.len() - used,
        }),
        Some((reply, _)) => Ok(Some(reply)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn any_opaque_auth() -> impl Strategy<Value = OpaqueAuth> {
        prop_oneof![
            Just(OpaqueAuth::none()),
            any_auth_sys().prop_map(|p| OpaqueAuth::sys(&p)),
            (
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 0..=MAX_AUTH_BYTES as usize)
            )
                .prop_map(|(f, b)| OpaqueAuth::new(f, b).unwrap()),
        ]
    }

    pub(crate) fn any_auth_sys() -> impl Strategy<Value = AuthSysParams> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_MACHINE_NAME as usize),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..=MAX_GIDS as usize),
        )
            .prop_map(|(s, m, u, g, gs)| AuthSysParams::new(s, m, u, g, gs).unwrap())
    }

    fn any_auth_stat() -> impl Strategy<Value = AuthStat> {
        proptest::sample::select(AuthStat::ALL.map(|(s, _)| s).to_vec())
    }

    fn any_accept_stat() -> impl Strategy<Value = AcceptStat> {
        prop_oneof![
            Just(AcceptStat::Success),
            Just(AcceptStat::ProgUnavail),
            (any::<u32>(), any::<u32>())
                .prop_map(|(low, high)| AcceptStat::ProgMismatch { low, high }),
            Just(AcceptStat::ProcUnavail),
            Just(AcceptStat::GarbageArgs),
            Just(AcceptStat::SystemErr),
        ]
    }

    pub(crate) fn any_message() -> impl Strategy<Value = RpcMessage> {
        let call = (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any_opaque_auth(),
            any_opaque_auth(),
        )
            .prop_map(|(rpcvers, prog, vers, procedure, cred, verf)| {
                MessageBody::Call(CallBody {
                    rpcvers,
                    prog,
                    vers,
                    procedure,
                    cred,
                    verf,
                })
            });
        let accepted = (any_opaque_auth(), any_accept_stat()).prop_map(|(verf, stat)| {
            MessageBody::Reply(ReplyBody::Accepted(AcceptedReply { verf, stat }))
        });
        let denied = prop_oneof![
            (any::<u32>(), any::<u32>())
                .prop_map(|(low, high)| RejectedReply::RpcMismatch { low, high }),
            any_auth_stat().prop_map(|stat| RejectedReply::AuthError { stat }),
        ]
        .prop_map(|r| MessageBody::Reply(ReplyBody::Denied(r)));
        (any::<u32>(), prop_oneof![call, accepted, denied])
            .prop_map(|(xid, body)| RpcMessage { xid, body })
    }

    proptest! {
        #[test]
        fn message_round_trip(msg in any_message()) {
            let mut buf = Vec::new();
            msg.encode(&mut buf);
            prop_assert_eq!(buf.len(), msg.encoded_len());
            prop_assert_eq!(RpcMessage::decode(&buf), Ok(Some((msg.clone(), buf.len()))));
            for cut in 0..buf.len() {
                prop_assert_eq!(RpcMessage::decode(&buf[..cut]), Ok(None));
            }
        }

        #[test]
        fn auth_sys_round_trip(p in any_auth_sys()) {
            let auth = OpaqueAuth::sys(&p);
            prop_assert_eq!(auth.body().len(), p.encoded_len());
            prop_assert_eq!(auth.credentials(), Ok(Credentials::Sys(p)));
        }
    }

    #[test]
    fn bounds_refused() {
        assert!(OpaqueAuth::new(9, vec![0; 401]).is_err());
        assert!(AuthSysParams::new(0, vec![b'a'; 256], 0, 0, vec![]).is_err());
        assert!(AuthSysParams::new(0, "vm", 0, 0, vec![0; 17]).is_err());
        // 17 gids on the wire: refused while parsing, i.e. bad credentials.
        let mut body = Vec::new();
        for w in [0u32, 0, 0, 0, 17] {
            body.extend_from_slice(&w.to_be_bytes());
        }
        body.extend_from_slice(&[0; 68]);
        let auth = OpaqueAuth::new(AUTH_SYS, body).unwrap();
        assert_eq!(auth.credentials(), Err(AuthStat::BadCred));
    }

    #[test]
    fn unknown_msg_type() {
        assert_eq!(
            RpcMessage::decode(b"\0\0\0\x01\0\0\0\x02"),
            Err(XdrError::InvalidDiscriminant {
                what: "msg_type",
                value: 2
            })
        );
    }
}
