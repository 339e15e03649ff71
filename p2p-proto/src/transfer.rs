//! The peer ↔ peer transfer protocol (PROTOCOL.md §2): the `GET_FILE` request
//! and the reply header; and its extension `GET_FILE_FROM` (§6.4: integrity and
//! resume).
//!
//! ```text
//! request = "GET_FILE" NUL file NUL
//! reply   = %x00 size NUL <size raw bytes>   ; the file follows
//!         / %x01                             ; the file does not exist
//!         / %x02                             ; other error
//! size    = 1*20DIGIT                        ; ASCII decimal
//!
//! from-request = "GET_FILE_FROM" NUL file NUL offset NUL
//! from-reply   = %x00 size NUL digest NUL <size - offset raw bytes>
//!              / %x01 / %x02                 ; as above
//!              / %x03                        ; offset is beyond the file's size
//! offset       = 1*20DIGIT
//! digest       = "blake3:" 64(%x30-39 / %x61-66)   ; lowercase hex
//! ```
//!
//! There is no `DATETIME` here. The codec frames only the header: after
//! [`TransferHeader::Ok`] the IO layer streams exactly `size` raw bytes.
//!
//! ```
//! use p2p_proto::{Decode, Encode};
//! use p2p_proto::transfer::{GetFile, TransferHeader};
//!
//! let request = GetFile { file: "/srv/docs/a.txt".parse()? };
//! let mut wire = Vec::new();
//! request.encode(&mut wire);
//! assert_eq!(wire, b"GET_FILE\0/srv/docs/a.txt\0");
//!
//! let reply = b"\x008\x00abc\x00def\n";
//! let (header, consumed) = TransferHeader::decode(reply)?.expect("complete header");
//! assert_eq!(header, TransferHeader::Ok { size: 8 });
//! assert_eq!(&reply[consumed..], b"abc\x00def\n"); // the body, for the IO layer
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use nom::Parser;
use nom::sequence::preceded;

use crate::codec::{Decode, Encode, finish};
use crate::directory::MAX_OP_LEN;
use crate::error::DecodeError;
use crate::field::{FileName, MAX_FIELD_LEN};
use crate::wire::{self, Inline, PResult};

/// The transfer request's operation name.
pub const GET_FILE: &str = "GET_FILE";

/// The longest valid `GET_FILE` request, NULs included (265 bytes).
pub const MAX_GET_FILE_LEN: usize = GET_FILE.len() + 1 + MAX_FIELD_LEN + 1;

/// The longest valid reply header: the result byte and a 20-digit size with its NUL.
pub const MAX_HEADER_LEN: usize = 1 + wire::MAX_NUMBER_DIGITS + 1;

/// An `OP` field that must be exactly `name`.
fn op(name: &'static str) -> impl Fn(&[u8]) -> PResult<'_, ()> {
    move |input| {
        wire::checked_field("OP", MAX_OP_LEN, |op| {
            if op == name.as_bytes() {
                Ok(())
            } else {
                Err(DecodeError::UnknownOp)
            }
        })
        .parse(input)
    }
}

/// `size = 1*20DIGIT NUL`.
fn size(input: &[u8]) -> PResult<'_, u64> {
    wire::number(input, "SIZE", wire::MAX_NUMBER_DIGITS)
}

/// `GET_FILE\0FILE\0`: asks a peer for one of the files its user publishes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct GetFile {
    /// The published file name, exactly as the directory lists it.
    pub file: FileName,
}

impl GetFile {
    /// `request = "GET_FILE" NUL file NUL`.
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        preceded(op(GET_FILE), wire::file_name)
            .map(|file| Self { file })
            .parse(input)
    }
}

impl Encode for GetFile {
    /// Writes the request.
    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, GET_FILE.as_bytes());
        wire::put_field(buf, self.file.as_bytes());
    }

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize {
        wire::field_len(GET_FILE.len()) + wire::field_len(self.file.len())
    }
}

/// Decodes a request from the start of `buf`: `Ok(None)` while incomplete.
///
/// # Errors
/// [`DecodeError::UnknownOp`] when the operation is not `GET_FILE`, or what is
/// wrong with the `FILE` field.
impl Decode for GetFile {
    type Error = DecodeError;

    fn decode_with((): (), buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(buf, Self::parse(buf))
    }
}

