//! A resumable request decoder for socket loops that append to one buffer.

use super::{MAX_OP_LEN, MAX_PORT_DIGITS, Request, RequestError};
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
/// It returns exactly what [`Request::decode`] returns for the same bytes.
/// Pass the same buffer each time, grown only by appending; after a request or
/// an error the decoder starts over by itself. Call [`Self::reset`] when the
/// buffer is replaced or bytes are removed from its front otherwise.
///
/// ```
/// use p2p_proto::directory::RequestDecoder;
///
/// let wire = b"REGISTER\x0024/11/2026 20:42:35\x00alice\x00";
/// let mut decoder = RequestDecoder::default();
/// let mut buf = Vec::new();
/// for (i, &byte) in wire.iter().enumerate() {
///     buf.push(byte);
///     let decoded = decoder.decode(&buf)?;
///     assert_eq!(decoded.is_some(), i == wire.len() - 1);
/// }
/// # Ok::<(), p2p_proto::directory::RequestError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestDecoder {
    /// How many bytes of the buffer have been scanned.
    scanned: usize,
    /// Where the field being read starts (just after the last NUL seen).
    field_start: usize,
    /// How many times the request was parsed (to test that bytes are not rescanned).
    #[cfg(test)]
    parses: usize,
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

    /// Decodes a request from `buf`, which holds every byte received so far.
    ///
    /// `Ok(None)` until a whole request has arrived; then the request and the
    /// number of bytes it used (the rest belongs to whatever follows).
    ///
    /// # Errors
    /// The same [`RequestError`] as [`Request::decode`] on the same bytes.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
        let Some(new) = buf.get(self.scanned..) else {
            // The buffer shrank: it is not the one scanned so far.
            self.reset();
            return self.decode(buf);
        };
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
        if !changed {
            return Ok(None);
        }
        #[cfg(test)]
        {
            self.parses += 1;
        }
        let decoded = Request::decode(buf);
        if !matches!(decoded, Ok(None)) {
            self.reset();
        }
        decoded
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DecodeError, OpCode, strategy};
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` one at a time, checking every step against the one-shot decoder.
    fn feed_bytewise(bytes: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
        let mut decoder = RequestDecoder::new();
        let mut last = Ok(None);
        for end in 0..=bytes.len() {
            let streamed = decoder.decode(&bytes[..end]);
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
            parses = decoder.parses;
            if decoder.decode(&bytes[..end]) != Ok(None) {
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
        assert_eq!(decoder.decode(&wire[..11]), Ok(None));
        assert_eq!(decoder.decode(&wire[..25]), Ok(None));
        let (first, used) = decoder.decode(wire).unwrap().unwrap();
        assert_eq!(first.op(), OpCode::ListUsers);
        // The decoder started over by itself; the caller drops the used bytes.
        let (second, used2) = decoder.decode(&wire[used..]).unwrap().unwrap();
        assert_eq!(second.op(), OpCode::Register);
        assert_eq!(used + used2, wire.len());
        // A shorter, unrelated buffer is handled as a new one.
        let mut decoder = RequestDecoder::new();
        assert_eq!(decoder.decode(b"REGISTER\0bo"), Ok(None));
        assert!(matches!(decoder.decode(b"UNREGISTER\0x\0"), Ok(Some(_))));
        decoder.reset();
        assert_eq!(decoder.decode(b""), Ok(None));
    }

    proptest! {
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
                prop_assert_eq!(decoder.decode(&bytes[..cut]), Request::decode(&bytes[..cut]));
            }
            prop_assert_eq!(decoder.decode(&bytes), Ok(Some((request, bytes.len()))));
        }
    }
}
