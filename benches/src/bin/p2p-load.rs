//! `p2p-load`: drives a directory server, the minimal baseline server or a log service with N
//! concurrent clients for a fixed time, and prints ops/s, errors and latency percentiles.
//!
//! ```text
//! p2p-load --target directory --server 127.0.0.1:5555 --clients 16 --seconds 5
//! p2p-load --target baseline --clients 16 --seconds 5          # starts the baseline in-process
//! p2p-load --target log --server 127.0.0.1:4444 --clients 1     # SENDLOG calls, record marking
//! p2p-load --target directory --spawn                           # starts p2p-server (+ p2p-log)
//! p2p-load compare --clients 16,256 --seconds 5 --runs 3        # ours vs baseline, ratios
//! p2p-load log-compare --rpcgen-server ./log_server --clients 1  # our log service vs rpcgen's
//! p2p-load scale                                                # 100k users, 1M publications
//! p2p-load transfer --size 1GiB --runs 3                        # GET_FILE(_FROM) vs plain, peak
//!                                                               # RSS, verification, resume, hashing
//! ```
//!
//! Every comparison runs the contenders back to back, alternating their order run by run, and
//! reports the ratio against the baseline measured in the same run (the machine is shared).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream, ToSocketAddrs};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Args, Parser, Subcommand, ValueEnum};
use p2p_benches::baseline::{self, MinimalServer};
use p2p_benches::proc::rss;
use p2p_benches::sample;
use p2p_benches::stats::{Latencies, Summary, median};
use p2p_core::peer::{
    BodyHashing, DigestCache, DownloadOptions, FileServer, FileServerConfig, Library,
    TransferProtocol, download,
};
use p2p_proto::directory::{OpCode, Reply, Request, RequestBody};
use p2p_proto::field::{Description, FileName};
use p2p_proto::rpc::log::{LogEntry, decode_sendlog_reply, sendlog_call};
use p2p_proto::rpc::record::{Record, RecordDecoder};
use p2p_proto::{Decode, Encode, StreamDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Load generator and side-by-side comparisons for the P2P system.
#[derive(Debug, Parser)]
#[command(name = "p2p-load", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// A directory server: real operations (setup, then a mix, then cleanup).
    Directory,
    /// The minimal accept → read OP → 1-byte reply → close server.
    Baseline,
    /// A log service (LOG_PROG v1 over TCP): sequential SENDLOG calls, one connection per client.
    Log,
}

/// One load run against one target.
#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// What to drive.
    #[arg(long, value_enum, default_value = "directory")]
    target: Target,
    /// HOST:PORT of the server to drive (without it: --spawn, or the in-process baseline).
    #[arg(long)]
    server: Option<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Length of the measured phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Files each client publishes during setup (directory target).
    #[arg(long, default_value_t = 5)]
    files: usize,
    /// SENDLOG calls in flight per connection (log target; 1 = sequential).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Start the server (p2p-server, p2p-log, or the baseline as a child process) first.
    #[arg(long)]
    spawn: bool,
    #[command(flatten)]
    spawn_opts: SpawnOpts,
}

/// How spawned servers run.
#[derive(Debug, Clone, Args)]
struct SpawnOpts {
    /// Directory holding p2p-server and p2p-log (default: this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where console and log output of spawned servers go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Run p2p-server with --quiet instead of writing its console lines to a file.
    #[arg(long)]
    quiet: bool,
    /// Do not start the log service next to a spawned p2p-server.
    #[arg(long)]
    no_log: bool,
    /// Worker threads of the spawned p2p-server (`--threads`) and of the baseline server alike.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Store of the spawned p2p-server: `sqlite` (a new database file in the work directory for
    /// each server, the default), `memory`, or a `postgres://` URL (several servers may share
    /// it; each run registers names of its own).
    #[arg(long, default_value = "sqlite")]
    store: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ours (spawned p2p-server, console to a file, log service on) vs the baseline server.
    Compare(CompareArgs),
    /// Our log service (spawned p2p-log) vs another LOG_PROG server, same client.
    LogCompare(LogCompareArgs),
    /// Fill a directory server with users and publications; RSS per entry, listing latency.
    Scale(ScaleArgs),
    /// GET_FILE between two p2p-core peers vs a plain copy, each side in its own process.
    Transfer(TransferArgs),
    /// Run the minimal baseline server (until killed).
    #[command(hide = true)]
    ServeBaseline {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Serve one file with p2p-core's FileServer until stdin closes, then print VmHWM.
    #[command(hide = true)]
    ServeFile {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Serve one file with a plain 1 MiB read/write loop (or sendfile) until stdin closes, then
    /// print VmHWM.
    #[command(hide = true)]
    ServePlain {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        zero_copy: bool,
    },
    /// Download with p2p-core; print bytes, seconds and VmHWM.
    #[command(hide = true)]
    Fetch {
        #[arg(long)]
        from: SocketAddr,
        #[arg(long)]
        name: String,
        #[arg(long)]
        dest: PathBuf,
        #[arg(long, value_enum, default_value_t = FetchMode::Follow)]
        mode: FetchMode,
    },
    /// Receive with a plain 1 MiB read/write loop (or splice); print bytes, seconds and VmHWM.
    #[command(hide = true)]
    FetchPlain {
        #[arg(long)]
        from: SocketAddr,
        #[arg(long)]
        dest: PathBuf,
        #[arg(long)]
        zero_copy: bool,
    },
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Client counts to measure, e.g. 16,256.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    clients: Vec<usize>,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs per client count (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Files each client publishes during setup.
    #[arg(long, default_value_t = 5)]
    files: usize,
    /// One LIST_CONTENT of each client's ten operations becomes a SEARCH (10 % of the mix).
    #[arg(long)]
    with_search: bool,
    /// p2p-servers on our side, all on the same store (use a postgres:// --store), clients
    /// spread over them.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Compare against a second p2p-server on this store (e.g. `memory`), with its own console
    /// file and log service, instead of the minimal baseline server.
    #[arg(long, value_name = "STORE")]
    against_store: Option<String>,
    #[command(flatten)]
    spawn_opts: SpawnOpts,
}

#[derive(Debug, Args)]
struct LogCompareArgs {
    /// Client counts to measure (each client: one connection, sequential calls).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    clients: Vec<usize>,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs per client count.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// SENDLOG calls in flight per connection (1 = sequential; the directory's shipper sends batches of up to 1024).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// The other server's program, started as `PROGRAM PORT` with stdout to a file (e.g. the
    /// rpcgen server built by benches/rpcgen/build.sh).
    #[arg(long, conflicts_with = "other")]
    rpcgen_server: Option<PathBuf>,
    /// HOST:PORT of an already running other server.
    #[arg(long)]
    other: Option<String>,
    /// Drive both servers with this C client instead of the built-in one, one process per
    /// client, started as `PROGRAM 127.0.0.1 PORT SECONDS` and printing `calls N secs S` (the
    /// rpcgen client built by benches/rpcgen/build.sh: sequential calls, like a classic client).
    /// Sequential only (no --window); no latency figures.
    #[arg(long, conflicts_with = "window")]
    c_client: Option<PathBuf>,
    #[command(flatten)]
    spawn_opts: SpawnOpts,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    /// HOST:PORT of a running server (default: spawn p2p-server with console lines to a file).
    #[arg(long)]
    server: Option<String>,
    /// PID of that server, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Registered users.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Connected users among them.
    #[arg(long, default_value_t = 10_000)]
    connected: usize,
    /// Publications in all (the first connected user gets --big-user-files of them).
    #[arg(long, default_value_t = 1_000_000)]
    publications: usize,
    /// Files of the user listed by LIST_CONTENT.
    #[arg(long, default_value_t = 10_000)]
    big_user_files: usize,
    /// Concurrent clients while filling.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Timed LIST_USERS and LIST_CONTENT calls each.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    #[command(flatten)]
    spawn_opts: SpawnOpts,
}

/// How `fetch` downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FetchMode {
    /// Plain GET_FILE (splice, no digest): the path before GET_FILE_FROM.
    Classic,
    /// GET_FILE_FROM, read into user space, hash and write as the bytes arrive.
    AsItArrives,
    /// GET_FILE_FROM, splice into the part file, hashed by a thread right behind the writes.
    Follow,
    /// GET_FILE_FROM, splice into the part file, then hash it.
    After,
}

#[derive(Debug, Args)]
struct TransferArgs {
    /// File size: bytes, or with a KiB/MiB/GiB suffix.
    #[arg(long, default_value = "1GiB")]
    size: String,
    /// Runs (each: plain, ours, in alternating order).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the files go (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => run_one(&cli.run),
        Some(Cmd::Compare(args)) => compare(&args),
        Some(Cmd::LogCompare(args)) => log_compare(&args),
        Some(Cmd::Scale(args)) => scale(&args),
        Some(Cmd::Transfer(args)) => transfer(&args),
        Some(Cmd::ServeBaseline { port, threads }) => serve_baseline(port, threads),
        Some(Cmd::ServeFile { file, name }) => serve_file(&file, &name),
        Some(Cmd::ServePlain { file, zero_copy }) => serve_plain(&file, zero_copy),
        Some(Cmd::Fetch {
            from,
            name,
            dest,
            mode,
        }) => fetch(from, &name, &dest, mode),
        Some(Cmd::FetchPlain {
            from,
            dest,
            zero_copy,
        }) => fetch_plain(from, &dest, zero_copy),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p2p-load: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
}

fn resolve(server: &str) -> Res<SocketAddr> {
    server
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{server}: no address").into())
}

// ---------------------------------------------------------------------------------------------
// Results

/// What one load run measured.
#[derive(Debug, Default, Clone)]
struct RunResult {
    /// Operations of the measured phase that completed with the expected reply.
    ops: usize,
    /// Connection errors, timeouts, malformed or missing replies.
    errors: usize,
    /// Replies that decoded but were not the expected result.
    unexpected: usize,
    /// Requests the server answered in all phases (setup and cleanup included): what its console
    /// and log service must show.
    handled: usize,
    elapsed: Duration,
    latency: Summary,
    /// TCP segments the host sent during the measured phase (Linux), both ends together.
    segments: Option<u64>,
    first_error: Option<String>,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn line(&self, what: &str) -> String {
        let mut s = format!(
            "{what:<10} {:>9.0} ops/s  {:>8} ops  errors {}  unexpected {}  {}",
            self.rate(),
            self.ops,
            self.errors,
            self.unexpected,
            self.latency
        );
        if let (Some(segments), ops @ 1..) = (self.segments, self.ops) {
            let _ = write!(s, "  TCP segments/op {:.2}", segments as f64 / ops as f64);
        }
        if let Some(e) = &self.first_error {
            let _ = write!(s, "  (first error: {e})");
        }
        s
    }

    /// Why this run cannot be reported, if it cannot: no operation completed, or some failed or
    /// got an unexpected reply.
    fn problem(&self) -> Option<String> {
        (self.errors > 0 || self.unexpected > 0 || self.ops == 0).then(|| {
            format!(
                "{} ops, {} errors, {} unexpected{}",
                self.ops,
                self.errors,
                self.unexpected,
                self.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            )
        })
    }
}

/// Per-client tallies, merged at the end.
#[derive(Debug, Default)]
struct Tally {
    ops: usize,
    errors: usize,
    unexpected: usize,
    handled: usize,
    latencies: Latencies,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn merge_into(tallies: Vec<Self>, elapsed: Duration) -> RunResult {
        let mut all = Latencies::default();
        let mut r = RunResult {
            elapsed,
            ..RunResult::default()
        };
        for t in tallies {
            r.ops += t.ops;
            r.errors += t.errors;
            r.unexpected += t.unexpected;
            r.handled += t.handled;
            all.merge(t.latencies);
            if r.first_error.is_none() {
                r.first_error = t.first_error;
            }
        }
        r.latency = all.summary();
        r
    }
}

// ---------------------------------------------------------------------------------------------
// Directory and baseline clients

const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// One operation: connect, send, read until the server closes. `buf` receives the reply.
///
/// No `TCP_NODELAY`, as classic clients do: Nagle never holds the first segment back, and the
/// option would cost every operation a syscall.
async fn exchange(addr: SocketAddr, request: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    buf.clear();
    stream.read_to_end(buf).await?;
    Ok(())
}

/// The outcome of one directory operation as the load generator judges it.
enum Outcome {
    Ok,
    Unexpected(Reply),
    Error(String),
}

async fn directory_op(addr: SocketAddr, op: OpCode, wire: &[u8], buf: &mut Vec<u8>) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, exchange(addr, wire, buf)).await {
        Err(_) => Outcome::Error(format!("{op}: timeout")),
        Ok(Err(e)) => Outcome::Error(format!("{op}: {e}")),
        Ok(Ok(())) => match Reply::decode_with(op, buf) {
            Ok(Some((reply, _))) if reply.is_ok() => Outcome::Ok,
            Ok(Some((reply, _))) => Outcome::Unexpected(reply),
            Ok(None) if buf.is_empty() => Outcome::Error(format!("{op}: no reply")),
            Ok(None) => Outcome::Error(format!("{op}: truncated reply")),
            Err(e) => Outcome::Error(format!("{op}: {e}")),
        },
    }
}