/// The serving peer's answer to [`GetFile`], up to (not including) the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum TransferHeader {
    /// 0: the file follows: exactly `size` raw bytes, then the connection closes.
    Ok {
        /// The file's size in bytes.
        size: u64,
    },
    /// 1: the file does not exist (or is not published by this peer's user).
    NotFound,
    /// 2: any other error.
    Other,
}

impl TransferHeader {
    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok { .. } => 0,
            Self::NotFound => 1,
            Self::Other => 2,
        }
    }

    /// `reply = %x00 size NUL / %x01 / %x02` (the body is not the codec's): the result byte
    /// chooses what follows (nom's `flat_map`).
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        wire::byte
            .flat_map(|code| {
                move |rest| match code {
                    0 => size.map(|size| Self::Ok { size }).parse(rest),
                    1 => Ok((rest, Self::NotFound)),
                    2 => Ok((rest, Self::Other)),
                    code => wire::fail(DecodeError::InvalidTransferResult { code }),
                }
            })
            .parse(input)
    }
}

impl Encode for TransferHeader {
    /// Writes the header (the body, if any, is the caller's to send).
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code());
        if let Self::Ok { size } = self {
            wire::put_decimal(buf, *size);
        }
    }

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Ok { size } => wire::decimal_len(*size),
            Self::NotFound | Self::Other => 0,
        }
    }
}

/// Decodes the header from the start of `buf`: `Ok(None)` while incomplete.
/// Only the header is consumed; the raw body that follows is left in `buf`.
///
/// # Errors
/// [`DecodeError::InvalidTransferResult`] for a result byte other than 0, 1, 2;
/// a malformed or over-long `SIZE`.
impl Decode for TransferHeader {
    type Error = DecodeError;

    fn decode_with((): (), buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(buf, Self::parse(buf))
    }
}

/// The resuming request's operation name (PROTOCOL.md §6.4).
pub const GET_FILE_FROM: &str = "GET_FILE_FROM";

/// The longest valid `GET_FILE_FROM` request, NULs included (290 bytes).
pub const MAX_GET_FILE_FROM_LEN: usize =
    GET_FILE_FROM.len() + 1 + MAX_FIELD_LEN + 1 + wire::MAX_NUMBER_DIGITS + 1;

/// The prefix of every `DIGEST` field.
pub const DIGEST_PREFIX: &str = "blake3:";

/// Length of a `DIGEST` field without its NUL: `blake3:` and 64 hex digits.
pub const DIGEST_LEN: usize = DIGEST_PREFIX.len() + 64;

/// The longest valid `GET_FILE_FROM` reply header: result, 20-digit size, digest, NULs.
pub const MAX_FROM_HEADER_LEN: usize = 1 + wire::MAX_NUMBER_DIGITS + 1 + DIGEST_LEN + 1;

/// The BLAKE3 hash of a whole file as served: on the wire `blake3:` and 64
/// lowercase hex digits. Only that form parses; the value cannot be anything else.
///
/// ```
/// use p2p_proto::transfer::Digest;
///
/// let text = format!("blake3:{}", "ab".repeat(32));
/// let digest: Digest = text.parse()?;
/// assert_eq!(digest.as_bytes(), &[0xab; 32]);
/// assert_eq!(digest.to_string(), text);
/// assert!(text.to_uppercase().parse::<Digest>().is_err());
/// # Ok::<(), p2p_proto::directory::DecodeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest with these 32 hash bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 hash bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the exact field bytes (without the NUL).
    ///
    /// # Errors
    /// [`DecodeError::InvalidDigest`] for anything but `blake3:` and 64 lowercase hex digits.
    pub fn from_field(raw: &[u8]) -> Result<Self, DecodeError> {
        let hex = raw
            .strip_prefix(DIGEST_PREFIX.as_bytes())
            .filter(|hex| hex.len() == 64)
            .ok_or(DecodeError::InvalidDigest)?;
        let mut bytes = [0u8; 32];
        for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self(bytes))
    }

    fn put(&self, buf: &mut impl BufMut) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        buf.put_slice(DIGEST_PREFIX.as_bytes());
        for b in self.0 {
            buf.put_u8(HEX[usize::from(b >> 4)]);
            buf.put_u8(HEX[usize::from(b & 0x0f)]);
        }
    }
}

fn nibble(c: u8) -> Result<u8, DecodeError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(DecodeError::InvalidDigest),
    }
}

