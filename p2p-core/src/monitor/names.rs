//! Every metric's name, in one place: the code records them under these
//! names, docs/OPERATING.md lists them, and dashboards match on them.
//!
//! Names follow Prometheus conventions: snake_case, a `p2p_` prefix and the
//! subsystem, base units as a suffix (`_seconds`), `_total` on counters.

/// Counter: directory requests handled, by `op` (`REGISTER`, …,
/// `GET_USER_INFO`) and `result` (the reply's result byte, `0` = OK; see
/// PROTOCOL.md for each operation's codes).
pub const DIRECTORY_REQUESTS: &str = "p2p_directory_requests_total";
/// Histogram: time from a whole request to its reply encoded (store included),
/// by `op`, in seconds.
pub const DIRECTORY_REQUEST_DURATION: &str = "p2p_directory_request_duration_seconds";
/// Gauge: client connections open now.
pub const DIRECTORY_OPEN_CONNECTIONS: &str = "p2p_directory_open_connections";
/// Counter: connections that ended without a handled request, by `reason`
/// (see [`RefusedReason`](crate::monitor::RefusedReason)).
pub const DIRECTORY_REFUSED: &str = "p2p_directory_refused_total";
/// Counter: replies that could not be sent (write error or timeout).
pub const DIRECTORY_REPLY_FAILURES: &str = "p2p_directory_reply_failures_total";
/// Counter: requests the store could not answer (answered "other error"), by
/// `op`.
pub const DIRECTORY_STORE_ERRORS: &str = "p2p_directory_store_errors_total";
/// Gauge: registered users (read from the store at each scrape).
pub const DIRECTORY_USERS: &str = "p2p_directory_users";
/// Gauge: connected users (read from the store at each scrape).
pub const DIRECTORY_CONNECTED_USERS: &str = "p2p_directory_connected_users";
/// Gauge: publications over all users (read from the store at each scrape).
pub const DIRECTORY_PUBLICATIONS: &str = "p2p_directory_publications";

/// Histogram: time of one store commit (one batch of changes made durable),
/// in seconds. Recorded by the SQLite store.
pub const STORE_COMMIT_DURATION: &str = "p2p_store_commit_duration_seconds";
/// Histogram: changes per store commit. Recorded by the SQLite store.
pub const STORE_COMMIT_BATCH_SIZE: &str = "p2p_store_commit_batch_size";

/// Gauge: log records queued in the directory's log shipper, not yet sent.
pub const LOG_SHIPPER_QUEUED: &str = "p2p_log_shipper_queued_records";
/// Counter: log records the log service acknowledged.
pub const LOG_SHIPPER_SENT: &str = "p2p_log_shipper_sent_records_total";
/// Counter: log records not delivered, by `reason` (`queue_full`,
/// `refused`).
pub const LOG_SHIPPER_DROPPED: &str = "p2p_log_shipper_dropped_records_total";
/// Counter: log calls sent again after the connection they were sent on
/// broke unanswered.
pub const LOG_SHIPPER_RESENT: &str = "p2p_log_shipper_resent_records_total";

/// Counter: RPC calls the log service answered or dropped, by `transport`
/// (`tcp`, `udp`) and `result` (`ok`, `null`, `system_err`, `garbage_args`,
/// `proc_unavail`, `prog_unavail`, `prog_mismatch`, `denied`, `dropped`).
pub const LOG_CALLS: &str = "p2p_log_calls_total";
/// Counter: lines the log service wrote (one per logged SENDLOG).
pub const LOG_LINES_WRITTEN: &str = "p2p_log_lines_written_total";
