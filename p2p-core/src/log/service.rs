//! The log service: LOG_PROG v1 over TCP (record marking) and UDP.
//!
//! Output is a group commit ([`Sink`]): a connection dispatches every call it has received so
//! far, submits their lines as one batch, and sends the replies once the batch is written. When
//! no batch is being written the connection writes its own at once, with one `write(2)` on its
//! worker thread; batches submitted meanwhile by other connections queue up and are written
//! together by the oldest waiting one, which then releases the others' replies.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2p_proto::rpc::log::{Dispatch, LOG_PROG, LogEntry, LogReply, dispatch};
use p2p_proto::rpc::message::AcceptStat;
use p2p_proto::rpc::record::{DEFAULT_MAX_RECORD, Record, RecordDecoder};
use p2p_proto::{Encode, StreamDecoder};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::LogError;
use super::rpcbind::{Registration, register};
use crate::monitor::names;
use crate::serve::{DRAIN_TIMEOUT, ServeLimits, serve};

/// Largest UDP datagram read (the IPv4 UDP payload limit).
const MAX_DATAGRAM: usize = 65_536;

/// Datagrams already received that are served together (one write for their lines).
const UDP_BATCH: usize = 64;

/// Largest batch buffer kept for reuse after a burst.
const KEEP_CAPACITY: usize = 1 << 20;

/// Settings of the log service.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogServiceConfig {
    /// Address for both TCP and UDP; port 0 picks a free port (the same for both when possible).
    /// Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// Largest accepted call, in bytes (TCP record or UDP datagram). A TCP client announcing more
    /// is disconnected at once. Default [`DEFAULT_MAX_RECORD`] (64 KiB).
    pub max_record: usize,
    /// Most TCP connections served at once; further clients wait to be accepted. Default 1024.
    pub max_connections: usize,
    /// A TCP connection that completes no call for this long is closed (between one and two
    /// times this after its last call, or after its accept): a client stalled in the middle of a
    /// call, or one holding a connection it does not use, gives its slot back. Clients connect
    /// again when they have calls to make; the directory's log shipper does so on its own.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Idle timeout of a batch of replies: a client that takes none of their bytes for this long
    /// is disconnected (one that reads slowly is not). Default 10 s.
    pub write_timeout: Duration,
    /// Busy polling: after sending its replies, a TCP connection that is the service's only one
    /// keeps checking its socket for this long before it sleeps, yielding to the runtime's other
    /// work (UDP, new connections, timers) between checks. A client making one call after
    /// another then finds the service awake: on a VM, waking a sleeping thread costs more than
    /// the call itself, and one sequential client gets ~2.5× the calls/s
    /// (`docs/PERFORMANCE.md`, goal 3). It adapts: a poll that runs out stops the polling until
    /// a call again arrives within a few times this of its answer, so a client calling less
    /// often (the directory's shipper, a batch every 10 ms) costs one wasted poll, not one per
    /// batch. The price is a core kept busy while a lone client calls faster than this; nothing
    /// when idle. It stops as soon as another connection opens. `Duration::ZERO` turns it off.
    /// Default 50 µs, the figure Linux recommends for its own socket busy polling
    /// (`net.core.busy_read`).
    pub busy_poll: Duration,
    /// Register with the local rpcbind at start (unsetting stale entries first) and unset at
    /// shutdown. Default `true`.
    pub register_with_rpcbind: bool,
    /// Time allowed for each exchange with rpcbind. Default 2 s.
    pub rpcbind_timeout: Duration,
    /// Duplicate-request cache, as NFS servers keep for ONC RPC: the last this many SENDLOG
    /// calls written, keyed by client address, xid and the call's bytes. A call sent again
    /// after a broken connection (the directory's shipper resends every unanswered call, with
    /// its xid) is answered from the cache, not written twice. The client's IP address is part
    /// of the key, not its port: a reconnection comes from a new port. 0 turns it off.
    /// Default [`REPLAY_CACHE_ENTRIES`].
    pub replay_cache: usize,
    /// At shutdown, how long TCP connections may take to answer the calls they have received
    /// before they are aborted ([`crate::serve`]). Default 10 s.
    pub drain_timeout: Duration,
}

/// Default [`LogServiceConfig::replay_cache`]: far more than a shipper keeps in flight (its
/// window is 1024), at about 100 bytes each.
pub const REPLAY_CACHE_ENTRIES: usize = 65_536;

impl Default for LogServiceConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            max_record: DEFAULT_MAX_RECORD,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            busy_poll: Duration::from_micros(50),
            register_with_rpcbind: true,
            rpcbind_timeout: Duration::from_secs(2),
            replay_cache: REPLAY_CACHE_ENTRIES,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

impl LogServiceConfig {
    /// The defaults with another bind address (tests use `127.0.0.1:0`).
    #[must_use]
    pub fn with_bind(bind: SocketAddr) -> Self {
        Self {
            bind,
            ..Self::default()
        }
    }
}

/// A bound log service, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct LogService {
    config: LogServiceConfig,
    tcp: TcpListener,
    udp: UdpSocket,
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
}

/// Where the log service writes its lines.
///
/// Lines are written in batches (every line of the calls received together, and of the batches
/// that queued up meanwhile), each batch with one `write_all` then `flush`; a reply is sent only
/// after its line's batch is written.
pub struct LogOutput(Output);

enum Output {
    /// Written on the worker thread of the connection leading the batch.
    Blocking(Box<dyn Write + Send>),
    /// Written through tokio.
    Async(Pin<Box<dyn AsyncWrite + Send>>),
}