async fn baseline_op(addr: SocketAddr, wire: &[u8], buf: &mut Vec<u8>) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, exchange(addr, wire, buf)).await {
        Err(_) => Outcome::Error("timeout".into()),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Ok(Ok(())) if buf.as_slice() == [0] => Outcome::Ok,
        Ok(Ok(())) => Outcome::Error(format!("baseline replied {} bytes", buf.len())),
    }
}

fn encode(request: &Request) -> (OpCode, Vec<u8>) {
    let mut wire = Vec::with_capacity(request.encoded_len());
    request.encode(&mut wire);
    (request.op(), wire)
}

fn user_name(prefix: &str, i: usize) -> String {
    format!("{prefix}_{i}")
}

fn port_for(i: usize) -> NonZeroU16 {
    NonZeroU16::new(20_000 + (i % 40_000) as u16).unwrap_or(NonZeroU16::MIN)
}

fn shared_file(user: &str, k: usize) -> FileName {
    sample::file(&format!("/home/{user}/share/track-{k:06}.ogg"))
}

fn description() -> Description {
    Description::new("a recording of the Thursday concert").unwrap_or_default()
}

/// The requests of client `i`: setup, the repeated mix, cleanup.
struct Script {
    setup: Vec<(OpCode, Vec<u8>)>,
    mix: Vec<(OpCode, Vec<u8>)>,
    cleanup: Vec<(OpCode, Vec<u8>)>,
}

/// What each client does beyond the fixed mix.
#[derive(Clone, Copy, Debug)]
struct Mix {
    /// Files each client publishes during setup.
    files: usize,
    /// One of the four LIST_CONTENTs becomes a SEARCH (10 % of the mix).
    search: bool,
}

impl Mix {
    const BASELINE: Self = Self {
        files: 0,
        search: false,
    };
}

fn script(prefix: &str, i: usize, clients: usize, mix: Mix) -> Script {
    let files = mix.files;
    let me = user_name(prefix, i);
    let req = |body| sample::request(&me, body);
    let other = |k: usize| sample::user(&user_name(prefix, (i + k) % clients));
    let mut setup = vec![
        encode(&req(RequestBody::Register)),
        encode(&req(RequestBody::Connect { port: port_for(i) })),
    ];
    for k in 0..files {
        setup.push(encode(&req(RequestBody::Publish {
            file: shared_file(&me, k),
            description: description(),
        })));
    }
    let temp = sample::file(&format!("/home/{me}/share/new-upload.ogg"));
    // 10 operations: 2 LIST_USERS, 4 LIST_CONTENT, PUBLISH + DELETE, DISCONNECT + CONNECT.
    let mix = vec![
        encode(&req(RequestBody::ListUsers)),
        encode(&req(RequestBody::ListContent { target: other(1) })),
        encode(&req(RequestBody::Publish {
            file: temp.clone(),
            description: description(),
        })),
        encode(&req(RequestBody::ListContent { target: other(2) })),
        encode(&req(RequestBody::Delete { file: temp })),
        encode(&req(RequestBody::ListUsers)),
        encode(&req(RequestBody::ListContent { target: other(3) })),
        encode(&req(RequestBody::Disconnect)),
        encode(&req(RequestBody::Connect { port: port_for(i) })),
        if mix.search {
            // Words of the clients' files: one file of every other client matches.
            encode(&req(RequestBody::Search {
                query: sample::query(&format!("track {:06}", i % files.max(1))),
            }))
        } else {
            encode(&req(RequestBody::ListContent { target: other(4) }))
        },
    ];
    let cleanup = vec![
        encode(&req(RequestBody::Disconnect)),
        encode(&req(RequestBody::Unregister)),
    ];
    Script {
        setup,
        mix,
        cleanup,
    }
}

