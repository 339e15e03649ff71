//! The peer's side: fetch the time, or fall back to the local clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use p2p_proto::timestamp::Timestamp;
use reqwest::StatusCode;

use super::{DEFAULT_DATETIME_URL, local_now};

/// Settings of a [`DatetimeClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatetimeClientConfig {
    /// The URL to `GET`. Default: [`DEFAULT_DATETIME_URL`].
    pub url: String,
    /// The longest a whole request (connect, send, read the answer) may
    /// take before the client gives up on the service. Default:
    /// [`DatetimeClientConfig::DEFAULT_TIMEOUT`] (500 ms).
    pub timeout: Duration,
}

impl DatetimeClientConfig {
    /// The default request timeout: short, since a peer asks before every
    /// directory operation.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// The largest answer accepted, in bytes: a timestamp is 19, the rest is
    /// room for trailing whitespace.
    pub const MAX_BODY_LEN: usize = 64;

    /// The default settings with another URL.
    #[must_use]
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

impl Default for DatetimeClientConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATETIME_URL.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Why the time could not be fetched from the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatetimeError {
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {reason}")]
    Client {
        /// What went wrong.
        reason: String,
    },
    /// The configured URL is not a usable `http://` URL.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The service did not answer within the timeout.
    #[error("no answer within {} ms", after.as_millis())]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// No connection could be made (refused, unreachable, name not found).
    #[error("cannot connect: {reason}")]
    Connect {
        /// The innermost cause, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// The request failed after connecting (reset, malformed HTTP, ...).
    #[error("request failed: {reason}")]
    Request {
        /// The innermost cause.
        reason: String,
    },
    /// The service answered with a status other than `200 OK`.
    #[error("HTTP status {status}")]
    Status {
        /// The status code received.
        status: u16,
    },
    /// The answer was longer than [`DatetimeClientConfig::MAX_BODY_LEN`].
    #[error("answer longer than {max} bytes")]
    BodyTooLong {
        /// The limit.
        max: usize,
    },
    /// The answer is not `DD/MM/YYYY HH:MM:SS`.
    #[error("answer {body:?} is not DD/MM/YYYY HH:MM:SS")]
    BadBody {
        /// The answer, lossily decoded as UTF-8.
        body: String,
    },
}

impl DatetimeError {
    fn from_reqwest(error: &reqwest::Error, timeout: Duration) -> Self {
        let reason = innermost_cause(error);
        if error.is_timeout() {
            Self::Timeout { after: timeout }
        } else if error.is_builder() {
            Self::InvalidUrl { reason }
        } else if error.is_connect() {
            Self::Connect { reason }
        } else {
            Self::Request { reason }
        }
    }
}

/// The most specific message in an error's source chain (reqwest's own
/// message only repeats the URL).
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Asks the datetime service for the time (PROTOCOL.md §3).
///
/// [`now`](Self::now) never fails: when the service is unreachable or answers
/// nonsense it returns the local clock with one warning, the first time only
/// (a `tracing` warning, or returned by [`now_or_warn`](Self::now_or_warn) for
/// the caller to show). Clones share the connection pool and that "warned
/// once" state.
#[derive(Debug, Clone)]
pub struct DatetimeClient {
    http: Result<reqwest::Client, DatetimeError>,
    url: Result<reqwest::Url, DatetimeError>,
    config: Arc<DatetimeClientConfig>,
    warned: Arc<AtomicBool>,
}

impl DatetimeClient {
    /// A client for `url` with the default settings.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_config(DatetimeClientConfig::with_url(url))
    }

