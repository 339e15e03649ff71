//! `p2p-server`: the directory server.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use p2p_core::console::InitLine;
use p2p_core::directory::{self, Handler, LineWriter, ServerConfig, StoreUrl};
use p2p_core::log::{LogShipper, LogShipperConfig, LogTarget};

/// The directory server: peers register, connect, publish and list here.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TCP port to listen on (0 picks a free one).
    #[arg(short, long)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Do not print a line per operation.
    #[arg(short, long)]
    quiet: bool,
    /// Log service to send a record of every operation to: HOST or HOST:PORT
    /// (without PORT, rpcbind on HOST says where it is).
    #[arg(long = "log-rpc", env = "LOG_RPC_IP", value_name = "HOST[:PORT]")]
    log_rpc: Option<LogTarget>,
    /// Connections served at once; more wait in the backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client has to send its request.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Threads serving requests. One serves tens of thousands of requests a
    /// second and batches the kernel's work best; add threads when that one
    /// keeps a CPU busy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Where the directory keeps its state: sqlite:PATH (durable, the
    /// default), postgres://USER@HOST:PORT/DB (durable, shared by several
    /// servers) or memory: (lost when the server stops).
    #[arg(long, env = "P2P_STORE", value_name = "URL", default_value = StoreUrl::DEFAULT)]
    store: StoreUrl,
}

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail("p2p-server", e),
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    // The store first: a directory that cannot be read must not be replaced
    // by an empty one, and nothing is announced before it is ready.
    let store = match args.store.open().await {
        Ok(store) => store,
        Err(e) => return p2p_bins::fail("p2p-server", format!("store {}: {e}", args.store)),
    };
    eprintln!("p2p-server: store: {}", store.describe());
    let listener = match directory::bind(SocketAddr::new(args.bind, args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            return p2p_bins::fail(
                "p2p-server",
                format!("cannot listen on {}:{}: {e}", args.bind, args.port),
            );
        }
    };
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return p2p_bins::fail("p2p-server", e),
    };
    let (console, console_thread) = LineWriter::spawn(std::io::stdout());
    console.line(InitLine(local));
    // With --quiet the writer is dropped here, not shadowed: the console thread
    // ends only once every writer is gone.
    let console = if args.quiet {
        drop(console);
        LineWriter::disabled()
    } else {
        console
    };
    let log = args
        .log_rpc
        .map(|target| LogShipper::spawn(LogShipperConfig::new(target)));
    let handler = Arc::new(Handler::new(store, console, log));
    let mut config = ServerConfig::default();
    config.max_connections = args.max_connections;
    config.read_timeout = Duration::from_secs(args.read_timeout);
    let served = directory::run(
        listener,
        handler.clone(),
        config,
        p2p_bins::shutdown_signal(),
    )
    .await;
    // Every connection task has ended: this is the last reference.
    let log = Arc::try_unwrap(handler).ok().and_then(|mut h| h.take_log());
    if let Some(log) = log {
        let stats = log.shutdown().await;
        if stats.dropped > 0 {
            eprintln!(
                "p2p-server: {} log records sent, {} dropped",
                stats.sent, stats.dropped
            );
        }
    }
    console_thread.join();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => p2p_bins::fail("p2p-server", e),
    }
}
