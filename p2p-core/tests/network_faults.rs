//! Slow links, stalls and cuts, through a test proxy (`support/proxy.rs`)
//! that limits the rate with back-pressure: a transfer or a listing that
//! moves bytes, however slowly, is never cut; one that stops is cut at its
//! idle timeout with a message that says so; a reply cut short is a reset,
//! never an end of stream.
//!
//! Scale (docs/HARDENING.md, "Network faults"): the cases are a 6 MB
//! transfer at 32 KB/s against a 30 s idle timeout, and a 20 000-entry
//! listing at 64 KB/s against 10 s. Here the idle timeouts are 3 s and the
//! transfer is 384 KiB at 32 KiB/s (12 s, four idle timeouts long); the
//! listing keeps its 20 000 entries and 64 KiB/s (about 10 s).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_core::directory::{MemoryStore, ServerConfig, Store};
use p2p_core::peer::{
    ClientError, DirectoryClient, DownloadError, DownloadOptions, FileServer, FileServerConfig,
    Library, TransferProtocol, download,
};
use p2p_proto::directory::{ListContentReply, Reply, RequestBody};
use support::proxy::{Mode, Proxy};
use support::{Directory, WAIT, desc, file, install_probe, local, request, user};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpSocket;

const KIB: u64 = 1024;

/// What the code under test logged at `warn` and above, in this test binary
/// (its tasks run on the runtime's worker threads: a global subscriber).
fn warnings() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGGED: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOGGED.get_or_init(|| {
        let logged: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Logged(logged))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logged
    })
}

/// A writer into [`warnings`].
struct Logged(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for Logged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits until the serving side has logged a dropped transfer with `reason`.
async fn until_logged(reason: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&warnings().lock().unwrap()).into_owned();
        if text
            .lines()
            .any(|l| l.contains("WARN") && l.contains("transfer dropped") && l.contains(reason))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `transfer dropped: {reason}` at warn; logged: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `python3` runs; without it a loud note and `false`, unless
/// `P2P_REQUIRE_PYTHON=1`: then a failure.
fn python3_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("P2P_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "{test}: P2P_REQUIRE_PYTHON=1 but python3 does not run here"
        );
        use std::io::Write;
        let _ = std::io::stderr()
            .write_all(format!("\n!! SKIPPED part of {test}: python3 is not on PATH\n").as_bytes());
    }
    found
}

/// The idle timeout of both sides in these tests.
const IDLE: Duration = Duration::from_secs(3);

/// A serving peer for `data` published as `name`, with the test idle timeout.
async fn serving(dir: &Path, name: &str, data: &[u8]) -> FileServer {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    let library = Library::new();
    library.insert(file(name), path);
    let mut config = FileServerConfig::default();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.write_timeout = IDLE;
    // At 32 KiB/s a write completes every 8 KiB: a quarter of a second.
    config.send_low_water = 16 * 1024;
    FileServer::start(config, library).await.unwrap()
}

fn options(protocol: TransferProtocol) -> DownloadOptions {
    let mut options = DownloadOptions::default();
    options.stall_timeout = IDLE;
    options.progress = None;
    options.max_attempts = 1;
    options.protocol = protocol;
    options
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_transfer_that_moves_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(384 * KIB);
    let server = serving(dir.path(), "big.bin", &data).await;
    let rate = 32 * KIB;
    for protocol in [TransferProtocol::Auto, TransferProtocol::Classic] {
        let proxy = Proxy::start(server.local_addr()).await;
        proxy.set_rate(Some(rate));
        let dest = dir.path().join(format!("got-{protocol:?}.bin"));
        let started = Instant::now();
        let size = download(proxy.addr, &file("big.bin"), &dest, &options(protocol))
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}: the slow transfer failed: {e}"));
        assert_eq!(size, data.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), data, "{protocol:?}");
        // The shape the test claims: the proxy's pacing makes the transfer
        // several idle timeouts long (a lower bound, not a speed).
        assert!(
            started.elapsed() >= 3 * IDLE,
            "{protocol:?}: the transfer took {:?}, not several idle timeouts",
            started.elapsed()
        );
    }
}

