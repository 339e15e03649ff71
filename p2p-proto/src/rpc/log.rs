//! The log program, `LOG_PROG` version 1 (PROTOCOL.md §4; the interface is `p2p-proto/log.x`).
//!
//! ```text
//! struct log_entry { string user<256>; string op<64>; string timestamp<32>; string file<256>; };
//! program LOG_PROG { version LOG_VERS { int SENDLOG(log_entry) = 1; } = 1; } = 0x20000099;
//! ```
//!
//! Client side: [`sendlog_call`] builds a call ([`Call`], encoded into any `BufMut`; framed for
//! TCP by [`Record`](super::record::Record)), [`decode_sendlog_reply`] reads its reply. Server
//! side: [`dispatch`] turns one received call into what a libtirpc (rpcgen) server would do with
//! it, a typed [`LogReply`].
//!
//! ```
//! use p2p_proto::Encode;
//! use p2p_proto::rpc::log::{Dispatch, LogEntry, decode_sendlog_reply, dispatch, sendlog_call};
//!
//! let entry = LogEntry::new("alice", "PUBLISH", "24/11/2026 19:40:12", "song.mp3").unwrap();
//! assert_eq!(entry.to_string(), "alice PUBLISH song.mp3 24/11/2026 19:40:12");
//! let mut call = Vec::new();
//! sendlog_call(7, &entry).encode(&mut call);
//! let Dispatch::Reply { reply, entry: Some(got) } = dispatch(&call) else { panic!() };
//! assert_eq!(got, entry);
//! assert_eq!(reply.xid(), 7); // typed: known without decoding it
//! let mut bytes = Vec::new();
//! reply.encode(&mut bytes);
//! assert_eq!(decode_sendlog_reply(&bytes).unwrap(), Some((7, Ok(0))));
//! ```

use std::fmt;

use bytes::BufMut;
use nom::Parser;
use nom::combinator::cond;

use super::message::{
    AcceptStat, Call, CallBody, Credentials, MessageBody, RejectedReply, Reply, ReplyBody,
    RpcMessage, decode_reply,
};
use crate::codec::{Decode, Encode, finish};
use crate::xdr::{self, XdrError, XdrResult};

/// Program number of the log program.
pub const LOG_PROG: u32 = 0x2000_0099;
/// The only version of the log program.
pub const LOG_VERS: u32 = 1;
/// Procedure 0, NULL: no arguments, no results.
pub const NULLPROC: u32 = 0;
/// Procedure 1, SENDLOG(log_entry) → int.
pub const SENDLOG: u32 = 1;

/// Bound of `log_entry.user`.
pub const USER_MAX: u32 = 256;
/// Bound of `log_entry.op`.
pub const OP_MAX: u32 = 64;
/// Bound of `log_entry.timestamp`.
pub const TIMESTAMP_MAX: u32 = 32;
/// Bound of `log_entry.file`.
pub const FILE_MAX: u32 = 256;

/// `log_entry`: one operation reported to the log service.
///
/// Each string is within its bound, UTF-8 and free of NUL bytes (which a C program could not
/// represent); [`LogEntry::new`] and the decoder refuse anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogEntry {
    user: String,
    op: String,
    timestamp: String,
    file: String,
}

impl LogEntry {
    /// Builds an entry; `file` is `""` when the operation has no file.
    pub fn new(user: &str, op: &str, timestamp: &str, file: &str) -> Result<Self, XdrError> {
        xdr::check_string("log_entry.user", user, USER_MAX)?;
        xdr::check_string("log_entry.op", op, OP_MAX)?;
        xdr::check_string("log_entry.timestamp", timestamp, TIMESTAMP_MAX)?;
        xdr::check_string("log_entry.file", file, FILE_MAX)?;
        Ok(Self {
            user: user.to_owned(),
            op: op.to_owned(),
            timestamp: timestamp.to_owned(),
            file: file.to_owned(),
        })
    }

