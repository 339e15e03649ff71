//! The log service's settings.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use p2p_proto::rpc::record::DEFAULT_MAX_RECORD;

use crate::serve::DRAIN_TIMEOUT;

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
    /// A TCP connection that completes no call for this long is closed (between one and two
    /// times this after its last call, or after its accept): a client stalled in the middle of a
    /// call, or one holding a connection it does not use, gives its slot back. Clients connect
    /// again when they have calls to make; the directory's log shipper does so on its own.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Idle timeout of a batch of replies: a client that takes none of their bytes for this long
    /// is disconnected (one that reads slowly is not). Default 10 s.
    pub write_timeout: Duration,
    /// Busy polling: after sending its replies, a TCP connection that is the service's only one
    /// keeps checking its socket for this long before it sleeps, yielding to the runtime's other
    /// work (UDP, new connections, timers) between checks. A client making one call after
    /// another then finds the service awake: on a VM, waking a sleeping thread costs more than
    /// the call itself, and one sequential client gets ~2.5× the calls/s
    /// (`docs/PERFORMANCE.md`, goal 3). It adapts: a poll that runs out stops the polling until
    /// a call again arrives within a few times this of its answer, so a client calling less
    /// often (the directory's shipper, a batch every 10 ms) costs one wasted poll, not one per
    /// batch. The price is a core kept busy while a lone client calls faster than this; nothing
    /// when idle. It stops as soon as another connection opens. `Duration::ZERO` turns it off.
    /// Default 50 µs, the figure Linux recommends for its own socket busy polling
    /// (`net.core.busy_read`).
    pub busy_poll: Duration,
    /// Register with the local rpcbind at start (unsetting stale entries first) and unset at
    /// shutdown. Default `true`.
    pub register_with_rpcbind: bool,
    /// Time allowed for each exchange with rpcbind. Default 2 s.
    pub rpcbind_timeout: Duration,
    /// Duplicate-request cache, as NFS servers keep for ONC RPC: the last this many SENDLOG
    /// calls written, keyed by client address, xid and the call's bytes. A call sent again
    /// after a broken connection (the directory's shipper resends every unanswered call, with
    /// its xid) is answered from the cache, not written twice. The client's IP address is part
    /// of the key, not its port: a reconnection comes from a new port. 0 turns it off.
    /// Default [`REPLAY_CACHE_ENTRIES`].
    pub replay_cache: usize,
    /// At shutdown, how long TCP connections may take to answer the calls they have received
    /// before they are aborted ([`crate::serve`]). Default 10 s.
    pub drain_timeout: Duration,
}

/// Default [`LogServiceConfig::replay_cache`]: far more than a shipper keeps in flight (its
/// window is 1024), at about 100 bytes each.
pub const REPLAY_CACHE_ENTRIES: usize = 65_536;

impl Default for LogServiceConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            max_record: DEFAULT_MAX_RECORD,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            busy_poll: Duration::from_micros(50),
            register_with_rpcbind: true,
            rpcbind_timeout: Duration::from_secs(2),
            replay_cache: REPLAY_CACHE_ENTRIES,
            drain_timeout: DRAIN_TIMEOUT,
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
