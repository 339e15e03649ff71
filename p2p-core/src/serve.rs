//! The one accept loop of every TCP service (directory server, file server, log service): a
//! connection cap, cancellation, and one shutdown meaning.
//!
//! **Shutdown.** When `stop` is cancelled the loop stops accepting and closes its listener (new
//! clients are refused by the kernel), then waits for the connections in flight to finish, at
//! most [`ServeLimits::drain_timeout`]. A connection that is still running after that is
//! aborted: its task is dropped, and its socket ([`ServedStream`]) is reset rather than closed,
//! so the client cannot take what it received for a whole reply or transfer. Services whose connections may sit
//! idle between requests (the log service) watch the same `stop` token and end an idle
//! connection at once, so only work already started is waited for.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed `accept` (out of descriptors, a connection reset before it was
/// accepted) before trying again, instead of spinning.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Default [`ServeLimits::drain_timeout`].
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What bounds a [`serve`] loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeLimits {
    /// Connections served at once; further clients wait in the listen backlog until one
    /// finishes. At least 1. Default 1024.
    pub max_connections: usize,
    /// After `stop`, how long the connections in flight may take to finish before they are
    /// aborted. Default 10 s ([`DRAIN_TIMEOUT`]).
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

impl ServeLimits {
    /// Limits with `max_connections` and `drain_timeout`.
    #[must_use]
    pub const fn new(max_connections: usize, drain_timeout: Duration) -> Self {
        Self {
            max_connections,
            drain_timeout,
        }
    }
}

/// The socket of a connection [`serve`] runs: a [`TcpStream`] (through `Deref`) that is reset,
/// not closed, when its task is aborted at the end of the drain time. Dropped any other way it
/// closes as a `TcpStream` does.
#[derive(Debug)]
pub struct ServedStream {
    stream: TcpStream,
    aborting: Arc<AtomicBool>,
}

impl ServedStream {
    /// The socket (for `sendfile`, `splice`, socket options).
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }
}

impl std::ops::Deref for ServedStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl std::ops::DerefMut for ServedStream {
    fn deref_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

impl Drop for ServedStream {
    fn drop(&mut self) {
        if self.aborting.load(Ordering::Acquire) {
            crate::connection::reset_on_close(&self.stream);
        }
    }
}

impl AsyncRead for ServedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How a [`serve`] loop ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// Connections still running when the drain time was over, and aborted.
    pub aborted: usize,
}

/// Accepts on `listener` until `stop` is cancelled, running `connection(stream, peer)` as a task
/// for each client, at most `limits.max_connections` at once; then drains as the
/// [module](self) says.
///
/// Run it as a task of its own (`tokio::spawn`): each connection task then starts on the worker
/// that accepted it, with no hand-off to another thread.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    limits: ServeLimits,
    stop: CancellationToken,
    mut connection: F,
) -> Drained
where
    F: FnMut(ServedStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cap = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let abort = CancellationToken::new();
    let aborting = Arc::new(AtomicBool::new(false));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = cap.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let stream = ServedStream {
            stream,
            aborting: aborting.clone(),
        };
        let served = connection(stream, peer);
        let abort = abort.clone();
        tracker.spawn(async move {
            // Biased toward the connection: a connection that finishes in its first poll never
            // registers with the abort token.
            tokio::select! {
                biased;
                () = served => {}
                () = abort.cancelled() => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    let mut drained = Drained::default();
    if tokio::time::timeout(limits.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        drained.aborted = tracker.len();
        tracing::info!(
            connections = drained.aborted,
            "aborting the connections still open after the drain time ({:?})",
            limits.drain_timeout
        );
        aborting.store(true, Ordering::Release);
        abort.cancel();
        tracker.wait().await;
    }
    drained
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// A connection that finishes within the drain time is waited for, not aborted; new
    /// clients are refused once the loop has stopped.
    #[tokio::test]
    async fn drains_the_connections_in_flight() {
        let (listener, addr) = listener().await;
        let stop = CancellationToken::new();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            ServeLimits::new(4, Duration::from_secs(60)),
            stop.clone(),
            move |mut stream, _| {
                let started = started_tx.clone();
                let mut release = release.clone();
                async move {
                    let _ = started.send(());
                    let _ = release.wait_for(|go| *go).await;
                    let _ = stream.write_all(b"done").await;
                }
            },
        ));
        let mut client = TcpStream::connect(addr).await.unwrap();
        started.recv().await.unwrap();
        stop.cancel();
        // Stopped: the listener is closed (eventually) while the connection still runs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still accepting");
            tokio::task::yield_now().await;
        }
        assert!(!server.is_finished());
        release_tx.send(true).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"done");
        assert_eq!(server.await.unwrap(), Drained { aborted: 0 });
    }

    /// A connection still running after the drain time is aborted: its socket is reset.
    #[tokio::test]
    async fn aborts_what_outlives_the_drain_time() {
        let (listener, addr) = listener().await;
        let stop = CancellationToken::new();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(serve(
            listener,
            ServeLimits::new(4, Duration::from_millis(100)),
            stop.clone(),
            move |stream, _| {
                let started = started_tx.clone();
                async move {
                    let _ = started.send(());
                    std::future::pending::<()>().await;
                    drop(stream);
                }
            },
        ));
        let mut client = TcpStream::connect(addr).await.unwrap();
        started.recv().await.unwrap();
        stop.cancel();
        assert_eq!(server.await.unwrap(), Drained { aborted: 1 });
        let mut got = Vec::new();
        let read = client.read_to_end(&mut got).await;
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "an aborted connection is reset, not ended as if complete"
        );
    }

    /// At most `max_connections` connections run at once: the next waits for one to finish.
    #[tokio::test]
    async fn caps_the_connections() {
        let (listener, addr) = listener().await;
        let stop = CancellationToken::new();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            ServeLimits::new(1, Duration::from_secs(60)),
            stop.clone(),
            move |stream, peer| {
                let started = started_tx.clone();
                let mut release = release.clone();
                async move {
                    let _ = started.send(peer);
                    let _ = release.wait_for(|go| *go).await;
                    drop(stream);
                }
            },
        ));
        let first = TcpStream::connect(addr).await.unwrap();
        let second = TcpStream::connect(addr).await.unwrap();
        let first_peer = started.recv().await.unwrap();
        assert_eq!(first_peer, first.local_addr().unwrap());
        // The second is connected (backlog) but not served while the first runs.
        tokio::task::yield_now().await;
        assert!(started.try_recv().is_err());
        release_tx.send(true).unwrap();
        let second_peer = started.recv().await.unwrap();
        assert_eq!(second_peer, second.local_addr().unwrap());
        stop.cancel();
        assert_eq!(server.await.unwrap(), Drained { aborted: 0 });
    }
}
