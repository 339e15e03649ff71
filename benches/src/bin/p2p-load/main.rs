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

mod clients;
mod compare;
mod log_client;
mod log_compare;
mod results;
mod run;
mod scale;
mod spawned;
mod transfer;

use clients::{
    Mix, OP_TIMEOUT, Outcome, description, directory_op, drive_directory, encode, port_for,
    shared_file,
};
use compare::compare;
use log_client::drive_log;
use log_compare::{log_compare, print_ratio_table, run_problems, verdict};
use results::{RunResult, Tally};
use run::run_one;
use scale::{mib, scale};
use spawned::{
    count_lines, free_port, run_prefix, spawn, spawn_baseline, spawn_directory, spawn_directory_on,
    spawn_log_service, store_url, store_url_shown, wait_ready, work_dir,
};
use transfer::{fetch, fetch_plain, field, serve_baseline, serve_file, serve_plain, transfer};

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
