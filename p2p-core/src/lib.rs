//! The tokio runtime of the P2P file-sharing system.

pub mod console;
pub mod datetime;
pub mod directory;
pub mod log;
pub mod peer;
