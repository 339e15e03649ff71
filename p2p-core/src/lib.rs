//! The tokio runtime of the P2P file-sharing system.

pub mod connection;
pub mod console;
pub mod datetime;
pub mod directory;
pub mod log;
pub mod monitor;
pub mod peer;
pub mod serve;

/// The crate README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