/// Drives a directory server (or, with `baseline`, the minimal server with the same requests and
/// no setup) with `clients` tasks for `duration`.
async fn drive_directory(
    addrs: &[SocketAddr],
    clients: usize,
    duration: Duration,
    mix: Mix,
    prefix: &str,
    baseline: bool,
) -> RunResult {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        // Clients spread over the servers (several servers on one store).
        let addr = addrs[i % addrs.len()];
        let script = script(prefix, i, clients, mix);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                latencies: Latencies::with_capacity(16 * 1024),
                ..Tally::default()
            };
            let mut buf = Vec::with_capacity(8 * 1024);
            if !baseline {
                for (op, wire) in &script.setup {
                    match directory_op(addr, *op, wire, &mut buf).await {
                        Outcome::Ok => t.handled += 1,
                        Outcome::Unexpected(r) => {
                            t.handled += 1;
                            t.error(format!("setup {op}: result {}", r.code()));
                        }
                        Outcome::Error(e) => t.error(format!("setup {e}")),
                    }
                }
            }
            // Everyone starts the measured phase together; the leader starts the clock.
            barrier.wait().await;
            let end = tokio::time::Instant::now() + duration;
            // Stagger the clients across the mix, never starting between PUBLISH and DELETE
            // (indexes 3, 4) or on CONNECT (index 8): those need the steps before them.
            const STARTS: [usize; 7] = [0, 1, 2, 5, 6, 7, 9];
            let mut k = STARTS[i % STARTS.len()];
            while tokio::time::Instant::now() < end {
                let (op, wire) = &script.mix[k % script.mix.len()];
                k += 1;
                let started = Instant::now();
                let outcome = if baseline {
                    baseline_op(addr, wire, &mut buf).await
                } else {
                    directory_op(addr, *op, wire, &mut buf).await
                };
                match outcome {
                    Outcome::Ok => {
                        t.latencies.record(started.elapsed());
                        t.ops += 1;
                        t.handled += 1;
                    }
                    Outcome::Unexpected(r) => {
                        t.unexpected += 1;
                        t.handled += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!("{op}: result {}", r.code()));
                        }
                    }
                    Outcome::Error(e) => t.error(e),
                }
            }
            // Leave the mix on a consistent step (CONNECT after DISCONNECT) before cleanup.
            barrier.wait().await;
            if !baseline {
                for (op, wire) in &script.cleanup {
                    match directory_op(addr, *op, wire, &mut buf).await {
                        Outcome::Ok | Outcome::Unexpected(_) => t.handled += 1,
                        Outcome::Error(e) => t.error(format!("cleanup {e}")),
                    }
                }
            }
            t
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let segments_before = tcp_segments_sent();
    barrier.wait().await;
    let elapsed = started.elapsed();
    let segments = tcp_segments_sent()
        .zip(segments_before)
        .map(|(after, before)| after.saturating_sub(before));
    let mut tallies = Vec::with_capacity(clients);
    for task in tasks {
        match task.await {
            Ok(t) => tallies.push(t),
            Err(e) => {
                let mut t = Tally::default();
                t.error(format!("client task failed: {e}"));
                tallies.push(t);
            }
        }
    }
    let mut result = Tally::merge_into(tallies, elapsed);
    result.segments = segments;
    result
}

/// TCP segments sent by this host so far (`OutSegs` of `/proc/net/snmp`), where Linux reports it.
/// Loopback traffic counts once per segment whichever end sent it.
fn tcp_segments_sent() -> Option<u64> {
    let snmp = fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "OutSegs")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Log client

/// Sequential SENDLOG calls on one TCP connection per client.
/// Sequential SENDLOG calls on one TCP connection per client; with `window` > 1, up to `window`
/// calls in flight per connection (pipelined, as the directory's log shipper sends them).
async fn drive_log(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    window: usize,
) -> RunResult {
    let window = window.max(1);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                latencies: Latencies::with_capacity(64 * 1024),
                ..Tally::default()
            };
            let connected = TcpStream::connect(addr).await.and_then(|s| {
                s.set_nodelay(true)?;
                Ok(s)
            });
            barrier.wait().await;
            let mut stream = match connected {
                Ok(s) => s,
                Err(e) => {
                    t.error(format!("connect: {e}"));
                    barrier.wait().await;
                    return t;
                }
            };
            let entry = LogEntry::new(
                &format!("user_{i}"),
                "PUBLISH",
                sample::TIMESTAMP,
                "/home/alice/music/track-0001.ogg",
            )
            .unwrap_or_else(|_| sample::log_entry());
            // One framed call, its xid patched in place (after the 4-byte record mark).
            let mut framed = Vec::new();
            Record(sendlog_call(0, &entry)).encode(&mut framed);
            let mut decoder = RecordDecoder::new(64 * 1024);
            let mut inbuf = BytesMut::with_capacity(4096);
            let end = tokio::time::Instant::now() + duration;
            let mut xid = (i as u32) << 24;
            if window > 1 {
                pipelined(&mut stream, &mut framed, xid, window, end, &mut t).await;
                barrier.wait().await;
                return t;
            }
            while tokio::time::Instant::now() < end {
                xid = xid.wrapping_add(1);
                framed[4..8].copy_from_slice(&xid.to_be_bytes());
                let started = Instant::now();
                match tokio::time::timeout(
                    OP_TIMEOUT,
                    log_call(&mut stream, &framed, &mut decoder, &mut inbuf),
                )
                .await
                {
                    Ok(Ok(reply)) => match decode_sendlog_reply(&reply) {
                        Ok(Some((got, Ok(0)))) if got == xid => {
                            t.latencies.record(started.elapsed());
                            t.ops += 1;
                        }
                        Ok(Some(_)) => t.unexpected += 1,
                        Ok(None) => t.error("truncated reply"),
                        Err(e) => t.error(e),
                    },
                    Ok(Err(e)) => {
                        t.error(e);
                        break;
                    }
                    Err(_) => {
                        t.error("timeout");
                        break;
                    }
                }
            }
            barrier.wait().await;
            t
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    barrier.wait().await;
    let elapsed = started.elapsed();
    let mut tallies = Vec::new();
    for task in tasks {
        if let Ok(t) = task.await {
            tallies.push(t);
        }
    }
    Tally::merge_into(tallies, elapsed)
}

/// Keeps `window` calls in flight until `end`, then collects the outstanding replies.
async fn pipelined(
    stream: &mut TcpStream,
    framed: &mut [u8],
    first_xid: u32,
    window: usize,
    end: tokio::time::Instant,
    t: &mut Tally,
) {
    let (mut rd, mut wr) = stream.split();
    let mut decoder = RecordDecoder::new(64 * 1024);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight = std::collections::VecDeque::with_capacity(window);
    let mut next = first_xid;
    let mut out = Vec::with_capacity(framed.len() * window);
    loop {
        // Top the window up in one write.
        let open = tokio::time::Instant::now() < end;
        out.clear();
        while open && in_flight.len() < window {
            next = next.wrapping_add(1);
            framed[4..8].copy_from_slice(&next.to_be_bytes());
            out.extend_from_slice(framed);
            in_flight.push_back((next, Instant::now()));
        }
        if !out.is_empty()
            && let Err(e) = wr.write_all(&out).await
        {
            t.error(e);
            return;
        }
        if in_flight.is_empty() {
            return;
        }
        // At least one reply, then every reply already received.
        let mut got_one = false;
        loop {
            match decoder.decode(&mut inbuf) {
                Ok(Some(reply)) => {
                    got_one = true;
                    let Some((xid, sent)) = in_flight.pop_front() else {
                        t.error("reply without a call");
                        return;
                    };
                    match decode_sendlog_reply(&reply) {
                        Ok(Some((got, Ok(0)))) if got == xid => {
                            t.latencies.record(sent.elapsed());
                            t.ops += 1;
                        }
                        Ok(Some(_)) => t.unexpected += 1,
                        Ok(None) => t.error("truncated reply"),
                        Err(e) => t.error(e),
                    }
                    continue;
                }
                Ok(None) if got_one => break,
                Ok(None) => {}
                Err(e) => {
                    t.error(e);
                    return;
                }
            }
            inbuf.reserve(16 * 1024);
            match tokio::time::timeout(OP_TIMEOUT, rd.read_buf(&mut inbuf)).await {
                Ok(Ok(0)) => {
                    t.error("connection closed");
                    return;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    t.error(e);
                    return;
                }
                Err(_) => {
                    t.error("timeout");
                    return;
                }
            }
        }
    }
}

