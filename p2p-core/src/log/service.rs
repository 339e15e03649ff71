//! The log service: LOG_PROG v1 over TCP (record marking) and UDP.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use p2p_proto::rpc::log::{Dispatch, LOG_PROG, LogEntry, dispatch};
use p2p_proto::rpc::message::{AcceptStat, RpcMessage};
use p2p_proto::rpc::record::{DEFAULT_MAX_RECORD, RecordDecoder, encode_record};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::LogError;
use super::rpcbind::{Registration, register};

/// Largest UDP datagram read (the IPv4 UDP payload limit).
const MAX_DATAGRAM: usize = 65_536;

/// Settings of the log service.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogServiceConfig {
    /// Address for both TCP and UDP; port 0 picks a free port (the same for both when possible).
    /// Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// Largest accepted call, in bytes (TCP record or UDP datagram). A TCP client announcing more
    /// is disconnected at once. Default [`DEFAULT_MAX_RECORD`] (64 KiB).
    pub max_record: usize,
    /// Most TCP connections served at once; further clients wait to be accepted. Default 1024.
    pub max_connections: usize,
    /// Register with the local rpcbind at start (unsetting stale entries first) and unset at
    /// shutdown. Default `true`.
    pub register_with_rpcbind: bool,
    /// Time allowed for each exchange with rpcbind. Default 2 s.
    pub rpcbind_timeout: Duration,
}

impl Default for LogServiceConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            max_record: DEFAULT_MAX_RECORD,
            max_connections: 1024,
            register_with_rpcbind: true,
            rpcbind_timeout: Duration::from_secs(2),
        }
    }
}

impl LogServiceConfig {
    /// The defaults with another bind address (tests use `127.0.0.1:0`).
    #[must_use]
    pub fn with_bind(bind: SocketAddr) -> Self {
        Self {
            bind,
            ..Self::default()
        }
    }
}

/// A bound log service, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct LogService {
    config: LogServiceConfig,
    tcp: TcpListener,
    udp: UdpSocket,
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
}

/// Where output lines go: one writer shared by every connection, one line per lock.
type Sink = Arc<Mutex<Output>>;

struct Output {
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    failed: AtomicBool,
}

impl LogService {
    /// Binds TCP and UDP on `config.bind`.
    pub async fn bind(config: LogServiceConfig) -> Result<Self, LogError> {
        let (tcp, udp) = bind_pair(config.bind).await?;
        let tcp_addr = tcp
            .local_addr()
            .map_err(|e| LogError::io("reading the TCP address", e))?;
        let udp_addr = udp
            .local_addr()
            .map_err(|e| LogError::io("reading the UDP address", e))?;
        Ok(Self {
            config,
            tcp,
            udp,
            tcp_addr,
            udp_addr,
        })
    }

    /// The TCP address served.
    #[must_use]
    pub const fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The UDP address served.
    #[must_use]
    pub const fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Serves until `shutdown` completes, writing one line per SENDLOG to `output` (flushed per
    /// line; a line is written only after the previous one is complete, and the reply is sent
    /// only after its line is flushed).
    ///
    /// Registers with rpcbind first when configured; without rpcbind it serves anyway and says on
    /// stderr (tracing `warn`) which port clients must be given. At shutdown it stops accepting,
    /// drops open connections and unsets the registration.
    pub async fn run<W>(self, output: W, shutdown: impl Future<Output = ()>) -> Result<(), LogError>
    where
        W: AsyncWrite + Send + 'static,
    {
        let registration = if self.config.register_with_rpcbind {
            self.register().await
        } else {
            None
        };
        let sink: Sink = Arc::new(Mutex::new(Output {
            writer: Box::pin(output),
            failed: AtomicBool::new(false),
        }));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(
            self.udp,
            Arc::clone(&sink),
            self.config.max_record,
        ));
        let limit = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let max_record = self.config.max_record;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = Arc::clone(&limit).acquire_owned() => p,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                a = self.tcp.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!("connection from {peer}");
                    let sink = Arc::clone(&sink);
                    tasks.spawn(async move {
                        serve_tcp(stream, sink, max_record).await;
                        drop(permit);
                    });
                }
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // Reap finished connections so the set does not grow.
            while tasks.try_join_next().is_some() {}
        }
        tasks.shutdown().await;
        let flushed = sink.lock().await.writer.flush().await;
        if let Some(registration) = registration {
            match registration.unset(self.config.rpcbind_timeout).await {
                Ok(()) => tracing::info!("unset LOG_PROG registration with {registration}"),
                Err(e) => tracing::warn!("could not unset the rpcbind registration: {e}"),
            }
        }
        flushed.map_err(|e| LogError::io("flushing the output", e))
    }

    async fn register(&self) -> Option<Registration> {
        match register(self.tcp_addr, self.udp_addr, self.config.rpcbind_timeout).await {
            Ok(registration) => {
                tracing::info!(
                    "registered with rpcbind: LOG_PROG {LOG_PROG:#x} version 1, tcp port {}, \
                     udp port {} ({registration})",
                    self.tcp_addr.port(),
                    self.udp_addr.port()
                );
                Some(registration)
            }
            Err(e) => {
                tracing::warn!(
                    "not registered with rpcbind ({e}); serving anyway: clients must be given \
                     the port, tcp {} udp {} (e.g. --log-rpc HOST:{})",
                    self.tcp_addr.port(),
                    self.udp_addr.port(),
                    self.tcp_addr.port()
                );
                None
            }
        }
    }
}

