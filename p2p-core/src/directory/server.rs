//! The accept loop and one connection's life: read one request within the read
//! timeout, answer, close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_proto::Encode;
use p2p_proto::directory::{
    CapabilitiesReply, MAX_REQUEST_LEN, OpCode, Reply, ServerMessage, ServerMessageDecoder,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use crate::connection::{Connection, ReadError, Wait, reset_on_close};
use crate::log::LogStats;
use crate::monitor::{RefusedReason, names};
use crate::serve::{DRAIN_TIMEOUT, ServeLimits, ServedStream, serve};

/// Listen backlog. tokio's default of 128 stalls clients for seconds at a few
/// hundred concurrent connects; the kernel clamps this to `somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Limits of the directory server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Connections served at once; further clients wait in the listen backlog
    /// until one finishes. Default 1024.
    pub max_connections: usize,
    /// Time a client has to send its whole request, from accept. A client that
    /// stalls past it gets the operation's "other error" byte when its OP is
    /// known, otherwise the connection is closed. Default 10 s.
    pub read_timeout: Duration,
    /// Idle timeout of the reply: it is cut only when none of its bytes has
    /// moved for this long, however slowly a large listing drains; a reply
    /// cut short is aborted with a reset, never ended as if complete.
    /// Default 10 s.
    pub write_timeout: Duration,
    /// A connected user that has sent PING and then none for this long is
    /// disconnected (PROTOCOL.md §6.3); `None` never expires anyone. Default
    /// 90 s.
    pub expire_after: Option<Duration>,
    /// Send replies the portable way: plain `send` calls, then `shutdown`,
    /// instead of Linux's `MSG_MORE` sends (the last partial segment rides
    /// with the FIN) and `TCP_NOTSENT_LOWAT` on large replies. Same reply
    /// bytes, same reset on a cut reply; two more segments per request. The
    /// only path on other platforms, where this field changes nothing; set on
    /// Linux so the tests exercise it. Default `false`.
    pub portable_io: bool,
    /// At shutdown, how long the requests in flight may take to finish before their
    /// connections are aborted ([`crate::serve`]). Default 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            expire_after: Some(Duration::from_secs(90)),
            portable_io: false,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// Binds a listener with address reuse and a large backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves until `shutdown` completes, then stops accepting and waits for the
/// requests in flight, at most [`ServerConfig::drain_timeout`], before
/// returning ([`crate::serve`]).
///
/// The accept loop runs as a task on the runtime's workers rather than on the
/// caller's thread: each connection task then starts on the worker that
/// accepted it, with no hand-off to another thread and no wake-up per
/// connection.
pub async fn run(
    listener: TcpListener,
    handler: Arc<Handler>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let stop = CancellationToken::new();
    let expiring = config
        .expire_after
        .map(|silence| tokio::spawn(expire_loop(handler.clone(), silence, stop.clone())));
    let mut accepting = tokio::spawn(accept_loop(listener, handler, config, stop.clone()));
    let served = tokio::select! {
        () = shutdown => {
            stop.cancel();
            accepting.await
        }
        ended = &mut accepting => ended,
    };
    // Every task that holds the handler has ended when this returns.
    stop.cancel();
    if let Some(expiring) = expiring {
        let _ = expiring.await;
    }
    served.map_err(io::Error::other)
}

/// The directory service's whole life: serves like [`run`] until `shutdown`,
/// owning `handler`; after the last request, shuts down the handler's log
/// shipper (delivering what it still holds, within its own bounds) and returns
/// its final counts (`None` without a shipper).
pub async fn run_service(
    listener: TcpListener,
    handler: Handler,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Option<LogStats>> {
    let handler = Arc::new(handler);
    let served = run(listener, Arc::clone(&handler), config, shutdown).await;
    // `run` has awaited every task holding a clone: this is the last reference.
    let log = Arc::into_inner(handler).and_then(|mut handler| handler.take_log());
    let stats = match log {
        Some(log) => Some(log.shutdown().await),
        None => None,
    };
    served.map(|()| stats)
}

/// Checks for silent users four times per `silence` (at most every 5 s, at
/// least every 100 ms), until `stop`.
async fn expire_loop(handler: Arc<Handler>, silence: Duration, stop: CancellationToken) {
    let period = (silence / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = handler.expire(silence).await {
            tracing::warn!(error = %e, "expiry check failed; trying again next period");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<Handler>,
    config: ServerConfig,
    stop: CancellationToken,
) {
    let limits = ServeLimits::new(config.max_connections, config.drain_timeout);
    let config = Arc::new(config);
    // One handle for the loop: no registry lookup per connection.
    let open = metrics::gauge!(names::DIRECTORY_OPEN_CONNECTIONS);
    serve(listener, limits, stop, move |stream, peer| {
        let handler = handler.clone();
        let config = config.clone();
        let open = open.clone();
        open.increment(1.0);
        async move {
            if let Err(e) = serve_connection(stream, peer, &handler, &config).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            open.decrement(1.0);
        }
    })
    .await;
}

/// What the read phase ended with.
enum Outcome {
    Request(p2p_proto::directory::Request),
    /// `CAPABILITIES` (PROTOCOL.md §6.1).
    Capabilities,
    /// Refused: answer the operation's "other error" byte when it is known.
    Refused(Option<OpCode>),
    /// The client went away before a whole request; nothing to answer.
    Gone,
}

/// Counts a connection that ended without a handled request, and says why
/// at `debug`: the reason, the OP when known, the bytes received, the error.
fn refused(
    peer: SocketAddr,
    reason: RefusedReason,
    buf: &[u8],
    error: Option<&dyn std::fmt::Display>,
) {
    metrics::counter!(names::DIRECTORY_REFUSED, "reason" => reason.as_str()).increment(1);
    tracing::debug!(
        %peer,
        reason = reason.as_str(),
        op = OpCode::of_request(buf).map(OpCode::as_str),
        received = buf.len(),
        error = error.map(tracing::field::display),
        "request refused"
    );
}

/// What a request's first read asks for: every classic request fits.
const REQUEST_CAPACITY: usize = 256;

async fn serve_connection(
    stream: ServedStream,
    peer: SocketAddr,
    handler: &Handler,
    config: &ServerConfig,
) -> io::Result<()> {
    // No TCP_NODELAY: the reply is one write followed by close, which Nagle
    // never delays, and the option would cost a syscall per request.
    let deadline = Instant::now() + config.read_timeout;
    let mut conn = Connection::with_capacity(stream, REQUEST_CAPACITY);
    let mut decoder = ServerMessageDecoder::default();
    let read = conn
        .read_message(&mut decoder, Wait::Until(deadline), MAX_REQUEST_LEN)
        .await;
    let received = conn.buffered();
    let outcome = match read {
        Ok(ServerMessage::Request(request)) => Outcome::Request(request),
        Ok(ServerMessage::Capabilities) => Outcome::Capabilities,
        Err(ReadError::Malformed(e)) => {
            refused(peer, RefusedReason::Malformed, received, Some(&e));
            Outcome::Refused(e.op)
        }
        Err(ReadError::TooLong(_)) => {
            refused(peer, RefusedReason::TooLong, received, None);
            Outcome::Refused(OpCode::of_request(received))
        }
        Err(ReadError::TimedOut) => {
            refused(peer, RefusedReason::ReadTimeout, received, None);
            Outcome::Refused(OpCode::of_request(received))
        }
        Err(ReadError::Closed) => {
            refused(peer, RefusedReason::ClientGone, received, None);
            Outcome::Gone
        }
        Err(ReadError::Io(e)) => {
            refused(peer, RefusedReason::ReadError, received, Some(&e));
            return Err(e);
        }
    };
    // The request's bytes are no longer needed: the reply reuses the buffer.
    let (stream, mut out) = conn.into_parts();
    out.clear();
    match outcome {
        Outcome::Request(request) => handler.handle_into(&request, peer.ip(), &mut out).await,
        // PROTOCOL.md §6.1: the extension operations this server accepts.
        Outcome::Capabilities => CapabilitiesReply::from_ops(OpCode::EXTENSIONS).encode(&mut out),
        Outcome::Refused(Some(op)) => Reply::other_error(op).encode(&mut out),
        Outcome::Refused(None) | Outcome::Gone => return Ok(()),
    }
    let sent = send_reply(&stream, &out, config.write_timeout, config.portable_io).await;
    if let Err(e) = &sent {
        metrics::counter!(names::DIRECTORY_REPLY_FAILURES).increment(1);
        if e.kind() == io::ErrorKind::TimedOut {
            tracing::debug!(%peer, bytes = out.len(), "reply cut: the client took no byte for {:?}", config.write_timeout);
        }
        // The client must not take a reply cut short for a whole one: reset.
        reset_on_close(&stream);
    }
    sent
}

/// `TCP_NOTSENT_LOWAT` of a reply larger than this (Linux): at most this
/// much waits unsent in the kernel, so the server sees each bit of progress
/// on a slow link and the idle timeout measures bytes moving, rather than a
/// send buffer autotuned to megabytes draining by a third. Smaller replies
/// never set it (no extra syscall per request).
pub const REPLY_LOW_WATER: u32 = 64 * 1024;

/// Flags of the reply's `send` calls on Linux's fast path: `MSG_MORE`, so the
/// reply's last partial segment waits for the FIN; no `SIGPIPE` from a client
/// that reset.
#[cfg(target_os = "linux")]
const REPLY_FLAGS: rustix::net::SendFlags =
    rustix::net::SendFlags::MORE.union(rustix::net::SendFlags::NOSIGNAL);

/// Sends the whole reply, then the FIN in the same segment as its last bytes.
///
/// With a plain write and close the reply and the FIN are two segments, and the
/// client acknowledges each: 10 TCP segments per request. Sending with
/// `MSG_MORE` holds the last partial segment back, and `shutdown(SHUT_WR)` sends
/// it with the FIN: 8 segments, less work for both ends (measured in
/// docs/PERFORMANCE.md). `MSG_MORE` is Linux's: elsewhere, or with `portable`,
/// the same bytes go out with plain sends and the FIN after them.
///
/// The FIN goes out before the socket is closed: a client that sent bytes after
/// its request, still unread at close, gets its reply and end of stream before
/// the kernel's reset, not a reset that loses the held-back reply.
///
/// Each `send` that moves bytes starts the `idle` wait again: only a client
/// that takes nothing for `idle` fails the reply (`TimedOut`).
async fn send_reply(
    stream: &TcpStream,
    mut out: &[u8],
    idle: Duration,
    portable: bool,
) -> io::Result<()> {
    let fast = cfg!(target_os = "linux") && !portable;
    #[cfg(target_os = "linux")]
    if fast && out.len() > REPLY_LOW_WATER as usize {
        let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(REPLY_LOW_WATER);
    }
    while !out.is_empty() {
        let sent = match timeout(idle, send_some(stream, out, fast)).await {
            Ok(sent) => sent?,
            Err(_elapsed) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte of the reply taken for {idle:?}"),
                ));
            }
        };
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        out = &out[sent..];
    }
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
}

/// Sends what of `out` the socket takes once it is writable: with
/// [`REPLY_FLAGS`] when `fast` (Linux), else tokio's plain write (std's
/// `send`, which passes `MSG_NOSIGNAL` where the platform has it).
async fn send_some(stream: &TcpStream, out: &[u8], fast: bool) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    if fast {
        return stream
            .async_io(tokio::io::Interest::WRITABLE, || {
                rustix::net::send(stream, out, REPLY_FLAGS).map_err(io::Error::from)
            })
            .await;
    }
    let _ = fast;
    loop {
        stream.writable().await?;
        match stream.try_write(out) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            sent => return sent,
        }
    }
}