impl LogOutput {
    /// A file (open it with `append` to add to it): one `write(2)` per batch, made on the runtime
    /// worker thread of the connection leading the batch (an append to the page cache takes
    /// microseconds; no hand-off to another thread).
    #[must_use]
    pub fn file(file: std::fs::File) -> Self {
        Self::blocking(file)
    }

    /// Standard output, written like [`file`](Self::file) with `write(2)` on a duplicate of file
    /// descriptor 1: no user-space buffering, one system call per batch.
    ///
    /// A terminal or pipe that stops reading blocks the worker thread writing to it (and, since
    /// replies wait for their lines, every caller) until it reads again.
    pub fn stdout() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            Ok(Self::file(std::fs::File::from(fd)))
        }
        #[cfg(not(unix))]
        {
            Ok(Self::blocking(io::stdout()))
        }
    }

    /// Any blocking writer, written with `write_all` then `flush` per batch on a runtime worker
    /// thread: it must not block for long.
    #[must_use]
    pub fn blocking(writer: impl Write + Send + 'static) -> Self {
        Self(Output::Blocking(Box::new(writer)))
    }

    /// An asynchronous writer (a test's in-memory pipe, for instance).
    #[must_use]
    pub fn writer(writer: impl AsyncWrite + Send + 'static) -> Self {
        Self(Output::Async(Box::pin(writer)))
    }
}

impl fmt::Debug for LogOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Output::Blocking(_) => "LogOutput::Blocking",
            Output::Async(_) => "LogOutput::Async",
        })
    }
}

/// The output, locked by the leader while it writes (so never contended in practice).
enum OutputLock {
    Blocking(Mutex<Box<dyn Write + Send>>),
    Async(tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>),
}

impl OutputLock {
    fn new(output: Output) -> Self {
        match output {
            Output::Blocking(w) => Self::Blocking(Mutex::new(w)),
            Output::Async(w) => Self::Async(tokio::sync::Mutex::new(w)),
        }
    }

    async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Blocking(w) => {
                let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
                w.write_all(bytes)?;
                w.flush()
            }
            Self::Async(w) => {
                let mut w = w.lock().await;
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }
}

impl LogService {
    /// Binds TCP and UDP on `config.bind`.
    pub async fn bind(config: LogServiceConfig) -> Result<Self, LogError> {
        let (tcp, udp) = bind_pair(config.bind).await?;
        let tcp_addr = tcp
            .local_addr()
            .map_err(|e| LogError::io("reading the TCP address", e))?;
        let udp_addr = udp
            .local_addr()
            .map_err(|e| LogError::io("reading the UDP address", e))?;
        Ok(Self {
            config,
            tcp,
            udp,
            tcp_addr,
            udp_addr,
        })
    }

    /// The TCP address served.
    #[must_use]
    pub const fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The UDP address served.
    #[must_use]
    pub const fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Serves until `shutdown` completes, writing one line per SENDLOG to the asynchronous writer
    /// `output`: [`run_to`](Self::run_to) with [`LogOutput::writer`].
    pub async fn run<W>(self, output: W, shutdown: impl Future<Output = ()>) -> Result<(), LogError>
    where
        W: AsyncWrite + Send + 'static,
    {
        self.run_to(LogOutput::writer(output), shutdown).await
    }

    /// Serves until `shutdown` completes, writing one line per SENDLOG to `output`.
    ///
    /// Lines are written whole, in batches (one `write_all` + `flush` per batch, batches one at a
    /// time), and a reply is sent only after its line's batch has been written, so a caller that
    /// has its reply knows its line is out (handed to the system; no `fsync`).
    ///
    /// Registers with rpcbind first when configured; without rpcbind it serves anyway and says on
    /// stderr (tracing `warn`) which port clients must be given. At shutdown it stops accepting
    /// ([`crate::serve`]): a TCP connection answers the calls it has received and closes,
    /// one still busy after [`LogServiceConfig::drain_timeout`] is aborted; then UDP stops,
    /// the output is flushed and the registration unset.
    pub async fn run_to(
        self,
        output: LogOutput,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LogError> {
        let registration = if self.config.register_with_rpcbind {
            self.register().await
        } else {
            None
        };
        let sink = Arc::new(Sink::new(output.0).with_replay_cache(self.config.replay_cache));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(
            self.udp,
            Arc::clone(&sink),
            self.config.max_record,
        ));
        // Durations past a year mean "never"; clamped so deadlines cannot overflow.
        let year = Duration::from_secs(365 * 86_400);
        let limits = ConnectionLimits {
            max_record: self.config.max_record,
            idle_timeout: self
                .config
                .idle_timeout
                .clamp(Duration::from_millis(1), year),
            write_timeout: self.config.write_timeout.min(year),
            busy_poll: self.config.busy_poll.min(year),
        };
        let open = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let serving = tokio::spawn({
            let sink = Arc::clone(&sink);
            let stop = stop.clone();
            let serve_limits =
                ServeLimits::new(self.config.max_connections, self.config.drain_timeout);
            serve(self.tcp, serve_limits, stop.clone(), move |stream, peer| {
                tracing::debug!("connection from {peer}");
                let sink = Arc::clone(&sink);
                let open = OpenConnection::new(&open);
                let stop = stop.clone();
                async move {
                    serve_tcp(stream, peer.ip(), sink, limits, &open, &stop).await;
                }
            })
        });
        shutdown.await;
        stop.cancel();
        if let Err(e) = serving.await {
            tracing::warn!("the TCP accept loop failed: {e}");
        }
        tasks.shutdown().await;
        let flushed = sink.close().await;
        if let Some(registration) = registration {
            match registration.unset(self.config.rpcbind_timeout).await {
                Ok(()) => tracing::info!("unset LOG_PROG registration with {registration}"),
                Err(e) => tracing::warn!("could not unset the rpcbind registration: {e}"),
            }
        }
        flushed.map_err(|e| LogError::io("flushing the output", e))
    }

