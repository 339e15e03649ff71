//! What the four programs share: tracing setup and the shutdown signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Sends tracing output to stderr, filtered by `RUST_LOG` (default `warn`,
/// so the console lines on stdout stay clean).
pub fn init_tracing(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. A signal that cannot be watched is
/// reported once and then never fires, rather than stopping the program.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("warning: cannot listen for SIGINT: {error}");
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
                eprintln!("warning: cannot listen for SIGTERM: {error}");
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

/// Prints `program: error` on stderr and returns a failure exit code: local
/// mistakes get a clear message, never a backtrace.
pub fn fail(program: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {error}");
    ExitCode::FAILURE
}
