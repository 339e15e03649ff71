//! XDR primitives (RFC 4506), bounded.
//!
//! Every XDR item is a multiple of four bytes, big-endian:
//!
//! ```text
//! unsigned int / int / bool / enum   4 bytes
//! opaque<N> / string<N>              length (4 bytes, at most N) + bytes + 0..3 zero pad bytes
//! ```
//!
//! Decoders are crate-private streaming nom parsers over `&[u8]` with [`XdrError`] as their error
//! type: input that ends too early is `nom::Err::Incomplete`, a value that breaks the grammar is
//! `nom::Err::Failure`; the message types' [`Decode`](crate::Decode) impls map them. A variable-length item whose announced length is over its bound is refused
//! as soon as the length is read, before any byte of it is waited for or allocated. Pad bytes are
//! written as zeros and accepted whatever they hold, as libtirpc does.
//!
//! Encoders write into any [`BufMut`] and cannot fail: values that could not be encoded are refused
//! earlier, by the constructors of the types that hold them.
//!
//! ```
//! use p2p_proto::xdr;
//!
//! let mut buf = Vec::new();
//! xdr::put_string(&mut buf, "alice");
//! assert_eq!(buf, b"\0\0\0\x05alice\0\0\0");
//! assert_eq!(buf.len(), xdr::opaque_len("alice".len()));
//! ```

use bytes::BufMut;
use nom::combinator::{cut, map_res};
use nom::{IResult, Needed, Parser};

/// The size of an XDR unit: every item is padded to a multiple of it.
pub const UNIT: usize = 4;

/// Errors of the XDR, ONC RPC and rpcbind layer: a value that breaks the grammar or a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XdrError {
    /// A variable-length item announced (or a value holds) more than its bound allows.
    #[error("{what}: length {len} is over the bound {max}")]
    TooLong {
        /// Which item.
        what: &'static str,
        /// The announced or given length.
        len: u64,
        /// The bound.
        max: u32,
    },
    /// A `bool` that is neither 0 nor 1.
    #[error("invalid XDR bool {value}")]
    InvalidBool {
        /// The value read.
        value: u32,
    },
    /// An enum or union discriminant with no meaning here.
    #[error("{what}: invalid discriminant {value}")]
    InvalidDiscriminant {
        /// Which enum or union.
        what: &'static str,
        /// The value read.
        value: u32,
    },
    /// A string that is not UTF-8.
    #[error("{what}: not UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: &'static str,
    },
    /// A string holding a NUL byte, which C programs (rpcgen) cannot represent.
    #[error("{what}: contains a NUL byte")]
    ContainsNul {
        /// Which string.
        what: &'static str,
    },
    /// A value that is well-formed XDR but not acceptable where it stands.
    #[error("{what}: invalid value")]
    InvalidValue {
        /// Which value.
        what: &'static str,
    },
    /// Bytes left over after a complete item where none may follow.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// A nom combinator failed (should not happen with the parsers of this crate).
    #[error("malformed input ({kind:?})")]
    Malformed {
        /// The nom step that failed.
        kind: nom::error::ErrorKind,
    },
}

/// `map_res` passes the typed errors of this layer through unchanged.
impl<I> nom::error::FromExternalError<I, Self> for XdrError {
    fn from_external_error(_input: I, _kind: nom::error::ErrorKind, error: Self) -> Self {
        error
    }
}

