//! The peer ↔ peer transfer protocol (PROTOCOL.md §2): the `GET_FILE` request
//! and the reply header.
//!
//! ```text
//! request = "GET_FILE" NUL file NUL
//! reply   = %x00 size NUL <size raw bytes>   ; the file follows
//!         / %x01                             ; the file does not exist
//!         / %x02                             ; other error
//! size    = 1*20DIGIT                        ; ASCII decimal
//! ```
//!
//! There is no `DATETIME` here. The codec frames only the header: after
//! [`TransferHeader::Ok`] the IO layer streams exactly `size` raw bytes.
//!
//! ```
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

use bytes::BufMut;

use crate::directory::wire::{self, PResult};
use crate::directory::{DecodeError, MAX_OP_LEN};
use crate::field::{FileName, MAX_FIELD_LEN};

/// The transfer request's operation name.
pub const GET_FILE: &str = "GET_FILE";

/// The longest valid `GET_FILE` request, NULs included (265 bytes).
pub const MAX_GET_FILE_LEN: usize = GET_FILE.len() + 1 + MAX_FIELD_LEN + 1;

/// The longest valid reply header: the result byte and a 20-digit size with its NUL.
pub const MAX_HEADER_LEN: usize = 1 + wire::MAX_NUMBER_DIGITS + 1;

/// `GET_FILE\0FILE\0`: asks a peer for one of the files its user publishes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct GetFile {
    /// The published file name, exactly as the directory lists it.
    pub file: FileName,
}

impl GetFile {
    /// Writes the request.
    pub fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, GET_FILE.as_bytes());
        wire::put_field(buf, self.file.as_bytes());
    }

    /// The exact number of bytes [`Self::encode`] writes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        wire::field_len(GET_FILE.len()) + wire::field_len(self.file.len())
    }

    /// Decodes a request from the start of `buf`: `Ok(None)` while incomplete.
    ///
    /// # Errors
    /// [`DecodeError::UnknownOp`] when the operation is not `GET_FILE`, or what is
    /// wrong with the `FILE` field.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        wire::finish(buf, Self::parse(buf))
    }

    fn parse(input: &[u8]) -> PResult<'_, Self> {
        let (rest, op) = wire::nul_field(input, "OP", MAX_OP_LEN)?;
        if op != GET_FILE.as_bytes() {
            return wire::fail(DecodeError::UnknownOp);
        }
        let (rest, file) = wire::file_name(rest)?;
        Ok((rest, Self { file }))
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

    /// Writes the header (the body, if any, is the caller's to send).
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code());
        if let Self::Ok { size } = self {
            wire::put_decimal(buf, *size);
        }
    }

    /// The exact number of bytes [`Self::encode`] writes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Ok { size } => wire::decimal_len(*size),
            Self::NotFound | Self::Other => 0,
        }
    }

    /// Decodes the header from the start of `buf`: `Ok(None)` while incomplete.
    /// Only the header is consumed; the raw body that follows is left in `buf`.
    ///
    /// # Errors
    /// [`DecodeError::InvalidTransferResult`] for a result byte other than 0, 1, 2;
    /// a malformed or over-long `SIZE`.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        wire::finish(buf, Self::parse(buf))
    }

    fn parse(input: &[u8]) -> PResult<'_, Self> {
        let (rest, code) = wire::byte(input)?;
        match code {
            0 => {
                let (rest, size) = wire::number(rest, "SIZE", wire::MAX_NUMBER_DIGITS)?;
                Ok((rest, Self::Ok { size }))
            }
            1 => Ok((rest, Self::NotFound)),
            2 => Ok((rest, Self::Other)),
            code => wire::fail(DecodeError::InvalidTransferResult { code }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testutil::{check_kat, hex};
    use crate::field::{FieldError, strategy::file_name};
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
            GetFile::decode,
            encode_request,
        );
        let reply = hex("003800616263006465660a");
        assert_eq!(
            TransferHeader::decode(&reply),
            Ok(Some((TransferHeader::Ok { size: 8 }, 3)))
        );
        assert_eq!(&reply[3..], b"abc\0def\n");
        assert_eq!(reply.len() - 3, 8);
        check_kat(
            &hex("003800"),
            &TransferHeader::Ok { size: 8 },
            TransferHeader::decode,
            encode_header,
        );
        check_kat(
            &hex("01"),
            &TransferHeader::NotFound,
            TransferHeader::decode,
            encode_header,
        );
        check_kat(
            &hex("02"),
            &TransferHeader::Other,
            TransferHeader::decode,
            encode_header,
        );
        check_kat(
            b"\x000\x00",
            &TransferHeader::Ok { size: 0 },
            TransferHeader::decode,
            encode_header,
        );
        check_kat(
            b"\x0018446744073709551615\x00",
            &TransferHeader::Ok { size: u64::MAX },
            TransferHeader::decode,
            encode_header,
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
}
