//! The four programs' command lines: one `Args` struct per program, shared by its binary and by
//! the generator of shell completions and man pages (`examples/gen-cli-docs.rs`).

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

pub mod datetime;
pub mod log;
pub mod peer;
pub mod server;

/// The shells completions are written for.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Every program's `clap::Command`, named as its binary.
pub fn commands() -> Vec<clap::Command> {
    vec![
        server::Args::command(),
        peer::Args::command(),
        datetime::Args::command(),
        log::Args::command(),
    ]
}

/// Writes a man page per program to `out/man/PROGRAM.1` and its completions to
/// `out/completions/` (`PROGRAM.bash`, `_PROGRAM` for zsh, `PROGRAM.fish`, `PROGRAM.elv`,
/// `_PROGRAM.ps1`), creating the directories. Returns the files written.
pub fn write_docs(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man_dir = out.join("man");
    let completions_dir = out.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completions_dir)?;
    let mut written = Vec::new();
    for mut command in commands() {
        let name = command.get_name().to_owned();
        let man = man_dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        std::fs::write(&man, page)?;
        written.push(man);
        for shell in SHELLS {
            let path = clap_complete::generate_to(shell, &mut command, &name, &completions_dir)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The longest timeout a flag accepts: a year (deadlines further out could overflow the clock).
pub const MAX_TIMEOUT_SECS: u64 = 365 * 86_400;

/// Parses a timeout in whole seconds, 1 to [`MAX_TIMEOUT_SECS`] (0 would drop every client).
pub(crate) fn timeout_secs(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(secs @ 1..=MAX_TIMEOUT_SECS) => Ok(secs),
        Ok(_) => Err(format!("must be 1 to {MAX_TIMEOUT_SECS} seconds")),
        Err(e) => Err(format!("not a whole number of seconds: {e}")),
    }
}

/// Parses a count that must be at least 1 (connections, slots).
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// Parses the datetime service's URL: an absolute `http://` URL.
pub(crate) fn datetime_url(s: &str) -> Result<String, String> {
    p2p_core::datetime::check_url(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// Parses `HOST:PORT` (`[V6ADDR]:PORT` for IPv6) without resolving HOST.
pub(crate) fn host_port(s: &str) -> Result<String, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected HOST:PORT".to_owned());
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty()
        || bare.contains(['[', ']', '/', ' '])
        || (bare.contains(':') && bare == host)
    {
        return Err(format!(
            "{host:?} is not a host name or address (IPv6: [ADDR]:PORT)"
        ));
    }
    port.parse::<u16>()
        .map_err(|e| format!("{port:?} is not a port: {e}"))?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_consistent() {
        for command in commands() {
            command.debug_assert();
        }
    }

    #[test]
    fn host_port_accepts_names_and_addresses() {
        for ok in [
            "127.0.0.1:5000",
            "localhost:0",
            "[::1]:80",
            "example.org:65535",
        ] {
            assert_eq!(host_port(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "5000",
            ":5000",
            "host:",
            "host:65536",
            "::1:80",
            "[::1]:x",
            "a b:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_and_timeouts_refuse_zero() {
        assert!(at_least_one("0").is_err());
        assert_eq!(at_least_one("1"), Ok(1));
        assert!(timeout_secs("0").is_err());
        assert!(timeout_secs("-1").is_err());
        assert!(timeout_secs(&(MAX_TIMEOUT_SECS + 1).to_string()).is_err());
        assert_eq!(timeout_secs("10"), Ok(10));
    }
}
