//! Capability discovery (PROTOCOL.md §6.1) and the messages a directory server reads.
//!
//! ```text
//! capabilities-request = "CAPABILITIES" NUL          ; no DATETIME, no USER
//! capabilities-reply   = %x00 count NUL count(operation NUL)
//! server-message       = capabilities-request / request
//! ```
//!
//! `CAPABILITIES` has neither `DATETIME` nor `USER`, so it is not a [`Request`] and has no
//! [`OpCode`]. A server reads a [`ServerMessage`] instead of a [`Request`]
//! ([`ServerMessageDecoder`](super::ServerMessageDecoder) for a socket loop). A classic server
//! closes the connection on `CAPABILITIES` without a reply byte: for the client, no extensions.
//!
//! ```
//! use p2p_proto::{Decode, Encode};
//! use p2p_proto::directory::{CapabilitiesReply, OpCode, ServerMessage};
//!
//! assert_eq!(
//!     ServerMessage::decode(b"CAPABILITIES\0")?,
//!     Some((ServerMessage::Capabilities, 13))
//! );
//! let reply = CapabilitiesReply::from_ops(OpCode::EXTENSIONS);
//! let mut wire = Vec::new();
//! reply.encode(&mut wire);
//! assert_eq!(wire, b"\x003\0GET_USER_INFO\0SEARCH\0PING\0");
//! let (decoded, _) = CapabilitiesReply::decode(&wire)?.expect("whole reply");
//! assert!(decoded.supports(OpCode::Search));
//! assert!(!decoded.supports(OpCode::Register));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::BufMut;

use nom::Parser;
use nom::combinator::{cut, map_res};
use nom::sequence::preceded;

use super::reply::list;
use super::request::naming;
use super::{MAX_CAPABILITIES, MAX_OP_LEN, OpCode, Request, RequestError};
use crate::codec::{Decode, Encode, finish};
use crate::error::DecodeError;
use crate::field::{MAX_FIELD_LEN, OperationName};
use crate::wire::{self, PResult};

/// The `CAPABILITIES` request: exactly the bytes `CAPABILITIES\0`.
///
/// It is complete at its NUL; whatever follows is not part of it (the server reads one message
/// per connection and ignores the rest, as after any request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct CapabilitiesRequest;

impl CapabilitiesRequest {
    /// The request's `OP` field, without its NUL.
    pub const OP: &'static str = "CAPABILITIES";

    /// `capabilities-request = "CAPABILITIES" NUL`, read as an `OP` field (so a strict prefix
    /// of any `OP` is incomplete, as for a request).
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        wire::checked_field("OP", MAX_OP_LEN, |op| {
            if op == Self::OP.as_bytes() {
                Ok(Self)
            } else {
                Err(DecodeError::UnknownOp)
            }
        })
        .parse(input)
    }
}

impl Encode for CapabilitiesRequest {
    /// Writes `CAPABILITIES\0`.
    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, Self::OP.as_bytes());
    }

    /// 13.
    fn encoded_len(&self) -> usize {
        wire::field_len(Self::OP.len())
    }
}

/// Decodes `CAPABILITIES\0`: `Ok(None)` for a strict prefix of it (and, as for any `OP` field,
/// for up to [`MAX_OP_LEN`] bytes without a NUL); [`DecodeError::UnknownOp`] for any other `OP`
/// field, [`DecodeError::FieldTooLong`] for an `OP` field longer than [`MAX_OP_LEN`].
impl Decode for CapabilitiesRequest {
    type Error = DecodeError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(input, Self::parse(input))
    }
}

/// The reply to `CAPABILITIES`: result `0`, then the names of the extension operations the
/// server accepts (p2p-server: [`OpCode::EXTENSIONS`]).
///
/// Names this crate does not know are kept (a newer server may list them); the client asks
/// [`Self::supports`] about the ones it knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapabilitiesReply {
    /// The operation names, in the order sent. At most [`MAX_CAPABILITIES`] decode.
    pub operations: Vec<OperationName>,
}

impl CapabilitiesReply {
    /// A reply listing `operations`.
    #[must_use]
    pub const fn new(operations: Vec<OperationName>) -> Self {
        Self { operations }
    }

    /// A reply listing the names of `ops`, in order.
    #[must_use]
    pub fn from_ops(ops: impl IntoIterator<Item = OpCode>) -> Self {
        Self::new(ops.into_iter().map(OperationName::from).collect())
    }

