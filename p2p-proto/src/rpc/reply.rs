//! Decoding a whole reply message: its xid and the procedure's results, or why the call failed.

use super::message::{
    AcceptStat, AcceptedReply, MessageBody, RejectedReply, ReplyBody, RpcMessage,
};
use crate::codec::finish;
use crate::xdr::{XdrError, XdrResult, fail};

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
