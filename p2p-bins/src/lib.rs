//! What the four programs share: their command lines ([`cli`]), tracing setup, the shutdown
//! signal and the error prefix.

use std::process::ExitCode;

pub mod cli;
pub mod http;
pub mod logging;

pub use logging::init_tracing;

/// The workspace README's example (using `p2p-proto`), compiled and run as a doctest here: this
/// crate is never packaged, so it may read a file outside its directory.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Completes on SIGINT (Ctrl-C) or SIGTERM. A signal that cannot be watched is
/// reported once (`program: warning: ...`) and then never fires, rather than stopping the program.
pub async fn shutdown_signal(program: &str) {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("{program}: warning: cannot listen for SIGINT: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                eprintln!("{program}: warning: cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Prints `program: error` on stderr and returns a failure exit code (1): local
/// mistakes get a clear message, never a backtrace. Every program reports its
/// runtime errors through this, so they share one prefix style; usage errors are
/// clap's (exit 2).
pub fn fail(program: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {error}");
    ExitCode::FAILURE
}
