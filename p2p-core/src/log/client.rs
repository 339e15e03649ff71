//! A record-marked ONC RPC stream: send framed calls, read whole reply records.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use p2p_proto::Encode;
use p2p_proto::rpc::record::{Record, RecordDecoder};
use tokio::io::{AsyncRead, AsyncWrite};

use super::LogError;
use crate::connection::{Connection, ReadError, Wait};

/// Replies this module reads are small (an rpcbind answer, a SENDLOG result).
pub(crate) const MAX_REPLY: usize = 8 * 1024;

/// A fresh transaction id: a per-process counter starting from a time- and pid-derived value, so
/// that two runs of a program do not reuse each other's ids.
pub(crate) fn next_xid() -> u32 {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    NEXT.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
        AtomicU32::new(nanos ^ std::process::id().rotate_left(16))
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// A message already encoded (the callers build calls of several types).
struct Encoded<'a>(&'a [u8]);

impl Encode for Encoded<'_> {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.0);
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }
}

/// One stream carrying record-marked RPC messages.
#[derive(Debug)]
pub(crate) struct RpcStream<S> {
    conn: Connection<S>,
    decoder: RecordDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RpcStream<S> {
    pub(crate) fn new(stream: S, max_record: usize) -> Self {
        Self {
            conn: Connection::with_capacity(stream, 1024),
            decoder: RecordDecoder::new(max_record),
        }
    }

    /// Frames and sends one message.
    pub(crate) async fn send(&mut self, msg: &[u8]) -> Result<(), LogError> {
        self.conn
            .write_message(&Record(Encoded(msg)), None)
            .await
            .map_err(|e| LogError::io("sending an RPC call", e))
    }

    /// Reads the next whole record.
    pub(crate) async fn recv(&mut self, what: &'static str) -> Result<BytesMut, LogError> {
        // The decoder bounds a record's length itself.
        let read = self
            .conn
            .read_message(&mut self.decoder, Wait::Unbounded, usize::MAX)
            .await;
        read.map_err(|e| match e {
            ReadError::Malformed(e) => LogError::Record(e),
            ReadError::Closed => LogError::Closed { what },
            ReadError::Io(e) => LogError::io(what, e),
            ReadError::TimedOut | ReadError::TooLong(_) => {
                LogError::io(what, io::Error::other(e.to_string()))
            }
        })
    }
    /// Sends `msg` and returns the reply record, within `timeout`.
    pub(crate) async fn call(
        &mut self,
        msg: &[u8],
        what: &'static str,
        timeout: Duration,
    ) -> Result<BytesMut, LogError> {
        let exchange = async {
            self.send(msg).await?;
            self.recv(what).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| LogError::Timeout { what, timeout })?
    }
}
