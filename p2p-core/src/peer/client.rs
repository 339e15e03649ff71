//! The peer's directory client: one TCP connection per operation.

use std::io;
use std::time::Duration;

use p2p_proto::directory::{
    CapabilitiesReply, CapabilitiesRequest, DecodeError, OpCode, Reply, Request,
};
use p2p_proto::{Encode, MessageDecoder, StreamDecoder};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::connection::{Connection, ReadError, Wait};

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
    /// The reply grew past [`MAX_REPLY_LEN`] bytes without ending.
    #[error("the directory server's reply is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
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

/// Bytes read at a time from the server: large, so that a long listing is
/// decoded again rarely while it arrives.
const READ_CHUNK: usize = 64 * 1024;

/// The longest reply read: a listing past this is refused
/// ([`ClientError::TooLong`]) rather than held in memory. A million
/// publications with full-length names and descriptions fit.
pub const MAX_REPLY_LEN: usize = 1 << 30;

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
        let mut conn = self.open().await?;
        self.send(&mut conn, request).await?;
        let mut decoder = MessageDecoder::<Reply, OpCode>::with_context(request.op());
        self.read_reply(&mut conn, &mut decoder).await
    }

    /// A new connection to the server, one per operation.
    async fn open(&self) -> Result<Connection<TcpStream>, ClientError> {
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
        Ok(Connection::with_capacity(stream, READ_CHUNK))
    }

    /// Writes the whole request; fails when the server takes none of it for the timeout.
    async fn send(
        &self,
        conn: &mut Connection<TcpStream>,
        request: &impl Encode,
    ) -> Result<(), ClientError> {
        match conn.write_message(request, Some(self.timeout)).await {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(ClientError::Timeout(self.timeout))
            }
            written => Ok(written?),
        }
    }

    /// Reads the reply. End of stream, or a reset, before any byte is
    /// [`ClientError::NoReply`] (how a classic server refuses an operation it
    /// does not know); after some bytes, [`ClientError::Truncated`] (a reset
    /// then too: a server cuts a reply it could not finish with a reset). Each
    /// read waits at most the timeout: [`ClientError::Timeout`] before the first
    /// byte, [`ClientError::Stalled`] after.
    async fn read_reply<D>(
        &self,
        conn: &mut Connection<TcpStream>,
        decoder: &mut D,
    ) -> Result<D::Item, ClientError>
    where
        D: StreamDecoder<Error = DecodeError>,
    {
        let idle = self.timeout;
        let read = conn
            .read_message(decoder, Wait::Idle(idle), MAX_REPLY_LEN)
            .await;
        let received = conn.buffered().len();
        read.map_err(|e| match e {
            ReadError::Malformed(e) => ClientError::Decode(e),
            ReadError::TimedOut if received == 0 => ClientError::Timeout(idle),
            ReadError::TimedOut => ClientError::Stalled { received, idle },
            ReadError::Closed if received == 0 => ClientError::NoReply,
            ReadError::Closed => ClientError::Truncated,
            ReadError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                if received == 0 {
                    ClientError::NoReply
                } else {
                    ClientError::Truncated
                }
            }
            ReadError::Io(e) => ClientError::Io(e),
            ReadError::TooLong(max) => ClientError::TooLong { max },
        })
    }

    /// `CAPABILITIES` (PROTOCOL.md §6.1): the extension operations the server
    /// accepts, or `None` when it closed without a reply byte (a classic
    /// server, cleanly or with a reset).
    pub async fn capabilities(&self) -> Result<Option<CapabilitiesReply>, ClientError> {
        let exchange = async {
            let mut conn = self.open().await?;
            self.send(&mut conn, &CapabilitiesRequest).await?;
            let mut decoder = MessageDecoder::<CapabilitiesReply>::new();
            self.read_reply(&mut conn, &mut decoder).await
        };
        match exchange.await {
            Ok(reply) => Ok(Some(reply)),
            Err(ClientError::NoReply) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
