//! The log service (ONC RPC `LOG_PROG` v1 over TCP and UDP, PROTOCOL.md §4) and the client that
//! ships log records to it.
//!
//! - [`LogService`]: binds TCP and UDP, registers with the local rpcbind, prints one line per
//!   SENDLOG. The protocol decisions are `p2p_proto::rpc::log::dispatch`'s; this module only moves
//!   bytes.
//! - [`LogShipper`]: a background task with a bounded queue that sends records in order over one
//!   persistent TCP connection, finding the port through rpcbind, reconnecting with backoff.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_core::log::LogError> {
//! use p2p_core::log::{LogShipper, LogShipperConfig, LogTarget};
//! use p2p_proto::rpc::log::LogEntry;
//!
//! let target: LogTarget = "127.0.0.1".parse()?;
//! let shipper = LogShipper::spawn(LogShipperConfig::new(target));
//! shipper.log(LogEntry::new("alice", "REGISTER", "24/11/2026 19:40:12", "")?);
//! let stats = shipper.shutdown().await;
//! println!("sent {}, dropped {}", stats.sent, stats.dropped);
//! # Ok(()) }
//! ```

use std::io;
use std::time::Duration;

use p2p_proto::rpc::message::CallFailure;
use p2p_proto::rpc::record::RecordError;
use p2p_proto::xdr::XdrError;

mod client;
pub mod rpcbind;
mod service;
mod shipper;

pub use service::{LogOutput, LogService, LogServiceConfig, REPLAY_CACHE_ENTRIES};
pub use shipper::{LogShipper, LogShipperConfig, LogStats, LogTarget};

/// Errors of the log service, its client and the rpcbind client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A peer did not answer in time.
    #[error("{what}: no answer within {timeout:?}")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A peer closed the connection.
    #[error("{what}: connection closed by the peer")]
    Closed {
        /// What was being waited for.
        what: &'static str,
    },
    /// A record-marking error on a stream.
    #[error("record marking: {0}")]
    Record(#[from] RecordError),
    /// A message that does not decode, or a value out of bounds.
    #[error("XDR: {0}")]
    Xdr(#[from] XdrError),
    /// A reply to a different call than the one waited for.
    #[error("reply xid {got:#x} does not match call xid {expected:#x}")]
    XidMismatch {
        /// The xid of the call.
        expected: u32,
        /// The xid of the reply.
        got: u32,
    },
    /// The server refused or could not run a call.
    #[error("{what}: {failure}")]
    Call {
        /// Which call.
        what: &'static str,
        /// The server's answer.
        failure: CallFailure,
    },
    /// rpcbind knows no such program on the host.
    #[error("LOG_PROG version 1 is not registered with rpcbind on {host}")]
    NotRegistered {
        /// The host asked.
        host: String,
    },
    /// A host name that does not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// A `HOST[:PORT]` that does not parse.
    #[error("invalid log target {input:?}: {reason}")]
    InvalidTarget {
        /// What was given.
        input: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Writes all of `bytes`, failing (`TimedOut`) only when none of them moves for `idle`: each write
/// that moves bytes starts the wait again, so a slow peer that keeps reading is never cut.
pub(crate) async fn write_moving<W>(
    writer: &mut W,
    mut bytes: &[u8],
    idle: Duration,
) -> io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    while !bytes.is_empty() {
        match tokio::time::timeout(idle, writer.write(bytes)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}
