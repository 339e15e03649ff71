//! `p2p-peer`: the interactive peer shell.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use p2p_bins::cli::peer::{Args, NAME};
use p2p_core::peer::{PeerConfig, run_shell};

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_bins::init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return p2p_bins::fail(NAME, e),
    };
    let mut config = PeerConfig::new(args.server, args.port);
    config.datetime_url = args.datetime_url;
    config.listen = SocketAddr::new(args.listen_addr, args.listen_port);
    config.classic = args.classic;
    config.ping_interval = std::time::Duration::from_secs(args.ping_interval);
    config.congestion = args.congestion;
    if let Some(dir) = args.state_dir {
        config.state_dir = Some(dir);
    }
    let outcome = runtime.block_on(async {
        // Watched before the first prompt, so no signal is missed.
        let signals = p2p_bins::shell_signals(NAME);
        run_shell(config, signals).await
    });
    match outcome {
        // Piped input: 1 when any command failed (docs/OPERATING.md).
        Ok(exit) if exit.failure() => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => p2p_bins::fail(NAME, e),
    }
}