    async fn register(&self) -> Option<Registration> {
        match register(self.tcp_addr, self.udp_addr, self.config.rpcbind_timeout).await {
            Ok(registration) => {
                tracing::info!(
                    "registered with rpcbind: LOG_PROG {LOG_PROG:#x} version 1, tcp port {}, \
                     udp port {} ({registration})",
                    self.tcp_addr.port(),
                    self.udp_addr.port()
                );
                Some(registration)
            }
            Err(e) => {
                tracing::warn!(
                    "not registered with rpcbind ({e}); serving anyway: clients must be given \
                     the port, tcp {} udp {} (e.g. --log-rpc HOST:{})",
                    self.tcp_addr.port(),
                    self.udp_addr.port(),
                    self.tcp_addr.port()
                );
                None
            }
        }
    }
}

/// Binds TCP and UDP; with port 0, tries a few times to get the same port for both.
async fn bind_pair(addr: SocketAddr) -> Result<(TcpListener, UdpSocket), LogError> {
    let bind_tcp = |a: SocketAddr| async move {
        TcpListener::bind(a)
            .await
            .map_err(|e| LogError::io(format!("binding TCP {a}"), e))
    };
    let bind_udp = |a: SocketAddr| async move {
        UdpSocket::bind(a)
            .await
            .map_err(|e| LogError::io(format!("binding UDP {a}"), e))
    };
    if addr.port() != 0 {
        return Ok((bind_tcp(addr).await?, bind_udp(addr).await?));
    }
    for _ in 0..8 {
        let tcp = bind_tcp(addr).await?;
        let same = tcp
            .local_addr()
            .map_err(|e| LogError::io("reading the TCP address", e))?;
        if let Ok(udp) = UdpSocket::bind(same).await {
            return Ok((tcp, udp));
        }
    }
    Ok((bind_tcp(addr).await?, bind_udp(addr).await?))
}

/// The output shared by every connection: a group commit.
///
/// A connection with lines to write becomes the leader when no batch is being written: it writes
/// its lines at once. Otherwise it appends them to `pending`, queues a waiter and waits: the
/// leader, when done, passes the lead to the oldest waiter, which writes everything pending in one
/// write and acknowledges the waiters it covered. Every line is written whole (a batch is only
/// whole lines, and one batch is written at a time), and a connection learns that its lines are
/// written (or could not be) before it sends its replies.
struct Sink {
    state: Mutex<Commit>,
    out: OutputLock,
    failed: AtomicBool,
    replay: Mutex<ReplayCache>,
}

/// A SENDLOG call as the duplicate-request cache knows it: client address, xid, and a digest
/// of the whole call (so a reused xid with other arguments is a new call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ReplayKey {
    client: IpAddr,
    xid: u32,
    call: [u8; 16],
}

impl ReplayKey {
    fn of(client: IpAddr, msg: &[u8]) -> Option<Self> {
        let xid = u32::from_be_bytes(msg.get(..4)?.try_into().ok()?);
        let digest = blake3::hash(msg);
        let mut call = [0u8; 16];
        call.copy_from_slice(&digest.as_bytes()[..16]);
        Some(Self { client, xid, call })
    }
}

/// The duplicate-request cache: the replies of the last `capacity` SENDLOG calls written, the
/// oldest forgotten first.
#[derive(Debug, Default)]
struct ReplayCache {
    capacity: usize,
    replies: std::collections::HashMap<ReplayKey, LogReply>,
    order: VecDeque<ReplayKey>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn get(&self, key: &ReplayKey) -> Option<LogReply> {
        self.replies.get(key).cloned()
    }