impl<I> nom::error::ParseError<I> for XdrError {
    fn from_error_kind(_input: I, kind: nom::error::ErrorKind) -> Self {
        Self::Malformed { kind }
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// The result of an XDR decoder: remaining input and value.
pub(crate) type XdrResult<'a, T> = IResult<&'a [u8], T, XdrError>;

/// A failure that no more input can fix.
pub(crate) fn fail<T>(e: XdrError) -> Result<T, nom::Err<XdrError>> {
    Err(nom::Err::Failure(e))
}

/// Number of zero bytes that pad `len` bytes to a multiple of four.
#[must_use]
pub const fn pad_len(len: usize) -> usize {
    (UNIT - len % UNIT) % UNIT
}

/// Encoded size of a variable-length opaque or string of `len` bytes (length word, data, pad).
#[must_use]
pub const fn opaque_len(len: usize) -> usize {
    UNIT + len + pad_len(len)
}

/// `unsigned int = 4 bytes, big-endian`.
pub(crate) fn u32(input: &[u8]) -> XdrResult<'_, u32> {
    // A fixed-size array split rather than nom's `be_u32`, whose generic `Input` steps showed
    // in the profile of a SENDLOG parse (a call header is a dozen of these).
    match input.split_first_chunk::<UNIT>() {
        Some((word, rest)) => Ok((rest, u32::from_be_bytes(*word))),
        None => Err(nom::Err::Incomplete(Needed::new(UNIT - input.len()))),
    }
}

/// `void`: no bytes.
pub(crate) fn void(input: &[u8]) -> XdrResult<'_, ()> {
    Ok((input, ()))
}

/// `int = 4 bytes, big-endian, two's complement`.
pub(crate) fn i32(input: &[u8]) -> XdrResult<'_, i32> {
    u32.map(|word| word as i32).parse(input)
}

/// `bool = unsigned int 0 / 1`; anything else is refused.
pub(crate) fn bool(input: &[u8]) -> XdrResult<'_, bool> {
    cut(map_res(u32, |value| match value {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(XdrError::InvalidBool { value }),
    }))
    .parse(input)
}

/// `opaque<max> = length (at most max) + length bytes + pad to 4`, refusing a length over `max`
/// before waiting for (or allocating) any of the data.
pub(crate) fn opaque(what: &'static str, max: u32) -> impl Fn(&[u8]) -> XdrResult<'_, &[u8]> {
    move |input: &[u8]| {
        cut(map_res(u32, |len| {
            if len > max {
                Err(XdrError::TooLong {
                    what,
                    len: u64::from(len),
                    max,
                })
            } else {
                Ok(len as usize)
            }
        }))
        .flat_map(padded)
        .parse(input)
    }
}

/// `len` bytes of data and their padding to four, taken together so that a complete item is
/// never split. (A slice split rather than nom's `take`, whose generic `Input` steps cost a tenth
/// of a SENDLOG parse.)
#[inline]
fn padded(len: usize) -> impl Fn(&[u8]) -> XdrResult<'_, &[u8]> {
    move |input: &[u8]| match input.split_at_checked(len + pad_len(len)) {
        Some((data, rest)) => Ok((rest, &data[..len])),
        None => Err(nom::Err::Incomplete(Needed::new(
            len + pad_len(len) - input.len(),
        ))),
    }
}