    /// Whether the server listed `op`.
    #[must_use]
    pub fn supports(&self, op: OpCode) -> bool {
        self.operations
            .iter()
            .any(|name| name.as_str() == op.as_str())
    }

    /// The listed operations this crate knows, in order (unknown names skipped).
    pub fn known_ops(&self) -> impl Iterator<Item = OpCode> + '_ {
        self.operations
            .iter()
            .filter_map(|name| OpCode::from_bytes(name.as_bytes()))
    }

    /// `capabilities-reply = %x00 count NUL count(operation NUL)`.
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        let result = cut(map_res(wire::byte, |code| match code {
            0 => Ok(()),
            code => Err(DecodeError::InvalidCapabilitiesResult { code }),
        }));
        let operation = wire::checked_field("OPERATION", MAX_FIELD_LEN, |raw| {
            OperationName::from_bytes(raw).map_err(|error| DecodeError::InvalidField {
                field: "OPERATION",
                error,
            })
        });
        preceded(result, list(MAX_CAPABILITIES, operation))
            .map(|operations| Self { operations })
            .parse(input)
    }
}

impl Encode for CapabilitiesReply {
    /// Writes the reply: `0`, `N\0`, then each name and its NUL.
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(0);
        wire::put_decimal(buf, self.operations.len() as u64);
        for name in &self.operations {
            wire::put_field(buf, name.as_bytes());
        }
    }

    fn encoded_len(&self) -> usize {
        1 + wire::decimal_len(self.operations.len() as u64)
            + self
                .operations
                .iter()
                .map(|name| wire::field_len(name.len()))
                .sum::<usize>()
    }
}

/// Decodes the reply: a count above [`MAX_CAPABILITIES`] is refused before anything is
/// allocated for it; [`DecodeError::InvalidCapabilitiesResult`] for a result byte other than 0;
/// a malformed count or name ([`DecodeError::InvalidNumber`], [`DecodeError::CountTooLarge`],
/// [`DecodeError::InvalidField`], [`DecodeError::FieldTooLong`]).
impl Decode for CapabilitiesReply {
    type Error = DecodeError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(input, Self::parse(input))
    }
}

/// Fuzzer input: at most [`MAX_CAPABILITIES`] names, so that every value survives the wire.
#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for CapabilitiesReply {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut operations = Vec::new();
        for name in u.arbitrary_iter::<OperationName>()? {
            if operations.len() == MAX_CAPABILITIES {
                break;
            }
            operations.push(name?);
        }
        Ok(Self { operations })
    }
}

impl FromIterator<OpCode> for CapabilitiesReply {
    fn from_iter<I: IntoIterator<Item = OpCode>>(ops: I) -> Self {
        Self::from_ops(ops)
    }
}

/// What a directory server reads from a connection: a [`Request`] (§1, §6.2, §6.3) or the
/// `CAPABILITIES` request (§6.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum ServerMessage {
    /// An ordinary request, `OP\0 [DATETIME\0] USER\0 ...`.
    Request(Request),
    /// `CAPABILITIES\0`; the server answers a [`CapabilitiesReply`].
    Capabilities,
}

impl ServerMessage {
    /// The request's operation; `None` for `CAPABILITIES`.
    #[must_use]
    pub const fn op(&self) -> Option<OpCode> {
        match self {
            Self::Request(request) => Some(request.op()),
            Self::Capabilities => None,
        }
    }
}

impl Encode for ServerMessage {
    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::Request(request) => request.encode(buf),
            Self::Capabilities => CapabilitiesRequest.encode(buf),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Request(request) => request.encoded_len(),
            Self::Capabilities => CapabilitiesRequest.encoded_len(),
        }
    }
}

/// `server-message = capabilities-request / request`, with [`Request`]'s contract:
/// `Ok(None)` while incomplete, bytes after the message left alone. `CAPABILITIES\0` is a whole
/// message at its NUL, whatever follows.
///
/// Errors: exactly [`Request`]'s [`RequestError`] for every input that does not start with
/// `CAPABILITIES\0` (`op: Some(..)` once the `OP` field named an operation); the
/// `CAPABILITIES` request itself has nothing that can be malformed.
impl Decode for ServerMessage {
    type Error = RequestError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, RequestError> {
        finish(input, Self::parse(input))
    }
}

