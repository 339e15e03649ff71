//! Shared wire primitives of the NUL-terminated protocols (directory and transfer):
//! the bounded field scanner, field and number parsers, and the matching encoders.
//!
//! Parsers are streaming: `Err(nom::Err::Incomplete)` means "need more bytes",
//! malformed input is `Err(nom::Err::Failure(DecodeError))`. They only ever take
//! a decision when a field's NUL arrives or when a field grows past its limit;
//! [`crate::directory::RequestDecoder`] relies on that to avoid rescanning.

use std::fmt::{self, Display, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU16;

use bytes::BufMut;
use nom::{IResult, Mode, Needed, OutputMode, Parser};

use crate::DecodeError;
use crate::directory::{MAX_IP_LEN, MAX_OP_LEN, MAX_PORT_DIGITS, OpCode, SearchQuery};
use crate::field::{Description, FieldError, FileName, MAX_FIELD_LEN, UserName};

/// The result of a streaming parser of this crate.
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, DecodeError>;

/// A primitive parser as a nom [`Parser`] whose `process` is always inlined into the
/// combinator around it.
///
/// nom's own `Parser` impl for functions is not marked `#[inline]`: inside a tuple or a
/// `flat_map` on a hot path, its re-wrapping of every field's result cost ~25 instructions per
/// field (cachegrind; PERFORMANCE.md, "nom combinators everywhere"). This is the same impl,
/// inlined.
#[derive(Clone, Copy)]
pub(crate) struct Inline<F>(pub(crate) F);

impl<'a, T, F: FnMut(&'a [u8]) -> PResult<'a, T>> Parser<&'a [u8]> for Inline<F> {
    type Output = T;
    type Error = DecodeError;

    #[inline(always)]
    fn process<OM: OutputMode>(
        &mut self,
        input: &'a [u8],
    ) -> nom::PResult<OM, &'a [u8], T, DecodeError> {
        match (self.0)(input) {
            Ok((rest, value)) => Ok((rest, OM::Output::bind(|| value))),
            Err(nom::Err::Error(e)) => Err(nom::Err::Error(OM::Error::bind(|| e))),
            Err(nom::Err::Failure(e)) => Err(nom::Err::Failure(e)),
            Err(nom::Err::Incomplete(n)) => Err(nom::Err::Incomplete(n)),
        }
    }
}

/// The largest number of decimal digits accepted in a count or size field
/// (`u64::MAX` has 20 digits).
pub(crate) const MAX_NUMBER_DIGITS: usize = 20;

/// Refuses with a final (non-backtracking) error.
pub(crate) const fn fail<T>(error: DecodeError) -> Result<T, nom::Err<DecodeError>> {
    Err(nom::Err::Failure(error))
}

/// `field = *max(%x01-FF) %x00`: the bytes before the NUL, at most `max` of them.
///
/// Bounded: refused with [`DecodeError::FieldTooLong`] as soon as byte `max + 1`
/// arrives and is not the NUL; never scans further than that.
#[inline]
pub(crate) fn nul_field<'a>(
    input: &'a [u8],
    field: &'static str,
    max: usize,
) -> PResult<'a, &'a [u8]> {
    // memchr inside the parser rather than a byte-at-a-time `take_till`: fields are scanned
    // once per request and listings hold thousands of them.
    let window = &input[..input.len().min(max.saturating_add(1))];
    match memchr::memchr(0, window) {
        Some(end) => Ok((&input[end + 1..], &input[..end])),
        // Byte `max + 1` arrived and it is not a NUL.
        None if input.len() > max => fail(DecodeError::FieldTooLong { field, max }),
        None => Err(nom::Err::Incomplete(Needed::new(1))),
    }
}

/// `field = *max(%x01-FF) %x00` whose bytes `check` turns into a value, as a parser to compose
/// with nom's combinators; what `check` refuses is final (a `Failure`, as nom's `cut` makes it).
pub(crate) fn checked_field<'a, T>(
    field: &'static str,
    max: usize,
    mut check: impl FnMut(&'a [u8]) -> Result<T, DecodeError>,
) -> impl FnMut(&'a [u8]) -> PResult<'a, T> {
    move |input: &'a [u8]| checked(input, field, max, &mut check)
}

/// [`checked_field`] applied to `input`.
#[inline]
pub(crate) fn checked<'a, T>(
    input: &'a [u8],
    field: &'static str,
    max: usize,
    check: impl FnOnce(&'a [u8]) -> Result<T, DecodeError>,
) -> PResult<'a, T> {
    let (rest, raw) = nul_field(input, field, max)?;
    match check(raw) {
        Ok(value) => Ok((rest, value)),
        Err(e) => fail(e),
    }
}