    /// A client with the given settings. A bad URL is not an error here: it
    /// is reported by [`fetch`](Self::fetch) (and once by [`now`](Self::now)).
    #[must_use]
    pub fn with_config(config: DatetimeClientConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // The service is local infrastructure; an HTTP_PROXY meant for
            // the outside world must not capture it.
            .no_proxy()
            .build()
            .map_err(|e| DatetimeError::Client {
                reason: innermost_cause(&e),
            });
        let url = parse_url(&config.url);
        Self {
            http,
            url,
            config: Arc::new(config),
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The URL this client asks.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The settings this client was built with.
    #[must_use]
    pub fn config(&self) -> &DatetimeClientConfig {
        &self.config
    }

    /// The service's time, or this machine's local time when the service
    /// cannot give it. The first fallback is a `tracing` warning
    /// ([`Self::now_or_warn`] returns it instead); later ones are only
    /// traced at debug level.
    pub async fn now(&self) -> Timestamp {
        let (timestamp, warning) = self.now_or_warn().await;
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
        timestamp
    }

    /// [`Self::now`], with the text to show the user at this client's first
    /// fallback to the local clock (shared with its clones):
    /// `warning: datetime service at URL unreachable (REASON); using the local clock`.
    pub async fn now_or_warn(&self) -> (Timestamp, Option<String>) {
        match self.fetch().await {
            Ok(timestamp) => (timestamp, None),
            Err(error) => {
                tracing::debug!(url = %self.config.url, %error, "datetime service failed; using the local clock");
                let warning = (!self.warned.swap(true, Ordering::Relaxed))
                    .then(|| fallback_warning(&self.config.url, &error));
                (local_now(), warning)
            }
        }
    }

    /// The service's time, without fallback.
    ///
    /// # Errors
    /// Any failure to reach the service within the timeout, a status other
    /// than `200`, or an answer that is not `DD/MM/YYYY HH:MM:SS` (trailing
    /// whitespace such as a newline is tolerated).
    pub async fn fetch(&self) -> Result<Timestamp, DatetimeError> {
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let url = self.url.as_ref().map_err(Clone::clone)?;
        let timeout = self.config.timeout;
        let reqwest_error = |e: reqwest::Error| DatetimeError::from_reqwest(&e, timeout);

        let mut response = http.get(url.clone()).send().await.map_err(reqwest_error)?;
        if response.status() != StatusCode::OK {
            return Err(DatetimeError::Status {
                status: response.status().as_u16(),
            });
        }
        let max = DatetimeClientConfig::MAX_BODY_LEN;
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(DatetimeError::BodyTooLong { max });
        }
        let mut body = Vec::with_capacity(32);
        while let Some(chunk) = response.chunk().await.map_err(reqwest_error)? {
            if body.len() + chunk.len() > max {
                return Err(DatetimeError::BodyTooLong { max });
            }
            body.extend_from_slice(&chunk);
        }
        Timestamp::parse(body.trim_ascii_end()).map_err(|_| DatetimeError::BadBody {
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// The one warning line of a client's first fallback (the peer shows it on stderr).
fn fallback_warning(url: &str, error: &DatetimeError) -> String {
    format!("warning: datetime service at {url} unreachable ({error}); using the local clock")
}

/// Checks that the client can ask `url`: an absolute `http://` URL (this build has no TLS).
/// Programs call it when they read their arguments, so a bad URL is a usage error.
pub fn check_url(url: &str) -> Result<(), DatetimeError> {
    parse_url(url).map(drop)
}

fn parse_url(url: &str) -> Result<reqwest::Url, DatetimeError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| DatetimeError::InvalidUrl {
        reason: format!("{url:?}: {e}"),
    })?;
    // Built without TLS: only plain HTTP can work.
    if parsed.scheme() != "http" {
        return Err(DatetimeError::InvalidUrl {
            reason: format!("{url:?}: only http:// is supported"),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_the_contract() {
        let config = DatetimeClientConfig::default();
        assert_eq!(config.url, "http://127.0.0.1:5000/datetime");
        assert_eq!(config.timeout, Duration::from_millis(500));
    }

    #[test]
    fn urls_other_than_plain_http_are_refused() {
        assert!(parse_url("http://127.0.0.1:5000/datetime").is_ok());
        assert!(matches!(
            parse_url("https://127.0.0.1:5000/datetime"),
            Err(DatetimeError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(DatetimeError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn warning_names_the_url_and_the_reason() {
        let error = DatetimeError::Connect {
            reason: "Connection refused (os error 111)".to_owned(),
        };
        assert_eq!(
            fallback_warning("http://127.0.0.1:5000/datetime", &error),
            "warning: datetime service at http://127.0.0.1:5000/datetime unreachable \
             (cannot connect: Connection refused (os error 111)); using the local clock"
        );
    }

    #[tokio::test]
    async fn invalid_url_falls_back_without_a_request() {
        let client = DatetimeClient::new("ftp://example.invalid/datetime");
        assert!(matches!(
            client.fetch().await,
            Err(DatetimeError::InvalidUrl { .. })
        ));
        assert_eq!(client.now().await.as_str().len(), 19);
    }
}
