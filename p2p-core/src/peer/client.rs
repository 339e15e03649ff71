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
    /// The reply broke off part way.
    #[error("the directory server's reply broke off")]
    Truncated,
    /// The reply did not decode.
    #[error("malformed reply from the directory server: {0}")]
    Decode(#[from] DecodeError),
    /// The server did not answer in time.
    #[error("the directory server did not answer within {0:?}")]
    Timeout(Duration),
    /// Reading or writing the socket failed.
    #[error("directory connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Talks to one directory server.
#[derive(Clone, Debug)]
pub struct DirectoryClient {
    server: String,
    timeout: Duration,
}

/// Bytes read at a time from the server.
const READ_CHUNK: usize = 64 * 1024;

/// Default time for a whole operation (connect, request, reply).
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

    /// Sets the time a whole operation may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends one request on a new connection and reads its reply.
    pub async fn call(&self, request: &Request) -> Result<Reply, ClientError> {
        match timeout(self.timeout, self.call_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    /// A new connection to the server, one per operation.
    async fn open(&self) -> Result<TcpStream, ClientError> {
        let stream =
            TcpStream::connect(&self.server)
                .await
                .map_err(|source| ClientError::Connect {
                    server: self.server.clone(),
                    source,
                })?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn call_inner(&self, request: &Request) -> Result<Reply, ClientError> {
        let mut stream = self.open().await?;
        let mut out = BytesMut::with_capacity(request.encoded_len());
        request.encode(&mut out);
        stream.write_all(&out).await?;
        let op = request.op();
        read_reply(&mut stream, |buf| Ok(Reply::decode_with(op, buf)?)).await
    }

    /// `CAPABILITIES` (PROTOCOL.md §6.1): the extension operations the server
    /// accepts, or `None` when it closed without a reply byte (a classic
    /// server, cleanly or with a reset).
    pub async fn capabilities(&self) -> Result<Option<CapabilitiesReply>, ClientError> {
        let exchange = async {
            let mut stream = self.open().await?;
            let mut out = BytesMut::with_capacity(CapabilitiesRequest.encoded_len());
            CapabilitiesRequest.encode(&mut out);
            stream.write_all(&out).await?;
            read_reply(&mut stream, |buf| Ok(CapabilitiesReply::decode(buf)?)).await
        };
        match timeout(self.timeout, exchange).await {
            Ok(Ok(reply)) => Ok(Some(reply)),
            Ok(Err(ClientError::NoReply)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }
}

/// Reads until `decode` yields a message. End of stream, or a reset, before
/// any byte is [`ClientError::NoReply`] (how a classic server refuses an
/// operation it does not know); after some bytes, [`ClientError::Truncated`].
async fn read_reply<T>(
    stream: &mut TcpStream,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ClientError>,
) -> Result<T, ClientError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some((message, _)) = decode(&buf)? {
            return Ok(message);
        }
        // Large reads keep re-decoding a big listing rare.
        buf.reserve(READ_CHUNK);
        match stream.read_buf(&mut buf).await {
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
            Err(e) => return Err(e.into()),
        }
    }
}