    /// Records `key` as written, with its reply.
    fn insert(&mut self, key: ReplayKey, reply: LogReply) {
        if self.capacity == 0 {
            return;
        }
        if self.replies.insert(key, reply).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.replies.remove(&old);
            }
        }
    }

    /// Forgets `key` (its line could not be written: a call sent again must be written).
    fn remove(&mut self, key: &ReplayKey) {
        if self.replies.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

#[derive(Default)]
struct Commit {
    /// A leader is writing (or has just passed the lead on); new lines wait in `pending`.
    writing: bool,
    /// Lines of the waiters, in submission order.
    pending: Vec<u8>,
    waiters: VecDeque<oneshot::Sender<Ack>>,
    /// Buffers kept for the next round.
    spare: Vec<u8>,
    spare_waiters: VecDeque<oneshot::Sender<Ack>>,
}

/// What a waiter is told.
enum Ack {
    /// Its lines were written (`true`) or could not be (`false`).
    Written(bool),
    /// It leads now: its lines are still pending, it writes them with everything else pending.
    Lead,
}

impl Sink {
    fn new(output: Output) -> Self {
        Self {
            state: Mutex::new(Commit::default()),
            out: OutputLock::new(output),
            failed: AtomicBool::new(false),
            replay: Mutex::new(ReplayCache::new(REPLAY_CACHE_ENTRIES)),
        }
    }

    fn with_replay_cache(self, capacity: usize) -> Self {
        Self {
            replay: Mutex::new(ReplayCache::new(capacity)),
            ..self
        }
    }

    fn replay(&self) -> MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> MutexGuard<'_, Commit> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `lines` (whole lines), alone or with other connections' lines; false if the
    /// output failed. With `gather`, a caller that finds no batch being written lets the
    /// runtime's other ready tasks run once before it writes, so that the lines of every
    /// connection served in the same turn go out in one `write(2)`.
    async fn commit(&self, lines: &[u8], gather: bool) -> bool {
        // A waiter is only ever woken for pending lines: one with none could wait forever.
        if lines.is_empty() {
            return true;
        }
        let waiting = {
            let mut st = self.state();
            if st.writing {
                st.pending.extend_from_slice(lines);
                let (tx, rx) = oneshot::channel();
                st.waiters.push_back(tx);
                Some(rx)
            } else {
                st.writing = true;
                None
            }
        };
        let own = match waiting {
            None => Some(lines),
            Some(rx) => {
                let mut wait = Waiting {
                    sink: self,
                    rx: Some(rx),
                };
                let ack = match wait.rx.as_mut() {
                    Some(rx) => rx.await,
                    None => return false,
                };
                wait.rx = None;
                match ack {
                    Ok(Ack::Written(ok)) => return ok,
                    Ok(Ack::Lead) => None,
                    // The service is going away.
                    Err(_) => return false,
                }
            }
        };
        let lead = Leading(self);
        if gather && own.is_some() {
            tokio::task::yield_now().await;
        }
        let ok = self.round(own).await;
        drop(lead);
        ok
    }

    /// As the leader: writes `own` and everything pending in one write, acknowledges the waiters
    /// it covered; true if `own` (or the leader's pending lines) were written.
    async fn round(&self, own: Option<&[u8]>) -> bool {
        let taken = {
            let mut st = self.state();
            if own.is_some() && st.pending.is_empty() {
                None
            } else {
                let mut buf = std::mem::take(&mut st.spare);
                std::mem::swap(&mut buf, &mut st.pending);
                let mut waiters = std::mem::take(&mut st.spare_waiters);
                std::mem::swap(&mut waiters, &mut st.waiters);
                Some((buf, waiters))
            }
        };
        let Some((mut buf, mut waiters)) = taken else {
            // Nothing else queued (the usual case with few callers): no copy.
            return self.write(own.unwrap_or_default()).await;
        };
        if let Some(own) = own {
            buf.extend_from_slice(own);
        }
        let ok = self.write(&buf).await;
        for waiter in waiters.drain(..) {
            // A waiter that is gone (its connection was dropped) needs no answer.
            let _ = waiter.send(Ack::Written(ok));
        }
        buf.clear();
        let mut st = self.state();
        if buf.capacity() <= KEEP_CAPACITY {
            st.spare = buf;
        }
        st.spare_waiters = waiters;
        ok
    }

    /// Ends a lead: passes it to the oldest waiter if lines are pending, else lets the next
    /// caller lead. Lines of waiters that are all gone stay pending for the next leader (or
    /// [`close`](Self::close)).
    fn release(&self) {
        let mut st = self.state();
        if !st.pending.is_empty() {
            while let Some(waiter) = st.waiters.pop_front() {
                if waiter.send(Ack::Lead).is_ok() {
                    return;
                }
            }
        }
        st.writing = false;
    }

    async fn write(&self, bytes: &[u8]) -> bool {
        match self.out.write_all(bytes).await {
            Ok(()) => true,
            Err(e) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!("cannot write log lines: {e}");
                }
                false
            }
        }
    }

    /// After every connection has stopped: writes what is still pending, flushes.
    async fn close(&self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.state().pending);
        self.out.write_all(&rest).await
    }
}

/// The lead, released when the leader is done (or dropped while writing).
struct Leading<'a>(&'a Sink);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiter; if dropped after being given the lead but before taking it, passes the lead on.
struct Waiting<'a> {
    sink: &'a Sink,
    rx: Option<oneshot::Receiver<Ack>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(Ack::Lead) = rx.try_recv() {
                self.sink.release();
            }
        }
    }
}

/// The calls received together on a connection (or socket), dispatched, and their lines.
struct Batch<T> {
    lines: Vec<u8>,
    replies: Vec<Answer<T>>,
    /// SENDLOG calls whose line is in `lines`.
    logged: u64,
    metrics: CallMetrics,
}

/// The metrics of one transport's calls, registered once per connection (or
/// socket): a batch of logged calls costs two counter additions.
struct CallMetrics {
    transport: &'static str,
    ok: metrics::Counter,
    system_err: metrics::Counter,
    lines: metrics::Counter,
}

impl CallMetrics {
    fn new(transport: &'static str) -> Self {
        let calls = |result: &'static str| metrics::counter!(names::LOG_CALLS, "transport" => transport, "result" => result);
        Self {
            transport,
            ok: calls("ok"),
            system_err: calls("system_err"),
            lines: metrics::counter!(names::LOG_LINES_WRITTEN),
        }
    }

    /// Counts a call that logged nothing: its reply's status, or `dropped`
    /// when it gets no reply.
    fn unlogged(&self, reply: Option<&LogReply>) {
        let result = reply.map_or("dropped", reply_result);
        metrics::counter!(names::LOG_CALLS, "transport" => self.transport, "result" => result)
            .increment(1);
    }
}

/// The `result` label of a reply that logged nothing.
fn reply_result(reply: &LogReply) -> &'static str {
    match reply.accept_stat() {
        Some(AcceptStat::Success) => "null",
        Some(AcceptStat::ProgUnavail) => "prog_unavail",
        Some(AcceptStat::ProgMismatch { .. }) => "prog_mismatch",
        Some(AcceptStat::ProcUnavail) => "proc_unavail",
        Some(AcceptStat::GarbageArgs) => "garbage_args",
        Some(AcceptStat::SystemErr) => "system_err",
        None => "denied",
    }
}

struct Answer<T> {
    reply: LogReply,
    /// A SENDLOG whose line is in the batch.
    logged: bool,
    /// Its entry in the duplicate-request cache.
    key: Option<ReplayKey>,
    to: T,
}

