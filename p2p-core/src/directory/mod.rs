//! The directory server: accepts one request per connection, applies it to a
//! [`Store`], answers, and reports the operation on the console and to the log
//! service.
//!
//! A request's path, top to bottom: socket ([`server`]) → `p2p-proto` decode →
//! [`Handler::handle_into`] → [`Store`] → reply encode → socket; the console line
//! and the log record are side effects of the handler's result.

mod handler;
mod lines;
pub mod server;
pub mod store;
pub mod view;

pub use handler::{DEFAULT_SEARCH_LIMIT, Handler};
pub use lines::{COALESCE, LINE_BUFFER_LIMIT, LineWriter, LineWriterThread};
pub use server::{ServerConfig, bind, run, run_service};
pub use store::{
    MemoryStore, POSTGRES_SCHEMA_VERSION, PingAnswer, PostgresOptions, PostgresStore,
    SQLITE_SCHEMA_VERSION, SearchAnswer, SearchHit, SqliteOptions, SqliteStore, Store, StoreError,
    StoreStats, StoreUrl,
};
pub use view::{ConnectedUser, DirectoryView};
