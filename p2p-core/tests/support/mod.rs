//! Shared helpers of the hostile-client and concurrency tests of `p2p-core`:
//! an in-process directory server on `127.0.0.1:0` whose [`MemoryStore`] the
//! test keeps, raw-socket exchanges with a bound on every wait, a seeded
//! generator, a snapshot of the directory through the public [`Store`] API,
//! and an in-process log service whose output lines are collected.
//!
//! Each test file includes this module (`mod support;`) and uses a part of it.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test crate uses a different part of the helpers"
)]

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_core::directory::{
    self, Handler, LineWriter, MemoryStore, ServerConfig, Store, StoreStats,
};
use p2p_core::log::{LogError, LogService, LogServiceConfig};
use p2p_core::peer::DirectoryClient;
use p2p_proto::directory::{
    ConnectResult, ListContentReply, ListUsersReply, PeerAddr, RegisterResult, Reply, Request,
    RequestBody,
};
use p2p_proto::field::{Description, FileName, UserName};
use p2p_proto::timestamp::Timestamp;
use p2p_proto::{Encode, StreamDecoder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod proxy;

/// A limit for each wait, so that a broken server fails the test instead of
/// hanging it. Generous: tests run in parallel on two cores, in debug builds.
pub const WAIT: Duration = Duration::from_secs(20);

/// The DATETIME the tests send in the long form of a request.
pub const DATETIME: &str = "24/11/2026 20:42:35";

/// A user name (panics on an invalid one: test data only).
pub fn user(s: &str) -> UserName {
    s.parse().unwrap()
}

/// A file name.
pub fn file(s: &str) -> FileName {
    s.parse().unwrap()
}

/// A description.
pub fn desc(s: &str) -> Description {
    s.parse().unwrap()
}

/// `127.0.0.1:port`, as the directory records a CONNECT from this host.
pub fn local(port: u16) -> PeerAddr {
    PeerAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A request as `user`, with or without DATETIME.
pub fn request(user_name: &str, body: RequestBody, with_datetime: bool) -> Request {
    Request {
        timestamp: with_datetime.then(|| DATETIME.parse::<Timestamp>().unwrap()),
        user: user(user_name),
        body,
    }
}

/// The wire bytes of a request.
pub fn encode(request: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.encoded_len());
    request.encode(&mut out);
    assert_eq!(out.len(), request.encoded_len());
    out
}

/// The wire bytes of a reply.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.encoded_len());
    reply.encode(&mut out);
    out
}

/// A directory server running in this process on `127.0.0.1:0`, over a
/// store (by default a [`MemoryStore`]) the test keeps to inspect its state.
#[derive(Debug)]
pub struct Directory<S: Store = MemoryStore> {
    pub addr: SocketAddr,
    pub store: Arc<S>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Directory {
    /// Starts a server with `config` over an empty store.
    pub fn start(config: ServerConfig) -> Self {
        Self::start_with(config, Arc::new(MemoryStore::new()))
    }
}

impl<S: Store> Directory<S> {
    /// Starts a server with `config` over `store`.
    pub fn start_with(config: ServerConfig, store: Arc<S>) -> Self {
        let listener = directory::bind("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(Handler::new(
            store.clone() as Arc<dyn Store>,
            LineWriter::disabled(),
            None,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(directory::run(listener, handler, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client with a bound on each operation.
    pub fn client(&self) -> DirectoryClient {
        DirectoryClient::new("127.0.0.1", self.addr.port()).with_timeout(WAIT)
    }

    /// Sends one request on its own connection; panics when the server does
    /// not answer.
    pub async fn call(&self, request: &Request) -> Reply {
        self.client()
            .call(request)
            .await
            .unwrap_or_else(|e| panic!("{} got no reply: {e}", request.op()))
    }

    /// Sends `request` and asserts its reply.
    pub async fn expect(&self, request: &Request, expected: impl Into<Reply>) {
        let expected = expected.into();
        let got = self.call(request).await;
        assert_eq!(got, expected, "reply to {request:?}");
    }

    /// Stops the server and asserts that it returns in time, with every
    /// connection in flight finished (each is bounded by the timeouts).
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the server stops within the limit, bounded by its timeouts")
            .expect("the server task does not panic")
            .expect("the server returns Ok");
    }
}

impl<S: Store> Drop for Directory<S> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A config with the given read timeout, the rest default.
pub fn config_with_read_timeout(read_timeout: Duration) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.read_timeout = read_timeout;
    config
}

/// What came back on a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Every byte the server sent.
    pub reply: Vec<u8>,
    /// Whether the connection ended with a reset rather than an orderly close.
    pub reset: bool,
}

/// Connects to `addr`, writes `bytes` (write errors are ignored: a server may
/// close before reading everything), shuts the write side down when
/// `close_write`, and reads until the server closes. Panics when the server
/// neither closes nor resets within `limit`.
pub async fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    close_write: bool,
    limit: Duration,
) -> Exchange {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(bytes).await;
        if close_write {
            let _ = writer.shutdown().await;
        }
    };
    let read = async {
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return (reply, false),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(_) => return (reply, true),
            }
        }
    };
    let ((), (reply, reset)) = tokio::time::timeout(limit, async { tokio::join!(write, read) })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server neither answered nor closed within {limit:?} after {} bytes {:?}",
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            )
        });
    drop(stream);
    Exchange { reply, reset }
}

