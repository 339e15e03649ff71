//! The `--http` endpoint of `p2p-server` and `p2p-log`: metrics (and the
//! directory's status page) served by a task of its own.

use std::net::SocketAddr;

use p2p_core::monitor::{self, Monitor};
use tokio::task::JoinHandle;

/// Binds `addr`, says on stderr where it serves (`PROGRAM: http:
/// http://IP:PORT/`, the port actual when 0 was asked), and serves `monitor`
/// until the returned task is aborted.
///
/// # Errors
///
/// The message to exit with when `addr` cannot be bound.
pub async fn start(
    program: &str,
    addr: SocketAddr,
    monitor: Monitor,
) -> Result<JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (--http): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--http {addr}: {e}"))?;
    eprintln!("{program}: http: http://{local}/");
    let program = program.to_owned();
    Ok(tokio::spawn(async move {
        if let Err(e) = monitor::serve(listener, monitor).await {
            eprintln!("{program}: http: {e}");
        }
    }))
}
