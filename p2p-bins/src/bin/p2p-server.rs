//! `p2p-server`: the directory server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use p2p_bins::cli::server::{Args, NAME};
use p2p_core::console::InitLine;
use p2p_core::directory::{self, Handler, LineWriter, ServerConfig};
use p2p_core::log::{LogShipper, LogShipperConfig};
use p2p_core::monitor::{self, Monitor};

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail(NAME, e),
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    // The metrics recorder before anything that records (the store too).
    let recorder = match args.http.map(|_| monitor::install_recorder()).transpose() {
        Ok(recorder) => recorder,
        Err(e) => return p2p_bins::fail(NAME, e),
    };
    // The store first: a directory that cannot be read must not be replaced
    // by an empty one, and nothing is announced before it is ready.
    let store = match args.store.open().await {
        Ok(store) => store,
        Err(e) => return p2p_bins::fail(NAME, format!("store {}: {e}", args.store)),
    };
    eprintln!("p2p-server: store: {}", store.describe());
    let http = match (args.http, recorder) {
        (Some(addr), Some(recorder)) => {
            let monitor = Monitor::new(recorder).with_directory(store.clone());
            match p2p_bins::http::start(NAME, addr, monitor).await {
                Ok(task) => Some(task),
                Err(e) => return p2p_bins::fail(NAME, e),
            }
        }
        _ => None,
    };
    let listener = match directory::bind(SocketAddr::new(args.bind, args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            return p2p_bins::fail(
                NAME,
                format!("cannot listen on {}:{}: {e}", args.bind, args.port),
            );
        }
    };
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return p2p_bins::fail(NAME, e),
    };
    let (console, console_thread) = LineWriter::spawn(std::io::stdout());
    // Signals are watched before the init line says the server is ready.
    let shutdown = p2p_bins::shutdown_signal(NAME);
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
    let handler = Handler::new(store, console, log).with_search_limit(args.search_limit);
    let mut config = ServerConfig::default();
    config.max_connections = args.max_connections;
    config.read_timeout = Duration::from_secs(args.read_timeout);
    config.expire_after = Some(Duration::from_secs(args.expire_after));
    let served = directory::run_service(listener, handler, config, shutdown).await;
    if let Ok(Some(stats)) = &served
        && stats.dropped + stats.refused + stats.undelivered > 0
    {
        eprintln!(
            "p2p-server: {} log records sent ({} calls sent again after a reconnect), \
             {} dropped (queue full), {} refused by the log service, {} undelivered at exit",
            stats.sent, stats.resent, stats.dropped, stats.refused, stats.undelivered
        );
    }
    console_thread.join();
    if let Some(http) = http {
        http.abort();
    }
    match served {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => p2p_bins::fail(NAME, e),
    }
}
