//! ONC RPC v2 (RFC 5531) as the log service uses it.
//!
//! - [`message`]: call and reply headers (`rpc_msg`, `call_body`, `reply_body`, ...) and a call
//!   with its arguments ([`Call`]).
//! - [`auth`]: `opaque_auth`, `authsys_parms`, `auth_stat`.
//! - [`reply`]: a whole reply's xid and results, or why the call failed.
//! - [`record`]: record marking for TCP (fragment reassembly, framing).
//! - [`log`]: the log program `LOG_PROG` (0x20000099) version 1 and its server-side dispatcher.

pub mod auth;
pub mod log;
pub mod message;
pub mod record;
pub mod reply;

pub use message::{
    AcceptStat, AcceptedReply, AuthStat, AuthSysParams, Call, CallBody, CallFailure, Credentials,
    MessageBody, OpaqueAuth, RejectedReply, ReplyBody, RpcMessage,
};
pub use record::{RecordDecoder, RecordError, RecordMark};
