//! Decoding a whole reply message: its xid and the procedure's results, or why the call failed.

use super::message::{
    AcceptStat, AcceptedReply, MessageBody, RejectedReply, ReplyBody, RpcMessage,
};
use nom::Parser;
use nom::combinator::{cut, map_res};

use crate::codec::finish;
use crate::xdr::XdrError;

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

/// A reply header's xid, and why the call failed (`None`: SUCCESS, the results follow); a call
/// is refused.
fn outcome(header: RpcMessage) -> Result<(u32, Option<CallFailure>), XdrError> {
    let failure = match header.body {
        MessageBody::Call(_) => {
            return Err(XdrError::InvalidValue {
                what: "reply (got a call)",
            });
        }
        MessageBody::Reply(ReplyBody::Accepted(AcceptedReply {
            stat: AcceptStat::Success,
            ..
        })) => None,
        MessageBody::Reply(ReplyBody::Accepted(a)) => Some(CallFailure::Accepted { stat: a.stat }),
        MessageBody::Reply(ReplyBody::Denied(reason)) => Some(CallFailure::Denied { reason }),
    };
    Ok((header.xid, failure))
}

/// A decoded reply: its xid and the results, or why there are none.
pub type Reply<T> = (u32, Result<T, CallFailure>);

/// Decodes a complete reply message (a whole record or datagram) with `results` for the SUCCESS
/// case.
///
/// `Ok(None)`: the message ends too early. A call, or bytes after the results, are errors.
pub(crate) fn decode_reply<'a, T>(
    msg: &'a [u8],
    results: impl Parser<&'a [u8], Output = T, Error = XdrError> + Clone,
) -> Result<Option<Reply<T>>, XdrError> {
    // `reply = rpc_msg [results]`: the results only after MSG_ACCEPTED / SUCCESS, so the
    // header's outcome chooses what follows (nom's `flat_map`).
    let mut parser = cut(map_res(RpcMessage::parse, outcome)).flat_map(|(xid, failure)| {
        let mut results = results.clone();
        move |input| match failure {
            None => results
                .parse(input)
                .map(|(input, value)| (input, (xid, Ok(value)))),
            Some(failure) => Ok((input, (xid, Err(failure)))),
        }
    });
    match finish(msg, parser.parse(msg))? {
        None => Ok(None),
        Some((_, used)) if used != msg.len() => Err(XdrError::TrailingBytes {
            count: msg.len() - used,
        }),
        Some((reply, _)) => Ok(Some(reply)),
    }
}