async fn log_call(
    stream: &mut TcpStream,
    framed: &[u8],
    decoder: &mut RecordDecoder,
    inbuf: &mut BytesMut,
) -> io::Result<BytesMut> {
    stream.write_all(framed).await?;
    loop {
        if let Some(record) = decoder
            .decode(inbuf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            return Ok(record);
        }
        inbuf.reserve(4096);
        if stream.read_buf(inbuf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Spawned servers

/// A child process that is interrupted (SIGINT) or killed when dropped.
struct Spawned {
    name: &'static str,
    child: std::process::Child,
}

impl Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT (through kill(1): no unsafe here), then waits up to `grace` before killing.
    fn interrupt(mut self, grace: Duration) -> io::Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                eprintln!("{}: did not stop within {grace:?}, killing", self.name);
                self.child.kill()?;
                return self.child.wait();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> io::Result<u16> {
    Ok(StdListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn wait_ready(addr: SocketAddr, what: &str) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start listening on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn bin_dir(opts: &SpawnOpts) -> Res<PathBuf> {
    if let Some(dir) = &opts.bin_dir {
        return Ok(dir.clone());
    }
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .ok_or("cannot locate this program's directory")?
        .to_path_buf())
}

fn find_bin(opts: &SpawnOpts, name: &str) -> Res<PathBuf> {
    let path = bin_dir(opts)?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release -p p2p-bins) or pass --bin-dir",
            path.display()
        )
        .into())
    }
}

