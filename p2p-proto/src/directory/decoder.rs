//! A resumable request decoder for socket loops that append to one buffer.

use bytes::{Buf, BytesMut};

use super::{MAX_OP_LEN, MAX_PORT_DIGITS, Request, RequestError, ServerMessage};
use crate::codec::{Decode, StreamDecoder};
use crate::field::MAX_FIELD_LEN;

/// The field limits of the request grammar. The request parser decides
/// something only when a NUL arrives or when the field being read grows past
/// one of these; between such events its answer stays "incomplete".
const LIMITS: [usize; 3] = [MAX_PORT_DIGITS, MAX_OP_LEN, MAX_FIELD_LEN];

/// Streaming form of [`Request::decode`] for a read loop that appends to a buffer.
///
/// Like tokio-util's `AnyDelimiterCodec`, it remembers how far it has looked,
/// so a request trickling in one byte per read is not rescanned from the start
/// on every read: new bytes are scanned once for a NUL, and the request is
/// parsed only when a field completes or outgrows a limit (a handful of times
/// per request, each at most [`MAX_REQUEST_LEN`](super::MAX_REQUEST_LEN) bytes).
///
/// It answers exactly what [`Request`]'s [`Decode`] answers for the same bytes, with the
/// [`StreamDecoder`] contract. Pass the same buffer each time, grown only by appending; after
/// a request or an error the decoder starts over by itself. Call [`Self::reset`] when the
/// buffer is replaced or bytes are removed from its front otherwise.
///
/// ```
/// use bytes::BytesMut;
/// use p2p_proto::StreamDecoder;
/// use p2p_proto::directory::RequestDecoder;
///
/// let wire = b"REGISTER\x0024/11/2026 20:42:35\x00alice\x00PING";
/// let mut decoder = RequestDecoder::default();
/// let mut buf = BytesMut::new();
/// for (i, &byte) in wire.iter().enumerate() {
///     buf.extend_from_slice(&[byte]);
///     let decoded = decoder.decode(&mut buf)?;
///     assert_eq!(decoded.is_some(), i == 34);
/// }
/// assert_eq!(&buf[..], b"PING"); // the next request's first bytes
/// # Ok::<(), p2p_proto::directory::RequestError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestDecoder {
    scan: Scan,
}

/// The resumable scan shared by the decoders: where the parser last could have decided.
#[derive(Clone, Debug, Default)]
struct Scan {
    /// How many bytes of the buffer have been scanned.
    scanned: usize,
    /// Where the field being read starts (just after the last NUL seen).
    field_start: usize,
    /// How many times the message was parsed (to test that bytes are not rescanned).
    #[cfg(test)]
    parses: usize,
}

impl Scan {
    /// Scans the bytes appended since the last call; `true` when a field completed or
    /// outgrew a limit, so the parser's answer may have changed. A buffer shorter than what
    /// was scanned is a new one: the scan starts over.
    fn advance(&mut self, buf: &[u8]) -> bool {
        if buf.len() < self.scanned {
            *self = Self::default();
        }
        let new = &buf[self.scanned..];
        let changed = match new.iter().rposition(|&b| b == 0) {
            Some(last_nul) => {
                self.field_start = self.scanned + last_nul + 1;
                true
            }
            None => {
                let before = self.scanned.saturating_sub(self.field_start);
                let now = buf.len() - self.field_start;
                LIMITS.iter().any(|&limit| before <= limit && limit < now)
            }
        };
        self.scanned = buf.len();
        #[cfg(test)]
        if changed {
            self.parses += 1;
        }
        changed
    }

    /// Runs `decode` when the scan says the answer may have changed; starts over after a
    /// message or an error.
    fn decode<T>(
        &mut self,
        buf: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<Option<T>, RequestError>,
    ) -> Result<Option<T>, RequestError> {
        if !self.advance(buf) {
            return Ok(None);
        }
        let decoded = decode(buf);
        if !matches!(decoded, Ok(None)) {
            *self = Self::default();
        }
        decoded
    }

    /// [`Self::decode`] on `src`, taking the message's bytes off its front.
    fn take<T>(
        &mut self,
        src: &mut BytesMut,
        decode: impl FnOnce(&[u8]) -> Result<Option<(T, usize)>, RequestError>,
    ) -> Result<Option<T>, RequestError> {
        Ok(self.decode(src, decode)?.map(|(message, used)| {
            src.advance(used);
            message
        }))
    }
}

impl RequestDecoder {
    /// A decoder at the start of a request.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the scan position, to decode a new buffer from its start.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

impl StreamDecoder for RequestDecoder {
    type Item = Request;
    type Error = RequestError;