/// `result = %x00-FF`: one binary byte (a result code).
pub(crate) fn byte(input: &[u8]) -> PResult<'_, u8> {
    nom::number::streaming::u8(input)
}

/// `op = 1*13(%x01-FF) %x00` naming one of the directory operations.
#[inline]
pub(crate) fn op_code(input: &[u8]) -> PResult<'_, OpCode> {
    checked(input, "OP", MAX_OP_LEN, |raw| {
        OpCode::from_bytes(raw).ok_or(DecodeError::UnknownOp)
    })
}

/// Maps a field validation error to the decode error naming the field.
fn invalid(field: &'static str) -> impl Fn(FieldError) -> DecodeError {
    move |error| DecodeError::InvalidField { field, error }
}

/// A user name field (`USER`, `TARGET`, `NAME`): `1*255(%x21-FF) %x00`.
#[inline]
pub(crate) fn user_name<'a>(input: &'a [u8], field: &'static str) -> PResult<'a, UserName> {
    checked(input, field, MAX_FIELD_LEN, |raw| to_user_name(raw, field))
}

/// Validates the raw bytes of a user name field.
pub(crate) fn to_user_name(raw: &[u8], field: &'static str) -> Result<UserName, DecodeError> {
    UserName::from_bytes(raw).map_err(invalid(field))
}

/// A `FILE` field: `1*255(%x01-FF) %x00`, UTF-8.
pub(crate) fn file_name(input: &[u8]) -> PResult<'_, FileName> {
    checked(input, "FILE", MAX_FIELD_LEN, |raw| {
        FileName::from_bytes(raw).map_err(invalid("FILE"))
    })
}

/// A `DESCRIPTION` field: `*255(%x01-FF) %x00`, UTF-8.
pub(crate) fn description(input: &[u8]) -> PResult<'_, Description> {
    checked(input, "DESCRIPTION", MAX_FIELD_LEN, |raw| {
        Description::from_bytes(raw).map_err(invalid("DESCRIPTION"))
    })
}

/// A `QUERY` field: any bytes but NUL, judged later ([`SearchQuery::terms`]).
pub(crate) fn search_query(input: &[u8]) -> PResult<'_, SearchQuery> {
    checked(input, "QUERY", MAX_FIELD_LEN, |raw| {
        SearchQuery::from_bytes(raw).map_err(invalid("QUERY"))
    })
}

/// `number = 1*max_digits DIGIT %x00`: strictly ASCII decimal (no sign, no spaces).
/// Leading zeros are accepted, values above `u64::MAX` are not.
pub(crate) fn number<'a>(
    input: &'a [u8],
    field: &'static str,
    max_digits: usize,
) -> PResult<'a, u64> {
    checked(input, field, max_digits, |raw| {
        decimal(raw).ok_or(DecodeError::InvalidNumber { field })
    })
}

/// `1*DIGIT` as a whole field's bytes, without overflow.
pub(crate) fn decimal(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0_u64, |value, &b| {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        value.checked_mul(10)?.checked_add(digit)
    })
}

/// A `PORT` field as a reply carries it: decimal 0..=65535.
#[inline]
pub(crate) fn port(input: &[u8]) -> PResult<'_, u16> {
    checked(input, "PORT", MAX_PORT_DIGITS, |raw| {
        let value = decimal(raw).ok_or(DecodeError::InvalidNumber { field: "PORT" })?;
        u16::try_from(value).map_err(|_| DecodeError::InvalidPort { value })
    })
}

/// A `PORT` field as CONNECT sends it: decimal 1..=65535.
#[inline]
pub(crate) fn listening_port(input: &[u8]) -> PResult<'_, NonZeroU16> {
    checked(input, "PORT", MAX_PORT_DIGITS, |raw| {
        let value = decimal(raw).ok_or(DecodeError::InvalidNumber { field: "PORT" })?;
        u16::try_from(value)
            .ok()
            .and_then(NonZeroU16::new)
            .ok_or(DecodeError::InvalidPort { value })
    })
}

