//! The one connection type of every client and service: a byte stream (TCP, Unix, or anything
//! `AsyncRead + AsyncWrite`) with the bytes read from it and not yet decoded.
//!
//! - [`Connection::read_message`] reads until a [`StreamDecoder`] yields a message, within a
//!   [`Wait`] and a length cap. The bytes after the message stay buffered (a transfer's body
//!   after its header, a pipelined RPC record): [`Connection::into_parts`] hands them over.
//! - [`Connection::write_message`] encodes a message and writes it with an idle timeout: a peer
//!   that takes bytes, however slowly, is never cut; one that takes none for the timeout is.
//!
//! What a failure means to the other side (close, or reset a reply cut short) stays with the
//! caller, which knows whether what it sent was whole; `get_ref` gives it the socket for that.
//!
//! ```
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use std::time::Duration;
//! use p2p_core::connection::{Connection, Wait};
//! use p2p_proto::MessageDecoder;
//! use p2p_proto::transfer::{GetFile, TransferRequest};
//!
//! let (client, server) = tokio::io::duplex(64);
//! let mut client = Connection::new(client);
//! let mut server = Connection::new(server);
//! let request = GetFile { file: "a.txt".parse()? };
//! client.write_message(&request, Some(Duration::from_secs(5))).await?;
//! let mut decoder = MessageDecoder::<TransferRequest>::new();
//! let got = server.read_message(&mut decoder, Wait::Idle(Duration::from_secs(5)), 1024).await?;
//! assert!(matches!(got, TransferRequest::GetFile(r) if r.file.as_str() == "a.txt"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use p2p_proto::{Encode, StreamDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

/// Default [`Connection::with_capacity`]: what one read asks for at least.
pub const DEFAULT_READ_CHUNK: usize = 4 * 1024;

/// How long [`Connection::read_message`] waits for bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The whole message by this instant (a server's request: a client that trickles its request
    /// cannot hold a connection open).
    Until(Instant),
    /// At most this long for each read: a message that keeps arriving, however slowly, is never
    /// cut (a listing or a transfer header on a slow link).
    Idle(Duration),
    /// As long as it takes: the caller bounds the whole exchange.
    Unbounded,
}

/// Why [`Connection::read_message`] returned no message. The bytes of the message that did
/// arrive are still in [`Connection::buffered`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The other side ended the stream before a whole message.
    #[error("the connection ended before a whole message")]
    Closed,
    /// No byte arrived in time (see [`Wait`]).
    #[error("no byte arrived in time")]
    TimedOut,
    /// More than this many bytes arrived without a whole message.
    #[error("more than {0} bytes without a whole message")]
    TooLong(usize),
    /// The bytes are not a message; the stream cannot be read further.
    #[error("{0}")]
    Malformed(E),
    /// Reading the stream failed (a reset is `ConnectionReset`).
    #[error(transparent)]
    Io(io::Error),
}

