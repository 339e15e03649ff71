//! A read-only view of the directory for the status page: the connected
//! users in connection order, with their address and the names of their
//! publications, and the store's totals.
//!
//! The view never holds more than LIST_USERS and LIST_CONTENT already show
//! anyone: addresses of connected users only, file names only (no
//! descriptions).
//!
//! Every store answers it ([`Store::directory_view`](super::Store::directory_view)).

use p2p_proto::directory::PeerAddr;
use p2p_proto::field::{FileName, UserName};

use super::store::StoreStats;

/// A connected user as the status page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedUser {
    /// The user's name.
    pub name: UserName,
    /// Where it serves files (as LIST_USERS shows it).
    pub addr: PeerAddr,
    /// How many files it publishes.
    pub publications: usize,
    /// Its publications' names in publication order (as LIST_CONTENT shows
    /// them), possibly cut short: see [`DirectoryView::complete`].
    pub files: Vec<FileName>,
}

/// The directory as the status page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryView {
    /// The store's totals.
    pub stats: StoreStats,
    /// Connected users in connection order: at most the limit asked for.
    pub connected: Vec<ConnectedUser>,
    /// False when users or file names were left out to stay within the
    /// limit, or when the store cannot list them at all.
    pub complete: bool,
    /// False when the store gives totals only (no user list).
    pub listed: bool,
}
