//! The `DD/MM/YYYY HH:MM:SS` wire timestamp.
//!
//! Directory requests may carry a `DATETIME` field: the time the peer got from
//! the datetime service just before the operation. On the wire it is exactly 19
//! ASCII bytes matching `\d\d/\d\d/\d\d\d\d \d\d:\d\d:\d\d`. A field that matches
//! the pattern is accepted even when it is not a real date: classic clients send
//! `00/00/0000 00:00:00` when their datetime service is down, and the server
//! passes the field on exactly as received. [`Timestamp`] therefore stores the
//! exact bytes; [`Timestamp::to_naive`] interprets them when they form a date.
//!
//! This module never reads a clock: callers pass the time in.
//!
//! ```
//! use p2p_proto::timestamp::Timestamp;
//!
//! let ts = Timestamp::parse(b"24/11/2026 20:42:35")?;
//! assert_eq!(ts.as_str(), "24/11/2026 20:42:35");
//! assert!(ts.to_naive().is_some());
//! assert!(Timestamp::UNKNOWN.to_naive().is_none());
//! # Ok::<(), p2p_proto::timestamp::TimestampError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use nom::combinator::all_consuming;
use nom::{IResult, Parser};

/// Why bytes are not a wire timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The input is not exactly [`Timestamp::LEN`] bytes long.
    #[error("timestamp must be {} bytes, got {len}", Timestamp::LEN)]
    Length {
        /// The length of the input.
        len: usize,
    },
    /// The input does not match `DD/MM/YYYY HH:MM:SS` (digits and separators).
    #[error("timestamp does not match DD/MM/YYYY HH:MM:SS")]
    Pattern,
}

/// The 19-byte `DD/MM/YYYY HH:MM:SS` field, stored exactly as received.
///
/// Any 19 bytes of the right shape are accepted, real date or not.
/// Equality and hashing compare the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp([u8; Self::LEN]);

/// `D` stands for an ASCII digit; every other byte must appear as is.
const PATTERN: &[u8; Timestamp::LEN] = b"DD/DD/DDDD DD:DD:DD";

impl Timestamp {
    /// The length of the field in bytes, without its NUL terminator.
    pub const LEN: usize = 19;

    /// `00/00/0000 00:00:00`, what classic clients send when they have no time.
    pub const UNKNOWN: Self = Self(*b"00/00/0000 00:00:00");

    /// Whether `bytes` is exactly a `DD/MM/YYYY HH:MM:SS`-shaped field.
    #[must_use]
    pub fn matches_pattern(bytes: &[u8]) -> bool {
        // Every byte is checked, without an early exit: a fixed 19-step loop the compiler turns
        // into straight-line code (the field is checked on every request).
        bytes.len() == Self::LEN
            && bytes.iter().zip(PATTERN).fold(true, |ok, (&b, &p)| {
                ok & if p == b'D' {
                    b.is_ascii_digit()
                } else {
                    b == p
                }
            })
    }

    /// Accepts exactly 19 bytes matching the pattern, real date or not.
    ///
    /// # Errors
    /// [`TimestampError::Length`] or [`TimestampError::Pattern`].
    pub fn parse(bytes: &[u8]) -> Result<Self, TimestampError> {
        match all_consuming(timestamp).parse(bytes) {
            Ok((_, ts)) => Ok(ts),
            Err(_) if bytes.len() != Self::LEN => Err(TimestampError::Length { len: bytes.len() }),
            Err(_) => Err(TimestampError::Pattern),
        }
    }

    /// Formats a date and time; fractions of a second are dropped.
    ///
    /// The field has room for years 0000..=9999 only: earlier times saturate to
    /// `01/01/0000 00:00:00`, later ones to `31/12/9999 23:59:59`.
    #[must_use]
    pub fn from_naive(dt: NaiveDateTime) -> Self {
        let (day, month, year, hour, minute, second) = if dt.year() < 0 {
            (1, 1, 0, 0, 0, 0)
        } else if dt.year() > 9999 {
            (31, 12, 9999, 23, 59, 59)
        } else {
            (
                dt.day(),
                dt.month(),
                dt.year().unsigned_abs(),
                dt.hour(),
                dt.minute(),
                dt.second(),
            )
        };
        let mut out = *PATTERN;
        put_digits(&mut out[0..2], day);
        put_digits(&mut out[3..5], month);
        put_digits(&mut out[6..10], year);
        put_digits(&mut out[11..13], hour);
        put_digits(&mut out[14..16], minute);
        put_digits(&mut out[17..19], second);
        Self(out)
    }

    /// The date and time, or `None` when the field is not a real one
    /// (for example [`Timestamp::UNKNOWN`] or `31/02/2026 25:00:00`).
    #[must_use]
    pub fn to_naive(&self) -> Option<NaiveDateTime> {
        let b = &self.0;
        let year = i32::try_from(digits(&b[6..10])).ok()?;
        NaiveDate::from_ymd_opt(year, digits(&b[3..5]), digits(&b[0..2]))?.and_hms_opt(
            digits(&b[11..13]),
            digits(&b[14..16]),
            digits(&b[17..19]),
        )
    }