    /// Takes a request off the front of `src`, which holds every byte received so far.
    ///
    /// `Ok(None)` until a whole request has arrived, `src` untouched; then the request, its
    /// bytes taken off `src` (the rest belongs to whatever follows). On an error `src` is left
    /// as it was, for the caller to log.
    ///
    /// # Errors
    /// The same [`RequestError`] as [`Request`]'s [`Decode`] on the same bytes.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RequestError> {
        self.scan.take(src, Request::decode)
    }
}

/// Streaming form of [`ServerMessage`]'s [`Decode`]: a request or `CAPABILITIES`, for a
/// server's read loop. The same contract as [`RequestDecoder`] (and the same scanning: the
/// `CAPABILITIES` request is one field), answering exactly what [`ServerMessage`]'s [`Decode`]
/// answers for the same bytes.
///
/// ```
/// use bytes::BytesMut;
/// use p2p_proto::StreamDecoder;
/// use p2p_proto::directory::{ServerMessage, ServerMessageDecoder};
///
/// let mut decoder = ServerMessageDecoder::new();
/// let mut buf = BytesMut::from(&b"CAPA"[..]);
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(b"BILITIES\0PING\0alice\0");
/// assert_eq!(decoder.decode(&mut buf)?, Some(ServerMessage::Capabilities));
/// let message = decoder.decode(&mut buf)?.expect("whole request");
/// assert_eq!(message.op(), Some(p2p_proto::directory::OpCode::Ping));
/// assert!(buf.is_empty());
/// # Ok::<(), p2p_proto::directory::RequestError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerMessageDecoder {
    scan: Scan,
}

impl ServerMessageDecoder {
    /// A decoder at the start of a message.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the scan position, to decode a new buffer from its start.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

impl StreamDecoder for ServerMessageDecoder {
    type Item = ServerMessage;
    type Error = RequestError;

    /// As [`RequestDecoder`]'s: a message off the front of `src` once whole, `src` untouched
    /// otherwise.
    ///
    /// # Errors
    /// The same [`RequestError`] as [`ServerMessage`]'s [`Decode`] on the same bytes.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ServerMessage>, RequestError> {
        self.scan.take(src, ServerMessage::decode)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DecodeError, OpCode, strategy};
    use super::*;
    use crate::Encode as _;
    use crate::codec::decode_from;
    use proptest::prelude::*;

    /// Feeds `bytes` one at a time, checking every step against the one-shot decoder.
    fn feed_bytewise(bytes: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
        let mut decoder = RequestDecoder::new();
        let mut last = Ok(None);
        for end in 0..=bytes.len() {
            let streamed = decode_from(&mut decoder, &bytes[..end]);
            assert_eq!(
                streamed,
                Request::decode(&bytes[..end]),
                "after {end} bytes of {bytes:02x?}"
            );
            if !matches!(streamed, Ok(None)) {
                return streamed;
            }
            last = streamed;
        }
        last
    }

    fn check_bytewise(bytes: &[u8]) {
        let _ = feed_bytewise(bytes);
    }

    #[test]
    fn bytewise_matches_one_shot() {
        let cases: [&[u8]; 9] = [
            b"REGISTER\x0024/11/2026 20:42:35\x00alice\x00???",
            b"PUBLISH\0alice\0/srv/music/song.mp3\0my favourite song\0",
            b"CONNECT\0alice\x0040647\0",
            b"CONNECT\0alice\x00406470\0",
            b"CONNECT\0alice\x0070000\0",
            b"REGISTER\x002a/11/2026 20:42:35\x00alice\x00",
            b"GET_USER_INFOXX\0",
            b"FOO\0",
            b"LIST_CONTENT\0",
        ];
        for bytes in cases {
            check_bytewise(bytes);
        }
        let mut long = b"DELETE\0alice\0".to_vec();
        long.extend([b'f'; 300]);
        assert_eq!(
            feed_bytewise(&long),
            Err(RequestError {
                op: Some(OpCode::Delete),
                error: DecodeError::FieldTooLong {
                    field: "FILE",
                    max: 255
                }
            })
        );
    }

    #[test]
    fn bytes_are_not_rescanned() {
        let long = "x".repeat(255);
        let request = Request {
            timestamp: Some(crate::timestamp::Timestamp::UNKNOWN),
            user: long.parse().unwrap(),
            body: super::super::RequestBody::Publish {
                file: long.parse().unwrap(),
                description: long.parse().unwrap(),
            },
        };
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        let mut decoder = RequestDecoder::new();
        let mut parses = 0;
        for end in 0..=bytes.len() {
            parses = decoder.scan.parses;
            if decode_from(&mut decoder, &bytes[..end]) != Ok(None) {
                parses += 1;
                break;
            }
        }
        // One parse per field (5), plus one per limit a field outgrows (5 and 13 bytes:
        // once for OP, twice for each of the four other fields): not one per byte (796).
        assert_eq!(parses, 14);
    }

