//! Checks of the [`Encode`] / [`Decode`] contract, shared by this crate's unit tests, its fuzz
//! targets (`p2p_proto::fuzzing`, with the `fuzzing` feature) and the benches, and usable by anyone
//! adding a message.
//!
//! Every function panics with an assertion message naming the bytes when the contract is
//! broken, and returns normally otherwise:
//!
//! - [`known_answer`]: `encode(expected)` is exactly `bytes`, `bytes` followed by junk decode to
//!   `expected` leaving the junk, and every strict prefix of `bytes` is incomplete;
//! - [`prefixes_incomplete`]: every strict prefix of a message decodes as `Ok(None)`;
//! - [`round_trip`]: `encode` writes `encoded_len` bytes that decode to the same value, all of
//!   them consumed.
//!
//! ```
//! use p2p_proto::directory::{OpCode, PingResult, Reply, Request};
//! use p2p_proto::{Decode, testing};
//!
//! let (ping, _) = Request::decode(b"PING\0alice\0")?.expect("whole");
//! testing::known_answer((), b"PING\0alice\0", &ping);
//! testing::known_answer(OpCode::Ping, b"\x00", &Reply::Ping(PingResult::Ok));
//! assert_eq!(testing::round_trip((), &ping), b"PING\0alice\0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Debug;

use crate::codec::{Decode, Encode};

/// Encodes `message` into a new vector, checking that [`Encode::encoded_len`] is what
/// [`Encode::encode`] wrote.
///
/// # Panics
/// When `encoded_len` is wrong.
pub fn encode_to_vec(message: &(impl Encode + Debug)) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    assert_eq!(
        message.encoded_len(),
        out.len(),
        "encoded_len of {message:?} is not what encode wrote"
    );
    out
}

/// Known-answer check of one message decoded with context `ctx` (`()` for most):
/// - `encode(expected)` is exactly `bytes`, and `encoded_len` agrees;
/// - `bytes` followed by junk decode to `expected`, consuming exactly `bytes.len()`;
/// - every strict prefix of `bytes` decodes as incomplete (`Ok(None)`).
///
/// # Panics
/// When any of these does not hold.
pub fn known_answer<C, T>(ctx: C, bytes: &[u8], expected: &T)
where
    C: Copy,
    T: Encode + Decode<C> + PartialEq + Debug,
    T::Error: Debug,
{
    assert_eq!(
        encode_to_vec(expected),
        bytes,
        "encoding of {expected:?} (left) differs from the known answer (right)"
    );
    let mut with_junk = bytes.to_vec();
    with_junk.extend_from_slice(b"???");
    match T::decode_with(ctx, &with_junk) {
        Ok(Some((value, consumed))) => {
            assert_eq!(&value, expected, "decoding of {bytes:02x?}");
            assert_eq!(consumed, bytes.len(), "consumed of {bytes:02x?}");
        }
        other => panic!("decoding of {bytes:02x?} gave {other:?}"),
    }
    prefixes_incomplete::<C, T>(ctx, bytes);
}

/// Every strict prefix of the message `bytes` decodes as incomplete (`Ok(None)`).
///
/// # Panics
/// When one decodes as anything else.
pub fn prefixes_incomplete<C, T>(ctx: C, bytes: &[u8])
where
    C: Copy,
    T: Decode<C> + Debug,
    T::Error: Debug,
{
    for cut in 0..bytes.len() {
        match T::decode_with(ctx, &bytes[..cut]) {
            Ok(None) => {}
            other => panic!("prefix of {cut} bytes of {bytes:02x?} gave {other:?}"),
        }
    }
}

/// `decode(encode(value)) == (value, encoded_len(value))`; returns the encoding.
///
/// # Panics
/// When the encoding's length is not `encoded_len`, or it does not decode to `value`, wholly.
pub fn round_trip<C, T>(ctx: C, value: &T) -> Vec<u8>
where
    T: Encode + Decode<C> + PartialEq + Debug,
    T::Error: Debug,
{
    let bytes = encode_to_vec(value);
    match T::decode_with(ctx, &bytes) {
        Ok(Some((again, consumed))) => {
            assert_eq!(&again, value, "{value:?} re-encoded as {bytes:02x?}");
            assert_eq!(
                consumed,
                bytes.len(),
                "re-encoding of {value:?} not consumed"
            );
        }
        other => panic!("re-encoding of {value:?} ({bytes:02x?}) decodes as {other:?}"),
    }
    bytes
}
