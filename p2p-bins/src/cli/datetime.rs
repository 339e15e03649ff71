//! `p2p-datetime`'s command line.

use clap::Parser;
use p2p_core::datetime::DEFAULT_BIND;

/// The program's name: in `--help`, `--version` and its error messages.
pub const NAME: &str = "p2p-datetime";

/// The datetime service: GET /datetime answers the local time as DD/MM/YYYY HH:MM:SS.
#[derive(Debug, Parser)]
#[command(name = NAME, version)]
pub struct Args {
    /// Address to listen on (HOST:PORT).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_BIND, value_parser = super::host_port)]
    pub bind: String,
    /// Listen on 127.0.0.1:PORT (shortcut for --bind 127.0.0.1:PORT; 0 picks a free port).
    #[arg(short, long, value_name = "PORT", conflicts_with = "bind")]
    pub port: Option<u16>,
}
