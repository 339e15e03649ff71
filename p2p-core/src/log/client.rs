//! A record-marked ONC RPC stream: send framed calls, read whole reply records.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use p2p_proto::StreamDecoder;
use p2p_proto::rpc::record::{RecordDecoder, encode_record};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::LogError;

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

/// One stream carrying record-marked RPC messages.
#[derive(Debug)]
pub(crate) struct RpcStream<S> {
    stream: S,
    buf: BytesMut,
    decoder: RecordDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RpcStream<S> {
    pub(crate) fn new(stream: S, max_record: usize) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(1024),
            decoder: RecordDecoder::new(max_record),
        }
    }

    /// Frames and sends one message.
    pub(crate) async fn send(&mut self, msg: &[u8]) -> Result<(), LogError> {
        let mut out = Vec::with_capacity(msg.len() + 4);
        encode_record(msg, &mut out);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| LogError::io("sending an RPC call", e))
    }

    /// Reads the next whole record.
    pub(crate) async fn recv(&mut self, what: &'static str) -> Result<BytesMut, LogError> {
        loop {
            if let Some(record) = self.decoder.decode(&mut self.buf)? {
                return Ok(record);
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| LogError::io(what, e))?;
            if n == 0 {
                return Err(LogError::Closed { what });
            }
        }
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
