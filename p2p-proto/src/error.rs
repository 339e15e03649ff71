//! The decode error of the NUL-terminated protocols (directory and transfer).

use crate::directory::OpCode;
use crate::field::FieldError;

/// What is wrong with a malformed directory or transfer message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The `OP` field names no operation of the protocol.
    #[error("unknown operation")]
    UnknownOp,
    /// A field outgrew its limit without a NUL terminator.
    #[error("{field} is longer than {max} bytes")]
    FieldTooLong {
        /// The field's name as PROTOCOL.md spells it (`"USER"`, `"FILE"`, `"COUNT"`...).
        field: &'static str,
        /// The field's limit in bytes, NUL excluded.
        max: usize,
    },
    /// A string field breaks its type's rules (empty, whitespace in a user name, not UTF-8...).
    #[error("invalid {field}: {error}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The rule the field breaks.
        #[source]
        error: FieldError,
    },
    /// A numeric field is not strictly ASCII decimal, or overflows.
    #[error("{field} is not a decimal number")]
    InvalidNumber {
        /// The field's name.
        field: &'static str,
    },
    /// A `PORT` is out of range (0 in a CONNECT request, or above 65535).
    #[error("port {value} is out of range")]
    InvalidPort {
        /// The decoded number.
        value: u64,
    },
    /// A listing announces more than [`MAX_LIST_ENTRIES`](crate::directory::MAX_LIST_ENTRIES) entries.
    #[error("listing of {count} entries exceeds the limit of {max}")]
    CountTooLarge {
        /// The announced count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A reply's result byte has no meaning for its operation.
    #[error("result code {code} is not defined for {op}")]
    InvalidResult {
        /// The operation the reply answers.
        op: OpCode,
        /// The result byte received.
        code: u8,
    },
    /// A `CAPABILITIES` reply's result byte is not 0.
    #[error("result code {code} is not defined for CAPABILITIES")]
    InvalidCapabilitiesResult {
        /// The result byte received.
        code: u8,
    },
    /// A `GET_FILE` reply's result byte is not 0, 1 or 2.
    #[error("result code {code} is not defined for GET_FILE")]
    InvalidTransferResult {
        /// The result byte received.
        code: u8,
    },
    /// An `IP` field is not an IPv4 or IPv6 address.
    #[error("IP is not an address")]
    InvalidAddress,
    /// A `GET_FILE_FROM` reply's result byte is not 0, 1, 2 or 3.
    #[error("result code {code} is not defined for GET_FILE_FROM")]
    InvalidGetFileFromResult {
        /// The result byte received.
        code: u8,
    },
    /// A `DIGEST` field is not `blake3:` followed by 64 lowercase hex digits.
    #[error("DIGEST is not `blake3:` and 64 lowercase hex digits")]
    InvalidDigest,
    /// Input that matches no form of the message (a nom combinator refused it).
    #[error("malformed message")]
    Malformed,
}

/// nom's own errors, for its combinators: the crate's parsers `cut` every choice they make,
/// so a nom `Error` only reaches a caller as [`DecodeError::Malformed`] if a combinator refuses
/// input for a reason of its own.
impl<I> nom::error::ParseError<I> for DecodeError {
    fn from_error_kind(_input: I, _kind: nom::error::ErrorKind) -> Self {
        Self::Malformed
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// `map_res` passes the crate's typed errors through unchanged.
impl<I> nom::error::FromExternalError<I, Self> for DecodeError {
    fn from_external_error(_input: I, _kind: nom::error::ErrorKind, error: Self) -> Self {
        error
    }
}
