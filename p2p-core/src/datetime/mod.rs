//! The datetime service of PROTOCOL.md §3 and the client that peers use to
//! stamp their directory requests.
//!
//! The service answers `GET /datetime` with its local time as
//! `DD/MM/YYYY HH:MM:SS` ([`router`], [`serve`]). The client
//! ([`DatetimeClient`]) fetches that time with a short timeout and, when the
//! service cannot be reached or answers nonsense, falls back to the local
//! clock in the same format, warning once (the peer shows it on stderr), so that directory
//! operations keep working.
//!
//! The text itself is always written and read by
//! [`p2p_proto::timestamp::Timestamp`]; this module only moves it over HTTP.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use p2p_core::datetime::{self, DatetimeClient};
//!
//! let listener = tokio::net::TcpListener::bind(datetime::DEFAULT_BIND).await?;
//! tokio::spawn(datetime::serve(listener, std::future::pending()));
//!
//! let client = DatetimeClient::new(datetime::DEFAULT_DATETIME_URL);
//! println!("{}", client.now().await);
//! # Ok(())
//! # }
//! ```

mod client;
mod service;

use chrono::NaiveDateTime;
use p2p_proto::timestamp::Timestamp;

pub use client::{DatetimeClient, DatetimeClientConfig, DatetimeError, check_url};
pub use service::{SHUTDOWN_GRACE, router, router_with_clock, serve, serve_router};

/// The address the service listens on unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:5000";

/// The URL a peer asks for the time unless told otherwise.
pub const DEFAULT_DATETIME_URL: &str = "http://127.0.0.1:5000/datetime";

/// The only path the service answers.
pub const DATETIME_PATH: &str = "/datetime";

/// The `Content-Type` of the service's answer.
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The body the service sends for the instant `now`: `DD/MM/YYYY HH:MM:SS`,
/// without a trailing newline.
///
/// ```
/// use chrono::NaiveDate;
///
/// let now = NaiveDate::from_ymd_opt(2026, 11, 24)
///     .and_then(|d| d.and_hms_opt(9, 5, 3))
///     .ok_or("bad date")?;
/// assert_eq!(p2p_core::datetime::body(now), "24/11/2026 09:05:03");
/// # Ok::<(), &str>(())
/// ```
#[must_use]
pub fn body(now: NaiveDateTime) -> String {
    Timestamp::from_naive(now).as_str().to_owned()
}

/// This machine's local time as a [`Timestamp`]: what the service sends, and
/// what the client falls back to.
#[must_use]
pub fn local_now() -> Timestamp {
    Timestamp::from_naive(local_clock())
}

/// The local wall clock, the service's default clock.
pub(crate) fn local_clock() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, s))
            .unwrap_or_else(|| panic!("test date {y}-{mo}-{d} {h}:{mi}:{s} is invalid"))
    }

    #[test]
    fn body_is_day_month_year_with_zero_padding() {
        assert_eq!(body(at(2026, 11, 24, 9, 5, 3)), "24/11/2026 09:05:03");
        assert_eq!(body(at(2000, 1, 2, 0, 0, 0)), "02/01/2000 00:00:00");
        assert_eq!(body(at(1999, 12, 31, 23, 59, 59)), "31/12/1999 23:59:59");
        assert_eq!(body(at(2024, 2, 29, 12, 30, 7)), "29/02/2024 12:30:07");
    }

    #[test]
    fn body_has_no_trailing_newline_and_parses_back() {
        let text = body(at(2026, 11, 24, 9, 5, 3));
        assert_eq!(text.len(), 19);
        assert!(!text.ends_with('\n'));
        let parsed = Timestamp::parse(text.as_bytes())
            .map(|ts| ts.as_str().to_owned())
            .map_err(|e| e.to_string());
        assert_eq!(parsed, Ok(text));
    }

    #[test]
    fn local_now_is_nineteen_bytes() {
        assert_eq!(local_now().as_str().len(), 19);
    }
}
