//! The log client: ships [`LogEntry`] records to the log service from a background task.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use p2p_proto::rpc::log::{LogEntry, decode_sendlog_reply, sendlog_call};
use p2p_proto::rpc::record::{Record, RecordDecoder};
use p2p_proto::rpcbind::PMAP_PORT;
use p2p_proto::{Encode, StreamDecoder};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::LogError;
use super::client::{MAX_REPLY, next_xid};
use super::rpcbind::lookup_tcp;
use crate::monitor::names;

/// Where the log service runs: a host, and a port unless rpcbind on the host should be asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port of the log service; `None` to ask rpcbind on the host.
    pub port: Option<u16>,
}

/// Parses `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT` or a bare IPv6 address.
impl FromStr for LogTarget {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| LogError::InvalidTarget {
            input: s.to_owned(),
            reason,
        };
        let port = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("the port must be a number from 1 to 65535")),
            Ok(p) => Ok(Some(p)),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            let port = match after {
                "" => None,
                p => port(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected ':' after ']'"))?,
                )?,
            };
            (host, port)
        } else if s.matches(':').count() > 1 {
            if s.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address (use [ADDR]:PORT for a port)"));
            }
            (s, None)
        } else if let Some((host, p)) = s.split_once(':') {
            (host, port(p)?)
        } else {
            (s, None)
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad("empty host or host with spaces"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = self.host.contains(':');
        match (self.port, bracket) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
            (None, _) => f.write_str(&self.host),
        }
    }
}

/// Settings of a [`LogShipper`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogShipperConfig {
    /// The log service.
    pub target: LogTarget,
    /// Records waiting to be sent; when full, [`LogShipper::log`] drops (and counts) the record.
    /// Default 65 536.
    pub queue_capacity: usize,
    /// Calls sent and not yet answered, at most (pipelining window). Default 1024.
    pub max_in_flight: usize,
    /// After a write, how long records gather before the next one: a record
    /// arriving on an idle connection goes out at once, and under load records
    /// go out in batches, one `write(2)` (and one wake-up of the service) per
    /// batch rather than per record. A quarter of `max_in_flight` records
    /// queued ends the wait early, so the window, not the pause, bounds the
    /// rate. Default 10 ms.
    pub coalesce: Duration,
    /// Limit for a TCP connect and for each exchange with rpcbind. Default 2 s.
    pub connect_timeout: Duration,
    /// Limit for the answer to a call, and the idle timeout of writing calls (no byte taken for
    /// this long); past it the connection is reset and its unanswered calls are sent again on
    /// the next. Default 5 s.
    pub call_timeout: Duration,
    /// First delay before reconnecting after a failure; doubled per failure. Default 100 ms.
    pub backoff_min: Duration,
    /// Largest delay between reconnection attempts. Default 5 s.
    pub backoff_max: Duration,
    /// How long [`LogShipper::shutdown`] waits for queued records to be delivered. Default 5 s.
    pub flush_timeout: Duration,
}

impl LogShipperConfig {
    /// The defaults for `target`.
    #[must_use]
    pub const fn new(target: LogTarget) -> Self {
        Self {
            target,
            queue_capacity: 65_536,
            max_in_flight: 1024,
            coalesce: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(5),
        }
    }
}

/// What a [`LogShipper`] did. Every record given to [`LogShipper::log`] ends in exactly one of
/// `sent`, `dropped`, `refused` and (after [`LogShipper::shutdown`]) `undelivered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records the log service acknowledged (each once, however often it was sent).
    pub sent: u64,
    /// Calls sent again, with their xid, on a new connection after the one they were sent on
    /// broke before answering them (a record sent again twice counts twice).
    pub resent: u64,
    /// Records dropped because the bounded queue was full (said at `warn`); the only loss while
    /// the shipper runs.
    pub dropped: u64,
    /// Records the log service answered with an error (it could not write them).
    pub refused: u64,
    /// At the end of [`LogShipper::shutdown`]: records neither acknowledged nor refused within
    /// the flush timeout (still queued, or sent and unanswered). The connection is reset, so
    /// none of them reaches the service after the shipper has gone.
    pub undelivered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// Signalled while a quarter of the window or more is queued, and at
    /// shutdown: ends a pause between writes early.
    batch_ready: Notify,
    enqueued: AtomicU64,
    dropped_full: AtomicU64,
    refused: AtomicU64,
    resent: AtomicU64,
    sent: AtomicU64,
    full_warned: AtomicBool,
    metrics: ShipperMetrics,
}

