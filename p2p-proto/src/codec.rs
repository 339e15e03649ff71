//! The one codec interface every message of the crate implements.
//!
//! - [`Encode`]: write the message into any [`BufMut`]; cannot fail, and
//!   [`Encode::encoded_len`] is exact.
//! - [`Decode`]: read one message from the start of a byte slice. `Ok(None)` means "a strict
//!   prefix of a message: wait for more bytes"; `Ok(Some((message, consumed)))` leaves the bytes
//!   after `consumed` alone; `Err` is final. Messages whose bytes do not say what they are (a
//!   directory reply answers the `OP` of its request) take that as their context `Ctx`.
//! - [`StreamDecoder`]: the socket-loop form, in the shape of `tokio_util::codec::Decoder`: it
//!   takes its message off the front of a [`BytesMut`] and keeps whatever it needs to resume.
//!
//! Behind each `Decode` is a crate-private streaming nom parser; [`finish`] maps nom's three
//! outcomes onto this contract in one place.
//!
//! Adding a message is: the type, its `Encode` and `Decode` impls, and its known-answer vectors
//! (checked with the crate's test helpers, which work on these traits).
//!
//! ```
//! use p2p_proto::{Decode, Encode};
//! use p2p_proto::directory::{OpCode, Reply, Request};
//!
//! let request: Request = Request::decode(b"PING\0alice\0")?.expect("whole").0;
//! let mut wire = Vec::with_capacity(request.encoded_len());
//! request.encode(&mut wire);
//! assert_eq!(wire, b"PING\0alice\0");
//! // A reply is decoded for the operation it answers.
//! let (reply, used) = Reply::decode_with(OpCode::Ping, b"\x00")?.expect("whole");
//! assert!(reply.is_ok() && used == 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::{Buf, BufMut, BytesMut};
use nom::IResult;

/// A message that can be written to the wire.
pub trait Encode {
    /// Writes the message. Cannot fail: values that could not be encoded cannot be built.
    fn encode(&self, buf: &mut impl BufMut);

    /// The exact number of bytes [`Self::encode`] writes.
    fn encoded_len(&self) -> usize;
}

/// A message that can be read from the start of a byte slice, given the context `Ctx` its bytes
/// do not carry (`()` for most).
pub trait Decode<Ctx = ()>: Sized {
    /// What is wrong with a malformed message.
    type Error;

    /// Decodes one message from the start of `input`, knowing `ctx`.
    ///
    /// `Ok(None)` when `input` is a strict prefix of a message; `Ok(Some((message, consumed)))`
    /// otherwise, the bytes after `consumed` left alone.
    ///
    /// # Errors
    /// The message is malformed; more bytes cannot fix it.
    fn decode_with(ctx: Ctx, input: &[u8]) -> Result<Option<(Self, usize)>, Self::Error>;

    /// [`Self::decode_with`] for a message that needs no context.
    ///
    /// # Errors
    /// As [`Self::decode_with`].
    fn decode(input: &[u8]) -> Result<Option<(Self, usize)>, Self::Error>
    where
        Ctx: Default,
    {
        Self::decode_with(Ctx::default(), input)
    }
}

/// A resumable decoder for a socket loop, in the shape of `tokio_util::codec::Decoder`.
///
/// `decode` takes one item off the front of `src`. `Ok(None)` means "not enough bytes yet": `src`
/// is left as it was (the decoder may remember how far it has looked, so that bytes are not
/// rescanned), and the caller appends more and calls again. After an `Err` the stream cannot be
/// resynchronised: close it.
pub trait StreamDecoder {
    /// What one call yields.
    type Item;
    /// What is wrong with the stream.
    type Error;

    /// Takes the next item off the front of `src`, or `Ok(None)` until one is whole.
    ///
    /// # Errors
    /// The stream is malformed; it cannot be read further.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error>;
}

/// The [`StreamDecoder`] of a message that implements [`Decode`] (a directory reply, a transfer
/// request or header): each call decodes from the front of the buffer, given the context `Ctx`,
/// and takes the message's bytes off it; what follows the message stays in the buffer.
///
/// It keeps no scan position, so a message arriving in many pieces is decoded again from its
/// start each time: a socket loop reads in large chunks to keep that rare.
///
/// ```
/// use bytes::BytesMut;
/// use p2p_proto::directory::{OpCode, Reply};
/// use p2p_proto::{MessageDecoder, StreamDecoder};
///
/// let mut decoder = MessageDecoder::<Reply, OpCode>::with_context(OpCode::Ping);
/// let mut buf = BytesMut::from(&b"\x00rest"[..]);
/// let reply = decoder.decode(&mut buf)?.expect("whole");
/// assert!(reply.is_ok());
/// assert_eq!(&buf[..], b"rest");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MessageDecoder<T, Ctx = ()> {
    ctx: Ctx,
    message: std::marker::PhantomData<fn() -> T>,
}