/// Runs `jobs` with at most `width` at a time and returns their outputs in
/// order.
pub async fn run_bounded<T, F>(width: usize, jobs: Vec<F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(width));
    let mut handles = Vec::with_capacity(jobs.len());
    for job in jobs {
        let permit = limit.clone().acquire_owned().await.unwrap();
        handles.push(tokio::spawn(async move {
            let out = job.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("job does not panic"));
    }
    out
}

/// A seeded xorshift64* generator: every test run sees the same inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of `items`, copied.
    pub fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The user that inspects the store: registered and connected through the
/// store itself before a test starts, and never used by the test's clients.
pub const PROBE: &str = "zz-probe";

/// The address [`PROBE`] is connected at.
pub const PROBE_PORT: u16 = 9;

/// Registers and connects [`PROBE`] directly in `store`.
pub async fn install_probe(store: &dyn Store) {
    assert_eq!(
        store.register(&user(PROBE)).await.expect("store answers"),
        RegisterResult::Ok
    );
    assert_eq!(
        store
            .connect(&user(PROBE), local(PROBE_PORT))
            .await
            .expect("store answers"),
        ConnectResult::Ok
    );
}

/// What the directory holds, as far as the public [`Store`] API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's counts (the probe included).
    pub stats: StoreStats,
    /// The connected users other than the probe, in connection order, with
    /// the address recorded at their CONNECT.
    pub connected: Vec<(String, PeerAddr)>,
    /// For each name asked about: `None` when it is not registered, else its
    /// publications in publication order.
    pub users: BTreeMap<String, Option<Vec<String>>>,
}

/// Reads the directory's state through the probe (see [`install_probe`]).
pub async fn snapshot(store: &dyn Store, names: &[&str]) -> Snapshot {
    let probe = user(PROBE);
    let connected = match store.list_users(&probe).await.expect("store answers") {
        ListUsersReply::Ok(entries) => entries
            .into_iter()
            .map(|e| (e.name.into_string(), e.addr))
            .collect(),
        other => panic!("the probe must stay connected: LIST_USERS answered {other:?}"),
    };
    let mut users = BTreeMap::new();
    for name in names {
        let files = match store
            .list_content(&probe, &user(name))
            .await
            .expect("store answers")
        {
            ListContentReply::Ok(files) => {
                Some(files.into_iter().map(FileName::into_string).collect())
            }
            ListContentReply::TargetDoesNotExist => None,
            other => panic!("LIST_CONTENT {name} through the probe answered {other:?}"),
        };
        users.insert((*name).to_owned(), files);
    }
    Snapshot {
        stats: store.stats().await.expect("store answers"),
        connected,
        users,
    }
}

/// A log service running in this process on `127.0.0.1:0` without rpcbind;
/// its output lines are collected by a task, so the service never waits for
/// a reader.
#[derive(Debug)]
pub struct LogHarness {
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
    pub max_record: usize,
    lines: Arc<Mutex<Vec<String>>>,
    /// Lines already returned by [`LogHarness::line`].
    read: usize,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), LogError>>>,
    reader: Option<JoinHandle<()>>,
}

