//! Shared helpers for the benches and the load generator (`p2p-load`).
//!
//! - [`stats`]: latency samples and percentiles.
//! - [`baseline`]: the plain reference implementations every figure is a ratio against: a minimal
//!   accept → read one NUL-terminated op → 1-byte reply → close server, and a plain file transfer
//!   over a loopback socket with 1 MiB read/write loops.
//! - [`proc`]: peak and current RSS from `/proc`.
//! - [`sample`]: representative protocol messages for the codec benches.

pub mod baseline;
pub mod proc;
pub mod sample;
pub mod stats;