impl<T> Batch<T> {
    fn new(transport: &'static str) -> Self {
        Self {
            lines: Vec::new(),
            replies: Vec::new(),
            logged: 0,
            metrics: CallMetrics::new(transport),
        }
    }

    /// Dispatches one message from `client`: queues its reply (and line); false when it gets no
    /// reply (over TCP, the connection closes). A SENDLOG the duplicate-request cache knows is
    /// answered with its cached reply and not written again.
    fn dispatch(&mut self, msg: &[u8], to: T, client: IpAddr, sink: &Sink) -> bool {
        match dispatch(msg) {
            Dispatch::Reply { reply, entry } => {
                let logged = entry.is_some();
                let mut key = None;
                if let Some(entry) = entry {
                    key = ReplayKey::of(client, msg);
                    let mut cache = sink.replay();
                    if let Some(cached) = key.as_ref().and_then(|k| cache.get(k)) {
                        drop(cache);
                        tracing::debug!(%client, "SENDLOG sent again: answered from the duplicate-request cache");
                        metrics::counter!(names::LOG_CALLS, "transport" => self.metrics.transport, "result" => "replayed")
                            .increment(1);
                        self.replies.push(Answer {
                            reply: cached,
                            logged: false,
                            key: None,
                            to,
                        });
                        return true;
                    }
                    // Recorded now, before the line is queued: a copy arriving on another
                    // connection meanwhile is answered, not written. A failed write forgets it.
                    if let Some(k) = key {
                        cache.insert(k, reply.clone());
                    }
                    drop(cache);
                    push_line(&mut self.lines, &entry);
                    self.logged += 1;
                } else {
                    self.metrics.unlogged(Some(&reply));
                }
                self.replies.push(Answer {
                    reply,
                    logged,
                    key,
                    to,
                });
                true
            }
            Dispatch::Close { reason } => {
                tracing::debug!("no reply, closing: {reason:?}");
                self.metrics.unlogged(None);
                false
            }
            other => {
                tracing::debug!("unhandled dispatch outcome: {other:?}");
                self.metrics.unlogged(None);
                false
            }
        }
    }

    /// Writes the batch's lines; if that fails, turns the SENDLOG replies into SYSTEM_ERR (the
    /// records were not logged). The replies are then ready to send, in order.
    async fn commit(&mut self, sink: &Sink, gather: bool) {
        if self.lines.is_empty() {
            return;
        }
        let ok = sink.commit(&self.lines, gather).await;
        self.lines.clear();
        let logged = std::mem::take(&mut self.logged);
        if ok {
            self.metrics.ok.increment(logged);
            self.metrics.lines.increment(logged);
        } else {
            self.metrics.system_err.increment(logged);
        }
        if !ok {
            let mut cache = sink.replay();
            for key in self.replies.iter().filter_map(|a| a.key.as_ref()) {
                cache.remove(key);
            }
            drop(cache);
            for answer in self.replies.iter_mut().filter(|answer| answer.logged) {
                answer.reply = answer.reply.system_err();
            }
        }
    }
}

/// Appends the entry's output line and a newline.
fn push_line(buf: &mut Vec<u8>, entry: &LogEntry) {
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{entry}");
    buf.push(b'\n');
}

/// What bounds one TCP connection.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    max_record: usize,
    idle_timeout: Duration,
    write_timeout: Duration,
    busy_poll: Duration,
}

/// One open TCP connection, counted in the service's total for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }

    /// No other TCP connection is open.
    fn alone(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 1
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a busy poll of a connection found.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    /// Bytes arrived.
    Input,
    /// The peer closed the connection, or it broke.
    Closed,
    /// Nothing before the time ran out: sleep until the socket is readable.
    TimedOut,
    /// Another connection opened: sleep until the socket is readable.
    Crowded,
}

/// Whether a connection busy polls after answering. Adaptive, like KVM's halt polling: a poll
/// that times out stops the polling, since the client is not calling that fast (the directory's
/// shipper sends a batch every 10 ms, say); input that arrives after an answer, within a few
/// budgets of it, starts it again. Input already waiting when the answer went out (the rest of a
/// pipelined batch) says nothing about how fast the client answers, and is not counted.
#[derive(Debug)]
struct PollPolicy {
    budget: Duration,
    worth_it: bool,
}

impl PollPolicy {
    /// A call arriving this many budgets after the answer, or sooner, is worth polling for
    /// (waking the sleeping service adds tens of microseconds to what the client took).
    const RESTART: u32 = 4;

    const fn new(budget: Duration) -> Self {
        Self {
            budget,
            worth_it: !budget.is_zero(),
        }
    }

    /// Busy polling is configured at all (a non-zero budget).
    const fn enabled(&self) -> bool {
        !self.budget.is_zero()
    }

    /// How long to poll now, if at all.
    const fn budget(&self) -> Option<Duration> {
        if self.worth_it {
            Some(self.budget)
        } else {
            None
        }
    }

    fn polled(&mut self, polled: &Polled) {
        if *polled == Polled::TimedOut {
            self.worth_it = false;
        }
    }

    /// With polling off, the next input came `gap` after the answer (none was waiting then).
    fn answered_after(&mut self, gap: Duration) {
        self.worth_it = self.enabled() && gap <= self.budget * Self::RESTART;
    }
}

