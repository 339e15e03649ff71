//! Tracing setup shared by the four programs: diagnostics on stderr, the
//! project's own events by `RUST_LOG`'s level, dependencies at `warn` unless
//! named.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The level of every program when `RUST_LOG` is not set: stdout carries
/// the console lines, stderr only what needs attention.
pub const DEFAULT_LEVEL: &str = "warn";

/// The targets a bare level in `RUST_LOG` applies to: the project's crates and
/// the binaries (whose events have the binary's name as target).
pub const PROJECT_TARGETS: &[&str] = &[
    "p2p_core",
    "p2p_proto",
    "p2p_bins",
    "p2p_server",
    "p2p_peer",
    "p2p_datetime",
    "p2p_log",
    "p2p_load",
];

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Sends tracing output to stderr, filtered by `RUST_LOG` as rewritten by
/// [`filter_directives`]: `RUST_LOG=debug` is debug for the project's crates
/// and `warn` for dependencies, `RUST_LOG=debug,hyper=debug` adds hyper's
/// debug events. Without `RUST_LOG`, [`DEFAULT_LEVEL`] for everything.
pub fn init_tracing() {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let directives = filter_directives(rust_log.as_deref());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: RUST_LOG ignored ({e}); logging at {DEFAULT_LEVEL}");
        EnvFilter::new(DEFAULT_LEVEL)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Rewrites `RUST_LOG` so that a bare level (`debug`) applies to
/// [`PROJECT_TARGETS`] while every other target stays at [`DEFAULT_LEVEL`]
/// (or the bare level, if that is quieter). Directives that name a target
/// (`hyper=debug`, `p2p_core::log=trace`) are kept as they are.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let mut global = DEFAULT_LEVEL;
    let mut out = Vec::new();
    for directive in rust_log.unwrap_or("").split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let Some(&level) = LEVELS
            .iter()
            .find(|level| level.eq_ignore_ascii_case(directive))
        else {
            out.push(directive.to_owned());
            continue;
        };
        let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
        if rank(level) < rank(global) {
            global = level;
        }
        out.extend(PROJECT_TARGETS.iter().map(|t| format!("{t}={level}")));
    }
    out.insert(0, global.to_owned());
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_at(level: &str) -> String {
        PROJECT_TARGETS
            .iter()
            .map(|t| format!("{t}={level}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn unset_or_empty_is_warn_for_everything() {
        assert_eq!(filter_directives(None), "warn");
        assert_eq!(filter_directives(Some("")), "warn");
    }

    #[test]
    fn a_bare_level_is_for_the_project_only() {
        assert_eq!(
            filter_directives(Some("debug")),
            format!("warn,{}", project_at("debug"))
        );
        assert_eq!(
            filter_directives(Some("INFO")),
            format!("warn,{}", project_at("info"))
        );
    }

    #[test]
    fn named_targets_are_kept() {
        assert_eq!(
            filter_directives(Some("debug,hyper=debug")),
            format!("warn,{},hyper=debug", project_at("debug"))
        );
        assert_eq!(
            filter_directives(Some("p2p_core::log=trace")),
            "warn,p2p_core::log=trace"
        );
    }

    #[test]
    fn a_quieter_bare_level_quiets_everything() {
        assert_eq!(
            filter_directives(Some("error")),
            format!("error,{}", project_at("error"))
        );
    }

    #[test]
    fn every_rewrite_parses() {
        for spec in ["debug", "debug,hyper=debug", "off", "trace,[span]=info"] {
            let directives = filter_directives(Some(spec));
            assert!(EnvFilter::try_new(&directives).is_ok(), "{directives}");
        }
    }
}