impl FromStr for Digest {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_field(s.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(DIGEST_LEN);
        self.put(&mut text);
        // Only ASCII was written.
        f.write_str(&String::from_utf8_lossy(&text))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// `GET_FILE_FROM\0FILE\0OFFSET\0`: asks for a published file, its size and
/// digest, and its bytes from `offset` on (PROTOCOL.md §6.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct GetFileFrom {
    /// The published file name, exactly as the directory lists it.
    pub file: FileName,
    /// The first byte wanted: 0 for the whole file, the part's length to resume.
    pub offset: u64,
}

impl GetFileFrom {
    /// `from-request = "GET_FILE_FROM" NUL file NUL offset NUL`.
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        preceded(op(GET_FILE_FROM), Self::parse_fields).parse(input)
    }

    /// `file NUL offset NUL`.
    fn parse_fields(input: &[u8]) -> PResult<'_, Self> {
        (
            Inline(wire::file_name),
            Inline(|i| wire::number(i, "OFFSET", wire::MAX_NUMBER_DIGITS)),
        )
            .map(|(file, offset)| Self { file, offset })
            .parse(input)
    }
}

impl Encode for GetFileFrom {
    /// Writes the request.
    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, GET_FILE_FROM.as_bytes());
        wire::put_field(buf, self.file.as_bytes());
        wire::put_decimal(buf, self.offset);
    }

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize {
        wire::field_len(GET_FILE_FROM.len())
            + wire::field_len(self.file.len())
            + wire::decimal_len(self.offset)
    }
}

/// Decodes a request from the start of `buf`: `Ok(None)` while incomplete.
///
/// # Errors
/// [`DecodeError::UnknownOp`] when the operation is not `GET_FILE_FROM`, or
/// what is wrong with `FILE` or `OFFSET`.
impl Decode for GetFileFrom {
    type Error = DecodeError;

    fn decode_with((): (), buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(buf, Self::parse(buf))
    }
}

/// Either transfer request, as a serving peer reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum TransferRequest {
    /// Classic `GET_FILE` (§2).
    GetFile(GetFile),
    /// `GET_FILE_FROM` (§6.4).
    GetFileFrom(GetFileFrom),
}

impl TransferRequest {
    /// `request / from-request`, told apart by the `OP` field: one scan of it, whose value
    /// chooses the fields that follow (nom's `flat_map`) rather than an `alt` that would read
    /// the `OP` twice.
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        Inline(wire::checked_field("OP", MAX_OP_LEN, |op| {
            if op == GET_FILE.as_bytes() {
                Ok(false)
            } else if op == GET_FILE_FROM.as_bytes() {
                Ok(true)
            } else {
                Err(DecodeError::UnknownOp)
            }
        }))
        .flat_map(|from| {
            Inline(move |rest| {
                if from {
                    Inline(GetFileFrom::parse_fields)
                        .map(Self::GetFileFrom)
                        .parse(rest)
                } else {
                    Inline(wire::file_name)
                        .map(|file| Self::GetFile(GetFile { file }))
                        .parse(rest)
                }
            })
        })
        .parse(input)
    }
}

impl Encode for TransferRequest {
    /// Writes the request.
    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::GetFile(r) => r.encode(buf),
            Self::GetFileFrom(r) => r.encode(buf),
        }
    }

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize {
        match self {
            Self::GetFile(r) => r.encoded_len(),
            Self::GetFileFrom(r) => r.encoded_len(),
        }
    }
}

/// Decodes either request from the start of `buf`: `Ok(None)` while incomplete.
///
/// # Errors
/// [`DecodeError::UnknownOp`] for another operation, or what is wrong with a field.
impl Decode for TransferRequest {
    type Error = DecodeError;

    fn decode_with((): (), buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(buf, Self::parse(buf))
    }
}

/// The serving peer's answer to [`GetFileFrom`], up to (not including) the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum GetFileFromHeader {
    /// 0: `size - offset` raw bytes from `offset` follow, then the connection closes.
    Ok {
        /// The whole file's size in bytes.
        size: u64,
        /// The BLAKE3 hash of the whole file as served.
        digest: Digest,
    },
    /// 1: the file does not exist (or is not published by this peer's user).
    NotFound,
    /// 2: any other error.
    Other,
    /// 3: the requested offset is beyond the file's size.
    OffsetBeyondSize,
}

