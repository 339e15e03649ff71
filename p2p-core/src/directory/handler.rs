//! Applies one decoded request to the store and reports it.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use metrics::{Counter, Histogram};

use p2p_proto::Encode;
use p2p_proto::directory::{
    MAX_SEARCH_RESULTS, OpCode, PeerAddr, PingResult, Reply, Request, RequestBody, SearchEntry,
    SearchReply,
};
use p2p_proto::rpc::log::LogEntry;
use p2p_proto::timestamp::Timestamp;

use super::lines::LineWriter;
use super::store::{PingAnswer, SearchAnswer, Store, StoreError};
use crate::console::{ExpiredLine, OperationLine};
use crate::log::LogShipper;
use crate::monitor::names;

/// Turns a request into a reply, with the console line and the log record as
/// side effects of the result. Shared by every connection.
#[derive(Debug)]
pub struct Handler {
    store: Arc<dyn Store>,
    console: LineWriter,
    log: Option<LogShipper>,
    search_limit: usize,
    metrics: RequestMetrics,
}

/// SEARCH results per reply unless [`Handler::with_search_limit`] says
/// otherwise (`p2p-server --search-limit`).
pub const DEFAULT_SEARCH_LIMIT: usize = 100;

impl Handler {
    /// A handler over `store`, printing to `console` and shipping records to
    /// `log` when given.
    pub fn new(store: Arc<dyn Store>, console: LineWriter, log: Option<LogShipper>) -> Self {
        Self {
            store,
            console,
            log,
            search_limit: DEFAULT_SEARCH_LIMIT,
            metrics: RequestMetrics::default(),
        }
    }

    /// At most `limit` results per SEARCH (PROTOCOL.md §6.2; default
    /// [`DEFAULT_SEARCH_LIMIT`]), capped at what clients accept
    /// ([`MAX_SEARCH_RESULTS`]).
    #[must_use]
    pub fn with_search_limit(mut self, limit: usize) -> Self {
        self.search_limit = limit.min(MAX_SEARCH_RESULTS);
        self
    }

    /// Takes the log shipper out, to shut it down after the last request.
    pub(super) fn take_log(&mut self) -> Option<LogShipper> {
        self.log.take()
    }

    /// Handles one request from a client whose socket address is `peer_ip`
    /// (recorded at CONNECT, never an address the client sends) and appends
    /// its reply's bytes to `out`. Listings the store keeps encoded are copied
    /// as bytes, without a typed reply in between. When the store cannot
    /// answer, the reply is the operation's "other error" byte and nothing
    /// changed.
    ///
    /// Each request counts once in [`names::DIRECTORY_REQUESTS`] and
    /// [`names::DIRECTORY_REQUEST_DURATION`] and makes one `debug` event
    /// (op, user, result, duration).
    pub async fn handle_into(&self, request: &Request, peer_ip: IpAddr, out: &mut BytesMut) {
        let started = Instant::now();
        let mark = out.len();
        let applied = if let RequestBody::ListUsers = request.body {
            self.store.encode_list_users(&request.user, out).await
        } else {
            self.apply(request, peer_ip).await.map(|reply| {
                out.reserve(reply.encoded_len());
                reply.encode(out);
            })
        };
        if let Err(e) = applied {
            tracing::warn!(op = %request.op(), user = %request.user, error = %e, "store failed; answering other error");
            metrics::counter!(names::DIRECTORY_STORE_ERRORS, "op" => request.op().as_str())
                .increment(1);
            out.truncate(mark);
            Reply::other_error(request.op()).encode(out);
        }
        let elapsed = started.elapsed();
        let result = out.get(mark).copied().unwrap_or(u8::MAX);
        self.metrics.record(request.op(), result, elapsed);
        tracing::debug!(op = request.op().as_str(), user = %request.user, result, duration_us = elapsed.as_micros() as u64, "request handled");
        self.report(request);
    }