/// The work directory, and the tempdir guard keeping it alive when it is temporary.
fn work_dir(opts: &SpawnOpts) -> Res<(PathBuf, Option<tempfile::TempDir>)> {
    match &opts.work_dir {
        Some(dir) => {
            fs::create_dir_all(dir)?;
            Ok((dir.clone(), None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("p2p-load.").tempdir()?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    stdout: Option<&Path>,
    stderr: &Path,
) -> Res<Spawned> {
    let out = match stdout {
        Some(p) => Stdio::from(File::create(p)?),
        None => Stdio::null(),
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(File::create(stderr)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    Ok(Spawned { name, child })
}

/// p2p-log on a free port, lines to `work/log.out`.
fn spawn_log_service(opts: &SpawnOpts, work: &Path) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let log = spawn(
        "p2p-log",
        &find_bin(opts, "p2p-log")?,
        &[
            "--no-rpcbind".into(),
            "-b".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-o".into(),
            work.join("log.out").display().to_string(),
        ],
        None,
        &work.join("log.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "p2p-log")?;
    Ok((log, addr))
}

/// p2p-server on a free port, console lines to `work/console.out` (unless quiet), shipping to
/// `log` when given.
fn spawn_directory(
    opts: &SpawnOpts,
    work: &Path,
    log: Option<SocketAddr>,
) -> Res<(Spawned, SocketAddr)> {
    spawn_directory_on(opts, work, log, &store_url(opts, work))
}

/// The `--store` URL for a new server: with `--store sqlite`, a database file of its own in
/// `work`, so that runs never see each other's users.
fn store_url(opts: &SpawnOpts, work: &Path) -> String {
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match opts.store.as_str() {
        "sqlite" => {
            let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!(
                "sqlite:{}",
                work.join(format!("directory-{n}.db")).display()
            )
        }
        "memory" => "memory:".into(),
        url => url.into(),
    }
}

/// What `--store` means for spawned servers, for the report.
fn store_url_shown(opts: &SpawnOpts) -> &str {
    match opts.store.as_str() {
        "sqlite" => "sqlite (a new file per server)",
        other => other,
    }
}

/// [`spawn_directory`] on the store `store`.
fn spawn_directory_on(
    opts: &SpawnOpts,
    work: &Path,
    log: Option<SocketAddr>,
    store: &str,
) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let mut args = vec![
        "-p".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--threads".into(),
        opts.server_threads.to_string(),
    ];
    if opts.quiet {
        args.push("--quiet".into());
    }
    args.push("--store".into());
    args.push(store.into());
    if let Some(log) = log {
        args.push("--log-rpc".into());
        args.push(log.to_string());
    }
    let server = spawn(
        "p2p-server",
        &find_bin(opts, "p2p-server")?,
        &args,
        Some(&work.join("console.out")),
        &work.join("server.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "p2p-server")?;
    Ok((server, addr))
}

fn spawn_baseline(opts: &SpawnOpts, work: &Path) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let child = spawn(
        "baseline",
        &std::env::current_exe()?,
        &[
            "serve-baseline".into(),
            "--port".into(),
            port.to_string(),
            "--threads".into(),
            opts.server_threads.to_string(),
        ],
        None,
        &work.join("baseline.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "baseline server")?;
    Ok((child, addr))
}

fn count_lines(path: &Path) -> io::Result<usize> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count();
    }
}

fn run_prefix(tag: &str) -> String {
    format!("load{}{tag}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Subcommand: one run

fn run_one(args: &RunArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let mut children = Vec::new();
    let addr = match (&args.server, args.spawn, args.target) {
        (Some(server), _, _) => resolve(server)?,
        (None, true, Target::Directory) => {
            let log = if args.spawn_opts.no_log {
                None
            } else {
                let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
                children.push(child);
                Some(addr)
            };
            let (child, addr) = spawn_directory(&args.spawn_opts, &work, log)?;
            children.push(child);
            addr
        }
        (None, true, Target::Log) => {
            let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
            children.push(child);
            addr
        }
        (None, true, Target::Baseline) => {
            let (child, addr) = spawn_baseline(&args.spawn_opts, &work)?;
            children.push(child);
            addr
        }
        (None, false, Target::Baseline) => {
            MinimalServer::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                args.spawn_opts.server_threads,
            )?
            .addr
        }
        (None, false, _) => return Err("--server HOST:PORT or --spawn is required".into()),
    };
    let duration = Duration::from_secs_f64(args.seconds);
    let result = rt.block_on(async {
        match args.target {
            Target::Directory => {
                drive_directory(
                    &[addr],
                    args.clients,
                    duration,
                    Mix {
                        files: args.files,
                        search: false,
                    },
                    &run_prefix("s"),
                    false,
                )
                .await
            }
            Target::Baseline => {
                drive_directory(&[addr], args.clients, duration, Mix::BASELINE, "b", true).await
            }
            Target::Log => drive_log(addr, args.clients, duration, args.window).await,
        }
    });
    let what = match args.target {
        Target::Directory => "directory",
        Target::Baseline => "baseline",
        Target::Log => "log",
    };
    println!(
        "{what} {addr}, {} clients, {:.1} s",
        args.clients,
        result.elapsed.as_secs_f64()
    );
    println!("{}", result.line(what));
    for child in children.into_iter().rev() {
        child.interrupt(Duration::from_secs(10))?;
    }
    verdict(result.problem().into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Subcommand: compare (directory vs baseline)

fn compare(args: &CompareArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let (log, log_addr) = if args.spawn_opts.no_log {
        (None, None)
    } else {
        let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
        (Some(child), Some(addr))
    };
    // Ours: one server, or several on one shared store (each with its own work directory and
    // console file; they share the log service).
    let mut servers = Vec::new();
    let mut ours = Vec::new();
    let shared_store = store_url(&args.spawn_opts, &work);
    for n in 0..args.servers.max(1) {
        let dir = if n == 0 {
            work.clone()
        } else {
            let dir = work.join(format!("server-{n}"));
            fs::create_dir_all(&dir)?;
            dir
        };
        let (server, addr) = spawn_directory_on(&args.spawn_opts, &dir, log_addr, &shared_store)?;
        servers.push(server);
        ours.push(addr);
    }
    // The other side: the minimal baseline, or p2p-server on another store (set up and checked
    // like ours, in a work directory of its own).
    let (baseline_children, base, other) = match &args.against_store {
        None => {
            let (child, addr) = spawn_baseline(&args.spawn_opts, &work)?;
            (vec![child], addr, "baseline".to_owned())
        }
        Some(store) => {
            let sub = work.join("against");
            fs::create_dir_all(&sub)?;
            let mut opts = args.spawn_opts.clone();
            opts.store = store.clone();
            let mut children = Vec::new();
            let log = if opts.no_log {
                None
            } else {
                let (child, addr) = spawn_log_service(&opts, &sub)?;
                children.push(child);
                Some(addr)
            };
            let url = store_url(&opts, &sub);
            let (child, addr) = spawn_directory_on(&opts, &sub, log, &url)?;
            children.push(child);
            (children, addr, format!("p2p-server --store {url}"))
        }
    };
    let against_server = args.against_store.is_some();
    println!(
        "ours: {} p2p-server(s) on --store {}; other side: {other}",
        ours.len(),
        store_url_shown(&args.spawn_opts)
    );
    println!(
        "ours: p2p-server {ours:?} (console {}, log service {}); other: {base}; {} server \
         thread(s) each; work dir {}",
        if args.spawn_opts.quiet {
            "off".to_owned()
        } else {
            "to a file".to_owned()
        },
        log_addr.map_or("off".to_owned(), |a| a.to_string()),
        args.spawn_opts.server_threads,
        work.display()
    );
    let duration = Duration::from_secs_f64(args.seconds);
    let mix = Mix {
        files: args.files,
        search: args.with_search,
    };
    let mut handled = 0usize;
    let mut rows = Vec::new();
    let mut run_id = 0;
    for &clients in &args.clients {
        let mut pairs = Vec::new();
        for run in 0..args.runs {
            run_id += 1;
            let prefix = run_prefix(&format!("r{run_id}"));
            let mut b = RunResult::default();
            let mut o = RunResult::default();
            for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
                if side == 0 && against_server {
                    let prefix = run_prefix(&format!("a{run_id}"));
                    b = rt.block_on(drive_directory(
                        &[base],
                        clients,
                        duration,
                        mix,
                        &prefix,
                        false,
                    ));
                } else if side == 0 {
                    b = rt.block_on(drive_directory(
                        &[base],
                        clients,
                        duration,
                        Mix::BASELINE,
                        "b",
                        true,
                    ));
                } else {
                    o = rt.block_on(drive_directory(
                        &ours, clients, duration, mix, &prefix, false,
                    ));
                    handled += o.handled;
                }
                // Let TIME_WAIT and queued console/log output settle between sides.
                std::thread::sleep(Duration::from_millis(500));
            }
            println!("[{clients} clients, run {}]", run + 1);
            println!("  {}", b.line("baseline"));
            println!("  {}", o.line("ours"));
            println!("  ratio ours/baseline {:.3}", o.rate() / b.rate());
            pairs.push((b, o));
        }
        rows.push((clients, pairs));
    }

    // Shut down: the server flushes its log shipper before exiting.
    let server_dirs: Vec<PathBuf> = (0..servers.len())
        .map(|n| {
            if n == 0 {
                work.clone()
            } else {
                work.join(format!("server-{n}"))
            }
        })
        .collect();
    let mut status = None;
    for server in servers {
        let exit = server.interrupt(Duration::from_secs(20))?;
        if status.is_none_or(|s: std::process::ExitStatus| s.success()) {
            status = Some(exit);
        }
    }
    let status = status.ok_or("no server ran")?;
    let server_err: String = server_dirs
        .iter()
        .map(|dir| fs::read_to_string(dir.join("server.err")).unwrap_or_default())
        .collect();
    let log_lines = match log {
        Some(log) => {
            std::thread::sleep(Duration::from_millis(300));
            log.interrupt(Duration::from_secs(10))?;
            Some(count_lines(&work.join("log.out"))?)
        }
        None => None,
    };
    for child in baseline_children.into_iter().rev() {
        child.interrupt(Duration::from_secs(20))?;
    }
    let console_lines = if args.spawn_opts.quiet {
        None
    } else {
        // The first line of each is `s> init server`.
        let mut n = 0;
        for dir in &server_dirs {
            n += count_lines(&dir.join("console.out"))?.saturating_sub(1);
        }
        Some(n)
    };

    print_ratio_table(&rows, args.runs, &other, "ops/s", 2);
    println!();
    println!("p2p-server exit: {status}; requests answered: {handled}");
    if let Some(n) = console_lines {
        println!("console lines: {n} (missing {})", handled.saturating_sub(n));
    }
    if let Some(n) = log_lines {
        println!(
            "log service lines: {n} (missing {})",
            handled.saturating_sub(n)
        );
    }
    // Only what matters: the shutdown report ("N log records sent, M dropped"), warnings, errors.
    let notable: Vec<&str> = server_err
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("dropped") || l.contains("warn") || l.contains("error")
        })
        .collect();
    println!(
        "p2p-server stderr: {} lines, {} notable (full text in {})",
        server_err.lines().count(),
        notable.len(),
        work.join("server.err").display()
    );
    for line in notable.iter().take(10) {
        println!("  {line}");
    }
    let mut problems = run_problems(&rows, &other);
    if !status.success() {
        problems.push(format!("p2p-server exited with {status}"));
    }
    for (what, lines) in [("console", console_lines), ("log service", log_lines)] {
        if let Some(n) = lines.filter(|&n| n != handled) {
            problems.push(format!(
                "{what} has {n} lines for {handled} requests answered"
            ));
        }
    }
    if !notable.is_empty() {
        problems.push(format!(
            "{} notable lines on p2p-server's stderr",
            notable.len()
        ));
    }
    verdict(problems)
}

// ---------------------------------------------------------------------------------------------
// Subcommand: log-compare

fn log_compare(args: &LogCompareArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let (ours_child, ours) = spawn_log_service(&args.spawn_opts, &work)?;
    let mut other_child = None;
    let other = match (&args.rpcgen_server, &args.other) {
        (Some(program), _) => {
            let port = free_port()?;
            let child = spawn(
                "rpcgen server",
                program,
                &[port.to_string()],
                Some(&work.join("rpcgen.out")),
                &work.join("rpcgen.err"),
            )?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_ready(addr, "rpcgen server")?;
            other_child = Some(child);
            addr
        }
        (None, Some(other)) => resolve(other)?,
        (None, None) => return Err("--rpcgen-server PROGRAM or --other HOST:PORT".into()),
    };
    println!(
        "ours: p2p-log {ours}; other: {other}; work dir {}",
        work.display()
    );
    let duration = Duration::from_secs_f64(args.seconds);
    let mut rows = Vec::new();
    for &clients in &args.clients {
        let mut pairs = Vec::new();
        for run in 0..args.runs {
            let mut b = RunResult::default();
            let mut o = RunResult::default();
            for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
                let addr = if side == 0 { other } else { ours };
                let result = match &args.c_client {
                    Some(program) => drive_log_c(program, addr, clients, args.seconds)?,
                    None => rt.block_on(drive_log(addr, clients, duration, args.window)),
                };
                if side == 0 {
                    b = result;
                } else {
                    o = result;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            println!("[{clients} clients, run {}]", run + 1);
            println!("  {}", b.line("rpcgen"));
            println!("  {}", o.line("ours"));
            println!("  ratio ours/rpcgen {:.3}", o.rate() / b.rate());
            pairs.push((b, o));
        }
        rows.push((clients, pairs));
    }
    ours_child.interrupt(Duration::from_secs(10))?;
    if let Some(child) = other_child {
        child.interrupt(Duration::from_secs(5))?;
    }
    print_ratio_table(&rows, args.runs, "rpcgen", "calls/s", 3);
    verdict(run_problems(&rows, "rpcgen"))
}

/// What makes a comparison's runs unfit to report: errors or unexpected replies on either side.
fn run_problems(rows: &[(usize, Vec<(RunResult, RunResult)>)], other: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (clients, pairs) in rows {
        for (run, pair) in pairs.iter().enumerate() {
            for (side, r) in [(other, &pair.0), ("ours", &pair.1)] {
                if let Some(problem) = r.problem() {
                    problems.push(format!(
                        "{side}, {clients} clients, run {}: {problem}",
                        run + 1
                    ));
                }
            }
        }
    }
    problems
}

/// Ends a subcommand: `Ok` when nothing made the measurement invalid, else an error listing what
/// did (after everything was printed), so that a script or CI sees a failed run.
fn verdict(problems: Vec<String>) -> Res<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("not a valid measurement: {}", problems.join("; ")).into())
    }
}

/// Prints the Markdown table of a side-by-side comparison: per client count, the medians of
/// `runs` (other, ours) pairs, the ratio's median and range, the p99 latencies (with `p99_digits`
/// decimals, in ms) and our errors.
fn print_ratio_table(
    rows: &[(usize, Vec<(RunResult, RunResult)>)],
    runs: usize,
    other: &str,
    unit: &str,
    p99_digits: usize,
) {
    println!();
    println!(
        "| clients | {other} {unit} | ours {unit} | ratio (median of {runs}) | ratio range | ours p99 | {other} p99 | ours errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (clients, pairs) in rows {
        let b: Vec<f64> = pairs.iter().map(|(b, _)| b.rate()).collect();
        let o: Vec<f64> = pairs.iter().map(|(_, o)| o.rate()).collect();
        let ratios: Vec<f64> = pairs.iter().map(|(b, o)| o.rate() / b.rate()).collect();
        let p99 = |r: &RunResult| r.latency.p99.as_secs_f64() * 1e3;
        let p99o: Vec<f64> = pairs.iter().map(|(_, o)| p99(o)).collect();
        let p99b: Vec<f64> = pairs.iter().map(|(b, _)| p99(b)).collect();
        let errors: usize = pairs.iter().map(|(_, o)| o.errors + o.unexpected).sum();
        println!(
            "| {clients} | {:.0} | {:.0} | {:.3} | {:.2}–{:.2} | {:.p99_digits$} ms | {:.p99_digits$} ms | {errors} |",
            median(&b),
            median(&o),
            median(&ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
            median(&p99o),
            median(&p99b)
        );
    }
}

/// Runs `clients` processes of the C client against `addr` at once; their calls add up, over
/// the longest of their measured times.
fn drive_log_c(program: &Path, addr: SocketAddr, clients: usize, seconds: f64) -> Res<RunResult> {
    let children = (0..clients)
        .map(|_| {
            Command::new(program)
                .args([
                    addr.ip().to_string(),
                    addr.port().to_string(),
                    seconds.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", program.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut result = RunResult::default();
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match (
            out.status.success(),
            field(&text, "calls"),
            field(&text, "secs"),
        ) {
            (true, Some(calls), Some(secs)) => {
                result.ops += calls as usize;
                result.elapsed = result.elapsed.max(Duration::from_secs_f64(secs));
            }
            _ => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| {
                    format!(
                        "C client {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                });
            }
        }
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Subcommand: scale

/// Runs `jobs` one-shot directory operations with `clients` concurrent tasks; `make(j)` builds
/// job `j`. Returns (errors, unexpected, first problem).
async fn fill(
    addr: SocketAddr,
    clients: usize,
    jobs: usize,
    make: Arc<dyn Fn(usize) -> Request + Send + Sync>,
) -> (usize, usize, Option<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut buf = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return t;
                }
                let (op, wire) = encode(&make(j));
                match directory_op(addr, op, &wire, &mut buf).await {
                    Outcome::Ok => t.ops += 1,
                    Outcome::Unexpected(r) => {
                        t.unexpected += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!("{op}: result {}", r.code()));
                        }
                    }
                    Outcome::Error(e) => t.error(e),
                }
            }
        }));
    }
    let mut errors = 0;
    let mut unexpected = 0;
    let mut first = None;
    for task in tasks {
        if let Ok(t) = task.await {
            errors += t.errors;
            unexpected += t.unexpected;
            first = first.or(t.first_error);
        }
    }
    (errors, unexpected, first)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn scale(args: &ScaleArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let store = store_url(&args.spawn_opts, &work);
    let (child, addr, pid) = match &args.server {
        Some(s) => (None, resolve(s)?, args.server_pid),
        None => {
            let (child, addr) = spawn_directory_on(&args.spawn_opts, &work, None, &store)?;
            let pid = child.pid();
            (Some(child), addr, Some(pid))
        }
    };
    let rss_now = || pid.and_then(|p| rss(Some(p)));
    let connected = args.connected.min(args.users).max(2);
    let big = args.big_user_files.min(args.publications);
    // Publications other than the big user's go round-robin to connected users 1..connected.
    let spread = connected - 1;
    let name = |i: usize| format!("scale_user_{i:06}");
    println!(
        "scale: {} users, {connected} connected, {} publications ({big} by {}), server {addr}",
        args.users,
        args.publications,
        name(0)
    );
    let r0 = rss_now();
    let mut problems = Vec::new();
    let mut step = |what: &str, started: Instant, (e, u, first): (usize, usize, Option<String>)| {
        println!(
            "  {what}: {:.1} s, errors {e}, unexpected {u}{}",
            started.elapsed().as_secs_f64(),
            first.map(|f| format!(" (first: {f})")).unwrap_or_default()
        );
        if e > 0 || u > 0 {
            problems.push(format!("{what}: {e} errors, {u} unexpected"));
        }
    };

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        args.users,
        Arc::new(move |j| sample::request(&name(j), RequestBody::Register)),
    ));
    step("REGISTER", t, r);
    let r1 = rss_now();

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        connected,
        Arc::new(move |j| sample::request(&name(j), RequestBody::Connect { port: port_for(j) })),
    ));
    step("CONNECT", t, r);
    let r2 = rss_now();

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        args.publications,
        Arc::new(move |j| {
            let (user, k) = if j < big {
                (name(0), j)
            } else {
                let r = j - big;
                (name(1 + r % spread), r / spread)
            };
            let file = shared_file(&user, k);
            sample::request(
                &user,
                RequestBody::Publish {
                    file,
                    description: description(),
                },
            )
        }),
    ));
    step("PUBLISH", t, r);
    let r3 = rss_now();

    // The listings, end to end (connect, request, whole reply read and decoded).
    let list_users = encode(&sample::request(&name(1), RequestBody::ListUsers));
    let list_content = encode(&sample::request(
        &name(1),
        RequestBody::ListContent {
            target: sample::user(&name(0)),
        },
    ));
    let list_content_wire = list_content.clone();
    let mut timings = Vec::new();
    for (label, (op, wire)) in [("LIST_USERS", list_users), ("LIST_CONTENT", list_content)] {
        let mut lat = Latencies::default();
        let mut bytes = 0;
        let mut entries = 0;
        let mut bad = 0;
        for _ in 0..args.samples {
            let mut buf = Vec::new();
            let started = Instant::now();
            let outcome = rt.block_on(directory_op(addr, op, &wire, &mut buf));
            let took = started.elapsed();
            match outcome {
                Outcome::Ok => {
                    lat.record(took);
                    bytes = buf.len();
                    entries = match Reply::decode_with(op, &buf) {
                        Ok(Some((
                            Reply::ListUsers(p2p_proto::directory::ListUsersReply::Ok(v)),
                            _,
                        ))) => v.len(),
                        Ok(Some((
                            Reply::ListContent(p2p_proto::directory::ListContentReply::Ok(v)),
                            _,
                        ))) => v.len(),
                        _ => 0,
                    };
                }
                _ => bad += 1,
            }
        }
        let s = lat.summary();
        println!(
            "  {label}: {entries} entries, {bytes} bytes, {} samples: {s}, failures {bad}",
            s.count
        );
        if bad > 0 {
            problems.push(format!("{label}: {bad} failed samples"));
        }
        timings.push((label, entries, bytes, s));
    }
    // SEARCH (PROTOCOL.md §6.2) under 16 concurrent clients: one term that
    // matches every publication, one that matches one track number per user,
    // and three terms.
    for query in ["track", "000042", "track 00004 concert"] {
        let wire = encode(&sample::request(
            &name(1),
            RequestBody::Search {
                query: query.parse().map_err(|e| format!("query {query:?}: {e}"))?,
            },
        ));
        let (mut lat, bad, results) =
            rt.block_on(search_sampling(addr, wire, 16, args.samples.max(50)));
        let s = lat.summary();
        println!(
            "  SEARCH {query:?}: {results} results, 16 clients, {} samples: {s}, failures {bad}",
            s.count
        );
        if bad > 0 {
            problems.push(format!("SEARCH {query:?}: {bad} failed samples"));
        }
    }
    let r4 = rss_now();

    if let (Some(r0), Some(r1), Some(r2), Some(r3), Some(r4)) = (r0, r1, r2, r3, r4) {
        let per_user =
            (r1.current_kib.saturating_sub(r0.current_kib)) as f64 * 1024.0 / args.users as f64;
        let per_conn =
            (r2.current_kib.saturating_sub(r1.current_kib)) as f64 * 1024.0 / connected as f64;
        let per_pub = (r3.current_kib.saturating_sub(r2.current_kib)) as f64 * 1024.0
            / args.publications.max(1) as f64;
        println!(
            "  RSS: empty {:.1} MiB, +users {:.1} MiB, +connected {:.1} MiB, +publications {:.1} MiB, after listings {:.1} MiB (peak {:.1} MiB)",
            mib(r0.current_kib),
            mib(r1.current_kib),
            mib(r2.current_kib),
            mib(r3.current_kib),
            mib(r4.current_kib),
            mib(r4.peak_kib)
        );
        println!(
            "  RSS per registered user {per_user:.0} B, per connection {per_conn:.0} B, per publication {per_pub:.0} B"
        );
    } else {
        println!("  (no RSS: pass --server-pid for a server that was not spawned)");
    }
    if let Some(child) = child {
        child.interrupt(Duration::from_secs(20))?;
        if args.spawn_opts.store != "memory" {
            // The same store again: how long until the whole directory is served.
            let started = Instant::now();
            let (child, addr) = spawn_directory_on(&args.spawn_opts, &work, None, &store)?;
            let ready = started.elapsed();
            let mut buf = Vec::new();
            let (op, wire) = &list_content_wire;
            let outcome = rt.block_on(directory_op(addr, *op, wire, &mut buf));
            let entries = match (outcome, Reply::decode_with(*op, &buf)) {
                (
                    Outcome::Ok,
                    Ok(Some((
                        Reply::ListContent(p2p_proto::directory::ListContentReply::Ok(v)),
                        _,
                    ))),
                ) => v.len(),
                _ => 0,
            };
            let after = rss(Some(child.pid()));
            println!(
                "  restart on {store}: serving after {:.2} s; LIST_CONTENT then lists {entries} entries{}",
                ready.as_secs_f64(),
                match (after, r0) {
                    (Some(a), Some(r0)) => format!(
                        "; RSS {:.1} MiB, {:.0} B per publication over the empty server",
                        mib(a.current_kib),
                        (a.current_kib.saturating_sub(r0.current_kib)) as f64 * 1024.0
                            / args.publications.max(1) as f64
                    ),
                    _ => String::new(),
                }
            );
            if entries != big {
                problems.push(format!(
                    "after the restart LIST_CONTENT listed {entries} entries, not {big}"
                ));
            }
            child.interrupt(Duration::from_secs(20))?;
        }
    }
    verdict(problems)
}