    /// The user who ran the operation.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The operation (`REGISTER`, `PUBLISH`, ...).
    #[must_use]
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The timestamp, as the directory server received it.
    #[must_use]
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// The file, `""` when the operation has none.
    #[must_use]
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Decodes an entry as a nom parser, refusing a string over its bound as soon as its length is
    /// read.
    ///
    /// ```text
    /// struct log_entry { string user<USER_MAX>; string op<OP_MAX>;
    ///     string timestamp<TIMESTAMP_MAX>; string file<FILE_MAX>; };
    /// ```
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        (
            xdr::string("log_entry.user", USER_MAX),
            xdr::string("log_entry.op", OP_MAX),
            xdr::string("log_entry.timestamp", TIMESTAMP_MAX),
            xdr::string("log_entry.file", FILE_MAX),
        )
            .map(|(user, op, timestamp, file)| Self {
                user: user.to_owned(),
                op: op.to_owned(),
                timestamp: timestamp.to_owned(),
                file: file.to_owned(),
            })
            .parse(input)
    }
}

impl Encode for LogEntry {
    /// Encodes the four strings.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_string(buf, &self.user);
        xdr::put_string(buf, &self.op);
        xdr::put_string(buf, &self.timestamp);
        xdr::put_string(buf, &self.file);
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        [&self.user, &self.op, &self.timestamp, &self.file]
            .iter()
            .map(|s| xdr::opaque_len(s.len()))
            .sum()
    }
}

/// Decodes an entry: `Ok(None)` if `input` ends too early.
impl Decode for LogEntry {
    type Error = XdrError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        finish(input, Self::parse(input))
    }
}

/// The output line of PROTOCOL.md §4, without newline: `USER OP TIMESTAMP`, or
/// `USER OP FILE TIMESTAMP` when the file is not empty.
///
/// Control characters (a newline inside a field would split the record over two lines) are written
/// as `\xNN`; no other character is changed.
impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_field(f, &self.user)?;
        f.write_str(" ")?;
        write_field(f, &self.op)?;
        f.write_str(" ")?;
        if !self.file.is_empty() {
            write_field(f, &self.file)?;
            f.write_str(" ")?;
        }
        write_field(f, &self.timestamp)
    }
}

fn write_field(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for part in s.split_inclusive(char::is_control) {
        match part.chars().last() {
            Some(c) if c.is_control() => {
                f.write_str(&part[..part.len() - c.len_utf8()])?;
                write!(f, "\\x{:02x}", u32::from(c))?;
            }
            _ => f.write_str(part)?,
        }
    }
    Ok(())
}

/// A SENDLOG call with AUTH_NONE: the bare RPC message (a UDP datagram; frame it with
/// [`Record`](super::record::Record) for TCP).
#[must_use]
pub const fn sendlog_call(xid: u32, entry: &LogEntry) -> Call<&LogEntry> {
    Call::new(xid, LOG_PROG, LOG_VERS, SENDLOG, entry)
}

/// A NULL call to the log program with AUTH_NONE (bare message).
#[must_use]
pub const fn null_call(xid: u32) -> Call<()> {
    Call::new(xid, LOG_PROG, LOG_VERS, NULLPROC, ())
}

/// A reply of the log program as [`dispatch`] builds it: the header, and SENDLOG's `int`
/// result when it succeeded. Typed, so that its xid and status are known without decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReply {
    /// The reply header (a [`MessageBody::Reply`]).
    pub header: RpcMessage,
    /// SENDLOG's result (always 0 from this crate's dispatcher); `None` for every other reply.
    pub result: Option<i32>,
}

impl LogReply {
    /// The xid of the call it answers.
    #[must_use]
    pub const fn xid(&self) -> u32 {
        self.header.xid
    }

    /// The status of an accepted reply; `None` for a denied one.
    #[must_use]
    pub const fn accept_stat(&self) -> Option<AcceptStat> {
        match &self.header.body {
            MessageBody::Reply(ReplyBody::Accepted(a)) => Some(a.stat),
            _ => None,
        }
    }

    /// The SYSTEM_ERR reply to the same call: what a server answers instead when it could not
    /// do what the call asked (the record was not written).
    #[must_use]
    pub const fn system_err(&self) -> Self {
        Self {
            header: RpcMessage::accepted(self.xid(), AcceptStat::SystemErr),
            result: None,
        }
    }
}

impl Encode for LogReply {
    fn encode(&self, buf: &mut impl BufMut) {
        self.header.encode(buf);
        if let Some(result) = self.result {
            xdr::put_i32(buf, result);
        }
    }

