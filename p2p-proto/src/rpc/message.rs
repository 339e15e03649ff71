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
//! The authentication structures (`opaque_auth`, `authsys_parms`, `auth_stat`) are in
//! [`super::auth`], the decoding of a whole reply with its results in [`super::reply`]; both are
//! re-exported here.
//!
//! An [`RpcMessage`] holds the header only, as the RFC's structures do: a call's arguments and a
//! successful reply's results follow it in the same message (the rest of the TCP record or UDP
//! datagram) and are encoded and decoded by the program (for example [`super::log`]).

use bytes::BufMut;
use nom::Parser;
use nom::combinator::{cut, map_res};

pub use super::auth::{
    AUTH_NONE, AUTH_SYS, AuthStat, AuthSysParams, Credentials, MAX_AUTH_BYTES, MAX_GIDS,
    MAX_MACHINE_NAME, OpaqueAuth,
};
pub(crate) use super::reply::decode_reply;
pub use super::reply::{CallFailure, Reply};
use crate::codec::{Decode, Encode, finish};
use crate::xdr::{self, XdrError, XdrResult, fail};

/// The only RPC protocol version (`rpcvers`) of RFC 5531.
pub const RPC_VERSION: u32 = 2;

const CALL: u32 = 0;

const REPLY: u32 = 1;

const MSG_ACCEPTED: u32 = 0;

const MSG_DENIED: u32 = 1;

const RPC_MISMATCH: u32 = 0;

const AUTH_ERROR: u32 = 1;

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
    ///
    /// ```text
    /// struct rpc_msg { unsigned int xid; union switch (msg_type mtype) {
    ///     case CALL: call_body cbody; case REPLY: reply_body rbody; } body; };
    /// ```
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        (xdr::u32, xdr::u32.flat_map(|mtype| move |i| body(mtype, i)))
            .map(|(xid, body)| Self { xid, body })
            .parse(input)
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

/// The arm of `rpc_msg`'s union that `mtype` selects.
#[inline]
fn body(mtype: u32, input: &[u8]) -> XdrResult<'_, MessageBody> {
    match mtype {
        CALL => call_body.map(MessageBody::Call).parse(input),
        REPLY => reply_body.map(MessageBody::Reply).parse(input),
        value => fail(XdrError::InvalidDiscriminant {
            what: "msg_type",
            value,
        }),
    }
}

/// ```text
/// struct call_body { unsigned int rpcvers; unsigned int prog; unsigned int vers;
///     unsigned int proc; opaque_auth cred; opaque_auth verf; };
/// ```
#[inline]
fn call_body(input: &[u8]) -> XdrResult<'_, CallBody> {
    (
        xdr::u32,
        xdr::u32,
        xdr::u32,
        xdr::u32,
        OpaqueAuth::parse,
        OpaqueAuth::parse,
    )
        .map(|(rpcvers, prog, vers, procedure, cred, verf)| CallBody {
            rpcvers,
            prog,
            vers,
            procedure,
            cred,
            verf,
        })
        .parse(input)
}

/// ```text
/// union reply_body switch (reply_stat stat) {
///     case MSG_ACCEPTED: accepted_reply areply; case MSG_DENIED: rejected_reply rreply; };
/// ```
fn reply_body(input: &[u8]) -> XdrResult<'_, ReplyBody> {
    xdr::u32
        .flat_map(|stat| {
            move |i| match stat {
                MSG_ACCEPTED => accepted_reply.map(ReplyBody::Accepted).parse(i),
                MSG_DENIED => rejected_reply.map(ReplyBody::Denied).parse(i),
                value => fail(XdrError::InvalidDiscriminant {
                    what: "reply_stat",
                    value,
                }),
            }
        })
        .parse(input)
}

/// ```text
/// struct accepted_reply { opaque_auth verf; union switch (accept_stat stat) {
///     case SUCCESS: opaque results[0];
///     case PROG_MISMATCH: struct { unsigned int low; unsigned int high; } mismatch_info;
///     default: void; } reply_data; };
/// ```
/// (`default` covers the RFC's four other statuses; any other value is refused.)
fn accepted_reply(input: &[u8]) -> XdrResult<'_, AcceptedReply> {
    (
        OpaqueAuth::parse,
        xdr::u32.flat_map(|code| move |i| accept_stat(code, i)),
    )
        .map(|(verf, stat)| AcceptedReply { verf, stat })
        .parse(input)
}

/// The arm of `accepted_reply`'s union that `code` selects.
fn accept_stat(code: u32, input: &[u8]) -> XdrResult<'_, AcceptStat> {
    match code {
        0 => Ok((input, AcceptStat::Success)),
        1 => Ok((input, AcceptStat::ProgUnavail)),
        2 => (xdr::u32, xdr::u32)
            .map(|(low, high)| AcceptStat::ProgMismatch { low, high })
            .parse(input),
        3 => Ok((input, AcceptStat::ProcUnavail)),
        4 => Ok((input, AcceptStat::GarbageArgs)),
        5 => Ok((input, AcceptStat::SystemErr)),
        value => fail(XdrError::InvalidDiscriminant {
            what: "accept_stat",
            value,
        }),
    }
}

/// ```text
/// union rejected_reply switch (reject_stat stat) {
///     case RPC_MISMATCH: struct { unsigned int low; unsigned int high; } mismatch_info;
///     case AUTH_ERROR: auth_stat stat; };
/// ```
fn rejected_reply(input: &[u8]) -> XdrResult<'_, RejectedReply> {
    xdr::u32
        .flat_map(|code| {
            move |i| match code {
                RPC_MISMATCH => (xdr::u32, xdr::u32)
                    .map(|(low, high)| RejectedReply::RpcMismatch { low, high })
                    .parse(i),
                AUTH_ERROR => cut(map_res(xdr::u32, |value| {
                    AuthStat::from_code(value).ok_or(XdrError::InvalidDiscriminant {
                        what: "auth_stat",
                        value,
                    })
                }))
                .map(|stat| RejectedReply::AuthError { stat })
                .parse(i),
                value => fail(XdrError::InvalidDiscriminant {
                    what: "reject_stat",
                    value,
                }),
            }
        })
        .parse(input)
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
            let buf = crate::testing::round_trip((), &msg);
            crate::testing::prefixes_incomplete::<(), RpcMessage>((), &buf);
            // With arguments after it, as a call carries them.
            if let MessageBody::Call(_) = msg.body {
                let args = crate::rpc::log::LogEntry::new("alice", "PING", "t", "").unwrap();
                crate::testing::round_trip((), &Call { header: msg, args });
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