impl GetFileFromHeader {
    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok { .. } => 0,
            Self::NotFound => 1,
            Self::Other => 2,
            Self::OffsetBeyondSize => 3,
        }
    }

    /// `from-reply = %x00 size NUL digest NUL / %x01 / %x02 / %x03` (the body is not the
    /// codec's): the result byte chooses what follows (nom's `flat_map`).
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        wire::byte
            .flat_map(|code| {
                move |rest| match code {
                    0 => (
                        Inline(size),
                        Inline(wire::checked_field(
                            "DIGEST",
                            DIGEST_LEN,
                            Digest::from_field,
                        )),
                    )
                        .map(|(size, digest)| Self::Ok { size, digest })
                        .parse(rest),
                    1 => Ok((rest, Self::NotFound)),
                    2 => Ok((rest, Self::Other)),
                    3 => Ok((rest, Self::OffsetBeyondSize)),
                    code => wire::fail(DecodeError::InvalidGetFileFromResult { code }),
                }
            })
            .parse(input)
    }
}

impl Encode for GetFileFromHeader {
    /// Writes the header (the body, if any, is the caller's to send).
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code());
        if let Self::Ok { size, digest } = self {
            wire::put_decimal(buf, *size);
            digest.put(buf);
            buf.put_u8(0);
        }
    }

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Ok { size, .. } => wire::decimal_len(*size) + DIGEST_LEN + 1,
            Self::NotFound | Self::Other | Self::OffsetBeyondSize => 0,
        }
    }
}

/// Decodes the header from the start of `buf`: `Ok(None)` while incomplete.
/// Only the header is consumed; the raw body that follows is left in `buf`.
///
/// # Errors
/// [`DecodeError::InvalidGetFileFromResult`] for a result byte above 3; a
/// malformed or over-long `SIZE`; [`DecodeError::InvalidDigest`] or
/// [`DecodeError::FieldTooLong`] for a `DIGEST` not in its one form.
impl Decode for GetFileFromHeader {
    type Error = DecodeError;

