//! `p2p-log`: the log service (ONC RPC `LOG_PROG` 0x20000099 version 1 over TCP and UDP).
//!
//! Prints one line per SENDLOG call on standard output (or appends to `--output FILE`), registers
//! with the local rpcbind unless `--no-rpcbind`, and exits 0 on SIGINT or SIGTERM after removing
//! its registration.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use p2p_bins::cli::log::{Args, NAME};
use p2p_core::log::{LogOutput, LogService, LogServiceConfig};
use p2p_core::monitor::{self, Monitor};

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing();
    // One thread: a log service's work per call is a few microseconds around two system calls,
    // and a multi-thread runtime's bookkeeping per wake-up (work-stealing state, clock reads) made a
    // sequential client 1-3 % slower than against the rpcgen C server; pipelined calls from the
    // directory's shipper reach ~1M calls/s on one thread (docs/PERFORMANCE.md, goal 3).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail(NAME, format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => p2p_bins::fail(NAME, message),
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Signal handlers first: a SIGTERM during start-up must still unregister cleanly.
    let shutdown = p2p_bins::shutdown_signal(NAME);
    // Plain write(2)s, one per batch of lines, on the output file or a duplicate of fd 1.
    let output = match &args.output {
        Some(path) => LogOutput::file(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        ),
        None => LogOutput::stdout().map_err(|e| format!("cannot use standard output: {e}"))?,
    };
    let mut config = LogServiceConfig::with_bind(SocketAddr::new(args.bind, args.port));
    config.register_with_rpcbind = !args.no_rpcbind;
    config.max_connections = args.max_connections;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.write_timeout = Duration::from_secs(args.write_timeout);
    config.busy_poll = Duration::from_micros(args.busy_poll);
    // The metrics recorder before the service records anything.
    let recorder = args
        .http
        .map(|_| monitor::install_recorder())
        .transpose()
        .map_err(|e| e.to_string())?;
    let service = LogService::bind(config).await.map_err(|e| e.to_string())?;
    eprintln!(
        "p2p-log: listening on tcp {} and udp {} (LOG_PROG 0x20000099 version 1)",
        service.tcp_addr(),
        service.udp_addr()
    );
    // After the line above, which scripts read for the service's port.
    let http = match (args.http, recorder) {
        (Some(addr), Some(recorder)) => {
            Some(p2p_bins::http::start(NAME, addr, Monitor::new(recorder)).await?)
        }
        _ => None,
    };
    service
        .run_to(output, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(http) = http {
        http.abort();
    }
    eprintln!("p2p-log: stopped");
    Ok(())
}