impl LogHarness {
    /// Starts a service on `127.0.0.1:0` that refuses records over
    /// `max_record` bytes.
    pub async fn start(max_record: usize) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), max_record).await
    }

    /// Starts a service bound to `bind` (e.g. the port of a stopped one).
    pub async fn start_on(bind: SocketAddr, max_record: usize) -> Self {
        let mut config = LogServiceConfig::with_bind(bind);
        config.max_record = max_record;
        Self::start_with(config).await
    }

    /// Starts a service on `127.0.0.1:0` without a duplicate-request cache:
    /// it writes every call, the same one sent twice included.
    pub async fn start_without_replay_cache(max_record: usize) -> Self {
        let mut config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
        config.max_record = max_record;
        config.replay_cache = 0;
        Self::start_with(config).await
    }

    /// Starts a service with `config` (never registered with rpcbind).
    pub async fn start_with(mut config: LogServiceConfig) -> Self {
        config.register_with_rpcbind = false;
        let max_record = config.max_record;
        let service = LogService::bind(config)
            .await
            .expect("bind the log service");
        let (tcp, udp) = (service.tcp_addr(), service.udp_addr());
        let (writer, output) = tokio::io::duplex(1 << 16);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        let reader = tokio::spawn(async move {
            let mut output = BufReader::new(output).lines();
            while let Ok(Some(line)) = output.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run(writer, async move {
            let _ = stopped.await;
        }));
        Self {
            tcp,
            udp,
            max_record,
            lines,
            read: 0,
            stop: Some(stop),
            task: Some(task),
            reader: Some(reader),
        }
    }

    /// The next line not yet returned, waiting for it up to [`WAIT`].
    pub async fn line(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(line) = self.lines.lock().unwrap().get(self.read).cloned() {
                self.read += 1;
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line {} from the log service in time",
                self.read + 1
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the service and asserts it wrote no line beyond those returned
    /// by [`LogHarness::line`]: each record exactly once.
    pub async fn finish(self) {
        let read = self.read;
        let lines = self.stop().await;
        assert_eq!(
            lines.len(),
            read,
            "lines beyond those read: {:?}",
            &lines[read.min(lines.len())..]
        );
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until at least `count` lines were written and returns them all;
    /// panics with what it has after [`WAIT`].
    pub async fn wait_lines(&self, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lines = self.lines();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log service wrote {} lines, expected {count}: {lines:#?}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the service (asserting it returns Ok in time) and returns every
    /// line it wrote.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task.take().unwrap())
            .await
            .expect("the log service stops in time")
            .expect("the log service task does not panic")
            .expect("the log service returns Ok");
        tokio::time::timeout(WAIT, self.reader.take().unwrap())
            .await
            .expect("the output ends once the service stopped")
            .unwrap();
        self.lines()
    }
}

impl Drop for LogHarness {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// A TCP caller of the log service speaking record-marked ONC RPC.
#[derive(Debug)]
pub struct RpcClient {
    stream: TcpStream,
    buf: bytes::BytesMut,
    decoder: p2p_proto::rpc::record::RecordDecoder,
    /// Whether a write to a service that already closed is tolerated (hostile
    /// tests) or a test failure.
    tolerate_close: bool,
}

impl RpcClient {
    /// Connects; a failed write fails the test unless
    /// [`RpcClient::tolerating_close`] is used.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: bytes::BytesMut::new(),
            decoder: p2p_proto::rpc::record::RecordDecoder::new(1 << 20),
            tolerate_close: false,
        }
    }

    /// Writes to a service that already closed are not an error.
    pub fn tolerating_close(mut self) -> Self {
        self.tolerate_close = true;
        self
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let written = self.stream.write_all(bytes).await;
        if !self.tolerate_close {
            written.unwrap();
        }
    }

    /// Writes one message as a single-fragment record.
    pub async fn send(&mut self, msg: &[u8]) {
        let mut framed = Vec::new();
        p2p_proto::rpc::record::encode_record(msg, &mut framed);
        self.send_raw(&framed).await;
    }

    /// The next reply record, or `None` when the service closed the connection.
    pub async fn recv(&mut self) -> Option<bytes::BytesMut> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(r) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(r);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a reply or a close in time")
    }
}

/// A log entry at a fixed time.
pub fn entry(user: &str, op: &str, file: &str) -> p2p_proto::rpc::log::LogEntry {
    p2p_proto::rpc::log::LogEntry::new(user, op, "24/11/2026 19:40:12", file).unwrap()
}

/// Why the call failed, from its reply.
pub fn failure(reply: &[u8]) -> p2p_proto::rpc::message::CallFailure {
    p2p_proto::rpc::log::decode_sendlog_reply(reply)
        .unwrap()
        .expect("a whole reply")
        .1
        .expect_err("a failed call")
}
