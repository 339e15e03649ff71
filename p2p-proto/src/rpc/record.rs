//! Record marking for ONC RPC over TCP (RFC 5531 §11).
//!
//! ```text
//! record   = fragment* last-fragment
//! fragment = mark (4 bytes, big-endian: bit 31 = last fragment, bits 0..30 = length) + length bytes
//! ```
//!
//! [`RecordDecoder`] reassembles records from a byte stream without I/O, in the shape of
//! `tokio_util::codec::Decoder`. It refuses a fragment as soon as its mark would take the record over
//! the maximum size, and refuses an empty fragment that is not the last one (libtirpc closes the
//! connection on one). [`encode_record`] frames an outgoing message.
//!
//! ```
//! use bytes::BytesMut;
//! use p2p_proto::StreamDecoder;
//! use p2p_proto::rpc::record::{RecordDecoder, encode_record};
//!
//! let mut wire = BytesMut::new();
//! encode_record(b"hello!!!", &mut wire);
//! assert_eq!(&wire[..4], [0x80, 0, 0, 8]);
//! let mut decoder = RecordDecoder::new(1024);
//! assert_eq!(decoder.decode(&mut wire).unwrap().as_deref(), Some(&b"hello!!!"[..]));
//! ```

use bytes::{Buf, BufMut, BytesMut};
use nom::number::streaming::be_u32;
use nom::{IResult, Parser};

use crate::codec::{Encode, StreamDecoder};

/// Bit 31 of a record mark: this fragment ends the record.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;
/// Largest fragment length a mark can carry.
pub const MAX_FRAGMENT_LEN: usize = 0x7fff_ffff;
/// Size of a record mark.
pub const MARK_LEN: usize = 4;
/// Default maximum record size: generous for the log program (a SENDLOG call is under 700 bytes),
/// small enough that a hostile peer cannot make a server buffer much.
pub const DEFAULT_MAX_RECORD: usize = 64 * 1024;

/// Errors of record marking. A stream that produced one cannot be resynchronised: close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A fragment mark announces a record larger than the maximum.
    #[error("record of at least {len} bytes is over the maximum {max}")]
    TooLarge {
        /// Size of the record with this fragment.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// An empty fragment that is not the last one.
    #[error("empty non-last fragment")]
    EmptyFragment,
}

/// A record mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMark {
    /// Whether the fragment ends the record.
    pub last: bool,
    /// Fragment length (at most [`MAX_FRAGMENT_LEN`]).
    pub len: u32,
}

impl RecordMark {
    /// Reads a mark from its four bytes.
    #[must_use]
    pub const fn from_bytes(b: [u8; 4]) -> Self {
        Self::from_u32(u32::from_be_bytes(b))
    }

    /// Reads a mark from its value as a big-endian word.
    const fn from_u32(v: u32) -> Self {
        Self {
            last: v & LAST_FRAGMENT != 0,
            len: v & !LAST_FRAGMENT,
        }
    }

    /// The four bytes of the mark (a `len` over [`MAX_FRAGMENT_LEN`] is truncated to 31 bits).
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 4] {
        let last = if self.last { LAST_FRAGMENT } else { 0 };
        (last | (self.len & !LAST_FRAGMENT)).to_be_bytes()
    }
}

/// Frames `msg` as one record: a single last fragment (several if `msg` is over 2 GiB).
pub fn encode_record(msg: &[u8], dst: &mut impl BufMut) {
    let mut chunks = msg.chunks(MAX_FRAGMENT_LEN).peekable();
    if chunks.peek().is_none() {
        dst.put_slice(&RecordMark { last: true, len: 0 }.to_bytes());
        return;
    }
    while let Some(chunk) = chunks.next() {
        let mark = RecordMark {
            last: chunks.peek().is_none(),
            // A chunk is at most MAX_FRAGMENT_LEN, which fits in 31 bits.
            len: chunk.len() as u32,
        };
        dst.put_slice(&mark.to_bytes());
        dst.put_slice(chunk);
    }
}