    #[test]
    fn chunks_and_restart() {
        let wire = b"LIST_USERS\x0024/11/2026 20:42:35\x00alice\x00REGISTER\0bob\0";
        let mut decoder = RequestDecoder::new();
        assert_eq!(decode_from(&mut decoder, &wire[..11]), Ok(None));
        assert_eq!(decode_from(&mut decoder, &wire[..25]), Ok(None));
        let (first, used) = decode_from(&mut decoder, wire).unwrap().unwrap();
        assert_eq!(first.op(), OpCode::ListUsers);
        // The decoder started over by itself; the caller drops the used bytes.
        let (second, used2) = decode_from(&mut decoder, &wire[used..]).unwrap().unwrap();
        assert_eq!(second.op(), OpCode::Register);
        assert_eq!(used + used2, wire.len());
        // A shorter, unrelated buffer is handled as a new one.
        let mut decoder = RequestDecoder::new();
        assert_eq!(decode_from(&mut decoder, b"REGISTER\0bo"), Ok(None));
        assert!(matches!(
            decode_from(&mut decoder, b"UNREGISTER\0x\0"),
            Ok(Some(_))
        ));
        decoder.reset();
        assert_eq!(decode_from(&mut decoder, b""), Ok(None));
    }

    /// Feeds `bytes` one at a time to a [`ServerMessageDecoder`], checking every step
    /// against [`ServerMessage::decode`].
    fn feed_messages_bytewise(
        bytes: &[u8],
    ) -> Result<Option<(ServerMessage, usize)>, RequestError> {
        let mut decoder = ServerMessageDecoder::new();
        for end in 0..=bytes.len() {
            let streamed = decode_from(&mut decoder, &bytes[..end]);
            assert_eq!(
                streamed,
                ServerMessage::decode(&bytes[..end]),
                "after {end} bytes of {bytes:02x?}"
            );
            if !matches!(streamed, Ok(None)) {
                return streamed;
            }
        }
        Ok(None)
    }

    #[test]
    fn server_messages_bytewise() {
        assert_eq!(
            feed_messages_bytewise(b"CAPABILITIES\0REGISTER\0"),
            Ok(Some((ServerMessage::Capabilities, 13)))
        );
        for bytes in [
            &b"CAPABILITIESX\0"[..],
            b"CAPABILITIESXY",
            b"SEARCH\x0024/11/2026 20:42:35\0alice\0beat help\0",
            b"SEARCH\0alice\0\xff\xfe\0",
            b"PING\0alice\0",
            b"PING\0",
        ] {
            let _ = feed_messages_bytewise(bytes);
        }
        // Two messages in one buffer, and a restart after each.
        let wire = b"CAPABILITIES\0PING\0bob\0";
        let mut decoder = ServerMessageDecoder::new();
        assert_eq!(decode_from(&mut decoder, &wire[..5]), Ok(None));
        assert_eq!(
            decode_from(&mut decoder, wire),
            Ok(Some((ServerMessage::Capabilities, 13)))
        );
        let (ping, used) = decode_from(&mut decoder, &wire[13..]).unwrap().unwrap();
        assert_eq!(ping.op(), Some(OpCode::Ping));
        assert_eq!(13 + used, wire.len());
        decoder.reset();
        assert_eq!(decode_from(&mut decoder, b""), Ok(None));
    }

    proptest! {
        #[test]
        fn bytewise_server_messages(message in strategy::server_message()) {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            prop_assert_eq!(feed_messages_bytewise(&bytes), Ok(Some((message, bytes.len()))));
        }

        #[test]
        fn bytewise_mutated_server_messages(
            message in strategy::server_message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let _ = feed_messages_bytewise(&bytes);
        }

        #[test]
        fn bytewise_valid_requests(request in strategy::request()) {
            let mut bytes = Vec::new();
            request.encode(&mut bytes);
            prop_assert_eq!(feed_bytewise(&bytes), Ok(Some((request, bytes.len()))));
        }

        #[test]
        fn bytewise_mutated_requests(
            request in strategy::request(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = Vec::new();
            request.encode(&mut bytes);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            check_bytewise(&bytes);
        }

        #[test]
        fn bytewise_random_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0_u8), Just(b'a'), Just(b' '), b'0'..=b'9', any::<u8>()],
                0..400,
            ),
            op in proptest::sample::select(OpCode::ALL.to_vec()),
        ) {
            let wire = [op.as_str().as_bytes(), b"\0", &bytes].concat();
            check_bytewise(&wire);
        }

        #[test]
        fn chunked_matches_one_shot(
            request in strategy::request(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut bytes = Vec::new();
            request.encode(&mut bytes);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut decoder = RequestDecoder::new();
            for cut in cuts {
                prop_assert_eq!(decode_from(&mut decoder, &bytes[..cut]), Request::decode(&bytes[..cut]));
            }
            prop_assert_eq!(decode_from(&mut decoder, &bytes), Ok(Some((request, bytes.len()))));
        }
    }
}