/// Checks the socket for input until `budget` has passed or `open` is no longer alone, yielding
/// to the runtime between checks: the runtime polls its I/O driver (a non-blocking
/// `epoll_wait`) before the task runs again, which is what makes the socket's readiness, and
/// any other connection's, visible; other ready tasks run in between.
async fn busy_poll(
    stream: &TcpStream,
    input: &mut BytesMut,
    budget: Duration,
    open: &OpenConnection,
    stop: &CancellationToken,
) -> Polled {
    let until = Instant::now() + budget;
    loop {
        // The service is stopping: the connection ends as if the client had closed.
        if stop.is_cancelled() {
            return Polled::Closed;
        }
        if !open.alone() {
            return Polled::Crowded;
        }
        match stream.try_read_buf(input) {
            Ok(0) => return Polled::Closed,
            Ok(_) => return Polled::Input,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Polled::Closed,
        }
        if Instant::now() >= until {
            return Polled::TimedOut;
        }
        tokio::task::yield_now().await;
    }
}

/// Whether input (or the end of the stream) is waiting on the socket now: a non-blocking peek,
/// whatever readiness tokio last saw.
fn input_waiting(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(
        rustix::net::recv(stream, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Err(Errno::AGAIN)
    )
}

/// Serves one TCP client: reassembles records, answers each call in order, closes when the
/// dispatcher says so or the stream breaks. The calls of one read are handled together: their
/// lines in one batch, their replies in one write.
async fn serve_tcp(
    mut stream: TcpStream,
    client: IpAddr,
    sink: Arc<Sink>,
    limits: ConnectionLimits,
    open: &OpenConnection,
    stop: &CancellationToken,
) {
    let mut decoder = RecordDecoder::new(limits.max_record);
    let mut input = BytesMut::with_capacity(4096);
    let mut batch = Batch::new("tcp");
    let mut replies = Vec::new();
    // The idle check costs nothing per call: one timer per connection that goes off every
    // `idle_timeout`, closing the connection if no call completed since it last went off.
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut called = false;
    let mut policy = PollPolicy::new(limits.busy_poll);
    loop {
        let mut close = false;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(record)) => {
                    called = true;
                    if !batch.dispatch(&record, (), client, &sink) {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("closing connection: {e}");
                    close = true;
                    break;
                }
            }
        }
        batch.commit(&sink, !open.alone()).await;
        for answer in batch.replies.drain(..) {
            Record(&answer.reply).encode(&mut replies);
        }
        if !replies.is_empty() {
            match super::write_moving(&mut stream, &replies, limits.write_timeout).await {
                Ok(()) => replies.clear(),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    tracing::debug!(
                        "closing connection: no reply byte taken for {:?}",
                        limits.write_timeout
                    );
                    return;
                }
                Err(_) => return,
            }
        }
        // At shutdown the calls received are answered; a partial one is left to the client,
        // which sends it again elsewhere or later.
        if close || stop.is_cancelled() {
            return;
        }
        let answered = Instant::now();
        let waiting = if let Some(budget) = policy.budget() {
            let polled = busy_poll(&stream, &mut input, budget, open, stop).await;
            policy.polled(&polled);
            match polled {
                Polled::Input => continue,
                Polled::Closed => return,
                Polled::TimedOut | Polled::Crowded => false,
            }
        } else {
            policy.enabled() && input_waiting(&stream)
        };
        loop {
            tokio::select! {
                biased;
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !waiting {
                            policy.answered_after(answered.elapsed());
                        }
                        break;
                    }
                },
                () = stop.cancelled() => return,
                () = &mut idle => {
                    if !std::mem::take(&mut called) {
                        tracing::debug!("closing connection: no call for {:?}", limits.idle_timeout);
                        return;
                    }
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                }
            }
        }
    }
}

