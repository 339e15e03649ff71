//! `p2p-peer`: the interactive peer shell.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use p2p_core::peer::{PeerConfig, run_shell};

/// A peer: registers with the directory, publishes files, serves them to other
/// peers and downloads theirs. Reads commands from stdin (`c> ` on a terminal).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Directory server host.
    #[arg(short, long)]
    server: String,
    /// Directory server port.
    #[arg(short, long)]
    port: u16,
    /// URL of the datetime service.
    #[arg(long, env = "DATETIME_URL", default_value = p2p_core::datetime::DEFAULT_DATETIME_URL)]
    datetime_url: String,
    /// Address the transfer listener binds to.
    #[arg(long, default_value = "0.0.0.0")]
    listen_addr: IpAddr,
    /// Port of the transfer listener (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    listen_port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing("warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail("p2p-peer", e),
    };
    let mut config = PeerConfig::new(args.server, args.port);
    config.datetime_url = args.datetime_url;
    config.listen = SocketAddr::new(args.listen_addr, args.listen_port);
    match runtime.block_on(run_shell(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => p2p_bins::fail("p2p-peer", e),
    }
}