/// `clients` tasks each send `per_client` copies of one SEARCH; latencies of the whole
/// exchange, failures, and the result count of the last reply.
async fn search_sampling(
    addr: SocketAddr,
    (op, wire): (OpCode, Vec<u8>),
    clients: usize,
    per_client: usize,
) -> (Latencies, usize, usize) {
    let wire = Arc::new(wire);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::with_capacity(per_client);
            let (mut bad, mut results) = (0, 0);
            let mut buf = Vec::new();
            for _ in 0..per_client {
                buf.clear();
                let started = Instant::now();
                match directory_op(addr, op, &wire, &mut buf).await {
                    Outcome::Ok => {
                        lat.record(started.elapsed());
                        if let Ok(Some((
                            Reply::Search(p2p_proto::directory::SearchReply::Ok(hits)),
                            _,
                        ))) = Reply::decode_with(op, &buf)
                        {
                            results = hits.len();
                        }
                    }
                    _ => bad += 1,
                }
            }
            (lat, bad, results)
        }));
    }
    let mut all = Latencies::with_capacity(clients * per_client);
    let (mut bad, mut results) = (0, 0);
    for task in tasks {
        if let Ok((lat, b, r)) = task.await {
            all.merge(lat);
            bad += b;
            results = r;
        } else {
            bad += per_client;
        }
    }
    (all, bad, results)
}