/// An `IP` field: an IPv4 or IPv6 address as text, `1*45(%x01-FF) %x00`.
#[inline]
pub(crate) fn ip_addr(input: &[u8]) -> PResult<'_, IpAddr> {
    checked(input, "IP", MAX_IP_LEN, |raw| {
        match dotted_quad(raw) {
            Some(v4) => Some(IpAddr::V4(v4)),
            // Everything else (IPv6, and the forms the fast path leaves out) goes
            // to the standard parser, which decides what is an address.
            None => std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()),
        }
        .ok_or(DecodeError::InvalidAddress)
    })
}

/// The fast path of [`ip_addr`]: a canonical dotted quad (`0`-`255`, no leading
/// zeros), a subset of what `Ipv4Addr::from_str` accepts, parsed to the same
/// address.
fn dotted_quad(raw: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = raw.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut value: u16 = 0;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u16::from(b - b'0');
        }
        *octet = u8::try_from(value).ok()?;
    }
    match parts.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

/// Writes `bytes` and the NUL terminator.
pub(crate) fn put_field(buf: &mut impl BufMut, bytes: &[u8]) {
    buf.put_slice(bytes);
    buf.put_u8(0);
}

/// Writes `value`'s text and the NUL terminator, without allocating.
pub(crate) fn put_display(buf: &mut impl BufMut, value: &impl Display) {
    struct Put<'b, B>(&'b mut B);
    impl<B: BufMut> fmt::Write for Put<'_, B> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.put_slice(s.as_bytes());
            Ok(())
        }
    }
    // Writing into a `BufMut` cannot fail (it panics when full, by its own contract),
    // and `Display` of numbers and addresses does not fail either.
    let _ = write!(Put(buf), "{value}");
    buf.put_u8(0);
}

/// Writes `value` in ASCII decimal and the NUL terminator, without going
/// through `core::fmt` (listings write two numbers per entry).
pub(crate) fn put_decimal(buf: &mut impl BufMut, value: u64) {
    put_digits(buf, value);
    buf.put_u8(0);
}

fn put_digits(buf: &mut impl BufMut, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `value % 10` is below 10: the cast cannot truncate.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

/// The encoded length of `value` in decimal and the NUL terminator.
pub(crate) const fn decimal_len(value: u64) -> usize {
    digit_count(value) + 1
}

const fn digit_count(value: u64) -> usize {
    match value.checked_ilog10() {
        Some(log) => log as usize + 1,
        None => 1,
    }
}

/// Writes an IP address as text and the NUL terminator; IPv4 (the common
/// case in listings) without `core::fmt`.
pub(crate) fn put_ip(buf: &mut impl BufMut, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b'.');
                }
                put_digits(buf, u64::from(octet));
            }
            buf.put_u8(0);
        }
        IpAddr::V6(_) => put_display(buf, ip),
    }
}

/// The encoded length of an IP address as text and the NUL terminator.
pub(crate) fn ip_len(ip: &IpAddr) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let digits: usize = v4.octets().iter().map(|&o| digit_count(u64::from(o))).sum();
            digits + 3 + 1
        }
        IpAddr::V6(_) => display_len(ip),
    }
}

/// The encoded length of a field of `len` bytes: the bytes and the NUL.
pub(crate) const fn field_len(len: usize) -> usize {
    len + 1
}

