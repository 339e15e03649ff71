//! `p2p-datetime`: the datetime service of PROTOCOL.md §3.
//!
//! Answers `GET /datetime` with the local time as `DD/MM/YYYY HH:MM:SS`.
//! Listens on 127.0.0.1:5000 unless told otherwise; SIGINT or SIGTERM stops
//! it (exit 0). Request logs go to stderr, filtered by `RUST_LOG`
//! (default `info`).

use std::process::ExitCode;

use clap::Parser;
use p2p_core::datetime::{self, DATETIME_PATH, DEFAULT_BIND};
use tokio::net::TcpListener;

/// The datetime service: GET /datetime answers the local time as DD/MM/YYYY HH:MM:SS.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (HOST:PORT).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_BIND)]
    bind: String,
    /// Listen on 127.0.0.1:PORT (shortcut for --bind 127.0.0.1:PORT; 0 picks a free port).
    #[arg(short, long, value_name = "PORT", conflicts_with = "bind")]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing("info");

    let bind = match args.port {
        Some(port) => format!("127.0.0.1:{port}"),
        None => args.bind,
    };
    let listener = match TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {bind}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("datetime service listening on http://{addr}{DATETIME_PATH}"),
        Err(_) => eprintln!("datetime service listening on http://{bind}{DATETIME_PATH}"),
    }

    match datetime::serve(listener, p2p_bins::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: datetime service failed: {error}");
            ExitCode::FAILURE
        }
    }
}
