//! `p2p-log`'s command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// The program's name: in `--help`, `--version` and its error messages.
pub const NAME: &str = "p2p-log";

/// The log service of the P2P system: prints one line per operation the directory server reports.
#[derive(Debug, Parser)]
#[command(name = NAME, version)]
pub struct Args {
    /// TCP and UDP port to listen on (0 = any free port; rpcbind tells clients which).
    #[arg(short, long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(short, long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
    /// Append the lines to FILE (created if needed) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not register with the local rpcbind.
    #[arg(long)]
    pub no_rpcbind: bool,
    /// TCP connections served at once (at least 1); more wait in the backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = super::at_least_one)]
    pub max_connections: usize,
    /// Seconds a TCP connection may go without completing a call before it is closed (it is
    /// closed between one and two times this after its last call; at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = super::timeout_secs)]
    pub idle_timeout: u64,
    /// Seconds a TCP client may take none of its replies before it is disconnected (at least 1;
    /// a client that reads slowly is not).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = super::timeout_secs)]
    pub write_timeout: u64,
    /// Microseconds a TCP connection that is the only one keeps polling its socket after
    /// answering, before it sleeps (0 = never): a client making one call after another is
    /// answered without waking a sleeping thread. Polling stops for a client that calls less
    /// often than that and starts again when it calls back to back.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 50)]
    pub busy_poll: u64,
    /// Serve Prometheus metrics at /metrics on ADDR, e.g. 127.0.0.1:9101
    /// (port 0 picks a free one). Off by default; bind it to loopback or a
    /// trusted network.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
}