/// Binds TCP and UDP; with port 0, tries a few times to get the same port for both.
async fn bind_pair(addr: SocketAddr) -> Result<(TcpListener, UdpSocket), LogError> {
    let bind_tcp = |a: SocketAddr| async move {
        TcpListener::bind(a)
            .await
            .map_err(|e| LogError::io(format!("binding TCP {a}"), e))
    };
    let bind_udp = |a: SocketAddr| async move {
        UdpSocket::bind(a)
            .await
            .map_err(|e| LogError::io(format!("binding UDP {a}"), e))
    };
    if addr.port() != 0 {
        return Ok((bind_tcp(addr).await?, bind_udp(addr).await?));
    }
    for _ in 0..8 {
        let tcp = bind_tcp(addr).await?;
        let same = tcp
            .local_addr()
            .map_err(|e| LogError::io("reading the TCP address", e))?;
        if let Ok(udp) = UdpSocket::bind(same).await {
            return Ok((tcp, udp));
        }
    }
    Ok((bind_tcp(addr).await?, bind_udp(addr).await?))
}

/// Runs the dispatcher on one message; writes the entry's line before returning the reply.
async fn handle(msg: &[u8], sink: &Sink) -> Option<Vec<u8>> {
    match dispatch(msg) {
        Dispatch::Reply { reply, entry } => match entry {
            Some(entry) if !write_line(sink, &entry).await => {
                // The record could not be written: tell the caller it was not logged.
                let xid = RpcMessage::decode(&reply)
                    .ok()
                    .flatten()
                    .map(|(h, _)| h.xid)?;
                let header = RpcMessage::accepted(xid, AcceptStat::SystemErr);
                let mut failed = Vec::with_capacity(header.encoded_len());
                header.encode(&mut failed);
                Some(failed)
            }
            _ => Some(reply),
        },
        Dispatch::Close { reason } => {
            tracing::debug!("no reply, closing: {reason:?}");
            None
        }
        other => {
            tracing::debug!("unhandled dispatch outcome: {other:?}");
            None
        }
    }
}

/// Writes one whole line and flushes it; false if the output failed.
async fn write_line(sink: &Sink, entry: &LogEntry) -> bool {
    let mut line = entry.to_string().into_bytes();
    line.push(b'\n');
    let mut out = sink.lock().await;
    let written = async {
        out.writer.write_all(&line).await?;
        out.writer.flush().await
    }
    .await;
    match written {
        Ok(()) => true,
        Err(e) => {
            if !out.failed.swap(true, Ordering::Relaxed) {
                tracing::error!("cannot write log lines: {e}");
            }
            false
        }
    }
}

/// Serves one TCP client: reassembles records, answers each call in order, closes when the
/// dispatcher says so or the stream breaks.
async fn serve_tcp(mut stream: TcpStream, sink: Sink, max_record: usize) {
    let mut decoder = RecordDecoder::new(max_record);
    let mut input = BytesMut::with_capacity(4096);
    let mut replies = Vec::new();
    loop {
        let mut close = false;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(record)) => match handle(&record, &sink).await {
                    Some(reply) => encode_record(&reply, &mut replies),
                    None => {
                        close = true;
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("closing connection: {e}");
                    close = true;
                    break;
                }
            }
        }
        // Pipelined calls: answer everything decoded so far in one write, in order.
        if !replies.is_empty() {
            if stream.write_all(&replies).await.is_err() {
                return;
            }
            replies.clear();
        }
        if close {
            return;
        }
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Serves UDP: one call per datagram, one reply datagram; malformed datagrams are dropped.
async fn serve_udp(socket: UdpSocket, sink: Sink, max_record: usize) {
    let mut buf = vec![0; max_record.clamp(512, MAX_DATAGRAM)];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                tracing::debug!("UDP receive: {e}");
                continue;
            }
        };
        if let Some(reply) = handle(&buf[..n], &sink).await
            && let Err(e) = socket.send_to(&reply, peer).await
        {
            tracing::debug!("UDP reply to {peer}: {e}");
        }
    }
}