    fn encoded_len(&self) -> usize {
        self.header.encoded_len() + self.result.map_or(0, |_| xdr::UNIT)
    }
}

/// Decodes the reply to a call of the procedure given as context: a successful SENDLOG carries
/// its `int`, every other reply nothing. A call is [`XdrError::InvalidValue`].
impl Decode<u32> for LogReply {
    type Error = XdrError;

    fn decode_with(procedure: u32, input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        let parser = |input| {
            let (rest, header) = RpcMessage::parse(input)?;
            let has_result = match &header.body {
                MessageBody::Call(_) => {
                    return xdr::fail(XdrError::InvalidValue {
                        what: "reply (got a call)",
                    });
                }
                MessageBody::Reply(ReplyBody::Accepted(a)) => {
                    a.stat == AcceptStat::Success && procedure == SENDLOG
                }
                MessageBody::Reply(ReplyBody::Denied(_)) => false,
            };
            let (rest, result) = cond(has_result, xdr::i32).parse(rest)?;
            Ok((rest, Self { header, result }))
        };
        finish(input, parser(input))
    }
}

/// Decodes a complete reply to SENDLOG: xid and the `int` result, or why the call failed.
pub fn decode_sendlog_reply(msg: &[u8]) -> Result<Option<Reply<i32>>, XdrError> {
    decode_reply(msg, xdr::i32)
}

/// Decodes a complete reply to NULL.
pub fn decode_null_reply(msg: &[u8]) -> Result<Option<Reply<()>>, XdrError> {
    decode_reply(msg, xdr::void)
}

/// What a server does with one received message, as [`dispatch`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// Send `reply` (a bare RPC message); print `entry` if there is one.
    Reply {
        /// The reply message.
        reply: LogReply,
        /// The record of a successful SENDLOG.
        entry: Option<LogEntry>,
    },
    /// Send nothing. Over TCP close the connection, over UDP drop the datagram (libtirpc).
    Close {
        /// Why.
        reason: CloseReason,
    },
}

/// Why [`dispatch`] answered [`Dispatch::Close`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The message header is truncated or malformed.
    Malformed(XdrError),
    /// The message ends inside the call header.
    Truncated,
    /// The message is a reply, not a call.
    NotACall,
    /// The call's `rpcvers` is not 2.
    RpcVersion {
        /// The version received.
        rpcvers: u32,
    },
}

/// Handles one received message (a whole TCP record or UDP datagram) as libtirpc's server side of
/// an rpcgen log program does:
///
/// - malformed or truncated header, a REPLY, `rpcvers` ≠ 2: no reply ([`Dispatch::Close`]);
/// - AUTH_SYS credentials that do not parse: MSG_DENIED AUTH_ERROR(AUTH_BADCRED); flavors other
///   than AUTH_NONE and AUTH_SYS: AUTH_ERROR(AUTH_REJECTEDCRED);
/// - another program: PROG_UNAVAIL; another version: PROG_MISMATCH(1, 1); procedure other than 0
///   and 1: PROC_UNAVAIL;
/// - NULL: SUCCESS with no results; SENDLOG: SUCCESS with int 0 and the entry to print, or
///   GARBAGE_ARGS when the arguments do not decode (truncated, a string over its bound, not UTF-8
///   or holding a NUL). Bytes after the arguments are ignored, as libtirpc does.
///
/// The reply's verifier is AUTH_NONE.
#[must_use]
pub fn dispatch(msg: &[u8]) -> Dispatch {
    let (header, used) = match RpcMessage::decode(msg) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Dispatch::Close {
                reason: CloseReason::Truncated,
            };
        }
        Err(e) => {
            return Dispatch::Close {
                reason: CloseReason::Malformed(e),
            };
        }
    };
    let xid = header.xid;
    let MessageBody::Call(call) = header.body else {
        return Dispatch::Close {
            reason: CloseReason::NotACall,
        };
    };
    if call.rpcvers != super::message::RPC_VERSION {
        return Dispatch::Close {
            reason: CloseReason::RpcVersion {
                rpcvers: call.rpcvers,
            },
        };
    }
    let (header, entry) = match serve(&call, &msg[used..]) {
        Served::Denied(reason) => (RpcMessage::denied(xid, reason), None),
        Served::Failed(stat) => (RpcMessage::accepted(xid, stat), None),
        Served::Null => (RpcMessage::accepted(xid, AcceptStat::Success), None),
        Served::SendLog(entry) => (RpcMessage::accepted(xid, AcceptStat::Success), Some(entry)),
    };
    // SENDLOG's result: int 0.
    let result = entry.as_ref().map(|_| 0);
    Dispatch::Reply {
        reply: LogReply { header, result },
        entry,
    }
}

