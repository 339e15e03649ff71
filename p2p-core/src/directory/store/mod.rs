//! The directory's state behind one interface, with three implementations.
//!
//! Every method is one protocol operation and is atomic with respect to the
//! others: an implementation decides and applies it under one lock or in one
//! transaction, so concurrent clients always see a state that some sequential
//! order of their operations explains. A method that answers anything but `Ok`
//! changes nothing. A method that returns `Err` could not reach its state: the
//! server answers the operation's "other error" byte.
//!
//! | store | URL | durable | shared by several servers |
//! |---|---|---|---|
//! | [`MemoryStore`] | `memory:` | no | no |
//! | [`SqliteStore`] | `sqlite:PATH` | yes: a reply only after its change is synced | no (the file is locked) |
//! | [`PostgresStore`] | `postgres://USER@HOST:PORT/DB` | yes: synchronous commit | yes |
//!
//! No reply reveals a state a crash could lose: [`SqliteStore`] answers reads
//! from a copy that changes only after a commit is synced, and PostgreSQL makes
//! a commit visible only once it is flushed.

mod index;
mod memory;
mod postgres;
mod sqlite;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use p2p_proto::Encode;
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PublishResult, RegisterResult, Reply, SearchTerm, UnregisterResult,
};
use p2p_proto::field::{Description, FileName, UserName};

use super::view::DirectoryView;

pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION};
pub use sqlite::{SCHEMA_VERSION as SQLITE_SCHEMA_VERSION, SqliteOptions, SqliteStore};

/// The directory's state: users, their connection, their publications.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// `REGISTER`: create `user`, not connected, with no publications.
    async fn register(&self, user: &UserName) -> Result<RegisterResult, StoreError>;
    /// `UNREGISTER`: remove `user` and its publications, connected or not.
    async fn unregister(&self, user: &UserName) -> Result<UnregisterResult, StoreError>;
    /// `CONNECT`: record the address where `user` serves files.
    async fn connect(&self, user: &UserName, addr: PeerAddr) -> Result<ConnectResult, StoreError>;
    /// `DISCONNECT`: forget the address; publications stay.
    async fn disconnect(&self, user: &UserName) -> Result<DisconnectResult, StoreError>;
    /// `PUBLISH`: add a file reference for a connected `user`.
    async fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> Result<PublishResult, StoreError>;
    /// `DELETE`: remove a file reference of a connected `user`.
    async fn delete(&self, user: &UserName, file: &FileName) -> Result<DeleteResult, StoreError>;
    /// `LIST_USERS`: the connected users other than `user`, in connection order.
    async fn list_users(&self, user: &UserName) -> Result<ListUsersReply, StoreError>;
    /// `LIST_USERS` written as its reply bytes to `out`: exactly the encoding
    /// of [`Self::list_users`]'s reply. The default encodes that reply; a store
    /// can instead copy entries it keeps encoded, as [`MemoryStore`] does.
    async fn encode_list_users(
        &self,
        user: &UserName,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        let reply = Reply::ListUsers(self.list_users(user).await?);
        out.reserve(reply.encoded_len());
        reply.encode(out);
        Ok(())
    }
    /// `LIST_CONTENT`: the files `target` published, in publication order.
    async fn list_content(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<ListContentReply, StoreError>;
    /// `GET_USER_INFO`: where the connected `target` serves files.
    async fn get_user_info(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<GetUserInfoReply, StoreError>;
    /// `SEARCH` (PROTOCOL.md §6.2): the publications of connected users other
    /// than `user` that match every term ([`matches`](p2p_proto::directory::matches)), most recently
    /// published first, at most `limit`. The caller checks the query
    /// ([`SearchQuery::terms`](p2p_proto::directory::SearchQuery::terms)).
    async fn search(
        &self,
        user: &UserName,
        terms: &[SearchTerm],
        limit: usize,
    ) -> Result<SearchAnswer, StoreError>;
    /// `PING` (PROTOCOL.md §6.3) from `from`: the connected `user` is alive.
    async fn ping(&self, user: &UserName, from: IpAddr) -> Result<PingAnswer, StoreError>;
    /// Disconnects (as DISCONNECT: publications stay) every connected user
    /// that has pinged, but not within `silence`; returns who. Each expired
    /// user is returned by exactly one call, also with several servers on one
    /// store.
    async fn expire(&self, silence: Duration) -> Result<Vec<UserName>, StoreError>;
    /// Counts for diagnostics and tests.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    /// What the status page shows, from one consistent state: the totals,
    /// and the connected users in connection order (at most `limit`) with
    /// their publications' names (at most `limit` in all). Never more than
    /// LIST_USERS and LIST_CONTENT show anyone.
    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError>;
    /// What the store is and where it keeps its data, for the start-up line.
    fn describe(&self) -> String;
}

/// One SEARCH result (PROTOCOL.md §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    /// Who publishes it.
    pub owner: UserName,
    /// The published name.
    pub file: FileName,
    /// Its description.
    pub description: Description,
}