// ---------------------------------------------------------------------------------------------
// Subcommand: transfer

fn parse_size(s: &str) -> Res<u64> {
    let s = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    Ok(num.trim().parse::<u64>()? * mult)
}

/// A serving child: prints `listening ADDR`, serves until its stdin closes, then prints
/// `vmhwm_kib N`.
struct ServingChild {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl ServingChild {
    fn start(args: &[String]) -> Res<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?
            .parse()?;
        Ok(Self {
            child,
            stdout,
            addr,
        })
    }

    /// Closes stdin and returns the server's peak RSS in KiB.
    fn finish(mut self) -> Res<u64> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest)?;
        self.child.wait()?;
        field(&rest, "vmhwm_kib")
            .map(|v| v as u64)
            .ok_or_else(|| format!("server printed no vmhwm_kib: {rest:?}").into())
    }
}

fn field(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

/// Runs a fetching child and returns (seconds, peak RSS KiB).
fn fetch_child(args: &[String]) -> Res<(f64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("fetch failed ({}): {text}", out.status).into());
    }
    let secs = field(&text, "secs").ok_or("no secs")?;
    let hwm = field(&text, "vmhwm_kib").ok_or("no vmhwm_kib")? as u64;
    Ok((secs, hwm))
}

#[derive(Debug, Default, Clone, Copy)]
struct TransferRun {
    secs: f64,
    server_hwm: u64,
    client_hwm: u64,
}

