//! The peer's directory client: one TCP connection per operation.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use p2p_proto::directory::{CapabilitiesReply, CapabilitiesRequest, DecodeError, Reply, Request};
use p2p_proto::{Decode, Encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Why a directory operation got no usable reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot reach the directory server at {server}: {source}")]
    Connect {
        /// `host:port` as configured.
        server: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The server closed the connection without sending a byte: a classic
    /// server does this for an operation it does not know.
    #[error("the directory server closed the connection without a reply")]
    NoReply,
    /// The reply broke off part way: the server closed or reset the
    /// connection in the middle of it.
    #[error("the directory server's reply broke off (the connection was closed or reset part way)")]
    Truncated,
    /// The reply did not decode.
    #[error("malformed reply from the directory server: {0}")]
    Decode(#[from] DecodeError),
    /// The server did not answer in time: no byte of a reply (or the request
    /// could not be written) within the timeout.
    #[error("the directory server did not answer within {0:?}")]
    Timeout(Duration),
    /// The reply started and then stopped: no byte for the idle timeout.
    #[error(
        "the directory server stopped sending: {received} bytes of the reply, then none for {idle:?}"
    )]
    Stalled {
        /// Bytes of the reply received.
        received: usize,
        /// The idle timeout.
        idle: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("directory connection failed: {0}")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// Whether the request may have reached the server and taken effect:
    /// everything but a failure to connect. A state-changing operation that
    /// ends so must ask the server what happened (see `peer::settle`).
    pub fn may_have_taken_effect(&self) -> bool {
        !matches!(self, Self::Connect { .. })
    }
}

/// Talks to one directory server.
#[derive(Clone, Debug)]
pub struct DirectoryClient {
    server: String,
    timeout: Duration,
}

/// Bytes read at a time from the server.
const READ_CHUNK: usize = 64 * 1024;

/// Default timeout of an operation: to connect, to send the request, for the
/// reply's first byte, and between its bytes.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

impl DirectoryClient {
    /// A client for the server at `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        let server = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Self {
            server,
            timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Sets the operation's timeouts: to connect, to write the request, for
    /// the first byte of the reply, and the idle timeout between its bytes
    /// (a long listing on a slow link takes as long as it needs, as long
    /// as bytes keep arriving).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one request on a new connection and reads its reply.
    pub async fn call(&self, request: &Request) -> Result<Reply, ClientError> {
        let mut stream = self.open().await?;
        let mut out = BytesMut::with_capacity(request.encoded_len());
        request.encode(&mut out);
        self.send(&mut stream, &out).await?;
        let op = request.op();
        read_reply(&mut stream, self.timeout, |buf| {
            Ok(Reply::decode_with(op, buf)?)
        })
        .await
    }

    /// A new connection to the server, one per operation.
    async fn open(&self) -> Result<TcpStream, ClientError> {
        let connect = match timeout(self.timeout, TcpStream::connect(&self.server)).await {
            Ok(connected) => connected,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:?}", self.timeout),
            )),
        };
        let stream = connect.map_err(|source| ClientError::Connect {
            server: self.server.clone(),
            source,
        })?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Writes the whole request within the timeout.
    async fn send(&self, stream: &mut TcpStream, out: &[u8]) -> Result<(), ClientError> {
        match timeout(self.timeout, stream.write_all(out)).await {
            Ok(written) => Ok(written?),
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    /// `CAPABILITIES` (PROTOCOL.md §6.1): the extension operations the server
    /// accepts, or `None` when it closed without a reply byte (a classic
    /// server, cleanly or with a reset).
    pub async fn capabilities(&self) -> Result<Option<CapabilitiesReply>, ClientError> {
        let exchange = async {
            let mut stream = self.open().await?;
            let mut out = BytesMut::with_capacity(CapabilitiesRequest.encoded_len());
            CapabilitiesRequest.encode(&mut out);
            self.send(&mut stream, &out).await?;
            read_reply(&mut stream, self.timeout, |buf| {
                Ok(CapabilitiesReply::decode(buf)?)
            })
            .await
        };
        match exchange.await {
            Ok(reply) => Ok(Some(reply)),
            Err(ClientError::NoReply) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Reads until `decode` yields a message. End of stream, or a reset, before
/// any byte is [`ClientError::NoReply`] (how a classic server refuses an
/// operation it does not know); after some bytes, [`ClientError::Truncated`]
/// (a reset then too: a server cuts a reply it could not finish with a
/// reset). Each read waits at most `idle`: [`ClientError::Timeout`] before the
/// first byte, [`ClientError::Stalled`] after.
async fn read_reply<T>(
    stream: &mut TcpStream,
    idle: Duration,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ClientError>,
) -> Result<T, ClientError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some((message, _)) = decode(&buf)? {
            return Ok(message);
        }
        // Large reads keep re-decoding a big listing rare.
        buf.reserve(READ_CHUNK);
        let read = match timeout(idle, stream.read_buf(&mut buf)).await {
            Ok(read) => read,
            Err(_) if buf.is_empty() => return Err(ClientError::Timeout(idle)),
            Err(_) => {
                return Err(ClientError::Stalled {
                    received: buf.len(),
                    idle,
                });
            }
        };
        match read {
            Ok(0) => {
                return Err(if buf.is_empty() {
                    ClientError::NoReply
                } else {
                    ClientError::Truncated
                });
            }
            Ok(_) => {}
            Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(ClientError::NoReply);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(ClientError::Truncated);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
