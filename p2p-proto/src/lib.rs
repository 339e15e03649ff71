//! Sans-IO codecs for the P2P file-sharing system.
//!
//! Every message of the system's wire protocols is a Rust type with an encoder
//! (`encode` into any [`bytes::BufMut`], plus an exact `encoded_len`) and a
//! streaming nom decoder: incomplete input is `Ok(None)`, success returns the
//! message and the number of bytes consumed, malformed input is a typed error.
//! This crate performs no I/O and never reads a clock.
//!
//! - [`directory`]: peer ↔ directory server requests and replies.
//! - [`transfer`]: the peer ↔ peer `GET_FILE` request and reply header.
//! - [`field`], [`timestamp`]: validated protocol strings and `DD/MM/YYYY HH:MM:SS`.
//! - [`xdr`], [`rpc`], [`rpcbind`]: XDR, ONC RPC v2 (log program) and rpcbind/portmapper.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
pub mod directory;
mod error;
pub mod field;
pub mod rpc;
pub mod rpcbind;
pub mod testing;
pub mod timestamp;
pub mod transfer;
mod wire;
pub mod xdr;

pub use codec::{Decode, Encode, MessageDecoder, StreamDecoder};
pub use error::DecodeError;

#[cfg(test)]
mod testutil;

/// The crate README's example, compiled and run as a doctest (the README is inside the package,
/// so the packaged crate's doctests build too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
