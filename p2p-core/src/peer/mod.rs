//! The peer: a directory client (one operation per connection), a file server
//! for the user's published files, downloads from other peers, and the
//! interactive shell that drives them.

pub mod client;
pub mod destination;
pub mod download;
pub mod file_server;
pub mod settle;
pub mod shell;
pub mod state;
#[cfg(target_os = "linux")]
mod zerocopy;

pub use client::{ClientError, DirectoryClient};
pub use download::{
    BodyHashing, DownloadError, DownloadOptions, Downloader, ProgressReporter, TransferProgress,
    TransferProtocol, download,
};
pub use file_server::{FileServer, FileServerConfig, Library};
pub use shell::{PeerConfig, Session};
#[cfg(feature = "terminal")]
pub use shell::{ShellExit, ShellSignals, TerminalProgress, run_shell};
pub use state::{DigestCache, StateDir};
