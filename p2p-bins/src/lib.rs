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

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled: call it before announcing
/// that the program is ready, so a signal sent right after that line is always
/// handled. A signal that cannot be watched is reported once
/// (`program: warning: ...`) and then never fires, rather than stopping the
/// program. Call it inside the runtime.
#[cfg(unix)]
pub fn shutdown_signal(program: &str) -> impl std::future::Future<Output = ()> + use<> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            eprintln!("{program}: warning: cannot listen for {name}: {error}");
            None
        }
    };
    let interrupt = listen(SignalKind::interrupt(), "SIGINT");
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    async fn received(stream: Option<Signal>) {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = received(interrupt) => {}
            () = received(terminate) => {}
        }
    }
}

/// The peer shell's signals: each SIGINT stops the running command; SIGTERM
/// or SIGHUP ends the shell as QUIT does. Installed when called (inside the
/// runtime); a signal that cannot be watched is reported once and never fires.
#[cfg(all(unix, feature = "terminal"))]
pub fn shell_signals(program: &str) -> p2p_core::peer::ShellSignals {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            eprintln!("{program}: warning: cannot listen for {name}: {error}");
            None
        }
    };
    async fn received(stream: Option<&mut Signal>) {
        match stream {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if let Some(mut interrupt) = listen(SignalKind::interrupt(), "SIGINT") {
        tokio::spawn(async move {
            while interrupt.recv().await.is_some() {
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
    }
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
    let mut hangup = listen(SignalKind::hangup(), "SIGHUP");
    p2p_core::peer::ShellSignals::new(rx, async move {
        tokio::select! {
            () = received(terminate.as_mut()) => {}
            () = received(hangup.as_mut()) => {}
        }
    })
}

/// See the Unix version; elsewhere Ctrl-C ends the shell.
#[cfg(all(not(unix), feature = "terminal"))]
pub fn shell_signals(program: &str) -> p2p_core::peer::ShellSignals {
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    p2p_core::peer::ShellSignals::new(rx, shutdown_signal(program))
}

/// See the Unix version; elsewhere only Ctrl-C is watched.
#[cfg(not(unix))]
pub fn shutdown_signal(program: &str) -> impl std::future::Future<Output = ()> + use<> {
    let program = program.to_owned();
    async move {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("{program}: warning: cannot listen for SIGINT: {error}");
            std::future::pending::<()>().await;
        }
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