/// Whether a socket error means the other side reset or dropped the connection.
pub(crate) fn is_cut(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Makes the coming close of `stream` a reset (`SO_LINGER` 0): what is still
/// queued is dropped, and the other side sees a reset, never an end of stream
/// after a reply or transfer cut short.
pub(crate) fn reset_on_close(stream: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// A stream, its read buffer and its write buffer.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    read: BytesMut,
    read_chunk: usize,
    write: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection over `stream`, reading [`DEFAULT_READ_CHUNK`] bytes at a time at least.
    pub fn new(stream: S) -> Self {
        Self::with_capacity(stream, DEFAULT_READ_CHUNK)
    }

    /// A connection over `stream` whose reads ask for at least `read_chunk` bytes (large for a
    /// reply that may be a long listing, so that it is decoded again rarely).
    pub fn with_capacity(stream: S, read_chunk: usize) -> Self {
        let read_chunk = read_chunk.max(1);
        Self {
            stream,
            read: BytesMut::with_capacity(read_chunk),
            read_chunk,
            write: BytesMut::new(),
        }
    }

    /// Reads until `decoder` yields a message, waiting as `wait` says, and failing once more
    /// than `max_len` bytes are buffered without one. The bytes after the message stay buffered
    /// for the next call (or [`Self::into_parts`]).
    ///
    /// # Errors
    /// See [`ReadError`]; after any of them the stream is not at a message boundary.
    pub async fn read_message<D: StreamDecoder>(
        &mut self,
        decoder: &mut D,
        wait: Wait,
        max_len: usize,
    ) -> Result<D::Item, ReadError<D::Error>> {
        loop {
            match decoder.decode(&mut self.read) {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => return Err(ReadError::Malformed(e)),
            }
            if self.read.len() > max_len {
                return Err(ReadError::TooLong(max_len));
            }
            self.read.reserve(self.read_chunk);
            let read = self.stream.read_buf(&mut self.read);
            let read = match wait {
                Wait::Until(deadline) => timeout_at(deadline, read).await,
                Wait::Idle(idle) => timeout(idle, read).await,
                Wait::Unbounded => Ok(read.await),
            };
            match read {
                Err(_elapsed) => return Err(ReadError::TimedOut),
                Ok(Ok(0)) => return Err(ReadError::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Encodes `message` and writes it whole; with `idle`, fails with `TimedOut` when no byte of
    /// it is taken for that long (each write that moves bytes starts the wait again).
    ///
    /// # Errors
    /// Writing failed or timed out; part of the message may have been sent.
    pub async fn write_message(
        &mut self,
        message: &impl Encode,
        idle: Option<Duration>,
    ) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.write);
        out.clear();
        out.reserve(message.encoded_len());
        message.encode(&mut out);
        let written = self.write_all(&out, idle).await;
        self.write = out;
        written
    }

    /// Writes all of `bytes`, with `idle` as in [`Self::write_message`].
    ///
    /// # Errors
    /// Writing failed or timed out; part of `bytes` may have been sent.
    pub async fn write_all(&mut self, mut bytes: &[u8], idle: Option<Duration>) -> io::Result<()> {
        while !bytes.is_empty() {
            let write = self.stream.write(bytes);
            let written = match idle {
                Some(idle) => timeout(idle, write).await.map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no byte taken for {idle:?}"),
                    )
                })?,
                None => write.await,
            }?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[written..];
        }
        self.stream.flush().await
    }

    /// The bytes read and not yet taken by a message.
    pub fn buffered(&self) -> &[u8] {
        &self.read
    }

    /// The stream (to tune or reset the socket).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, to write to it directly (`sendfile`, `splice`).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream and the bytes read past the last message.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.read)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_proto::MessageDecoder;
    use p2p_proto::transfer::{TransferHeader, TransferRequest};
    use tokio::io::AsyncWriteExt;

    use super::{Connection, ReadError, Wait};

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_message_in_pieces_is_read_and_what_follows_stays_buffered() {
        let (mut writer, reader) = tokio::io::duplex(16);
        let sending = tokio::spawn(async move {
            for piece in [&b"\x00"[..], b"1", b"2\0", b"body"] {
                writer.write_all(piece).await.expect("write");
                tokio::task::yield_now().await;
            }
            writer
        });
        let mut conn = Connection::new(reader);
        let mut decoder = MessageDecoder::<TransferHeader>::new();
        let header = conn
            .read_message(&mut decoder, Wait::Idle(LONG), 64)
            .await
            .expect("a header");
        assert_eq!(header, TransferHeader::Ok { size: 12 });
        let writer = sending.await.expect("writer");
        // The body may still be arriving: read it through the stream the parts hand back.
        let (mut stream, buffered) = conn.into_parts();
        let mut body = buffered.to_vec();
        drop(writer);
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut body)
            .await
            .expect("body");
        assert_eq!(body, b"body");
    }

    #[tokio::test]
    async fn an_early_end_is_closed_and_keeps_the_partial_bytes() {
        let (mut writer, reader) = tokio::io::duplex(64);
        writer.write_all(b"GET_FI").await.expect("write");
        drop(writer);
        let mut conn = Connection::new(reader);
        let mut decoder = MessageDecoder::<TransferRequest>::new();
        let err = conn
            .read_message(&mut decoder, Wait::Idle(LONG), 1024)
            .await
            .expect_err("no whole message");
        assert!(matches!(err, ReadError::Closed), "{err:?}");
        assert_eq!(conn.buffered(), b"GET_FI");
    }

    #[tokio::test]
    async fn malformed_too_long_and_silent_streams_fail_each_their_way() {
        let (mut writer, reader) = tokio::io::duplex(64);
        writer.write_all(b"NOPE\0").await.expect("write");
        let mut conn = Connection::new(reader);
        let mut decoder = MessageDecoder::<TransferRequest>::new();
        let err = conn
            .read_message(&mut decoder, Wait::Idle(LONG), 1024)
            .await
            .expect_err("malformed");
        assert!(matches!(err, ReadError::Malformed(_)), "{err:?}");

        let (mut writer, reader) = tokio::io::duplex(64);
        writer
            .write_all(b"GET_FILE\0aaaaaaaa")
            .await
            .expect("write");
        let mut conn = Connection::new(reader);
        let err = conn
            .read_message(&mut decoder, Wait::Idle(LONG), 8)
            .await
            .expect_err("too long");
        assert!(matches!(err, ReadError::TooLong(8)), "{err:?}");

        let (_writer, reader) = tokio::io::duplex(64);
        let mut conn = Connection::new(reader);
        tokio::time::pause();
        let err = conn
            .read_message(&mut decoder, Wait::Idle(Duration::from_secs(5)), 1024)
            .await
            .expect_err("silent");
        assert!(matches!(err, ReadError::TimedOut), "{err:?}");
        let err = conn
            .read_message(
                &mut decoder,
                Wait::Until(tokio::time::Instant::now() + Duration::from_secs(5)),
                1024,
            )
            .await
            .expect_err("silent");
        assert!(matches!(err, ReadError::TimedOut), "{err:?}");
    }

    #[tokio::test]
    async fn a_write_nobody_takes_times_out_and_a_slow_reader_is_waited_for() {
        let (writer, mut reader) = tokio::io::duplex(8);
        let mut conn = Connection::new(writer);
        let header = TransferHeader::Ok { size: 1 << 40 };
        // A reader that takes one byte at a time: never idle for long, so the write completes.
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while tokio::io::AsyncReadExt::read(&mut reader, &mut byte)
                .await
                .expect("read")
                == 1
            {
                got.push(byte[0]);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (got, reader)
        });
        conn.write_message(&header, Some(Duration::from_secs(5)))
            .await
            .expect("written");
        let (stream, _) = conn.into_parts();
        drop(stream);
        let (got, _) = reading.await.expect("reader");
        assert_eq!(got, b"\x001099511627776\0");

        let (writer, _reader) = tokio::io::duplex(4);
        let mut conn = Connection::new(writer);
        tokio::time::pause();
        let err = conn
            .write_message(&header, Some(Duration::from_secs(5)))
            .await
            .expect_err("nobody reads");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