/// The shipper's metrics, registered once when it is spawned (no registry
/// lookup per record); no-ops without a recorder.
#[derive(Debug)]
struct ShipperMetrics {
    queued: metrics::Gauge,
    sent: metrics::Counter,
    queue_full: metrics::Counter,
    resent: metrics::Counter,
    refused: metrics::Counter,
}

impl Default for ShipperMetrics {
    fn default() -> Self {
        let dropped = |reason: &'static str| metrics::counter!(names::LOG_SHIPPER_DROPPED, "reason" => reason);
        Self {
            queued: metrics::gauge!(names::LOG_SHIPPER_QUEUED),
            sent: metrics::counter!(names::LOG_SHIPPER_SENT),
            queue_full: dropped("queue_full"),
            resent: metrics::counter!(names::LOG_SHIPPER_RESENT),
            refused: dropped("refused"),
        }
    }
}

/// Sends log records to the log service in order, over one persistent TCP connection, from a
/// background task.
///
/// Delivery is in order and nothing is lost while the shipper runs: if a connection breaks (or
/// a call goes unanswered for the call timeout) the connection is reset (`SO_LINGER` 0: nothing
/// it still holds arrives later, out of order) and every unanswered call is sent again, first,
/// in order, with its xid, on the next connection. The log service's duplicate-request cache
/// answers a call it already wrote without writing it again: with `p2p-log` every record is
/// written exactly once, in order; a server without such a cache (the rpcgen one) may write
/// again the records that were in flight at the break, and only those.
/// Records queued while the service is unreachable stay queued (up to the queue capacity; past
/// it they are dropped, counted and said at `warn`) and are sent, in order, when a connection is
/// back. The first failure of an outage is reported once on
/// stderr (tracing `warn`); reconnection uses exponential backoff. The port is asked from rpcbind
/// on the host at each connection, unless the target gives it.
#[derive(Debug)]
pub struct LogShipper {
    tx: mpsc::Sender<LogEntry>,
    counters: Arc<Counters>,
    batch: usize,
    task: JoinHandle<()>,
    flush_timeout: Duration,
}

impl LogShipper {
    /// Starts the background task.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    #[must_use]
    pub fn spawn(config: LogShipperConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let flush_timeout = config.flush_timeout;
        let batch = batch_len(&config);
        let task = tokio::spawn(run(config, rx, Arc::clone(&counters)));
        Self {
            tx,
            counters,
            batch,
            task,
            flush_timeout,
        }
    }

    /// Queues a record; never waits. A record that does not fit in the queue is dropped and
    /// counted.
    pub fn log(&self, entry: LogEntry) {
        if self.tx.try_send(entry).is_ok() {
            self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            let queued = self.tx.max_capacity() - self.tx.capacity();
            if queued >= self.batch {
                // Only a shipper pausing right now needs it: no permit is kept.
                self.counters.batch_ready.notify_waiters();
            }
        } else {
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            self.counters.metrics.queue_full.increment(1);
            if !self.counters.full_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "log queue full: dropping log records until the log service catches up"
                );
            }
        }
    }

    /// Counts so far (records still queued or in flight are in none; `undelivered` is 0).
    #[must_use]
    pub fn stats(&self) -> LogStats {
        self.counters.stats(0)
    }

    /// Stops accepting records, delivers what is queued within the flush timeout, and returns the
    /// final counts (what could not be delivered by then is dropped).
    pub async fn shutdown(self) -> LogStats {
        let Self {
            tx,
            counters,
            mut task,
            flush_timeout,
            ..
        } = self;
        drop(tx);
        // End a pause between writes now rather than when it runs out. A permit
        // is kept if the task is not waiting yet.
        counters.batch_ready.notify_one();
        if tokio::time::timeout(flush_timeout, &mut task)
            .await
            .is_err()
        {
            task.abort();
            // The task is gone after this; its outcome (cancelled) tells nothing more.
            let _ = task.await;
        }
        let done = counters.sent.load(Ordering::Relaxed) + counters.refused.load(Ordering::Relaxed);
        let enqueued = counters.enqueued.load(Ordering::Relaxed);
        counters.stats(enqueued.saturating_sub(done))
    }
}