fn transfer(args: &TransferArgs) -> Res<()> {
    let size = parse_size(&args.size)?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("p2p-load.").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let src = dir.join("src.bin");
    let dest = dir.join("dest.bin");
    let t = Instant::now();
    baseline::make_file(&src, size)?;
    println!(
        "transfer: {} bytes in {} (created in {:.1} s)",
        size,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let src_s = src.display().to_string();
    let dest_s = dest.display().to_string();
    let name = "/shared/big.bin".to_owned();
    let (digest, _, _) = DigestCache::in_memory().digest_of(&src)?;

    let plain = |zero_copy: bool| -> Res<TransferRun> {
        let mut serve = vec!["serve-plain".into(), "--file".into(), src_s.clone()];
        let mut fetch = vec![
            "fetch-plain".to_owned(),
            "--from".into(),
            String::new(),
            "--dest".into(),
            dest_s.clone(),
        ];
        if zero_copy {
            serve.push("--zero-copy".into());
            fetch.push("--zero-copy".into());
        }
        let server = ServingChild::start(&serve)?;
        fetch[2] = server.addr.to_string();
        let (secs, client_hwm) = fetch_child(&fetch)?;
        let server_hwm = server.finish()?;
        check_size(&dest, size)?;
        Ok(TransferRun {
            secs,
            server_hwm,
            client_hwm,
        })
    };
    let ours = |mode: &str, resume_at: Option<(u64, bool)>| -> Res<TransferRun> {
        let server = ServingChild::start(&[
            "serve-file".into(),
            "--file".into(),
            src_s.clone(),
            "--name".into(),
            name.clone(),
        ])?;
        if let Some((at, with_leaves)) = resume_at {
            // What an interrupted GET_FILE leaves: the first `at` bytes and their description,
            // with the chaining value of each whole MiB (or without: a part from elsewhere).
            let part = dir.join(".dest.bin.part");
            let mut from = File::open(&src)?;
            io::copy(&mut (&mut from).take(at), &mut File::create(&part)?)?;
            let mut meta = format!(
                "# p2p-peer part v1\n{}\n{name}\n{size}\n{digest}\n",
                server.addr
            );
            if with_leaves {
                use blake3::hazmat::HasherExt;
                let prefix = fs::read(&part)?;
                for (i, block) in prefix.chunks(1 << 20).enumerate() {
                    if block.len() == 1 << 20 {
                        let mut hasher = blake3::Hasher::new();
                        hasher.set_input_offset(i as u64 * (1 << 20));
                        hasher.update(block);
                        for b in hasher.finalize_non_root() {
                            let _ = write!(meta, "{b:02x}");
                        }
                        meta.push('\n');
                    }
                }
            }
            fs::write(dir.join(".dest.bin.part.meta"), meta)?;
        }
        let (secs, client_hwm) = fetch_child(&[
            "fetch".into(),
            "--from".into(),
            server.addr.to_string(),
            "--name".into(),
            name.clone(),
            "--dest".into(),
            dest_s.clone(),
            "--mode".into(),
            mode.into(),
        ])?;
        let server_hwm = server.finish()?;
        check_size(&dest, size)?;
        Ok(TransferRun {
            secs,
            server_hwm,
            client_hwm,
        })
    };

    let gbps = |secs: f64| size as f64 / secs / 1e9;
    const LABELS: [&str; 8] = [
        "plain 1 MiB read/write",
        "plain sendfile + splice",
        "ours GET_FILE (no digest: the path before §6.4)",
        "ours GET_FILE_FROM, read + hash + write as it arrives",
        "ours GET_FILE_FROM, splice + hash following the writes (default)",
        "ours GET_FILE_FROM, splice then hash",
        "ours GET_FILE_FROM resumed at 90 % (leaves recorded, as a broken transfer leaves it)",
        "ours GET_FILE_FROM resumed at 90 % (no leaves: the prefix is hashed again)",
    ];
    const RESUME: usize = 6;
    let resume_at = size / 10 * 9;
    let mut rows: Vec<[TransferRun; 8]> = Vec::new();
    let mut hash_secs = Vec::new();
    for run in 0..args.runs {
        // Hashing at PUBLISH: what the serving peer does once per file.
        let t = Instant::now();
        let (hashed, _, _) = DigestCache::in_memory().digest_of(&src)?;
        hash_secs.push(t.elapsed().as_secs_f64());
        if hashed != digest {
            return Err("the digest changed between runs".into());
        }
        let mut r = [TransferRun::default(); 8];
        let order: &[usize] = if run % 2 == 0 {
            &[0, 1, 2, 3, 4, 5, 6, 7]
        } else {
            &[7, 6, 5, 4, 3, 2, 1, 0]
        };
        for &side in order {
            let _ = fs::remove_file(&dest);
            r[side] = match side {
                0 => plain(false)?,
                1 => plain(true)?,
                2 => ours("classic", None)?,
                3 => ours("as-it-arrives", None)?,
                4 => ours("follow", None)?,
                5 => ours("after", None)?,
                6 => ours("follow", Some((resume_at, true)))?,
                _ => ours("follow", Some((resume_at, false)))?,
            };
        }
        let _ = fs::remove_file(&dest);
        println!(
            "[run {}] GB/s: read/write {:.2} | sendfile+splice {:.2} | GET_FILE {:.2} | as-it-arrives {:.2} | follow {:.2} | after {:.2} | resume 90 % {:.3} s | hash {:.2} GB/s | follow/GET_FILE {:.3} | resume/whole {:.3}",
            run + 1,
            gbps(r[0].secs),
            gbps(r[1].secs),
            gbps(r[2].secs),
            gbps(r[3].secs),
            gbps(r[4].secs),
            gbps(r[5].secs),
            r[RESUME].secs,
            gbps(hash_secs[run]),
            r[2].secs / r[4].secs,
            r[RESUME].secs / r[4].secs,
        );
        rows.push(r);
    }
    let med =
        |f: &dyn Fn(&[TransferRun; 8]) -> f64| median(&rows.iter().map(f).collect::<Vec<_>>());
    let max = |f: &dyn Fn(&[TransferRun; 8]) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    println!();
    println!(
        "| {} bytes, loopback | GB/s (median of {}) | GET_FILE time / its time (median of per-run ratios) | peak RSS sender (max) | peak RSS receiver (max) |",
        size, args.runs
    );
    println!("|---|---|---|---|---|");
    for (i, label) in LABELS.iter().enumerate() {
        let rate = if i >= RESUME {
            format!("{:.3} s", med(&|r| r[i].secs))
        } else {
            format!("{:.2}", med(&|r| gbps(r[i].secs)))
        };
        println!(
            "| {label} | {rate} | {:.3} | {:.1} MiB | {:.1} MiB |",
            med(&|r| r[2].secs / r[i].secs),
            max(&|r| mib(r[i].server_hwm)),
            max(&|r| mib(r[i].client_hwm)),
        );
    }
    println!();
    println!(
        "verified / GET_FILE throughput: {:.3} (as it arrives), {:.3} (following the splice), {:.3} (splice then hash); resumed 10 % / whole verified transfer: {:.3} (leaves recorded), {:.3} (no leaves)",
        med(&|r| r[2].secs / r[3].secs),
        med(&|r| r[2].secs / r[4].secs),
        med(&|r| r[2].secs / r[5].secs),
        med(&|r| r[RESUME].secs / r[4].secs),
        med(&|r| r[RESUME + 1].secs / r[4].secs),
    );
    println!(
        "hashing at PUBLISH: {:.2} GB/s, {:.3} s for this file (median of {})",
        size as f64 / median(&hash_secs) / 1e9,
        median(&hash_secs),
        hash_secs.len()
    );
    let _ = fs::remove_file(&src);
    Ok(())
}

fn check_size(path: &Path, size: u64) -> Res<()> {
    let got = fs::metadata(path)?.len();
    if got == size {
        Ok(())
    } else {
        Err(format!("{} has {got} bytes, expected {size}", path.display()).into())
    }
}

fn wait_stdin_closed() {
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
}

fn print_hwm() {
    let hwm = rss(None).map_or(0, |r| r.peak_kib);
    println!("vmhwm_kib {hwm}");
    let _ = io::stdout().flush();
}

fn serve_file(file: &Path, name: &str) -> Res<()> {
    let rt = runtime()?;
    let library = Library::new();
    let path = fs::canonicalize(file)?;
    // As PUBLISH does: the digest is known before the first request.
    library.digests().digest_of(&path)?;
    library.insert(FileName::new(name)?, path);
    let server = rt.block_on(async {
        let mut config = FileServerConfig::default();
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        FileServer::start(config, library).await
    })?;
    println!("listening {}", server.local_addr());
    io::stdout().flush()?;
    wait_stdin_closed();
    rt.block_on(server.stop());
    print_hwm();
    Ok(())
}

fn serve_plain(file: &Path, zero_copy: bool) -> Res<()> {
    let listener = StdListener::bind(("127.0.0.1", 0))?;
    println!("listening {}", listener.local_addr()?);
    io::stdout().flush()?;
    let file = file.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(mut sock) => {
                    let sent = if zero_copy {
                        baseline::send_file_zero_copy(&file, &mut sock)
                    } else {
                        baseline::send_file_plain(&file, &mut sock)
                    };
                    if let Err(e) = sent {
                        eprintln!("serve-plain: {e}");
                    }
                }
                Err(e) => eprintln!("serve-plain: accept: {e}"),
            }
        }
    });
    wait_stdin_closed();
    print_hwm();
    Ok(())
}

fn fetch(from: SocketAddr, name: &str, dest: &Path, mode: FetchMode) -> Res<()> {
    let rt = runtime()?;
    let name = FileName::new(name)?;
    let mut options = DownloadOptions::default();
    options.progress = false;
    options.max_attempts = 1;
    match mode {
        FetchMode::Classic => options.protocol = TransferProtocol::Classic,
        FetchMode::AsItArrives => options.hashing = BodyHashing::AsItArrives,
        FetchMode::Follow => options.hashing = BodyHashing::FollowSplice,
        FetchMode::After => options.hashing = BodyHashing::AfterReceiving,
    }
    let started = Instant::now();
    let got = rt.block_on(download(from, &name, dest, &options))?;
    let secs = started.elapsed().as_secs_f64();
    println!("bytes {got} secs {secs:.6}");
    print_hwm();
    Ok(())
}

fn fetch_plain(from: SocketAddr, dest: &Path, zero_copy: bool) -> Res<()> {
    let started = Instant::now();
    let mut sock = StdStream::connect(from)?;
    let got = if zero_copy {
        baseline::receive_file_zero_copy(&mut sock, dest)?
    } else {
        baseline::receive_file_plain(&mut sock, dest)?
    };
    let secs = started.elapsed().as_secs_f64();
    println!("bytes {got} secs {secs:.6}");
    print_hwm();
    Ok(())
}

fn serve_baseline(port: u16, threads: usize) -> Res<()> {
    let server = MinimalServer::start(SocketAddr::from(([127, 0, 0, 1], port)), threads)?;
    eprintln!("baseline server on {}", server.addr);
    loop {
        std::thread::park();
    }
}