/// Waits until the proxy has forwarded `bytes` towards the client.
/// A 1 MiB download through a proxy at 64 KiB/s, once its first 64 KiB went
/// through: the server, the proxy, the destination and the download's task.
async fn slow_download(
    dir: &Path,
    protocol: TransferProtocol,
) -> (
    FileServer,
    Proxy,
    std::path::PathBuf,
    tokio::task::JoinHandle<Result<u64, DownloadError>>,
) {
    let data = pattern(1024 * KIB);
    let server = serving(dir, "big.bin", &data).await;
    let proxy = Proxy::start(server.local_addr()).await;
    proxy.set_rate(Some(64 * KIB));
    let dest = dir.join("got.bin");
    let fetch = {
        let addr = proxy.addr;
        let dest = dest.clone();
        tokio::spawn(
            async move { download(addr, &file("big.bin"), &dest, &options(protocol)).await },
        )
    };
    until_forwarded(&proxy, 64 * KIB).await;
    (server, proxy, dest, fetch)
}

async fn until_forwarded(proxy: &Proxy, bytes: u64) {
    let deadline = Instant::now() + WAIT;
    while proxy.bytes_down() < bytes {
        assert!(Instant::now() < deadline, "the transfer never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_beyond_the_idle_timeout_says_the_peer_stopped_sending() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, dest, fetch) = slow_download(dir.path(), TransferProtocol::Auto).await;
    proxy.set_mode(Mode::BlackHole);
    let result = tokio::time::timeout(WAIT, fetch).await.unwrap().unwrap();
    match result {
        Err(e @ DownloadError::Timeout(idle)) => {
            assert_eq!(idle, IDLE);
            assert!(e.to_string().starts_with("the peer stopped sending"), "{e}");
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    assert!(!dest.exists(), "nothing is left at the destination");
    // The serving side says why it dropped the transfer.
    until_logged("the requester took no byte").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_says_cut_and_no_listener_says_could_not_connect() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, dest, fetch) = slow_download(dir.path(), TransferProtocol::Classic).await;
    proxy.cut();
    let result = tokio::time::timeout(WAIT, fetch).await.unwrap().unwrap();
    match result {
        Err(e @ DownloadError::Cut(_)) => {
            assert!(
                e.to_string().starts_with("the peer cut the connection"),
                "{e}"
            );
        }
        other => panic!("expected a cut, got {other:?}"),
    }
    assert!(!dest.exists());
    until_logged("the requester closed or reset the connection").await;

    // Nobody listening: a refused connect, said as such.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    match download(
        closed,
        &file("big.bin"),
        &dest,
        &options(TransferProtocol::Auto),
    )
    .await
    {
        Err(e @ DownloadError::Connect { .. }) => {
            assert!(
                e.to_string().starts_with("could not connect to the peer"),
                "{e}"
            );
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
}

/// A directory whose user `owner` publishes `count` files with 32-character
/// names; the test reads it as `reader`.
async fn big_directory(count: usize) -> Directory {
    let mut config = ServerConfig::default();
    config.write_timeout = IDLE;
    config.read_timeout = WAIT;
    let memory = Arc::new(MemoryStore::new());
    let store: &dyn Store = memory.as_ref();
    install_probe(store).await;
    for (name, port) in [("owner", 7000), ("reader", 7001)] {
        store.register(&user(name)).await.unwrap();
        store.connect(&user(name), local(port)).await.unwrap();
    }
    for i in 0..count {
        store
            .publish(
                &user("owner"),
                &file(&format!("listing-entry-{i:018}")),
                &desc("d"),
            )
            .await
            .unwrap();
    }
    Directory::start_with(config, memory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_entry_listing_at_64_kib_per_second_completes() {
    let dir = big_directory(20_000).await;
    let proxy = Proxy::start(dir.addr).await;
    proxy.set_rate(Some(64 * KIB));
    let client = DirectoryClient::new("127.0.0.1", proxy.addr.port()).with_timeout(IDLE);
    let started = Instant::now();
    let reply = client
        .call(&request(
            "reader",
            RequestBody::ListContent {
                target: user("owner"),
            },
            true,
        ))
        .await
        .unwrap_or_else(|e| panic!("the slow listing failed: {e}"));
    match reply {
        Reply::ListContent(ListContentReply::Ok(files)) => assert_eq!(files.len(), 20_000),
        other => panic!("unexpected reply {other:?}"),
    }
    assert!(
        started.elapsed() >= 3 * IDLE,
        "the listing took {:?}, not several idle timeouts",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_cut_short_is_a_reset_for_a_classic_client() {
    let dir = big_directory(20_000).await;
    // A classic client: sends the request, reads to the end. This one does
    // not read until the server gave up, through a small receive buffer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(dir.addr))
        .await
        .unwrap()
        .unwrap();
    let req = request(
        "reader",
        RequestBody::ListContent {
            target: user("owner"),
        },
        true,
    );
    stream.write_all(&support::encode(&req)).await.unwrap();
    // The server's idle timeout ends the reply: it must reset (an error is
    // pending on the socket), not close as if the reply were whole.
    tokio::time::timeout(WAIT, stream.ready(Interest::ERROR))
        .await
        .expect("the server resets a reply it cannot finish")
        .unwrap();
    let mut received = Vec::new();
    let end = loop {
        match tokio::time::timeout(WAIT, stream.read_buf(&mut received)).await {
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Err(e),
            Err(_) => panic!("no end"),
        }
    };
    match end {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(()) => panic!(
            "the reply cut after {} bytes ended like a whole one",
            received.len()
        ),
    }

    // The classic Python client (`scripts/classic_client.py`), stalled the
    // same way, fails with the reset instead of taking a short listing.
    if python3_or_skip("a_listing_cut_short_is_a_reset_for_a_classic_client") {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/classic_client.py");
        let port = dir.addr.port().to_string();
        let classic = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .args([script, "--port", &port, "--no-datetime", "op", "--stall"])
                .args(["LIST_CONTENT", "reader", "owner"])
                .output()
        });
        let out = tokio::time::timeout(WAIT * 3, classic)
            .await
            .expect("the classic client ends")
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "classic client: {stdout}");
        assert!(
            stdout.starts_with("ERROR ") && stdout.contains("reset"),
            "classic client: {stdout}"
        );
    }

    // The peer's client, stalled the same way through the proxy, says so.
    let proxy = Proxy::start(dir.addr).await;
    proxy.set_rate(Some(64 * KIB));
    let client = DirectoryClient::new("127.0.0.1", proxy.addr.port()).with_timeout(IDLE);
    let call = tokio::spawn(async move { client.call(&req).await });
    until_forwarded(&proxy, 16 * KIB).await;
    proxy.set_mode(Mode::BlackHole);
    match tokio::time::timeout(WAIT, call).await.unwrap().unwrap() {
        Err(e @ ClientError::Stalled { .. }) => {
            assert!(e.to_string().contains("stopped sending"), "{e}");
        }
        other => panic!("expected a stalled reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_the_connect_says_could_not_connect() {
    // A listener whose accept queue is full and never drained: the kernel
    // drops further SYNs, as a black-holed host would.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    let mut options = options(TransferProtocol::Auto);
    options.stall_timeout = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got.bin");
    // Fill the queue until a connect no longer completes (a loopback connect
    // that is answered never takes 2 s).
    let result = loop {
        assert!(fillers.len() < 64, "the accept queue never filled");
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("connect failed: {e}"),
            Err(_) => break download(addr, &file("x"), &dest, &options).await,
        }
    };
    match result {
        Err(e @ DownloadError::ConnectTimeout { .. }) => {
            assert!(
                e.to_string().starts_with("could not connect to the peer")
                    && e.to_string().contains("no answer within 1s"),
                "{e}"
            );
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    drop(listener);
}