impl ServerMessage {
    /// `server-message = capabilities-request / request`: both start with an `OP` field, so
    /// it is read once (`"CAPABILITIES" / op`, one table lookup) rather than by an `alt` that
    /// would scan it twice; `CAPABILITIES` is then a whole message, any other operation goes on
    /// with [`Request`]'s grammar and names itself in its errors.
    fn parse(input: &[u8]) -> nom::IResult<&[u8], Self, RequestError> {
        let (rest, op) = server_op(input).map_err(naming(None))?;
        match op {
            None => Ok((rest, Self::Capabilities)),
            Some(op) => Request::parse_after_op(op, rest)
                .map(|(rest, request)| (rest, Self::Request(request)))
                .map_err(naming(Some(op))),
        }
    }
}

/// `server-op = "CAPABILITIES" / op` as one `OP` field: `None` for `CAPABILITIES`, the
/// operation otherwise; the same decisions as [`wire::op_code`] for everything else.
fn server_op(input: &[u8]) -> PResult<'_, Option<OpCode>> {
    wire::checked(input, "OP", MAX_OP_LEN, |raw| {
        if raw == CapabilitiesRequest::OP.as_bytes() {
            Ok(None)
        } else {
            OpCode::from_bytes(raw)
                .map(Some)
                .ok_or(DecodeError::UnknownOp)
        }
    })
}

impl From<Request> for ServerMessage {
    fn from(request: Request) -> Self {
        Self::Request(request)
    }
}

impl From<CapabilitiesRequest> for ServerMessage {
    fn from(_: CapabilitiesRequest) -> Self {
        Self::Capabilities
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RequestBody, strategy};
    use super::*;
    use crate::field::FieldError;
    use crate::testutil::{check_kat, hex};
    use proptest::prelude::*;

    fn encode_reply(reply: &CapabilitiesReply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(reply.encoded_len(), out.len());
        out
    }

    fn encode_message(message: &ServerMessage) -> Vec<u8> {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(message.encoded_len(), out.len());
        out
    }

    #[test]
    fn request_known_answer() {
        // C  A  P  A  B  I  L  I  T  I  E  S  NUL
        let bytes = hex("43 41 50 41 42 49 4c 49 54 49 45 53 00");
        check_kat(&bytes, &CapabilitiesRequest);
        check_kat(&bytes, &ServerMessage::Capabilities);
    }

    #[test]
    fn request_refuses_other_ops() {
        for (bytes, error) in [
            (&b"REGISTER\0alice\0"[..], DecodeError::UnknownOp),
            (b"capabilities\0", DecodeError::UnknownOp),
            (b"CAPABILITIE\0", DecodeError::UnknownOp),
            (b"\0", DecodeError::UnknownOp),
            (
                b"CAPABILITIESXY",
                DecodeError::FieldTooLong {
                    field: "OP",
                    max: 13,
                },
            ),
        ] {
            assert_eq!(CapabilitiesRequest::decode(bytes), Err(error), "{bytes:?}");
        }
        // 13 bytes without a NUL may still be some OP field.
        assert_eq!(CapabilitiesRequest::decode(b"CAPABILITIESX"), Ok(None));
    }

    #[test]
    fn server_message_is_the_request_decoder_otherwise() {
        let err = |op, error| Err(RequestError { op, error });
        // Whatever follows CAPABILITIES\0 is not part of it.
        assert_eq!(
            ServerMessage::decode(b"CAPABILITIES\x0024/11/2026 20:42:35\0alice\0"),
            Ok(Some((ServerMessage::Capabilities, 13)))
        );
        assert_eq!(
            ServerMessage::decode(b"CAPABILITIESX\0"),
            err(None, DecodeError::UnknownOp)
        );
        assert_eq!(
            ServerMessage::decode(b"CAPABILITIESXY"),
            err(
                None,
                DecodeError::FieldTooLong {
                    field: "OP",
                    max: 13
                }
            )
        );
        assert_eq!(
            ServerMessage::decode(b"SEARCH\0al ice\0"),
            err(
                Some(OpCode::Search),
                DecodeError::InvalidField {
                    field: "USER",
                    error: FieldError::Whitespace
                }
            )
        );
        assert_eq!(
            ServerMessage::decode(b"PING\0alice\0"),
            Ok(Some((
                ServerMessage::Request(Request {
                    timestamp: None,
                    user: "alice".parse().unwrap(),
                    body: RequestBody::Ping,
                }),
                11
            )))
        );
        assert_eq!(ServerMessage::Capabilities.op(), None);
    }

