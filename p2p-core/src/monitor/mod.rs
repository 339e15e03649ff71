//! What an operator sees over HTTP: Prometheus metrics at `/metrics` and, for
//! the directory server, a status page at `/`.
//!
//! The code records metrics with the [`metrics`] macros wherever events
//! happen; without a recorder installed (the default, and in library use)
//! they do nothing. A program that serves metrics installs the Prometheus
//! recorder once with [`install_recorder`], then serves a [`Monitor`] with
//! [`serve`]. Metric names are in [`names`].
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use p2p_core::monitor::{self, Monitor};
//! let handle = monitor::install_recorder()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
//! tokio::spawn(monitor::serve(listener, Monitor::new(handle)));
//! # Ok(()) }
//! ```

pub mod names;
mod status;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::directory::Store;

pub use status::{PAGE_ROWS, VIEW_LIMIT, render_status_page};

/// Content type of `/metrics`: the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of the `_seconds` histograms: 50 µs (a request on an idle server)
/// to 10 s (the read timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Buckets of [`names::STORE_COMMIT_BATCH_SIZE`]: powers of two up to the
/// SQLite writer's largest batch (1024).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histogram samples recorded between scrapes are folded into
/// their buckets, so their memory stays bounded on a server nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Why a directory connection ended without a handled request: the
/// `reason` label of [`names::DIRECTORY_REFUSED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedReason {
    /// The request does not decode (unknown OP, a field too long, …).
    Malformed,
    /// More bytes than the longest request without a complete one.
    TooLong,
    /// The whole request did not arrive within the read timeout.
    ReadTimeout,
    /// The client closed the connection before a whole request.
    ClientGone,
    /// Reading the request failed (e.g. the client reset the connection).
    ReadError,
}

impl RefusedReason {
    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLong => "too_long",
            Self::ReadTimeout => "read_timeout",
            Self::ClientGone => "client_gone",
            Self::ReadError => "read_error",
        }
    }
}

/// Why metrics cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The Prometheus recorder could not be built or installed (another
    /// recorder is installed already).
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

