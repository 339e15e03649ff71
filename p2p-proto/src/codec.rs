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

use bytes::{BufMut, BytesMut};
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