/// The encoded length of `value`'s text and the NUL terminator.
pub(crate) fn display_len(value: &impl Display) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = write!(count, "{value}");
    count.0 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Just;

    #[test]
    fn decimal_and_ip_writers_match_display() {
        let values = [0_u64, 7, 9, 10, 99, 100, 65535, 1_000_000, u64::MAX];
        for v in values {
            let mut out = Vec::new();
            put_decimal(&mut out, v);
            assert_eq!(out, format!("{v}\0").into_bytes());
            assert_eq!(decimal_len(v), out.len());
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "255.255.255.255",
            "::1",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            put_ip(&mut out, &ip);
            assert_eq!(out, format!("{ip}\0").into_bytes());
            assert_eq!(ip_len(&ip), out.len());
        }
    }

    #[test]
    fn nul_field_is_bounded() {
        assert_eq!(nul_field(b"ab\0c", "F", 2), Ok((&b"c"[..], &b"ab"[..])));
        assert_eq!(nul_field(b"\0", "F", 2), Ok((&b""[..], &b""[..])));
        assert!(matches!(
            nul_field(b"ab", "F", 2),
            Err(nom::Err::Incomplete(_))
        ));
        assert_eq!(
            nul_field(b"abc", "F", 2),
            fail(DecodeError::FieldTooLong { field: "F", max: 2 })
        );
        // The scan stops at the limit: a NUL further on is never looked at.
        assert_eq!(
            nul_field(b"abc\0", "F", 2),
            fail(DecodeError::FieldTooLong { field: "F", max: 2 })
        );
    }

    #[test]
    fn numbers_are_strict_decimal() {
        assert_eq!(number(b"0\0", "N", 20), Ok((&b""[..], 0)));
        assert_eq!(number(b"007\0", "N", 20), Ok((&b""[..], 7)));
        assert_eq!(
            number(b"18446744073709551615\0", "N", 20),
            Ok((&b""[..], u64::MAX))
        );
        for bad in [
            &b"\0"[..],
            b"+5\0",
            b" 5\0",
            b"5 \0",
            b"5a\0",
            b"-1\0",
            b"0x1\0",
        ] {
            assert_eq!(
                number(bad, "N", 20),
                fail(DecodeError::InvalidNumber { field: "N" }),
                "{bad:?}"
            );
        }
        assert_eq!(
            number(b"18446744073709551616\0", "N", 20),
            fail(DecodeError::InvalidNumber { field: "N" })
        );
    }

    #[test]
    fn encoded_lengths() {
        assert_eq!(display_len(&0_u64), 2);
        assert_eq!(display_len(&u64::MAX), 21);
        let mut out = Vec::new();
        put_display(&mut out, &"127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(out, b"127.0.0.1\0");
    }

    #[test]
    fn dotted_quad_fast_path_known_forms() {
        for (text, expected) in [
            ("127.0.0.1", Some([127, 0, 0, 1])),
            ("0.0.0.0", Some([0, 0, 0, 0])),
            ("255.255.255.255", Some([255, 255, 255, 255])),
            ("10.20.250.9", Some([10, 20, 250, 9])),
            ("256.0.0.1", None),
            ("01.0.0.1", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("1..3.4", None),
            ("1.2.3.4 ", None),
            ("1.2.3.+4", None),
            ("::1", None),
        ] {
            assert_eq!(
                dotted_quad(text.as_bytes()),
                expected.map(Ipv4Addr::from),
                "{text}"
            );
        }
        // What the fast path leaves out still reaches the standard parser.
        assert_eq!(ip_addr(b"::1\0"), Ok((&b""[..], "::1".parse().unwrap())));
        assert_eq!(ip_addr(b"01.0.0.1\0"), fail(DecodeError::InvalidAddress));
    }

    proptest::proptest! {
        /// The fast path accepts only what the standard parser accepts, and
        /// means the same address by it.
        #[test]
        fn dotted_quad_agrees_with_std(text in "[0-9.]{0,17}|([0-9]{1,3}[.]){3}[0-9]{1,3}") {
            if let Some(fast) = dotted_quad(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), text.parse::<Ipv4Addr>().ok());
            }
            let through_field = ip_addr(format!("{text}\0").as_bytes()).ok().map(|(_, ip)| ip);
            proptest::prop_assert_eq!(through_field, text.parse::<IpAddr>().ok());
        }

        /// The memchr scan finds the same field boundary as a byte loop.
        #[test]
        fn nul_field_matches_a_plain_scan(
            input in proptest::collection::vec(proptest::prop_oneof![Just(0u8), 1u8..=255], 0..12),
            max in 0usize..8,
        ) {
            let expected = match input.iter().take(max + 1).position(|&b| b == 0) {
                Some(end) => Ok((&input[end + 1..], &input[..end])),
                None if input.len() > max => fail(DecodeError::FieldTooLong { field: "F", max }),
                None => Err(nom::Err::Incomplete(Needed::new(1))),
            };
            proptest::prop_assert_eq!(nul_field(&input, "F", max), expected);
        }
    }
}
