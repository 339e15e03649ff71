//! ONC RPC v2 (RFC 5531) as the log service uses it.
//!
//! - [`message`]: call and reply headers, credentials, reply decoding.
//! - [`record`]: record marking for TCP (fragment reassembly, framing).
//! - [`log`]: the log program `LOG_PROG` (0x20000099) version 1 and its server-side dispatcher.

pub mod log;
pub mod message;
pub mod record;

pub use message::{
    AcceptStat, AcceptedReply, AuthStat, AuthSysParams, CallBody, CallFailure, Credentials,
    MessageBody, OpaqueAuth, RejectedReply, ReplyBody, RpcMessage,
};
pub use record::{RecordDecoder, RecordError, RecordMark};