    async fn apply(&self, request: &Request, peer_ip: IpAddr) -> Result<Reply, StoreError> {
        let user = &request.user;
        let store = &*self.store;
        Ok(match &request.body {
            RequestBody::Register => Reply::Register(store.register(user).await?),
            RequestBody::Unregister => Reply::Unregister(store.unregister(user).await?),
            RequestBody::Connect { port } => Reply::Connect(
                store
                    .connect(
                        user,
                        PeerAddr {
                            ip: peer_ip.to_canonical(),
                            port: port.get(),
                        },
                    )
                    .await?,
            ),
            RequestBody::Disconnect => Reply::Disconnect(store.disconnect(user).await?),
            RequestBody::Publish { file, description } => {
                Reply::Publish(store.publish(user, file, description).await?)
            }
            RequestBody::Delete { file } => Reply::Delete(store.delete(user, file).await?),
            RequestBody::ListUsers => Reply::ListUsers(store.list_users(user).await?),
            RequestBody::ListContent { target } => {
                Reply::ListContent(store.list_content(user, target).await?)
            }
            RequestBody::GetUserInfo { target } => {
                Reply::GetUserInfo(store.get_user_info(user, target).await?)
            }
            RequestBody::Search { query } => Reply::Search(match query.terms() {
                Err(_) => SearchReply::BadQuery,
                Ok(terms) => match store.search(user, &terms, self.search_limit).await? {
                    SearchAnswer::Ok(hits) => SearchReply::Ok(
                        hits.into_iter()
                            .map(|hit| SearchEntry {
                                owner: hit.owner,
                                file: hit.file,
                                description: hit.description,
                            })
                            .collect(),
                    ),
                    SearchAnswer::UserDoesNotExist => SearchReply::UserDoesNotExist,
                    SearchAnswer::NotConnected => SearchReply::NotConnected,
                },
            }),
            RequestBody::Ping => Reply::Ping(match store.ping(user, peer_ip).await? {
                PingAnswer::Ok => PingResult::Ok,
                PingAnswer::UserDoesNotExist => PingResult::UserDoesNotExist,
                PingAnswer::NotConnected => PingResult::NotConnected,
                PingAnswer::WrongAddress => PingResult::Other,
            }),
        })
    }

    /// Disconnects the users whose PINGs stopped more than `silence` ago
    /// (PROTOCOL.md §6.3) and reports each: the console line
    /// `s> EXPIRED USER` and a log record with op `EXPIRE` and the server's
    /// clock. Returns how many expired.
    pub async fn expire(&self, silence: Duration) -> Result<usize, StoreError> {
        let expired = self.store.expire(silence).await?;
        for user in &expired {
            tracing::info!(%user, ?silence, "user expired: no PING");
            self.console.line(ExpiredLine(user.as_str()));
            if let Some(log) = &self.log {
                let now = Timestamp::from_naive(chrono::Local::now().naive_local());
                match LogEntry::new(user.as_str(), "EXPIRE", now.as_str(), "") {
                    Ok(entry) => log.log(entry),
                    Err(e) => tracing::warn!(error = %e, "log record refused by the log codec"),
                }
            }
        }
        Ok(expired.len())
    }

    fn report(&self, request: &Request) {
        // PROTOCOL.md §6.3: PING prints no line and sends no record.
        if let RequestBody::Ping = request.body {
            return;
        }
        self.console.line(OperationLine {
            op: request.op(),
            user: request.user.as_str(),
            timestamp: request.timestamp.as_ref(),
        });
        let Some(log) = &self.log else { return };
        // SEARCH logs its query in the `file` field (§6.2).
        let query;
        let file = match &request.body {
            RequestBody::Publish { file, .. } | RequestBody::Delete { file } => file.as_str(),
            RequestBody::Search { query: q } => {
                query = q.to_string_lossy();
                &*query
            }
            _ => "",
        };
        // A request without DATETIME (an older client) is logged with the
        // server's own clock, so every record has a time.
        let timestamp = request
            .timestamp
            .unwrap_or_else(|| Timestamp::from_naive(chrono::Local::now().naive_local()));
        match LogEntry::new(
            request.user.as_str(),
            request.op().as_str(),
            timestamp.as_str(),
            file,
        ) {
            Ok(entry) => log.log(entry),
            // Unreachable with the protocol's bounds (user and file ≤ 255 bytes,
            // op ≤ 13, timestamp 19), kept as a message rather than a panic.
            Err(e) => tracing::warn!(error = %e, "log record refused by the log codec"),
        }
    }
}

/// The `result` labels: a reply's result byte in decimal, as PROTOCOL.md
/// lists each operation's codes (`0` is OK everywhere); the last for any
/// other byte.
const RESULT_LABELS: [&str; 7] = ["0", "1", "2", "3", "4", "5", "other"];

/// The per-request metrics' handles, each registered on its first use: a
/// request costs two array lookups and two atomic updates, with no
/// allocation or registry lookup (the `metrics` macros allocate their labels
/// on every call, recorder or not).
#[derive(Debug)]
struct RequestMetrics {
    requests: [[OnceLock<Counter>; RESULT_LABELS.len()]; OpCode::ALL.len()],
    durations: [OnceLock<Histogram>; OpCode::ALL.len()],
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            durations: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl RequestMetrics {
    fn record(&self, op: OpCode, result: u8, elapsed: Duration) {
        let Some(index) = OpCode::ALL.iter().position(|&o| o == op) else {
            return;
        };
        let label = usize::from(result).min(RESULT_LABELS.len() - 1);
        let name = op.as_str();
        self.requests[index][label]
            .get_or_init(|| {
                metrics::counter!(names::DIRECTORY_REQUESTS, "op" => name, "result" => RESULT_LABELS[label])
            })
            .increment(1);
        self.durations[index]
            .get_or_init(|| metrics::histogram!(names::DIRECTORY_REQUEST_DURATION, "op" => name))
            .record(elapsed);
    }
}