impl<T, Ctx> MessageDecoder<T, Ctx> {
    /// A decoder of `T` messages that answer `ctx`.
    pub const fn with_context(ctx: Ctx) -> Self {
        Self {
            ctx,
            message: std::marker::PhantomData,
        }
    }
}

impl<T> MessageDecoder<T> {
    /// A decoder of `T` messages, which need no context.
    pub const fn new() -> Self {
        Self::with_context(())
    }
}

impl<T> Default for MessageDecoder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, Ctx: std::fmt::Debug> std::fmt::Debug for MessageDecoder<T, Ctx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageDecoder")
            .field("message", &std::any::type_name::<T>())
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<T: Decode<Ctx>, Ctx: Clone> StreamDecoder for MessageDecoder<T, Ctx> {
    type Item = T;
    type Error = T::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, T::Error> {
        Ok(
            T::decode_with(self.ctx.clone(), src)?.map(|(message, used)| {
                src.advance(used);
                message
            }),
        )
    }
}

/// Maps a streaming nom parse of `input` onto the [`Decode`] contract, nom's three outcomes
/// each explicitly: `Incomplete` is `Ok(None)`; `Failure` (a value that breaks the grammar) and
/// `Error` (no alternative matched; the crate's parsers `cut` before returning, so this is
/// a grammar error too) are the error they carry.
#[inline]
pub(crate) fn finish<T, E>(
    input: &[u8],
    result: IResult<&[u8], T, E>,
) -> Result<Option<(T, usize)>, E> {
    match result {
        Ok((rest, value)) => Ok(Some((value, input.len() - rest.len()))),
        Err(nom::Err::Incomplete(_)) => Ok(None),
        Err(nom::Err::Failure(e)) => Err(e),
        Err(nom::Err::Error(e)) => Err(e),
    }
}

/// Encodes `message` into a new vector of exactly its length (tests, fuzzing, benches).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn to_vec(message: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, buf: &mut impl BufMut) {
        (**self).encode(buf);
    }

    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

/// Nothing: the arguments of a procedure that takes none (`void`).
impl Encode for () {
    fn encode(&self, _buf: &mut impl BufMut) {}

    fn encoded_len(&self) -> usize {
        0
    }
}

/// `void` decodes from no bytes.
impl Decode for () {
    type Error = std::convert::Infallible;

    fn decode_with((): (), _input: &[u8]) -> Result<Option<(Self, usize)>, Self::Error> {
        Ok(Some(((), 0)))
    }
}

/// `decoder`'s answer for a buffer holding `bytes`, with how many of them the item took: the
/// slice form of [`StreamDecoder::decode`], to compare it with [`Decode::decode`] (tests and
/// fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_from<D: StreamDecoder>(
    decoder: &mut D,
    bytes: &[u8],
) -> Result<Option<(D::Item, usize)>, D::Error> {
    let mut src = BytesMut::from(bytes);
    Ok(decoder
        .decode(&mut src)?
        .map(|item| (item, bytes.len() - src.len())))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{MessageDecoder, StreamDecoder};
    use crate::transfer::{TransferHeader, TransferRequest};

    #[test]
    fn message_decoder_waits_for_a_whole_message_and_leaves_what_follows() {
        let mut decoder = MessageDecoder::<TransferRequest>::new();
        let mut buf = BytesMut::from(&b"GET_FILE\0a.t"[..]);
        assert!(decoder.decode(&mut buf).expect("a prefix").is_none());
        assert_eq!(&buf[..], b"GET_FILE\0a.t", "a prefix stays in the buffer");
        buf.extend_from_slice(b"xt\0GET");
        let request = decoder.decode(&mut buf).expect("whole").expect("whole");
        assert!(matches!(request, TransferRequest::GetFile(r) if r.file.as_str() == "a.txt"));
        assert_eq!(&buf[..], b"GET");
    }

    #[test]
    fn message_decoder_reports_a_malformed_message() {
        let mut decoder = MessageDecoder::<TransferHeader>::new();
        let mut buf = BytesMut::from(&b"\x03"[..]);
        assert_eq!(
            decoder.decode(&mut buf).map(|h| h.is_some()),
            Err(crate::DecodeError::InvalidTransferResult { code: 3 })
        );
    }
}
