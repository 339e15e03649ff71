//! `p2p-server`'s command line.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use p2p_core::directory::StoreUrl;
use p2p_core::log::LogTarget;

/// The program's name: in `--help`, `--version` and its error messages.
pub const NAME: &str = "p2p-server";

/// The directory server: peers register, connect, publish and list here.
#[derive(Debug, Parser)]
#[command(name = NAME, version)]
pub struct Args {
    /// TCP port to listen on (0 picks a free one).
    #[arg(short, long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Do not print a line per operation.
    #[arg(short, long)]
    pub quiet: bool,
    /// Log service to send a record of every operation to: HOST or HOST:PORT
    /// (without PORT, rpcbind on HOST says where it is).
    #[arg(long = "log-rpc", env = "LOG_RPC_IP", value_name = "HOST[:PORT]")]
    pub log_rpc: Option<LogTarget>,
    /// Connections served at once (at least 1); more wait in the backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = super::at_least_one)]
    pub max_connections: usize,
    /// Seconds a client has to send its request (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = super::timeout_secs)]
    pub read_timeout: u64,
    /// Threads serving requests. One serves tens of thousands of requests a
    /// second and batches the kernel's work best; add threads when that one
    /// keeps a CPU busy.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Where the directory keeps its state: sqlite:PATH (durable, the
    /// default), postgres://USER@HOST:PORT/DB (durable, shared by several
    /// servers) or memory: (lost when the server stops).
    #[arg(long, env = "P2P_STORE", value_name = "URL", default_value = StoreUrl::DEFAULT)]
    pub store: StoreUrl,
    /// Serve Prometheus metrics at /metrics and the status page at / on
    /// ADDR, e.g. 127.0.0.1:9100 (port 0 picks a free one). Off by default;
    /// bind it to loopback or a trusted network.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Most results of one SEARCH (at least 1).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::at_least_one)]
    pub search_limit: usize,
    /// Seconds after its last PING at which a connected peer that pings is
    /// disconnected (at least 1). Peers that never ping (classic ones) never
    /// expire.
    #[arg(long, value_name = "SECS", default_value_t = 90, value_parser = super::timeout_secs)]
    pub expire_after: u64,
}