    /// The field as text (always ASCII).
    #[must_use]
    pub fn as_str(&self) -> &str {
        // The pattern admits only ASCII bytes, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The field's 19 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

/// The field as a nom parser:
///
/// ```text
/// timestamp = 2DIGIT "/" 2DIGIT "/" 4DIGIT SP 2DIGIT ":" 2DIGIT ":" 2DIGIT   ; 19 bytes
/// ```
///
/// A primitive: the 19 bytes are taken at once and checked against [`PATTERN`] in one pass
/// ([`Timestamp::matches_pattern`]) rather than by eleven per-byte parsers (the field is checked
/// on every request; through nom's `take` and `map_opt` it cost twice as many instructions).
#[inline]
fn timestamp(input: &[u8]) -> IResult<&[u8], Timestamp, ()> {
    match input.split_first_chunk::<{ Timestamp::LEN }>() {
        Some((field, rest)) if Timestamp::matches_pattern(field) => Ok((rest, Timestamp(*field))),
        _ => Err(nom::Err::Error(())),
    }
}

/// Writes `value` as zero-padded decimal filling `out` (the value fits by construction).
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        // `value % 10` < 10, so the cast cannot truncate.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Reads ASCII digits (already checked by the pattern) as a number.
fn digits(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0')))
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Timestamp").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, TimestampError> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&[u8]> for Timestamp {
    type Error = TimestampError;

    fn try_from(bytes: &[u8]) -> Result<Self, TimestampError> {
        Self::parse(bytes)
    }
}

impl From<NaiveDateTime> for Timestamp {
    fn from(dt: NaiveDateTime) -> Self {
        Self::from_naive(dt)
    }
}

impl AsRef<str> for Timestamp {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for Timestamp {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut out = *PATTERN;
        for slot in out.iter_mut().filter(|b| **b == b'D') {
            *slot = b'0' + u.int_in_range(0..=9)?;
        }
        Ok(Self(out))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (0, Some(14))
    }
}

/// Proptest strategies for timestamps, shared by the crate's tests.
#[cfg(test)]
pub(crate) mod strategy {
    use super::Timestamp;
    use proptest::prelude::*;

    /// Any pattern-shaped timestamp, real date or not.
    pub(crate) fn timestamp() -> impl Strategy<Value = Timestamp> {
        "[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}"
            .prop_filter_map("pattern", |s| Timestamp::parse(s.as_bytes()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pattern() {
        assert!(Timestamp::matches_pattern(b"24/11/2026 20:42:35"));
        assert!(Timestamp::matches_pattern(b"00/00/0000 00:00:00"));
        assert!(Timestamp::matches_pattern(b"99/99/9999 99:99:99"));
        assert!(!Timestamp::matches_pattern(b"2a/11/2026 20:42:35"));
        assert!(!Timestamp::matches_pattern(b"24-11-2026 20:42:35"));
        assert!(!Timestamp::matches_pattern(b"24/11/2026T20:42:35"));
        assert!(!Timestamp::matches_pattern(b"24/11/2026 20:42:3"));
        assert!(!Timestamp::matches_pattern(b"24/11/2026 20:42:355"));
        assert!(!Timestamp::matches_pattern(b""));
        assert!(!Timestamp::matches_pattern(
            "24/11/2026 20:42:3٣".as_bytes()
        ));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            Timestamp::parse(b"24/11/2026"),
            Err(TimestampError::Length { len: 10 })
        );
        assert_eq!(
            Timestamp::parse(b"2a/11/2026 20:42:35"),
            Err(TimestampError::Pattern)
        );
        assert_eq!(
            "24/11/2026 20:42:35"
                .parse::<Timestamp>()
                .map(|t| t.to_string()),
            Ok("24/11/2026 20:42:35".to_owned())
        );
    }

    #[test]
    fn unknown_and_unreal_dates_are_kept_verbatim() {
        assert_eq!(Timestamp::UNKNOWN.as_str(), "00/00/0000 00:00:00");
        assert_eq!(
            Timestamp::parse(b"00/00/0000 00:00:00"),
            Ok(Timestamp::UNKNOWN)
        );
        assert_eq!(Timestamp::UNKNOWN.to_naive(), None);
        let unreal = Timestamp::parse(b"31/02/2026 25:61:00").unwrap();
        assert_eq!(unreal.as_str(), "31/02/2026 25:61:00");
        assert_eq!(unreal.to_naive(), None);
    }

    #[test]
    fn chrono_conversions() {
        let dt = NaiveDate::from_ymd_opt(2026, 11, 24)
            .and_then(|d| d.and_hms_milli_opt(20, 42, 5, 999))
            .unwrap();
        let ts = Timestamp::from_naive(dt);
        assert_eq!(ts.as_str(), "24/11/2026 20:42:05");
        assert_eq!(ts.to_naive(), dt.with_nanosecond(0));
        let early = NaiveDate::from_ymd_opt(7, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .unwrap();
        assert_eq!(Timestamp::from_naive(early).as_str(), "02/01/0007 03:04:05");
    }

    #[test]
    fn out_of_range_years_saturate() {
        assert_eq!(
            Timestamp::from_naive(NaiveDateTime::MIN).as_str(),
            "01/01/0000 00:00:00"
        );
        assert_eq!(
            Timestamp::from_naive(NaiveDateTime::MAX).as_str(),
            "31/12/9999 23:59:59"
        );
    }

    proptest! {
        #[test]
        fn naive_round_trip(secs in -62_167_219_200_i64..253_402_300_800_i64) {
            // Years 0000..=9999 exactly.
            let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let ts = Timestamp::from_naive(dt);
            prop_assert!(Timestamp::matches_pattern(ts.as_bytes()));
            prop_assert_eq!(ts.to_naive(), Some(dt));
            prop_assert_eq!(ts.as_str().parse::<Timestamp>(), Ok(ts));
        }

        #[test]
        fn parse_agrees_with_pattern(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(Timestamp::parse(&bytes).is_ok(), Timestamp::matches_pattern(&bytes));
        }

        #[test]
        fn any_shaped_field_round_trips(ts in strategy::timestamp()) {
            prop_assert_eq!(Timestamp::parse(ts.as_bytes()), Ok(ts));
        }
    }
}