enum Served {
    Denied(RejectedReply),
    Failed(AcceptStat),
    Null,
    SendLog(LogEntry),
}

fn serve(call: &CallBody, args: &[u8]) -> Served {
    match call.cred.credentials() {
        Ok(Credentials::None | Credentials::Sys(_)) => {}
        Ok(_) => {
            return Served::Denied(RejectedReply::AuthError {
                stat: super::message::AuthStat::RejectedCred,
            });
        }
        Err(stat) => return Served::Denied(RejectedReply::AuthError { stat }),
    }
    if call.prog != LOG_PROG {
        return Served::Failed(AcceptStat::ProgUnavail);
    }
    if call.vers != LOG_VERS {
        return Served::Failed(AcceptStat::ProgMismatch {
            low: LOG_VERS,
            high: LOG_VERS,
        });
    }
    match call.procedure {
        NULLPROC => Served::Null,
        SENDLOG => match LogEntry::decode(args) {
            Ok(Some((entry, _))) => Served::SendLog(entry),
            Ok(None) | Err(_) => Served::Failed(AcceptStat::GarbageArgs),
        },
        _ => Served::Failed(AcceptStat::ProcUnavail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[^\\x00]{{0,{max}}}"))
            .unwrap()
            .prop_filter("within bound", move |s| s.len() <= max)
    }

    pub(crate) fn any_entry() -> impl Strategy<Value = LogEntry> {
        (text(256), text(64), text(32), text(256))
            .prop_map(|(u, o, t, f)| LogEntry::new(&u, &o, &t, &f).unwrap())
    }

    proptest! {
        #[test]
        fn entry_round_trip(entry in any_entry()) {
            let buf = crate::testing::round_trip((), &entry);
            crate::testing::prefixes_incomplete::<(), LogEntry>((), &buf);
        }

        #[test]
        fn dispatch_round_trip(entry in any_entry(), xid in any::<u32>()) {
            let d = dispatch(&crate::codec::to_vec(&sendlog_call(xid, &entry)));
            let Dispatch::Reply { reply, entry: got } = d else {
                return Err(TestCaseError::fail("no reply"));
            };
            prop_assert_eq!(got, Some(entry));
            prop_assert_eq!(reply.xid(), xid);
            let bytes = crate::codec::to_vec(&reply);
            prop_assert_eq!(decode_sendlog_reply(&bytes), Ok(Some((xid, Ok(0)))));
            prop_assert_eq!(crate::testing::round_trip(SENDLOG, &reply), bytes);
        }
    }

    #[test]
    fn line_format() {
        let e = LogEntry::new("bob", "CONNECT", "24/11/2026 19:40:13", "").unwrap();
        assert_eq!(e.to_string(), "bob CONNECT 24/11/2026 19:40:13");
        let e = LogEntry::new("bob", "PUBLISH", "t", "a\nb\u{7f}é").unwrap();
        assert_eq!(e.to_string(), "bob PUBLISH a\\x0ab\\x7fé t");
    }

    #[test]
    fn constructor_bounds() {
        let long = "u".repeat(257);
        assert_eq!(
            LogEntry::new(&long, "OP", "t", ""),
            Err(XdrError::TooLong {
                what: "log_entry.user",
                len: 257,
                max: 256
            })
        );
        assert!(LogEntry::new(&long[..256], "OP", "t", "").is_ok());
        assert!(LogEntry::new("u", &"o".repeat(65), "t", "").is_err());
        assert!(LogEntry::new("u", "o", &"t".repeat(33), "").is_err());
        assert!(LogEntry::new("u", "o", "t", &"f".repeat(257)).is_err());
        assert_eq!(
            LogEntry::new("u\0", "o", "t", ""),
            Err(XdrError::ContainsNul {
                what: "log_entry.user"
            })
        );
    }
}