impl Counters {
    fn stats(&self, undelivered: u64) -> LogStats {
        LogStats {
            sent: self.sent.load(Ordering::Relaxed),
            resent: self.resent.load(Ordering::Relaxed),
            dropped: self.dropped_full.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            undelivered,
        }
    }
}

/// The background task: connect (lazily, when there is something to send), run a session,
/// reconnect with backoff.
async fn run(config: LogShipperConfig, mut rx: mpsc::Receiver<LogEntry>, counters: Arc<Counters>) {
    let mut backoff = config.backoff_min;
    let mut outage = false;
    // Calls to send before any record from the queue: the first one taken while disconnected,
    // or the calls a broken connection left unanswered (with their xids), oldest first.
    let mut pending: VecDeque<Call> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(entry) => pending.push_back(Call { xid: None, entry }),
                None => return,
            }
        }
        let stream = match connect(&config).await {
            Ok(s) => s,
            Err(e) => {
                counters
                    .metrics
                    .queued
                    .set((rx.len() + pending.len()) as f64);
                if outage {
                    tracing::debug!("log service {}: {e}", config.target);
                } else {
                    outage = true;
                    tracing::warn!(
                        "log service {} unreachable: {e}; keeping records queued and retrying",
                        config.target
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.backoff_max);
                continue;
            }
        };
        if outage {
            tracing::warn!("log service {} reachable again", config.target);
            outage = false;
        }
        backoff = config.backoff_min;
        counters.full_warned.store(false, Ordering::Relaxed);
        let mut session = Session::new(&config, &counters);
        match session.run(stream, &mut rx, &mut pending).await {
            Ok(()) => return,
            Err(e) => {
                // The connection is gone (reset: see `connect`); its unanswered calls go first
                // on the next one, in order, with their xids.
                let unanswered = std::mem::take(&mut session.in_flight);
                let again = unanswered.len() as u64;
                for call in unanswered.into_iter().rev() {
                    pending.push_front(Call {
                        xid: Some(call.xid),
                        entry: call.entry,
                    });
                }
                counters.resent.fetch_add(again, Ordering::Relaxed);
                counters.metrics.resent.increment(again);
                if again == 0 {
                    // The service closed an idle connection; reconnect when there is work.
                    tracing::debug!("log service {} closed the connection: {e}", config.target);
                } else {
                    outage = true;
                    tracing::warn!(
                        "connection to log service {} lost: {e}; reconnecting to send its \
                         {again} unanswered records again",
                        config.target
                    );
                }
            }
        }
    }
}

async fn connect(config: &LogShipperConfig) -> Result<TcpStream, LogError> {
    let host = &config.target.host;
    let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), PMAP_PORT))
            .await
            .map_err(|e| LogError::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .map(|a| a.ip())
            .collect(),
    };
    let mut last = LogError::Resolve {
        host: host.clone(),
        reason: "no address".to_owned(),
    };
    for ip in ips {
        let addr = match config.target.port {
            Some(port) => SocketAddr::new(ip, port),
            None => match lookup_tcp(ip, config.connect_timeout).await {
                Ok(a) => a,
                Err(e) => {
                    last = e;
                    continue;
                }
            },
        };
        let what = "connecting to the log service";
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Records are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                // Every close is an abort: a connection given up on (broken, unanswered, or
                // the shipper stopping) must not deliver what it still holds later, after
                // its calls were sent again or reported undelivered. Closed only when all its
                // calls are answered, a clean connection loses nothing by it.
                let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last = LogError::io(format!("connecting to the log service at {addr}"), e)
            }
            Err(_) => {
                last = LogError::Timeout {
                    what,
                    timeout: config.connect_timeout,
                };
            }
        }
    }
    Err(last)
}

