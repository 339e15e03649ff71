//! `p2p-log`: the log service (ONC RPC `LOG_PROG` 0x20000099 version 1 over TCP and UDP).
//!
//! Prints one line per SENDLOG call on standard output (or appends to `--output FILE`), registers
//! with the local rpcbind unless `--no-rpcbind`, and exits 0 on SIGINT or SIGTERM after removing
//! its registration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use p2p_core::log::{LogOutput, LogService, LogServiceConfig};
use tokio::signal::unix::{SignalKind, signal};

/// The log service of the P2P system: prints one line per operation the directory server reports.
#[derive(Debug, Parser)]
#[command(name = "p2p-log", version)]
struct Args {
    /// TCP and UDP port to listen on (0 = any free port; rpcbind tells clients which).
    #[arg(short, long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(short, long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Append the lines to FILE (created if needed) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not register with the local rpcbind.
    #[arg(long)]
    no_rpcbind: bool,
    /// TCP connections served at once; more wait in the backlog.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds a TCP connection may go without completing a call before it is closed (it is
    /// closed between one and two times this after its last call).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds a TCP client has to read its replies before it is disconnected.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout: u64,
    /// Microseconds a TCP connection that is the only one keeps polling its socket after
    /// answering, before it sleeps (0 = never): a client making one call after another is
    /// answered without waking a sleeping thread. Polling stops for a client that calls less
    /// often than that and starts again when it calls back to back.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 50)]
    busy_poll: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing("info");
    // One thread: a log service's work per call is a few microseconds around two system calls,
    // and a multi-thread runtime's bookkeeping per wake-up (work-stealing state, clock reads) made a
    // sequential client 1-3 % slower than against the rpcgen C server; pipelined calls from the
    // directory's shipper reach ~1M calls/s on one thread (docs/PERFORMANCE.md, goal 3).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail("p2p-log", format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => p2p_bins::fail("p2p-log", message),
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Signal handlers first: a SIGTERM during start-up must still unregister cleanly.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
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
    config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.write_timeout = Duration::from_secs(args.write_timeout);
    config.busy_poll = Duration::from_micros(args.busy_poll);
    let service = LogService::bind(config).await.map_err(|e| e.to_string())?;
    eprintln!(
        "p2p-log: listening on tcp {} and udp {} (LOG_PROG 0x20000099 version 1)",
        service.tcp_addr(),
        service.udp_addr()
    );
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    service
        .run_to(output, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("p2p-log: stopped");
    Ok(())
}
