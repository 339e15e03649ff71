//! `p2p-peer`'s command line.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use clap::builder::NonEmptyStringValueParser;

/// The program's name: in `--help`, `--version` and its error messages.
pub const NAME: &str = "p2p-peer";

/// A peer: registers with the directory, publishes files, serves them to other
/// peers and downloads theirs. Reads commands from stdin (`c> ` on a terminal).
#[derive(Debug, Parser)]
#[command(name = NAME, version, after_long_help = long_help())]
pub struct Args {
    /// Directory server host.
    #[arg(short, long, value_name = "HOST", value_parser = NonEmptyStringValueParser::new())]
    pub server: String,
    /// Directory server port.
    #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// URL of the datetime service (http:// only).
    #[arg(long, env = "DATETIME_URL", value_name = "URL", default_value = p2p_core::datetime::DEFAULT_DATETIME_URL, value_parser = super::datetime_url)]
    pub datetime_url: String,
    /// Address the transfer listener binds to.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub listen_addr: IpAddr,
    /// Port of the transfer listener (0 picks a free one).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub listen_port: u16,
    /// Send only the classic operations (no CAPABILITIES, SEARCH, PING or
    /// GET_USER_INFO): for classic servers that crash on an unknown one.
    #[arg(long)]
    pub classic: bool,
    /// Seconds between PINGs while connected to a server that lists PING
    /// (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = super::timeout_secs)]
    pub ping_interval: u64,
    /// Directory of the peer's state (what each user published, digests,
    /// shell history) [default: $XDG_STATE_HOME/p2p-peer, else
    /// ~/.local/state/p2p-peer].
    #[arg(long, env = "P2P_STATE_DIR", value_name = "DIR", value_parser = clap::builder::PathBufValueParser::new())]
    pub state_dir: Option<PathBuf>,
    /// TCP congestion control for the transfers this peer serves, e.g. `bbr`
    /// (Linux; one of /proc/sys/net/ipv4/tcp_available_congestion_control)
    /// [default: the system's]. A name the kernel refuses is said once and
    /// the system's is used.
    #[arg(long, value_name = "NAME", value_parser = congestion_name)]
    pub congestion: Option<String>,
}

/// A congestion control's name: what the kernel accepts (up to 15 bytes of
/// letters, digits, `_` and `-`).
fn congestion_name(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 15
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("a congestion control name: 1 to 15 letters, digits, '_' or '-'".to_owned());
    }
    Ok(s.to_owned())
}

/// `--help`'s text after the options: the shell's commands, as `help` shows
/// them, and the exit status.
fn long_help() -> String {
    let mut text = p2p_core::console::shell_help().join("\n");
    text.push_str(
        "\n\nExit status: 0; with piped input, 1 when any command's result was not its OK text.",
    );
    text
}