/// Serves UDP: one call per datagram, one reply datagram; malformed datagrams, and those over
/// `max_record`, are dropped. The datagrams already received when one arrives are served with it (one batch of lines).
async fn serve_udp(socket: UdpSocket, sink: Arc<Sink>, max_record: usize) {
    // One byte more than the limit, to tell a datagram over it from one that fills it.
    let mut buf = vec![0; max_record.min(MAX_DATAGRAM) + 1];
    let mut batch = Batch::new("udp");
    let serve = |batch: &mut Batch<SocketAddr>, buf: &[u8], n: usize, peer: SocketAddr| {
        if n > max_record {
            tracing::debug!("UDP call from {peer} over {max_record} bytes: dropped");
            batch.metrics.unlogged(None);
        } else {
            batch.dispatch(&buf[..n], peer, peer.ip(), &sink);
        }
    };
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => serve(&mut batch, &buf, n, peer),
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                tracing::debug!("UDP receive: {e}");
                continue;
            }
        }
        for _ in 1..UDP_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => serve(&mut batch, &buf, n, peer),
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!("UDP receive: {e}");
                    }
                    break;
                }
            }
        }
        batch.commit(&sink, false).await;
        let mut datagram = Vec::new();
        for answer in batch.replies.drain(..) {
            datagram.clear();
            answer.reply.encode(&mut datagram);
            if let Err(e) = socket.send_to(&datagram, answer.to).await {
                tracing::debug!("UDP reply to {}: {e}", answer.to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use p2p_proto::rpc::log::{decode_sendlog_reply, sendlog_call};
    use p2p_proto::rpc::record::Record;

    use super::*;

    /// An output that records what is written, as whole `write` calls, optionally failing or
    /// taking a few polls per write (so that callers pile up behind the leader).
    #[derive(Clone, Default)]
    struct Recorder {
        data: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
        fail: Arc<AtomicBool>,
        slow: bool,
        polls: usize,
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(self.data.lock().unwrap().clone()).unwrap()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.slow && self.polls < 2 {
                self.polls += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.polls = 0;
            if self.fail.load(Ordering::Relaxed) {
                return Poll::Ready(Err(io::Error::other("disk full")));
            }
            self.data.lock().unwrap().extend_from_slice(buf);
            self.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_writes_every_line_whole_before_acknowledging() {
        const TASKS: usize = 32;
        const BATCHES: usize = 50;
        let out = Recorder {
            slow: true,
            ..Recorder::default()
        };
        let sink = Arc::new(Sink::new(Output::Async(Box::pin(out.clone()))));
        let mut tasks = JoinSet::new();
        for t in 0..TASKS {
            let sink = Arc::clone(&sink);
            let out = out.clone();
            tasks.spawn(async move {
                for b in 0..BATCHES {
                    let lines = format!("t{t:02} b{b:02} one\nt{t:02} b{b:02} two\n");
                    commit_written(&sink, &out, &lines, false).await;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        sink.close().await.unwrap();
        let text = out.text();
        let mut next = [0usize; TASKS];
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), TASKS * BATCHES * 2);
        for pair in lines.chunks(2) {
            let t: usize = pair[0][1..3].parse().unwrap();
            let b = next[t] / 2;
            assert_eq!(pair[0], format!("t{t:02} b{b:02} one"));
            assert_eq!(pair[1], format!("t{t:02} b{b:02} two"));
            next[t] += 2;
        }
        // Batches that queued up behind a write went out together.
        let writes = out.writes.load(Ordering::Relaxed);
        assert!(writes < TASKS * BATCHES, "{writes} writes: no grouping");
        assert!(!sink.state().writing);
    }

    /// Commits `lines` and checks the guarantee of an acknowledgement: the lines are out.
    async fn commit_written(sink: &Sink, out: &Recorder, lines: &str, gather: bool) {
        assert!(sink.commit(lines.as_bytes(), gather).await);
        assert!(
            out.text().contains(lines),
            "{lines:?} acknowledged, not written"
        );
    }

    /// Writes made when `TASKS` tasks, ready in the same turn of a one-thread runtime, commit a
    /// line each.
    async fn writes_for_one_turn(gather: bool) -> usize {
        const TASKS: usize = 8;
        let out = Recorder::default();
        let sink = Arc::new(Sink::new(Output::Async(Box::pin(out.clone()))));
        let mut tasks = JoinSet::new();
        for t in 0..TASKS {
            let (sink, out) = (Arc::clone(&sink), out.clone());
            tasks.spawn(async move {
                commit_written(&sink, &out, &format!("line {t}\n"), gather).await;
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let mut lines: Vec<String> = out.text().lines().map(str::to_owned).collect();
        lines.sort();
        assert_eq!(
            lines,
            (0..TASKS).map(|t| format!("line {t}")).collect::<Vec<_>>()
        );
        assert!(!sink.state().writing);
        out.writes.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn gathering_writes_the_lines_of_one_turn_at_once() {
        assert_eq!(
            writes_for_one_turn(false).await,
            8,
            "one write per connection"
        );
        assert_eq!(writes_for_one_turn(true).await, 1, "one write for the turn");
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_to_the_callers_it_covered_only() {
        let out = Recorder::default();
        let sink = Sink::new(Output::Async(Box::pin(out.clone())));
        assert!(sink.commit(b"a\n", false).await);
        out.fail.store(true, Ordering::Relaxed);
        assert!(!sink.commit(b"b\n", false).await);
        out.fail.store(false, Ordering::Relaxed);
        assert!(sink.commit(b"c\n", false).await);
        assert_eq!(out.text(), "a\nc\n");
    }

    #[tokio::test]
    async fn a_waiter_dropped_with_the_lead_passes_it_on() {
        let out = Recorder::default();
        let sink = Sink::new(Output::Async(Box::pin(out.clone())));
        // Someone leads (as if writing); two callers queue up behind.
        sink.state().writing = true;
        let mut first = Box::pin(sink.commit(b"first\n", false));
        let mut second = Box::pin(sink.commit(b"second\n", false));
        assert!(futures_poll(first.as_mut()).is_none());
        assert!(futures_poll(second.as_mut()).is_none());
        // The leader finishes: the lead goes to `first`, which is dropped before taking it.
        sink.release();
        drop(first);
        // `second` leads and writes both pending batches.
        assert!(second.await);
        assert_eq!(out.text(), "first\nsecond\n");
        assert!(!sink.state().writing);
        // And the next caller leads at once.
        assert!(sink.commit(b"third\n", false).await);
        assert_eq!(out.text(), "first\nsecond\nthird\n");
    }

    fn futures_poll<F: Future>(f: Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match f.poll(&mut Context::from_waker(waker)) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    /// The service with a file output, many pipelining clients: one whole line per call, and
    /// each reply only once its line is in the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_output_line_before_reply() {
        const CLIENTS: usize = 8;
        const CALLS: usize = 200;
        let path = std::env::temp_dir().join(format!(
            "p2p-log-service-test-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
        config.register_with_rpcbind = false;
        let service = LogService::bind(config).await.unwrap();
        let addr = service.tcp_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(service.run_to(LogOutput::file(file), async move {
            let _ = stopped.await;
        }));
        let mut clients = JoinSet::new();
        for c in 0..CLIENTS {
            let path = path.clone();
            clients.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let mut decoder = RecordDecoder::new(1 << 16);
                let mut input = BytesMut::new();
                let mut answered = 0;
                for window in (0..CALLS).collect::<Vec<_>>().chunks(16) {
                    let mut wire = Vec::new();
                    for &r in window {
                        let e = LogEntry::new(&format!("u{c}"), "PUBLISH", &format!("{r:03}"), "f")
                            .unwrap();
                        Record(sendlog_call(r as u32, &e)).encode(&mut wire);
                    }
                    stream.write_all(&wire).await.unwrap();
                    while answered < window[window.len() - 1] + 1 {
                        while let Some(reply) = decoder.decode(&mut input).unwrap() {
                            assert_eq!(
                                decode_sendlog_reply(&reply).unwrap(),
                                Some((answered as u32, Ok(0)))
                            );
                            let line = format!("u{c} PUBLISH f {answered:03}\n");
                            let text = std::fs::read_to_string(&path).unwrap();
                            assert!(text.contains(&line), "replied before {line:?} was written");
                            answered += 1;
                        }
                        if answered <= window[window.len() - 1] {
                            assert!(stream.read_buf(&mut input).await.unwrap() > 0);
                        }
                    }
                }
            });
        }
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut next = [0usize; CLIENTS];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 4, "torn line {line:?}");
            let c: usize = fields[0][1..].parse().unwrap();
            assert_eq!(fields[3], format!("{:03}", next[c]));
            next[c] += 1;
        }
        assert_eq!(next, [CALLS; CLIENTS]);
    }

    /// A connected pair on loopback: (the service's side, the client's side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (served, _) = listener.accept().await.unwrap();
        (served, client)
    }

    const LONG: Duration = Duration::from_secs(60);
    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn busy_poll_finds_input_and_closes_while_alone() {
        let running = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        let alone = OpenConnection::new(&open);
        let (served, mut client) = pair().await;
        let mut input = BytesMut::new();
        let writer = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            client.write_all(b"call").await.unwrap();
        };
        // The poll yields between checks, or the writer above would never run.
        let (polled, ()) = tokio::time::timeout(WAIT, async {
            tokio::join!(
                busy_poll(&served, &mut input, LONG, &alone, &running),
                writer
            )
        })
        .await
        .expect("input found long before the budget");
        assert_eq!(polled, Polled::Input);
        assert_eq!(&input[..], b"call");
        drop(client);
        let polled =
            tokio::time::timeout(WAIT, busy_poll(&served, &mut input, LONG, &alone, &running))
                .await
                .expect("the close found long before the budget");
        assert_eq!(polled, Polled::Closed);
    }

    #[tokio::test]
    async fn busy_poll_gives_up_at_its_budget_or_beside_another_connection() {
        let running = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        let first = OpenConnection::new(&open);
        let (served, _client) = pair().await;
        let mut input = BytesMut::new();
        let started = Instant::now();
        let polled = busy_poll(
            &served,
            &mut input,
            Duration::from_millis(20),
            &first,
            &running,
        )
        .await;
        assert_eq!(polled, Polled::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(20));
        // A second connection opening while the first polls ends the poll.
        let second = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            OpenConnection::new(&open)
        };
        let (polled, second) = tokio::time::timeout(WAIT, async {
            tokio::join!(
                busy_poll(&served, &mut input, LONG, &first, &running),
                second
            )
        })
        .await
        .expect("the poll ends once another connection opens");
        assert_eq!(polled, Polled::Crowded);
        // Not alone from the start: no poll at all.
        let started = Instant::now();
        assert_eq!(
            busy_poll(&served, &mut input, LONG, &first, &running).await,
            Polled::Crowded
        );
        assert!(started.elapsed() < WAIT);
        drop(second);
        assert!(first.alone());
        assert!(input.is_empty());
    }

    #[test]
    fn polling_stops_for_a_slow_client_and_starts_again_for_a_fast_one() {
        let budget = Duration::from_micros(50);
        let mut policy = PollPolicy::new(budget);
        assert_eq!(policy.budget(), Some(budget), "polls from the first answer");
        policy.polled(&Polled::Input);
        assert_eq!(policy.budget(), Some(budget));
        // Another connection says nothing about this client.
        policy.polled(&Polled::Crowded);
        assert_eq!(policy.budget(), Some(budget));
        // A client slower than the budget (a shipper's batch every 10 ms): no more polling...
        policy.polled(&Polled::TimedOut);
        assert_eq!(policy.budget(), None);
        policy.answered_after(Duration::from_millis(10));
        assert_eq!(policy.budget(), None);
        // ...until its calls come right after the answers again.
        policy.answered_after(Duration::from_micros(120));
        assert_eq!(policy.budget(), Some(budget));
        policy.answered_after(budget * PollPolicy::RESTART + Duration::from_nanos(1));
        assert_eq!(policy.budget(), None);
        // Off stays off.
        let mut off = PollPolicy::new(Duration::ZERO);
        assert_eq!(off.budget(), None);
        off.answered_after(Duration::ZERO);
        assert_eq!(off.budget(), None);
    }

    #[tokio::test]
    async fn input_waiting_sees_bytes_and_the_end_whatever_tokio_last_saw() {
        let (served, mut client) = pair().await;
        assert!(!input_waiting(&served));
        client.write_all(b"x").await.unwrap();
        let deadline = Instant::now() + WAIT;
        while !input_waiting(&served) {
            assert!(Instant::now() < deadline, "the byte never showed");
            tokio::task::yield_now().await;
        }
        // A peek: the byte is still there to read.
        let mut input = BytesMut::new();
        assert_eq!(
            busy_poll(
                &served,
                &mut input,
                LONG,
                &OpenConnection::new(&Arc::default()),
                &CancellationToken::new()
            )
            .await,
            Polled::Input
        );
        assert_eq!(&input[..], b"x");
        assert!(!input_waiting(&served));
        drop(client);
        let deadline = Instant::now() + WAIT;
        while !input_waiting(&served) {
            assert!(Instant::now() < deadline, "the close never showed");
            tokio::task::yield_now().await;
        }
    }
}