/// Installs the Prometheus recorder as the process's global recorder, with
/// histogram buckets for every histogram in [`names`] and a description of
/// each metric. Call it once, before the code that records starts (handles
/// taken before it are no-ops).
///
/// # Errors
///
/// [`MonitorError::Recorder`] when a recorder is installed already.
pub fn install_recorder() -> Result<PrometheusHandle, MonitorError> {
    let error = |e: metrics_exporter_prometheus::BuildError| MonitorError::Recorder(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
        .map_err(error)?
        .set_buckets_for_metric(
            Matcher::Full(names::STORE_COMMIT_BATCH_SIZE.into()),
            BATCH_SIZE_BUCKETS,
        )
        .map_err(error)?
        .install_recorder()
        .map_err(error)?;
    describe();
    Ok(handle)
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_counter!(
        DIRECTORY_REQUESTS,
        Unit::Count,
        "Directory requests handled, by operation and result byte (0 = OK)."
    );
    describe_histogram!(
        DIRECTORY_REQUEST_DURATION,
        Unit::Seconds,
        "Time from a whole request to its reply, store included, by operation."
    );
    describe_gauge!(
        DIRECTORY_OPEN_CONNECTIONS,
        Unit::Count,
        "Client connections open now."
    );
    describe_counter!(
        DIRECTORY_REFUSED,
        Unit::Count,
        "Connections that ended without a handled request, by reason."
    );
    describe_counter!(
        DIRECTORY_REPLY_FAILURES,
        Unit::Count,
        "Replies that could not be sent (write error or timeout)."
    );
    describe_counter!(
        DIRECTORY_STORE_ERRORS,
        Unit::Count,
        "Requests the store could not answer (answered other error), by operation."
    );
    describe_gauge!(DIRECTORY_USERS, Unit::Count, "Registered users.");
    describe_gauge!(DIRECTORY_CONNECTED_USERS, Unit::Count, "Connected users.");
    describe_gauge!(
        DIRECTORY_PUBLICATIONS,
        Unit::Count,
        "Publications over all users."
    );
    describe_histogram!(
        STORE_COMMIT_DURATION,
        Unit::Seconds,
        "Time of one store commit (a batch of changes made durable)."
    );
    describe_histogram!(
        STORE_COMMIT_BATCH_SIZE,
        Unit::Count,
        "Changes per store commit."
    );
    describe_gauge!(
        LOG_SHIPPER_QUEUED,
        Unit::Count,
        "Log records queued for the log service, not yet sent."
    );
    describe_counter!(
        LOG_SHIPPER_SENT,
        Unit::Count,
        "Log records the log service acknowledged."
    );
    describe_counter!(
        LOG_SHIPPER_DROPPED,
        Unit::Count,
        "Log records not delivered, by reason."
    );
    describe_counter!(
        LOG_SHIPPER_RESENT,
        Unit::Count,
        "Log calls sent again after their connection broke unanswered."
    );
    describe_counter!(
        LOG_CALLS,
        Unit::Count,
        "RPC calls answered or dropped, by transport and result."
    );
    describe_counter!(
        LOG_LINES_WRITTEN,
        Unit::Count,
        "Lines written, one per logged SENDLOG."
    );
}

/// What the HTTP endpoint serves: the metrics, and for a directory server
/// its store's totals and the status page.
#[derive(Clone)]
pub struct Monitor {
    handle: PrometheusHandle,
    directory: Option<Directory>,
}

#[derive(Clone)]
struct Directory {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("directory", &self.directory.is_some())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Serves `/metrics` from `handle` (from [`install_recorder`]).
    #[must_use]
    pub const fn new(handle: PrometheusHandle) -> Self {
        Self {
            handle,
            directory: None,
        }
    }

    /// Adds the directory's gauges (read from `store` at each scrape) and the
    /// status page at `/` (read from the store too).
    #[must_use]
    pub fn with_directory(mut self, store: Arc<dyn Store>) -> Self {
        self.directory = Some(Directory { store });
        self
    }

    /// The routes: `GET /metrics`, and `GET /` (the status page) with a
    /// directory; anything else is 404.
    pub fn router(self) -> Router {
        let mut router = Router::new().route("/metrics", get(metrics_text));
        if self.directory.is_some() {
            router = router.route("/", get(status_page));
        }
        router.fallback(not_found).with_state(self)
    }
}

/// Serves `monitor` on `listener` until the task is dropped or aborted,
/// folding histogram samples into buckets every [`UPKEEP_INTERVAL`].
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(listener: TcpListener, monitor: Monitor) -> io::Result<()> {
    let handle = monitor.handle.clone();
    let upkeep = async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    };
    tokio::select! {
        served = axum::serve(listener, monitor.router()) => served,
        () = upkeep => Ok(()),
    }
}

async fn metrics_text(State(monitor): State<Monitor>) -> Response {
    if let Some(directory) = &monitor.directory {
        match directory.store.stats().await {
            Ok(stats) => {
                metrics::gauge!(names::DIRECTORY_USERS).set(stats.users as f64);
                metrics::gauge!(names::DIRECTORY_CONNECTED_USERS).set(stats.connected as f64);
                metrics::gauge!(names::DIRECTORY_PUBLICATIONS).set(stats.publications as f64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: the store's counts are unavailable"),
        }
    }
    monitor.handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        monitor.handle.render(),
    )
        .into_response()
}

async fn status_page(State(monitor): State<Monitor>, RawQuery(query): RawQuery) -> Response {
    let Some(directory) = &monitor.directory else {
        return not_found().await.into_response();
    };
    let search = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(key, _)| key == "q")
            .map(|(_, value)| value.into_owned())
    });
    match directory.store.directory_view(VIEW_LIMIT).await {
        Ok(view) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            render_status_page(&view, search.as_deref()),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "status page: the store is unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory's store is unavailable; see the server's log\n",
            )
                .into_response()
        }
    }
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}