/// What a store answers to SEARCH.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchAnswer {
    /// The matches, most recently published first.
    Ok(Vec<SearchHit>),
    /// The requester is not registered.
    UserDoesNotExist,
    /// The requester is not connected.
    NotConnected,
}

/// What a store answers to PING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingAnswer {
    /// Recorded.
    Ok,
    /// The user is not registered.
    UserDoesNotExist,
    /// The user is not connected.
    NotConnected,
    /// The PING came from another IP than the user's CONNECT.
    WrongAddress,
}

/// Counts of what a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Registered users.
    pub users: usize,
    /// Connected users.
    pub connected: usize,
    /// Publications over all users.
    pub publications: usize,
}

/// Why a store could not open or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SQLite database failed.
    #[error("SQLite database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The SQLite database is in use by another process.
    #[error(
        "SQLite database {} is in use by another process (one p2p-server per file; use PostgreSQL to run several)",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// PostgreSQL failed or could not be reached.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The database's schema is newer than this program knows (each durable
    /// store has its own `SCHEMA_VERSION`).
    #[error(
        "the database's schema is version {found}, newer than the {known} this p2p-server knows: run a newer p2p-server"
    )]
    SchemaTooNew {
        /// The version the database has.
        found: i64,
        /// The newest version this program knows.
        known: i64,
    },
    /// The database holds something that is not a directory, or a value the
    /// protocol cannot carry.
    #[error("the database does not hold a valid directory: {0}")]
    Invalid(String),
    /// A change could not be made durable; it was rolled back.
    #[error("the change could not be written: {0}")]
    Write(String),
    /// The store took longer than its operation timeout.
    #[error("the store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The store has stopped (its writer ended).
    #[error("the store has stopped")]
    Closed,
}

/// Where the directory keeps its state: the `--store` URL.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory:`: nothing kept across restarts.
    Memory,
    /// `sqlite:PATH`: an embedded SQLite database, created when missing.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database that several
    /// servers may share.
    Postgres(String),
}

impl StoreUrl {
    /// The default: `sqlite:p2p-directory.db` in the working directory.
    pub const DEFAULT: &'static str = "sqlite:p2p-directory.db";

    /// Opens the store this URL names: creates or migrates the schema and,
    /// for SQLite, loads the directory.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryStore::new()),
            Self::Sqlite(path) => {
                // Loading can take seconds: off the runtime, on a thread of
                // its own rather than the blocking pool, which would keep an
                // idle thread around after start.
                let path = path.clone();
                let (opened, loaded) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("p2p-store-open".into())
                    .spawn(move || {
                        let _ = opened.send(SqliteStore::open(&path, SqliteOptions::default()));
                    })
                    .map_err(|e| StoreError::Invalid(format!("cannot start a thread: {e}")))?;
                Arc::new(loaded.await.map_err(|_| StoreError::Closed)??)
            }
            Self::Postgres(url) => {
                Arc::new(PostgresStore::connect(url, PostgresOptions::default()).await?)
            }
        })
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url == "memory:" || url == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid(
                    "sqlite: needs a file path, e.g. sqlite:p2p-directory.db",
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            tokio_postgres::Config::from_str(url).map_err(|e| invalid(&e.to_string()))?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(invalid(
            "expected memory:, sqlite:PATH or postgres://USER@HOST:PORT/DB",
        ))
    }
}

impl fmt::Display for StoreUrl {
    /// The URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&postgres::redact(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_not() {
        assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
        assert_eq!(
            "sqlite:dir/p2p.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("dir/p2p.db".into())
        );
        assert_eq!(
            "sqlite:///var/lib/p2p.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/var/lib/p2p.db".into())
        );
        assert_eq!(
            StoreUrl::DEFAULT.parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("p2p-directory.db".into())
        );
        for ok in [
            "postgres://p2p@127.0.0.1:5432/p2p",
            "postgresql://p2p:secret@db.example:6000/dir",
        ] {
            assert!(
                matches!(ok.parse::<StoreUrl>(), Ok(StoreUrl::Postgres(_))),
                "{ok}"
            );
        }
        for bad in [
            "",
            "sqlite:",
            "mysql://x",
            "p2p.db",
            "postgres://u@h:notaport/db",
        ] {
            let err = bad.parse::<StoreUrl>().unwrap_err();
            assert!(matches!(err, StoreError::InvalidUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_password_is_never_shown() {
        let url: StoreUrl = "postgres://p2p:hunter2@db:5432/dir".parse().unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db:5432/dir"), "{shown}");
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