/// A message framed as one record: `Record(sendlog_call(xid, &entry))` encodes the mark and the
/// call straight into the output buffer, with no buffer of its own. A message over
/// [`MAX_FRAGMENT_LEN`] (none of this crate's: their strings are bounded) is split as
/// [`encode_record`] splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<M>(pub M);

impl<M: Encode> Encode for Record<M> {
    fn encode(&self, buf: &mut impl BufMut) {
        let len = self.0.encoded_len();
        match u32::try_from(len) {
            Ok(len32) if len <= MAX_FRAGMENT_LEN => {
                buf.put_slice(
                    &RecordMark {
                        last: true,
                        len: len32,
                    }
                    .to_bytes(),
                );
                self.0.encode(buf);
            }
            _ => {
                let mut msg = Vec::with_capacity(len);
                self.0.encode(&mut msg);
                encode_record(&msg, buf);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        encoded_record_len(self.0.encoded_len())
    }
}

/// Size of `msg` framed by [`encode_record`].
#[must_use]
pub const fn encoded_record_len(msg_len: usize) -> usize {
    let fragments = if msg_len == 0 {
        1
    } else {
        msg_len.div_ceil(MAX_FRAGMENT_LEN)
    };
    fragments * MARK_LEN + msg_len
}

/// `mark = 4 bytes, big-endian: bit 31 = last fragment, bits 0..30 = length`, as a streaming
/// nom parser (`Incomplete` for fewer than four bytes, never an error otherwise).
#[inline]
fn record_mark(input: &[u8]) -> IResult<&[u8], RecordMark, ()> {
    be_u32.map(RecordMark::from_u32).parse(input)
}

/// Reassembles records from a byte stream (sans-IO).
#[derive(Debug)]
pub struct RecordDecoder {
    max_record: usize,
    record: BytesMut,
    /// Bytes still to read of the current fragment, and whether it is the last; `None` between
    /// fragments.
    fragment: Option<(usize, bool)>,
}

impl StreamDecoder for RecordDecoder {
    type Item = BytesMut;
    type Error = RecordError;

    /// Consumes bytes from `src` and returns the next complete record, or `Ok(None)` when `src`
    /// holds no complete record yet (the fragments it held are taken into the decoder: call
    /// again with more).
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, RecordError> {
        self.decode_record(src)
    }
}

impl RecordDecoder {
    /// A decoder that refuses records over `max_record` bytes (fragment marks not counted).
    #[must_use]
    pub fn new(max_record: usize) -> Self {
        Self {
            max_record,
            record: BytesMut::new(),
            fragment: None,
        }
    }

    /// The maximum record size.
    #[must_use]
    pub const fn max_record(&self) -> usize {
        self.max_record
    }

    /// Whether a record has been started but not finished (useful at end of stream).
    #[must_use]
    pub fn is_mid_record(&self) -> bool {
        self.fragment.is_some() || !self.record.is_empty()
    }

    /// [`StreamDecoder::decode`].
    fn decode_record(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, RecordError> {
        loop {
            let (remaining, last) = match self.fragment {
                Some(f) => f,
                None => {
                    let Ok((_, mark)) = record_mark(src) else {
                        // Only a strict prefix of a mark fails: wait for more.
                        return Ok(None);
                    };
                    if mark.len == 0 && !mark.last {
                        return Err(RecordError::EmptyFragment);
                    }
                    let total = self.record.len() as u64 + u64::from(mark.len);
                    if total > self.max_record as u64 {
                        return Err(RecordError::TooLarge {
                            len: total,
                            max: self.max_record,
                        });
                    }
                    src.advance(MARK_LEN);
                    (mark.len as usize, mark.last)
                }
            };
            let n = remaining.min(src.len());
            if self.record.is_empty() && n == remaining && last {
                // The whole record is in `src`: hand it out without copying.
                self.fragment = None;
                return Ok(Some(src.split_to(n)));
            }
            self.record.extend_from_slice(&src[..n]);
            src.advance(n);
            if n < remaining {
                self.fragment = Some((remaining - n, last));
                return Ok(None);
            }
            self.fragment = None;
            if last {
                return Ok(Some(std::mem::take(&mut self.record)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fragments(parts: &[(&[u8], bool)]) -> BytesMut {
        let mut b = BytesMut::new();
        for (data, last) in parts {
            b.put_slice(
                &RecordMark {
                    last: *last,
                    len: data.len() as u32,
                }
                .to_bytes(),
            );
            b.put_slice(data);
        }
        b
    }

    #[test]
    fn three_fragments() {
        let mut src = fragments(&[(b"abc", false), (b"defg", false), (b"h", true)]);
        src.put_slice(b"\x80\0\0\x01");
        let mut d = RecordDecoder::new(100);
        assert_eq!(
            d.decode(&mut src).unwrap().as_deref(),
            Some(&b"abcdefgh"[..])
        );
        // The start of the next record stays, waiting.
        assert_eq!(d.decode(&mut src).unwrap(), None);
        assert!(d.is_mid_record());
        src.put_slice(b"z???");
        assert_eq!(d.decode(&mut src).unwrap().as_deref(), Some(&b"z"[..]));
        assert_eq!(&src[..], b"???");
    }

    #[test]
    fn oversized_mark_refused_at_once() {
        let mut d = RecordDecoder::new(100);
        let mut src = BytesMut::from(&b"\x80\0\0\x65"[..]);
        assert_eq!(
            d.decode(&mut src),
            Err(RecordError::TooLarge { len: 101, max: 100 })
        );
        // Several fragments adding up over the maximum.
        let mut d = RecordDecoder::new(100);
        let mut src = fragments(&[(&[0; 60], false)]);
        src.put_slice(
            &RecordMark {
                last: true,
                len: 41,
            }
            .to_bytes(),
        );
        assert_eq!(
            d.decode(&mut src),
            Err(RecordError::TooLarge { len: 101, max: 100 })
        );
    }

    #[test]
    fn mark_is_incomplete_only_before_four_bytes() {
        let wire = [0x80, 0, 1, 2, 0xff];
        for cut in 0..MARK_LEN {
            assert!(matches!(
                record_mark(&wire[..cut]),
                Err(nom::Err::Incomplete(_))
            ));
        }
        assert_eq!(
            record_mark(&wire),
            Ok((
                &wire[4..],
                RecordMark {
                    last: true,
                    len: 0x102
                }
            ))
        );
        assert_eq!(
            record_mark(&[0x7f, 0xff, 0xff, 0xff]).map(|(_, m)| m),
            Ok(RecordMark {
                last: false,
                len: 0x7fff_ffff
            })
        );
    }

    #[test]
    fn empty_fragments() {
        let mut d = RecordDecoder::new(100);
        let mut src = fragments(&[(b"ab", false), (b"", false)]);
        assert_eq!(d.decode(&mut src), Err(RecordError::EmptyFragment));
        // An empty last fragment ends the record (libtirpc accepts it).
        let mut d = RecordDecoder::new(100);
        let mut src = fragments(&[(b"ab", false), (b"", true)]);
        assert_eq!(d.decode(&mut src).unwrap().as_deref(), Some(&b"ab"[..]));
    }

    #[test]
    fn encode_empty_and_kat() {
        let mut b = Vec::new();
        encode_record(b"", &mut b);
        assert_eq!(b, [0x80, 0, 0, 0]);
        assert_eq!(encoded_record_len(0), 4);
        assert_eq!(encoded_record_len(100), 104);
    }

    proptest! {
        #[test]
        fn split_anywhere(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..5),
            chunk in 1usize..20,
        ) {
            let mut wire = Vec::new();
            for m in &msgs {
                encode_record(m, &mut wire);
            }
            let mut d = RecordDecoder::new(64);
            let mut src = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                src.put_slice(piece);
                while let Some(r) = d.decode(&mut src).unwrap() {
                    out.push(r.to_vec());
                }
            }
            prop_assert_eq!(out, msgs);
            prop_assert!(!d.is_mid_record());
        }
    }
}