    #[test]
    fn reply_known_answers() {
        check_kat(
            &hex("00                                       \
                 33 00                                    \
                 47 45 54 5f 55 53 45 52 5f 49 4e 46 4f 00\
                 53 45 41 52 43 48 00                     \
                 50 49 4e 47 00"),
            &CapabilitiesReply::from_ops(OpCode::EXTENSIONS),
        );
        // A server with no extension to list.
        check_kat(&hex("00 30 00"), &CapabilitiesReply::default());
        // A newer server: a name this crate does not know is kept, the known ones still count.
        let newer = CapabilitiesReply::new(vec![
            "PING".parse().unwrap(),
            "GET_FILE_FROM_V2".parse().unwrap(),
        ]);
        check_kat(b"\x002\0PING\0GET_FILE_FROM_V2\0", &newer);
        assert!(newer.supports(OpCode::Ping));
        assert!(!newer.supports(OpCode::Search));
        assert_eq!(newer.known_ops().collect::<Vec<_>>(), [OpCode::Ping]);
    }

    #[test]
    fn malformed_replies() {
        assert_eq!(
            CapabilitiesReply::decode(b"\x01"),
            Err(DecodeError::InvalidCapabilitiesResult { code: 1 })
        );
        assert_eq!(
            CapabilitiesReply::decode(b"\x00x\0"),
            Err(DecodeError::InvalidNumber { field: "COUNT" })
        );
        assert_eq!(CapabilitiesReply::decode(b"\x00256\0"), Ok(None));
        assert_eq!(
            CapabilitiesReply::decode(b"\x00257\0"),
            Err(DecodeError::CountTooLarge {
                count: 257,
                max: MAX_CAPABILITIES
            })
        );
        for (name, error) in [
            (&b""[..], FieldError::Empty),
            (b"GET USER", FieldError::Whitespace),
            (b"\xff", FieldError::NotUtf8),
            (b"P\x01", FieldError::Control),
        ] {
            let bytes = [b"\x001\0", name, b"\0"].concat();
            assert_eq!(
                CapabilitiesReply::decode(&bytes),
                Err(DecodeError::InvalidField {
                    field: "OPERATION",
                    error
                })
            );
        }
        let mut long = b"\x001\0".to_vec();
        long.extend([b'A'; 256]);
        assert_eq!(
            CapabilitiesReply::decode(&long),
            Err(DecodeError::FieldTooLong {
                field: "OPERATION",
                max: 255
            })
        );
    }

    proptest! {
        #[test]
        fn reply_round_trip(reply in strategy::capabilities_reply()) {
            let bytes = encode_reply(&reply);
            prop_assert_eq!(CapabilitiesReply::decode(&bytes), Ok(Some((reply.clone(), bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(CapabilitiesReply::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn server_message_round_trip(message in strategy::server_message()) {
            let bytes = encode_message(&message);
            prop_assert_eq!(ServerMessage::decode(&bytes), Ok(Some((message.clone(), bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(ServerMessage::decode(&bytes[..cut]), Ok(None));
            }
        }

        /// On anything but `CAPABILITIES\0`, exactly the request decoder's answer.
        #[test]
        fn server_message_agrees_with_request_decoder(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0_u8), b'A'..=b'Z', any::<u8>()], 0..40),
        ) {
            let message = ServerMessage::decode(&bytes);
            if bytes.starts_with(b"CAPABILITIES\0") {
                prop_assert_eq!(message, Ok(Some((ServerMessage::Capabilities, 13))));
            } else {
                let request = Request::decode(&bytes)
                    .map(|o| o.map(|(r, n)| (ServerMessage::Request(r), n)));
                prop_assert_eq!(message, request);
            }
        }

        #[test]
        fn reply_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((reply, consumed))) = CapabilitiesReply::decode(&bytes) {
                prop_assert!(consumed <= bytes.len());
                // A count may carry leading zeros; the re-encoding has none.
                prop_assert!(reply.encoded_len() <= consumed);
            }
        }
    }
}