/// A record to send: new (`xid` None) or sent before and unanswered (its xid, kept so that
/// the service's duplicate-request cache recognizes it).
struct Call {
    xid: Option<u32>,
    entry: LogEntry,
}

/// A call sent and not yet answered.
struct InFlight {
    xid: u32,
    sent: Instant,
    entry: LogEntry,
}

/// One connection's worth of pipelined calls.
struct Session<'a> {
    config: &'a LogShipperConfig,
    counters: &'a Counters,
    /// Calls sent and unanswered, oldest first.
    in_flight: VecDeque<InFlight>,
    out: Vec<u8>,
    refused_warned: bool,
}

impl<'a> Session<'a> {
    fn new(config: &'a LogShipperConfig, counters: &'a Counters) -> Self {
        Self {
            config,
            counters,
            in_flight: VecDeque::new(),
            out: Vec::new(),
            refused_warned: false,
        }
    }

    fn push(&mut self, entry: LogEntry, xid: Option<u32>) {
        let xid = xid.unwrap_or_else(next_xid);
        // Framed and encoded in place: no buffer per record.
        Record(sendlog_call(xid, &entry)).encode(&mut self.out);
        self.in_flight.push_back(InFlight {
            xid,
            sent: Instant::now(),
            entry,
        });
    }

    /// Sends what the queue holds, keeping at most `max_in_flight` calls unanswered; `Ok` once the
    /// queue is closed and every call answered.
    async fn run(
        &mut self,
        stream: TcpStream,
        rx: &mut mpsc::Receiver<LogEntry>,
        pending: &mut VecDeque<Call>,
    ) -> Result<(), LogError> {
        let (mut reader, mut writer) = stream.into_split();
        let mut decoder = RecordDecoder::new(MAX_REPLY);
        let mut input = BytesMut::with_capacity(1024);
        let window = self.config.max_in_flight.max(1);
        let timeout = self.config.call_timeout;
        let coalesce = self.config.coalesce;
        let batch = batch_len(self.config);
        // Writes are held until then, so that records gather into one batch.
        let mut hold_until: Option<Instant> = None;
        let mut closed = false;
        while let Some(call) = pending.pop_front() {
            self.push(call.entry, call.xid);
        }
        loop {
            if self.in_flight.is_empty() {
                // Idle: a close by the service may be waiting to be read; see it before taking
                // records from the queue, so that they go to the next connection instead.
                match reader.try_read_buf(&mut input) {
                    Ok(0) => {
                        return Err(LogError::Closed {
                            what: "idle connection",
                        });
                    }
                    Ok(_) => {
                        while let Some(record) = decoder.decode(&mut input)? {
                            self.answered(&record)?;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(LogError::io("reading log replies", e)),
                }
            }
            let hold = hold_until.filter(|&t| Instant::now() < t);
            if hold.is_none() {
                while !closed && self.in_flight.len() < window {
                    match rx.try_recv() {
                        Ok(entry) => self.push(entry, None),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                    }
                }
                self.counters.metrics.queued.set(rx.len() as f64);
                if !self.out.is_empty() {
                    let what = "sending log records";
                    super::write_moving(&mut writer, &self.out, timeout)
                        .await
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::TimedOut => LogError::Timeout { what, timeout },
                            _ => LogError::io(what, e),
                        })?;
                    self.out.clear();
                    hold_until = (!coalesce.is_zero()).then(|| Instant::now() + coalesce);
                }
            }
            if closed && self.in_flight.is_empty() {
                return Ok(());
            }
            let deadline = self.in_flight.front().map(|c| c.sent + timeout);
            tokio::select! {
                // Replies and end of stream first: when the service has closed the connection,
                // learn it before sending more records into it (they would be lost).
                biased;
                read = reader.read_buf(&mut input) => {
                    let what = "reading log replies";
                    if read.map_err(|e| LogError::io(what, e))? == 0 {
                        return Err(LogError::Closed { what });
                    }
                    while let Some(record) = decoder.decode(&mut input)? {
                        self.answered(&record)?;
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    return Err(LogError::Timeout { what: "waiting for a log reply", timeout });
                }
                // The hold is over, or enough gathered: take it and write it.
                () = sleep_until(hold), if hold.is_some() => {}
                () = self.counters.batch_ready.notified(), if hold.is_some() => {
                    if rx.len() >= batch || rx.is_closed() {
                        hold_until = None;
                    }
                }
                entry = rx.recv(), if hold.is_none() && !closed && self.in_flight.len() < window => match entry {
                    Some(entry) => self.push(entry, None),
                    None => closed = true,
                },
            }
        }
    }

    /// Takes one reply: it must answer the oldest call (servers answer a connection in order).
    fn answered(&mut self, record: &[u8]) -> Result<(), LogError> {
        let Some((xid, result)) = decode_sendlog_reply(record)? else {
            return Err(LogError::Closed {
                what: "truncated log reply",
            });
        };
        let Some(expected) = self.in_flight.front().map(|c| c.xid) else {
            return Err(LogError::XidMismatch {
                expected: 0,
                got: xid,
            });
        };
        if xid != expected {
            return Err(LogError::XidMismatch { expected, got: xid });
        }
        self.in_flight.pop_front();
        match result {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.counters.metrics.sent.increment(1);
            }
            Err(failure) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.counters.metrics.refused.increment(1);
                if !self.refused_warned {
                    self.refused_warned = true;
                    tracing::warn!(
                        "log service {} refused a record: {failure}",
                        self.config.target
                    );
                }
            }
        }
        Ok(())
    }
}