/// `string<max>`, laid out as `opaque<max>`, as UTF-8 text without NUL bytes (what C programs
/// can send and print).
pub(crate) fn string(what: &'static str, max: u32) -> impl Fn(&[u8]) -> XdrResult<'_, &str> {
    move |input: &[u8]| {
        cut(map_res(opaque(what, max), |bytes| check_text(what, bytes))).parse(input)
    }
}

/// Checks that `bytes` may travel as an XDR string here: UTF-8, no NUL.
pub(crate) fn check_text<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a str, XdrError> {
    if bytes.contains(&0) {
        return Err(XdrError::ContainsNul { what });
    }
    std::str::from_utf8(bytes).map_err(|_| XdrError::InvalidUtf8 { what })
}

/// Checks a string against its bound and [`check_text`]; what constructors of bounded types call.
pub(crate) fn check_string(what: &'static str, s: &str, max: u32) -> Result<(), XdrError> {
    if s.len() > max as usize {
        return Err(XdrError::TooLong {
            what,
            len: s.len() as u64,
            max,
        });
    }
    check_text(what, s.as_bytes()).map(|_| ())
}

/// Encodes an `unsigned int`.
pub fn put_u32(buf: &mut impl BufMut, v: u32) {
    buf.put_u32(v);
}

/// Encodes an `int`.
pub fn put_i32(buf: &mut impl BufMut, v: i32) {
    buf.put_i32(v);
}

/// Encodes a `bool`.
pub fn put_bool(buf: &mut impl BufMut, v: bool) {
    buf.put_u32(u32::from(v));
}

/// Encodes a variable-length opaque: length, bytes, zero padding.
///
/// The caller guarantees the bound (types that hold opaque data check it when built); a slice
/// longer than `u32::MAX` cannot be represented and is a bug of the caller.
pub fn put_opaque(buf: &mut impl BufMut, data: &[u8]) {
    // Bounded types never hold more than a few hundred bytes; saturate rather than wrap.
    buf.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    put_opaque_fixed(buf, data);
}

/// Encodes a fixed-length opaque: bytes and zero padding.
fn put_opaque_fixed(buf: &mut impl BufMut, data: &[u8]) {
    buf.put_slice(data);
    buf.put_bytes(0, pad_len(data.len()));
}

/// Encodes a string (same layout as variable-length opaque).
pub fn put_string(buf: &mut impl BufMut, s: &str) {
    put_opaque(buf, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padding() {
        assert_eq!(
            (0..8).map(pad_len).collect::<Vec<_>>(),
            [0, 3, 2, 1, 0, 3, 2, 1]
        );
        assert_eq!(opaque_len(5), 12);
    }

    #[test]
    fn string_kat_and_junk() {
        let (rest, s) = string("s", 8)(b"\0\0\0\x03bob\0???").unwrap();
        assert_eq!((s, rest), ("bob", &b"???"[..]));
    }

    #[test]
    fn nonzero_padding_is_accepted() {
        let (rest, s) = string("s", 8)(b"\0\0\0\x03bobX").unwrap();
        assert_eq!((s, rest), ("bob", &b""[..]));
    }

    #[test]
    fn too_long_refused_before_data() {
        // Only the length word is present: the bound is checked at once.
        assert_eq!(
            opaque("o", 4)(b"\0\0\0\x05"),
            Err(nom::Err::Failure(XdrError::TooLong {
                what: "o",
                len: 5,
                max: 4
            }))
        );
        // A huge announced length never waits for (or allocates) 4 GiB.
        assert!(matches!(
            opaque("o", 400)(b"\xff\xff\xff\xff"),
            Err(nom::Err::Failure(XdrError::TooLong { .. }))
        ));
    }

    #[test]
    fn at_bound_accepted() {
        let mut buf = Vec::new();
        put_string(&mut buf, "abcd");
        assert_eq!(string("s", 4)(&buf).unwrap().1, "abcd");
        assert!(string("s", 3)(&buf).is_err());
    }

    #[test]
    fn bool_values() {
        assert!(bool(b"\0\0\0\x01").unwrap().1);
        assert!(!bool(b"\0\0\0\x00").unwrap().1);
        assert_eq!(
            bool(b"\0\0\0\x02"),
            Err(nom::Err::Failure(XdrError::InvalidBool { value: 2 }))
        );
    }

    #[test]
    fn string_refuses_nul_and_bad_utf8() {
        assert!(matches!(
            string("s", 8)(b"\0\0\0\x02a\0\0\0"),
            Err(nom::Err::Failure(XdrError::ContainsNul { what: "s" }))
        ));
        assert!(matches!(
            string("s", 8)(b"\0\0\0\x01\xff\0\0\0"),
            Err(nom::Err::Failure(XdrError::InvalidUtf8 { what: "s" }))
        ));
    }

    proptest! {
        #[test]
        fn opaque_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = Vec::new();
            put_opaque(&mut buf, &data);
            prop_assert_eq!(buf.len(), opaque_len(data.len()));
            prop_assert_eq!(buf.len() % UNIT, 0);
            let (rest, out) = opaque("o", 64)(&buf).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(out, &data[..]);
            for cut in 0..buf.len() {
                prop_assert!(matches!(opaque("o", 64)(&buf[..cut]), Err(nom::Err::Incomplete(_))));
            }
        }

        #[test]
        fn ints_round_trip(u in any::<u32>(), i in any::<i32>(), b in any::<bool>()) {
            let mut buf = Vec::new();
            put_u32(&mut buf, u);
            put_i32(&mut buf, i);
            put_bool(&mut buf, b);
            let (rest, u2) = u32(&buf).unwrap();
            let (rest, i2) = i32(rest).unwrap();
            let (rest, b2) = bool(rest).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!((u, i, b), (u2, i2, b2));
        }
    }
}
