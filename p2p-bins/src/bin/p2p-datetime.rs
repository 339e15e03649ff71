//! `p2p-datetime`: the datetime service of PROTOCOL.md §3.
//!
//! Answers `GET /datetime` with the local time as `DD/MM/YYYY HH:MM:SS`.
//! Listens on 127.0.0.1:5000 unless told otherwise; SIGINT or SIGTERM stops
//! it (exit 0). Request logs go to stderr, filtered by `RUST_LOG`
//! (default `info`).

use std::process::ExitCode;

use clap::Parser;
use p2p_bins::cli::datetime::{Args, NAME};
use p2p_core::datetime::{self, DATETIME_PATH};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing();

    let bind = match args.port {
        Some(port) => format!("127.0.0.1:{port}"),
        None => args.bind,
    };
    let listener = match TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(error) => return p2p_bins::fail(NAME, format!("cannot listen on {bind}: {error}")),
    };
    // Signals are watched before the line that says the service is ready.
    let shutdown = p2p_bins::shutdown_signal(NAME);
    match listener.local_addr() {
        Ok(addr) => eprintln!("{NAME}: listening on http://{addr}{DATETIME_PATH}"),
        Err(_) => eprintln!("{NAME}: listening on http://{bind}{DATETIME_PATH}"),
    }

    match datetime::serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => p2p_bins::fail(NAME, format!("datetime service failed: {error}")),
    }
}