/// Records queued that end a pause between writes: a quarter of the window.
fn batch_len(config: &LogShipperConfig) -> usize {
    (config.max_in_flight / 4).max(1)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_encoded_in_place_as_framed_sendlog_calls() {
        let config = LogShipperConfig::new("127.0.0.1:1".parse().unwrap());
        let counters = Counters::default();
        let mut session = Session::new(&config, &counters);
        let entries = [
            LogEntry::new("alice", "PUBLISH", "24/11/2026 19:40:12", "song.mp3").unwrap(),
            LogEntry::new("bob", "CONNECT", "24/11/2026 19:40:13", "").unwrap(),
            LogEntry::new(&"u".repeat(256), "OP", &"t".repeat(32), &"f".repeat(256)).unwrap(),
        ];
        let mut want = Vec::new();
        for entry in entries {
            session.push(entry.clone(), None);
            let xid = session.in_flight.back().unwrap().xid;
            let mut call = Vec::new();
            sendlog_call(xid, &entry).encode(&mut call);
            p2p_proto::rpc::record::encode_record(&call, &mut want);
        }
        assert_eq!(session.out, want);
    }

    #[test]
    fn targets() {
        let t = |s: &str| s.parse::<LogTarget>();
        let ok = |h: &str, p| LogTarget {
            host: h.to_owned(),
            port: p,
        };
        assert_eq!(t("localhost").unwrap(), ok("localhost", None));
        assert_eq!(t("10.0.0.1:4000").unwrap(), ok("10.0.0.1", Some(4000)));
        assert_eq!(t("[::1]:4000").unwrap(), ok("::1", Some(4000)));
        assert_eq!(t("[::1]").unwrap(), ok("::1", None));
        assert_eq!(t("fe80::1").unwrap(), ok("fe80::1", None));
        for bad in [
            "", ":80", "h:0", "h:70000", "h:x", "[::1", "[::1]x", "[nope]:1", "a b", "1:2:x",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert_eq!(ok("::1", Some(5)).to_string(), "[::1]:5");
        assert_eq!(ok("h", Some(5)).to_string(), "h:5");
    }
}
