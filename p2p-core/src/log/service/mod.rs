//! The log service: LOG_PROG v1 over TCP (record marking) and UDP.
//!
//! Output is a group commit ([`Sink`]): a connection dispatches every call it has received so
//! far, submits their lines as one batch, and sends the replies once the batch is written. When
//! no batch is being written the connection writes its own at once, with one `write(2)` on its
//! worker thread; batches submitted meanwhile by other connections queue up and are written
//! together by the oldest waiting one, which then releases the others' replies.

mod batch;
mod config;
mod metrics;
mod output;
mod replay;
mod sink;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use p2p_proto::rpc::log::LOG_PROG;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::{sink::*, tcp::*, udp::*};
use super::LogError;
use super::rpcbind::{Registration, register};
use crate::serve::{ServeLimits, serve};

pub use config::{LogServiceConfig, REPLAY_CACHE_ENTRIES};
pub use output::LogOutput;

/// A bound log service, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct LogService {
    config: LogServiceConfig,
    tcp: TcpListener,
    udp: UdpSocket,
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
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

    /// Serves until `shutdown` completes, writing one line per SENDLOG to the asynchronous writer
    /// `output`: [`run_to`](Self::run_to) with [`LogOutput::writer`].
    pub async fn run<W>(self, output: W, shutdown: impl Future<Output = ()>) -> Result<(), LogError>
    where
        W: AsyncWrite + Send + 'static,
    {
        self.run_to(LogOutput::writer(output), shutdown).await
    }

    /// Serves until `shutdown` completes, writing one line per SENDLOG to `output`.
    ///
    /// Lines are written whole, in batches (one `write_all` + `flush` per batch, batches one at a
    /// time), and a reply is sent only after its line's batch has been written, so a caller that
    /// has its reply knows its line is out (handed to the system; no `fsync`).
    ///
    /// Registers with rpcbind first when configured; without rpcbind it serves anyway and says on
    /// stderr (tracing `warn`) which port clients must be given. At shutdown it stops accepting
    /// ([`crate::serve`]): a TCP connection answers the calls it has received and closes,
    /// one still busy after [`LogServiceConfig::drain_timeout`] is aborted; then UDP stops,
    /// the output is flushed and the registration unset.
    pub async fn run_to(
        self,
        output: LogOutput,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LogError> {
        let registration = if self.config.register_with_rpcbind {
            self.register().await
        } else {
            None
        };
        let sink = Arc::new(Sink::new(output.0).with_replay_cache(self.config.replay_cache));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(
            self.udp,
            Arc::clone(&sink),
            self.config.max_record,
        ));
        // Durations past a year mean "never"; clamped so deadlines cannot overflow.
        let year = Duration::from_secs(365 * 86_400);
        let limits = ConnectionLimits {
            max_record: self.config.max_record,
            idle_timeout: self
                .config
                .idle_timeout
                .clamp(Duration::from_millis(1), year),
            write_timeout: self.config.write_timeout.min(year),
            busy_poll: self.config.busy_poll.min(year),
        };
        let open = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let serving = tokio::spawn({
            let sink = Arc::clone(&sink);
            let stop = stop.clone();
            let serve_limits =
                ServeLimits::new(self.config.max_connections, self.config.drain_timeout);
            serve(self.tcp, serve_limits, stop.clone(), move |stream, peer| {
                tracing::debug!("connection from {peer}");
                let sink = Arc::clone(&sink);
                let open = OpenConnection::new(&open);
                let stop = stop.clone();
                async move {
                    serve_tcp(stream, peer.ip(), sink, limits, &open, &stop).await;
                }
            })
        });
        shutdown.await;
        stop.cancel();
        if let Err(e) = serving.await {
            tracing::warn!("the TCP accept loop failed: {e}");
        }
        tasks.shutdown().await;
        let flushed = sink.close().await;
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