    fn decode_with((): (), buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(buf, Self::parse(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{FieldError, strategy::file_name};
    use crate::testutil::{check_kat, hex};
    use proptest::prelude::*;

    fn encode_request(request: &GetFile) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        assert_eq!(request.encoded_len(), out.len());
        out
    }

    fn encode_header(header: &TransferHeader) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        assert_eq!(header.encoded_len(), out.len());
        out
    }

    /// The bytes of `classic-transfer.txt`.
    #[test]
    fn classic_transfer() {
        check_kat(
            &hex("4745545f46494c45002f7372762f646f63732f612e74787400"),
            &GetFile {
                file: "/srv/docs/a.txt".parse().unwrap(),
            },
        );
        let reply = hex("003800616263006465660a");
        assert_eq!(
            TransferHeader::decode(&reply),
            Ok(Some((TransferHeader::Ok { size: 8 }, 3)))
        );
        assert_eq!(&reply[3..], b"abc\0def\n");
        assert_eq!(reply.len() - 3, 8);
        check_kat(&hex("003800"), &TransferHeader::Ok { size: 8 });
        check_kat(&hex("01"), &TransferHeader::NotFound);
        check_kat(&hex("02"), &TransferHeader::Other);
        check_kat(b"\x000\x00", &TransferHeader::Ok { size: 0 });
        check_kat(
            b"\x0018446744073709551615\x00",
            &TransferHeader::Ok { size: u64::MAX },
        );
    }

    #[test]
    fn malformed_transfer_messages() {
        assert_eq!(
            GetFile::decode(b"GET_FIL\0/a\0"),
            Err(DecodeError::UnknownOp)
        );
        assert_eq!(
            GetFile::decode(b"REGISTER\0/a\0"),
            Err(DecodeError::UnknownOp)
        );
        assert_eq!(
            GetFile::decode(b"GET_FILE_GET_FILE"),
            Err(DecodeError::FieldTooLong {
                field: "OP",
                max: MAX_OP_LEN
            })
        );
        assert_eq!(
            GetFile::decode(b"GET_FILE\0\0"),
            Err(DecodeError::InvalidField {
                field: "FILE",
                error: FieldError::Empty
            })
        );
        assert_eq!(
            GetFile::decode(b"GET_FILE\0\xff\0"),
            Err(DecodeError::InvalidField {
                field: "FILE",
                error: FieldError::NotUtf8
            })
        );
        let mut long = b"GET_FILE\0".to_vec();
        long.extend([b'/'; 255]);
        assert_eq!(GetFile::decode(&long), Ok(None));
        long.push(b'/');
        assert_eq!(
            GetFile::decode(&long),
            Err(DecodeError::FieldTooLong {
                field: "FILE",
                max: 255
            })
        );
        assert_eq!(
            TransferHeader::decode(b"\x03"),
            Err(DecodeError::InvalidTransferResult { code: 3 })
        );
        assert_eq!(
            TransferHeader::decode(b"\x008a\x00"),
            Err(DecodeError::InvalidNumber { field: "SIZE" })
        );
        assert_eq!(
            TransferHeader::decode(b"\x00\x00"),
            Err(DecodeError::InvalidNumber { field: "SIZE" })
        );
        assert_eq!(
            TransferHeader::decode(b"\x0018446744073709551616\x00"),
            Err(DecodeError::InvalidNumber { field: "SIZE" })
        );
        assert_eq!(
            TransferHeader::decode(b"\x00000000000000000000008\x00"),
            Err(DecodeError::FieldTooLong {
                field: "SIZE",
                max: 20
            })
        );
    }

    #[test]
    fn limits() {
        let max = GetFile {
            file: "f".repeat(255).parse().unwrap(),
        };
        assert_eq!(max.encoded_len(), MAX_GET_FILE_LEN);
        assert_eq!(
            TransferHeader::Ok { size: u64::MAX }.encoded_len(),
            MAX_HEADER_LEN
        );
    }

    proptest! {
        #[test]
        fn get_file_round_trip(file in file_name()) {
            let request = GetFile { file };
            let bytes = encode_request(&request);
            prop_assert_eq!(GetFile::decode(&bytes), Ok(Some((request, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(GetFile::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn header_round_trip(header in prop_oneof![
            any::<u64>().prop_map(|size| TransferHeader::Ok { size }),
            Just(TransferHeader::NotFound),
            Just(TransferHeader::Other),
        ]) {
            let bytes = encode_header(&header);
            prop_assert!(bytes.len() <= MAX_HEADER_LEN);
            prop_assert_eq!(TransferHeader::decode(&bytes), Ok(Some((header, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(TransferHeader::decode(&bytes[..cut]), Ok(None));
            }
        }
    }

    /// BLAKE3 of the empty input.
    const EMPTY: &str = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn encode_from(request: &GetFileFrom) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        assert_eq!(request.encoded_len(), out.len());
        out
    }

    fn encode_from_header(header: &GetFileFromHeader) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        assert_eq!(header.encoded_len(), out.len());
        out
    }

    #[test]
    fn get_file_from_known_answers() {
        // "GET_FILE_FROM" NUL "/srv/docs/a.txt" NUL "100" NUL
        let request = GetFileFrom {
            file: "/srv/docs/a.txt".parse().unwrap(),
            offset: 100,
        };
        let bytes = hex("4745545f46494c455f46524f4d00 2f7372762f646f63732f612e74787400 31303000");
        check_kat(&bytes, &request);
        check_kat(&bytes, &TransferRequest::GetFileFrom(request));
        check_kat(
            b"GET_FILE\0a\0",
            &TransferRequest::GetFile(GetFile {
                file: "a".parse().unwrap(),
            }),
        );
        check_kat(
            b"GET_FILE_FROM\0a\0\x30\0",
            &GetFileFrom {
                file: "a".parse().unwrap(),
                offset: 0,
            },
        );

        // %x00 "0" NUL DIGEST NUL: the empty file.
        let mut empty = b"\x000\x00".to_vec();
        empty.extend_from_slice(EMPTY.as_bytes());
        empty.push(0);
        assert_eq!(empty.len(), 1 + 2 + DIGEST_LEN + 1);
        check_kat(
            &empty,
            &GetFileFromHeader::Ok {
                size: 0,
                digest: EMPTY.parse().unwrap(),
            },
        );
        let mut with_body = hex("00 3800");
        with_body.extend_from_slice(format!("blake3:{}\0", "0f".repeat(32)).as_bytes());
        with_body.extend_from_slice(b"def\n");
        let (header, used) = GetFileFromHeader::decode(&with_body).unwrap().unwrap();
        assert_eq!(
            header,
            GetFileFromHeader::Ok {
                size: 8,
                digest: Digest::from_bytes([0x0f; 32])
            }
        );
        assert_eq!(&with_body[used..], b"def\n");
        for (bytes, header) in [
            (&b"\x01"[..], GetFileFromHeader::NotFound),
            (b"\x02", GetFileFromHeader::Other),
            (b"\x03", GetFileFromHeader::OffsetBeyondSize),
        ] {
            check_kat(bytes, &header);
        }
    }

    #[test]
    fn malformed_get_file_from() {
        assert_eq!(
            GetFileFrom::decode(b"GET_FILE\0a\0"),
            Err(DecodeError::UnknownOp)
        );
        assert_eq!(
            TransferRequest::decode(b"GET_FILE_FRO\0a\0"),
            Err(DecodeError::UnknownOp)
        );
        assert_eq!(
            GetFileFrom::decode(b"GET_FILE_FROM\0a\0-1\0"),
            Err(DecodeError::InvalidNumber { field: "OFFSET" })
        );
        assert_eq!(
            GetFileFrom::decode(b"GET_FILE_FROM\0a\0\0"),
            Err(DecodeError::InvalidNumber { field: "OFFSET" })
        );
        assert_eq!(
            GetFileFromHeader::decode(b"\x04"),
            Err(DecodeError::InvalidGetFileFromResult { code: 4 })
        );
        let digest = |text: &str| {
            let mut bytes = b"\x005\x00".to_vec();
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(0);
            GetFileFromHeader::decode(&bytes)
        };
        let upper = EMPTY.to_uppercase().replace("BLAKE3", "blake3");
        assert_eq!(digest(&upper), Err(DecodeError::InvalidDigest));
        assert_eq!(
            digest(&EMPTY.replace("blake3", "sha256")),
            Err(DecodeError::InvalidDigest)
        );
        assert_eq!(
            digest(&EMPTY[..DIGEST_LEN - 1]),
            Err(DecodeError::InvalidDigest)
        );
        assert_eq!(digest(""), Err(DecodeError::InvalidDigest));
        assert_eq!(
            digest(&format!("{EMPTY}0")),
            Err(DecodeError::FieldTooLong {
                field: "DIGEST",
                max: DIGEST_LEN
            })
        );
        // A classic peer that streams a file where the header should be.
        assert_eq!(GetFileFromHeader::decode(b"\x005\x00hello world"), Ok(None));
        assert_eq!(
            GetFileFromHeader::decode(&[b"\x005\x00hello world".as_slice(), &[b'x'; 80]].concat()),
            Err(DecodeError::FieldTooLong {
                field: "DIGEST",
                max: DIGEST_LEN
            })
        );
        assert_eq!(
            GetFileFromHeader::decode(b"\x005\x00hello\x00"),
            Err(DecodeError::InvalidDigest)
        );
    }

    #[test]
    fn from_limits() {
        let max = GetFileFrom {
            file: "f".repeat(255).parse().unwrap(),
            offset: u64::MAX,
        };
        assert_eq!(max.encoded_len(), MAX_GET_FILE_FROM_LEN);
        let header = GetFileFromHeader::Ok {
            size: u64::MAX,
            digest: Digest::from_bytes([0xff; 32]),
        };
        assert_eq!(header.encoded_len(), MAX_FROM_HEADER_LEN);
    }

    fn digest() -> impl Strategy<Value = Digest> {
        any::<[u8; 32]>().prop_map(Digest::from_bytes)
    }

    proptest! {
        #[test]
        fn get_file_from_round_trip(file in file_name(), offset in any::<u64>()) {
            let request = GetFileFrom { file, offset };
            let bytes = encode_from(&request);
            prop_assert!(bytes.len() <= MAX_GET_FILE_FROM_LEN);
            prop_assert_eq!(GetFileFrom::decode(&bytes), Ok(Some((request.clone(), bytes.len()))));
            let any_request = TransferRequest::GetFileFrom(request);
            prop_assert_eq!(TransferRequest::decode(&bytes), Ok(Some((any_request, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(GetFileFrom::decode(&bytes[..cut]), Ok(None));
                prop_assert_eq!(TransferRequest::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn get_file_from_header_round_trip(header in prop_oneof![
            (any::<u64>(), digest()).prop_map(|(size, digest)| GetFileFromHeader::Ok { size, digest }),
            Just(GetFileFromHeader::NotFound),
            Just(GetFileFromHeader::Other),
            Just(GetFileFromHeader::OffsetBeyondSize),
        ]) {
            let bytes = encode_from_header(&header);
            prop_assert!(bytes.len() <= MAX_FROM_HEADER_LEN);
            prop_assert_eq!(GetFileFromHeader::decode(&bytes), Ok(Some((header, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(GetFileFromHeader::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn digest_text_round_trip(digest in digest()) {
            let text = digest.to_string();
            prop_assert_eq!(text.len(), DIGEST_LEN);
            prop_assert_eq!(text.parse::<Digest>(), Ok(digest));
        }
    }
}
