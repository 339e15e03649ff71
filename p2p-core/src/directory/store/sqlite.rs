//! The embedded durable store: SQLite in WAL mode, one committer with group
//! commit, reads from an in-memory copy that follows the commits.
//!
//! # Sync policy
//!
//! `journal_mode=WAL`, `synchronous=FULL`: a commit returns once its WAL frames
//! are written and fsync'ed. The committer takes every change waiting in the
//! queue (up to [`SqliteOptions::max_batch`]), decides and applies them in
//! order in one transaction, commits — one fsync for the whole batch — and only
//! then applies them to the in-memory copy and answers. Changes that arrive
//! during a sync wait for the next one, so under load many operations share
//! each sync (group commit) while a lone operation pays exactly one.
//!
//! # Where the commit runs
//!
//! The committer is a task on the server's runtime and commits on its worker
//! thread, which blocks for the sync (about 0.15 ms per batch on this
//! project's test VM). A writer thread of its own was measured too: each
//! batch then costs a wake-up across threads each way, which on a loaded
//! machine waits for the scheduler; with 16 clients it made 0.74–0.78× the
//! memory store's throughput against 0.86–0.91× inline (docs/PERFORMANCE.md).
//! On a disk whose syncs take milliseconds, run `p2p-server --threads 2` or
//! more: the other workers take over the blocked one's connections.
//!
//! Reads (LIST_USERS, LIST_CONTENT, GET_USER_INFO) are answered from the
//! in-memory copy, which holds only synced changes: no reply ever shows a
//! state that a crash could still lose. A failed commit rolls the whole batch
//! back; its operations answer "other error" and change nothing.
//!
//! The file is opened with `locking_mode=EXCLUSIVE`: a second server on the
//! same file is refused at start, since two in-memory copies would diverge.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PublishResult, RegisterResult, Reply, SearchTerm, UnregisterResult,
};
use p2p_proto::field::{Description, FileName, UserName};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, params};
use tokio::sync::{Notify, oneshot};

use super::{MemoryStore, PingAnswer, SearchAnswer, Store, StoreError, StoreStats};
use crate::directory::view::DirectoryView;
use crate::monitor::names;

/// `PRAGMA application_id` of a directory database ("P2PD"), so that another
/// program's SQLite file is refused rather than taken over.
const APPLICATION_ID: i32 = 0x5032_5044;

/// The newest schema version this store knows: a database whose schema is
/// newer is refused at start rather than misread. (The SEARCH index and
/// liveness live in the in-memory copy: nothing to store for them.)
pub const SCHEMA_VERSION: i64 = 1;

/// The schema, by version: entry `n` takes a database from version `n` to
/// `n + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE users (
        id       INTEGER PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        conn_seq INTEGER,
        ip       TEXT,
        port     INTEGER
    );
    CREATE TABLE publications (
        user_id     INTEGER NOT NULL REFERENCES users(id),
        name        TEXT NOT NULL,
        description TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        PRIMARY KEY (user_id, name)
    ) WITHOUT ROWID;
"];

/// Settings of [`SqliteStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Most changes committed by one sync. Default 1024.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { max_batch: 1024 }
    }
}

/// A change, as the writer thread receives it.
#[derive(Debug)]
enum Change {
    Register(UserName),
    Unregister(UserName),
    Connect(UserName, PeerAddr),
    Disconnect(UserName),
    Publish(UserName, FileName, Description),
    Delete(UserName, FileName),
    /// A disconnection by the server of a user silent since the deadline,
    /// decided on the copy's liveness (answered as DISCONNECT: `Ok` when it
    /// expired the user, `NotConnected` otherwise).
    Expire(UserName, Instant),
}

impl Change {
    fn user(&self) -> &UserName {
        match self {
            Self::Register(user)
            | Self::Unregister(user)
            | Self::Connect(user, _)
            | Self::Disconnect(user)
            | Self::Publish(user, ..)
            | Self::Delete(user, _)
            | Self::Expire(user, _) => user,
        }
    }
}

type Answer = oneshot::Sender<Result<Reply, StoreError>>;

/// The durable embedded store. See the module documentation.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// The synced state; reads are answered here.
    mirror: Arc<MemoryStore>,
    shared: Arc<Shared>,
    /// The committer task, started by the first change (it needs the runtime).
    committer: OnceLock<tokio::task::JoinHandle<()>>,
}

/// What the store and its committer task share.
#[derive(Debug)]
struct Shared {
    /// Changes waiting for the next commit.
    queue: Mutex<Vec<(Change, Answer)>>,
    /// Wakes the committer when the queue becomes non-empty.
    ready: Notify,
    /// `None` once the store is dropped: the file is closed.
    writer: Mutex<Option<Writer>>,
    /// Most changes committed by one sync.
    max_batch: usize,
}

impl Drop for SqliteStore {
    /// Stops the committer and closes the file at once, so it can be opened
    /// again. Changes still queued answer "other error" (none are, once every
    /// request that used the store has been answered).
    fn drop(&mut self) {
        if let Some(task) = self.committer.take() {
            task.abort();
        }
        drop(lock(&self.shared.writer).take());
        for (_, answer) in lock(&self.shared.queue).drain(..) {
            let _ = answer.send(Err(StoreError::Closed));
        }
    }
}

/// Locks `mutex`; a panic while it was held cannot leave a half-applied
/// batch (a batch is one transaction), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, checks and migrates its
    /// schema, loads the directory and starts the writer thread. Blocks: call
    /// it from a blocking context.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut conn = Connection::open(path).map_err(err)?;
        // Another process holding the file must not make us wait: refuse.
        conn.busy_timeout(std::time::Duration::ZERO).map_err(err)?;
        let locked = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
                path: shown.clone(),
            },
            _ => err(e),
        };
        // Read-only checks first: a file that is not ours, or is newer, is
        // refused before anything (the switch to WAL included) writes to it.
        check(&conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => locked(e),
            MigrateError::Store(e) => e,
        })?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(locked)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "SQLite refused WAL mode (journal_mode is {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => locked(e),
            MigrateError::Store(e) => e,
        })?;
        let mirror = Arc::new(MemoryStore::new());
        let next_seq = load(&conn, &mirror).map_err(|e| match e {
            MigrateError::Sqlite(e) => err(e),
            MigrateError::Store(e) => e,
        })?;
        let writer = Writer {
            conn,
            path: shown.clone(),
            mirror: mirror.clone(),
            // Taken once: the recorder (if any) is installed before the store opens.
            commit_duration: metrics::histogram!(names::STORE_COMMIT_DURATION),
            batch_size: metrics::histogram!(names::STORE_COMMIT_BATCH_SIZE),
            next_seq,
        };
        Ok(Self {
            path: shown,
            mirror,
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                ready: Notify::new(),
                writer: Mutex::new(Some(writer)),
                max_batch: options.max_batch.max(1),
            }),
            committer: OnceLock::new(),
        })
    }

    async fn change(&self, change: Change) -> Result<Reply, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.committer
            .get_or_init(|| tokio::spawn(commit_loop(self.shared.clone())));
        lock(&self.shared.queue).push((change, answer));
        self.shared.ready.notify_one();
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

/// The committer: once woken, lets every other ready task of the runtime run
/// (so the requests that arrived together queue their changes), then commits
/// everything queued as one batch, and again until the queue is empty.
///
/// The batch is committed on this worker thread, which blocks for the fsync
/// (a fraction of a millisecond on an SSD). A thread of its own would cost a
/// wake-up across cores per batch each way, which on a loaded machine waits
/// for the scheduler far longer than the fsync takes (docs/PERFORMANCE.md).
async fn commit_loop(shared: Arc<Shared>) {
    loop {
        shared.ready.notified().await;
        loop {
            tokio::task::yield_now().await;
            let mut batch: Vec<_> = {
                let mut queue = lock(&shared.queue);
                let n = queue.len().min(shared.max_batch);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            match lock(&shared.writer).as_mut() {
                Some(writer) => writer.commit(&mut batch),
                // The store was dropped.
                None => return,
            }
        }
    }
}

/// Extracts the typed result of one operation from the writer's reply.
macro_rules! answer {
    ($reply:expr, $variant:ident) => {
        match $reply? {
            Reply::$variant(result) => Ok(result),
            other => Err(StoreError::Invalid(format!(
                "the writer answered {:?} for {}",
                other.op(),
                stringify!($variant)
            ))),
        }
    };
}

#[async_trait]
impl Store for SqliteStore {
    async fn register(&self, user: &UserName) -> Result<RegisterResult, StoreError> {
        answer!(self.change(Change::Register(user.clone())).await, Register)
    }

    async fn unregister(&self, user: &UserName) -> Result<UnregisterResult, StoreError> {
        answer!(
            self.change(Change::Unregister(user.clone())).await,
            Unregister
        )
    }

    async fn connect(&self, user: &UserName, addr: PeerAddr) -> Result<ConnectResult, StoreError> {
        answer!(
            self.change(Change::Connect(user.clone(), addr)).await,
            Connect
        )
    }

    async fn disconnect(&self, user: &UserName) -> Result<DisconnectResult, StoreError> {
        answer!(
            self.change(Change::Disconnect(user.clone())).await,
            Disconnect
        )
    }

    async fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> Result<PublishResult, StoreError> {
        let change = Change::Publish(user.clone(), file.clone(), description.clone());
        answer!(self.change(change).await, Publish)
    }

    async fn delete(&self, user: &UserName, file: &FileName) -> Result<DeleteResult, StoreError> {
        answer!(
            self.change(Change::Delete(user.clone(), file.clone()))
                .await,
            Delete
        )
    }

    async fn list_users(&self, user: &UserName) -> Result<ListUsersReply, StoreError> {
        Ok(self.mirror.list_users(user))
    }

    async fn encode_list_users(
        &self,
        user: &UserName,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        self.mirror.encode_list_users(user, out);
        Ok(())
    }

    async fn list_content(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<ListContentReply, StoreError> {
        Ok(self.mirror.list_content(user, target))
    }

    async fn get_user_info(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<GetUserInfoReply, StoreError> {
        Ok(self.mirror.get_user_info(user, target))
    }

    async fn search(
        &self,
        user: &UserName,
        terms: &[SearchTerm],
        limit: usize,
    ) -> Result<SearchAnswer, StoreError> {
        Ok(self.mirror.search(user, terms, limit))
    }

    /// Liveness is kept in memory only: a restart forgets it, and every
    /// connected peer pings again within its period.
    async fn ping(&self, user: &UserName, from: IpAddr) -> Result<PingAnswer, StoreError> {
        Ok(self.mirror.ping(user, from, Instant::now()))
    }

    async fn expire(&self, silence: Duration) -> Result<Vec<UserName>, StoreError> {
        let Some(deadline) = Instant::now().checked_sub(silence) else {
            return Ok(Vec::new());
        };
        let mut expired = Vec::new();
        for user in self.mirror.silent_since(deadline) {
            let reply = self.change(Change::Expire(user.clone(), deadline)).await?;
            if reply == Reply::Disconnect(DisconnectResult::Ok) {
                expired.push(user);
            }
        }
        Ok(expired)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(self.mirror.stats())
    }

    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError> {
        Ok(self.mirror.directory_view(limit))
    }

    fn describe(&self) -> String {
        format!(
            "SQLite database {} (WAL, synchronous=FULL, group commit)",
            self.path.display()
        )
    }
}

/// Errors of the start-up steps: SQLite's, or a refusal of ours.
enum MigrateError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one exclusive transaction, or
/// refuses a file that is not ours or is newer.
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    // Again under the exclusive lock: another program may have written the
    // file since the first look.
    let version = check(&tx)?;
    let from = usize::try_from(version).unwrap_or(0);
    for migration in &MIGRATIONS[from..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Refuses a file that is another program's database or has a newer schema;
/// returns its schema version (0 for a new file). Reads only.
fn check(conn: &Connection) -> Result<i64, MigrateError> {
    let app: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    if app != APPLICATION_ID && (app != 0 || tables > 0) {
        return Err(MigrateError::Store(StoreError::Invalid(
            "the file is an SQLite database of another program".into(),
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Store(StoreError::SchemaTooNew {
            found: version,
            known: SCHEMA_VERSION,
        }));
    }
    Ok(version)
}

/// Reads the whole directory into `mirror`; returns the next sequence number.
fn load(conn: &Connection, mirror: &MemoryStore) -> Result<i64, MigrateError> {
    let invalid = |what: String| MigrateError::Store(StoreError::Invalid(what));
    let mut max_seq = 0i64;
    let mut names = std::collections::HashMap::new();
    let mut users = conn.prepare("SELECT id, name, conn_seq, ip, port FROM users")?;
    let mut rows = users.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let name: String = row.get(1)?;
        let user: UserName = name
            .parse()
            .map_err(|e| invalid(format!("user {name:?}: {e}")))?;
        let conn_seq: Option<i64> = row.get(2)?;
        let connection = match conn_seq {
            None => None,
            Some(seq) => {
                let ip: Option<String> = row.get(3)?;
                let port: Option<i64> = row.get(4)?;
                let ip = ip
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .ok_or_else(|| invalid(format!("user {name:?}: no valid address")))?;
                let port = port
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| invalid(format!("user {name:?}: no valid port")))?;
                max_seq = max_seq.max(seq);
                let seq = u64::try_from(seq)
                    .map_err(|_| invalid(format!("user {name:?}: negative sequence")))?;
                Some((seq, PeerAddr { ip, port }))
            }
        };
        mirror.restore_user(user.clone(), connection);
        names.insert(id, user);
    }
    let mut publications =
        conn.prepare("SELECT user_id, name, description, seq FROM publications ORDER BY seq")?;
    let mut rows = publications.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let name: String = row.get(1)?;
        let description: String = row.get(2)?;
        let seq: i64 = row.get(3)?;
        let user = names
            .get(&id)
            .ok_or_else(|| invalid(format!("publication {name:?} of a missing user")))?;
        let file: FileName = name
            .parse()
            .map_err(|e| invalid(format!("file {name:?}: {e}")))?;
        let description: Description = description
            .parse()
            .map_err(|e| invalid(format!("description of {name:?}: {e}")))?;
        let position =
            u64::try_from(seq).map_err(|_| invalid(format!("file {name:?}: negative sequence")))?;
        if !mirror.restore_publication(user, position, file, description) {
            return Err(invalid(format!("file {name:?} of {user} twice")));
        }
        max_seq = max_seq.max(seq);
    }
    mirror.compact();
    Ok(max_seq + 1)
}

/// The only user of the connection: decides, applies and commits batches.
#[derive(Debug)]
struct Writer {
    conn: Connection,
    path: PathBuf,
    mirror: Arc<MemoryStore>,
    commit_duration: metrics::Histogram,
    batch_size: metrics::Histogram,
    next_seq: i64,
}

impl Writer {
    /// Decides and applies `batch` in one transaction; once it is synced,
    /// applies it to the mirror and answers every change.
    fn commit(&mut self, batch: &mut Vec<(Change, Answer)>) {
        let start_seq = self.next_seq;
        let started = std::time::Instant::now();
        let decided = self.apply(batch);
        self.commit_duration.record(started.elapsed().as_secs_f64());
        #[allow(
            clippy::cast_precision_loss,
            reason = "a batch holds at most max_batch changes"
        )]
        self.batch_size.record(batch.len() as f64);
        match decided {
            Ok(replies) => {
                for ((change, answer), reply) in batch.drain(..).zip(replies) {
                    let mirrored = mirror(&self.mirror, &change, &reply);
                    if mirrored != reply {
                        // Cannot happen while the mirror and the database start
                        // equal and see the same changes in the same order.
                        tracing::error!(?change, ?reply, ?mirrored, "store copy diverged");
                    }
                    let _ = answer.send(Ok(reply));
                }
            }
            Err(e) => {
                self.next_seq = start_seq;
                tracing::error!(path = %self.path.display(), error = %e, changes = batch.len(), "commit failed; the changes were rolled back");
                let message = format!("SQLite database {}: {e}", self.path.display());
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Err(StoreError::Write(message.clone())));
                }
            }
        }
    }

    fn apply(&mut self, batch: &[(Change, Answer)]) -> rusqlite::Result<Vec<Reply>> {
        let tx = self.conn.transaction()?;
        let mut replies = Vec::with_capacity(batch.len());
        // Users an earlier change of this batch touched: the copy does not
        // show those changes yet, so it cannot vouch for their liveness.
        let mut touched = std::collections::HashSet::new();
        for (change, _) in batch {
            let reply = match change {
                Change::Expire(user, _) if touched.contains(user) => {
                    Reply::Disconnect(DisconnectResult::NotConnected)
                }
                _ => decide(&tx, &self.mirror, &mut self.next_seq, change)?,
            };
            touched.insert(change.user());
            replies.push(reply);
        }
        tx.commit()?;
        Ok(replies)
    }
}

/// A user's row: id and whether connected.
fn user_row(tx: &Transaction<'_>, user: &UserName) -> rusqlite::Result<Option<(i64, bool)>> {
    tx.prepare_cached("SELECT id, conn_seq IS NOT NULL FROM users WHERE name = ?1")?
        .query_row([user.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

/// Decides `change` against the transaction's state (which includes the
/// batch's earlier changes) and applies it.
fn decide(
    tx: &Transaction<'_>,
    copy: &MemoryStore,
    seq: &mut i64,
    change: &Change,
) -> rusqlite::Result<Reply> {
    Ok(match change {
        Change::Register(user) => {
            let added = tx
                .prepare_cached(
                    "INSERT INTO users (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
                )?
                .execute([user.as_str()])?;
            Reply::Register(if added == 1 {
                RegisterResult::Ok
            } else {
                RegisterResult::UserNameInUse
            })
        }
        Change::Unregister(user) => Reply::Unregister(match user_row(tx, user)? {
            None => UnregisterResult::UserDoesNotExist,
            Some((id, _)) => {
                tx.prepare_cached("DELETE FROM publications WHERE user_id = ?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM users WHERE id = ?1")?
                    .execute([id])?;
                UnregisterResult::Ok
            }
        }),
        Change::Connect(user, addr) => Reply::Connect(match user_row(tx, user)? {
            None => ConnectResult::UserDoesNotExist,
            Some((_, true)) => ConnectResult::AlreadyConnected,
            Some((id, false)) => {
                *seq += 1;
                tx.prepare_cached(
                    "UPDATE users SET conn_seq = ?1, ip = ?2, port = ?3 WHERE id = ?4",
                )?
                .execute(params![*seq, addr.ip.to_string(), addr.port, id])?;
                ConnectResult::Ok
            }
        }),
        Change::Expire(user, deadline) => {
            // Liveness lives in the copy; a user the batch connected again
            // has not pinged since, so the copy (which trails the batch) and
            // the row must both say "connected" for the expiry to stand.
            let silent = copy.is_silent_since(user, *deadline);
            Reply::Disconnect(match user_row(tx, user)? {
                Some((id, true)) if silent => {
                    tx.prepare_cached(
                        "UPDATE users SET conn_seq = NULL, ip = NULL, port = NULL WHERE id = ?1",
                    )?
                    .execute([id])?;
                    DisconnectResult::Ok
                }
                _ => DisconnectResult::NotConnected,
            })
        }
        Change::Disconnect(user) => Reply::Disconnect(match user_row(tx, user)? {
            None => DisconnectResult::UserDoesNotExist,
            Some((_, false)) => DisconnectResult::NotConnected,
            Some((id, true)) => {
                tx.prepare_cached(
                    "UPDATE users SET conn_seq = NULL, ip = NULL, port = NULL WHERE id = ?1",
                )?
                .execute([id])?;
                DisconnectResult::Ok
            }
        }),
        Change::Publish(user, file, description) => Reply::Publish(match user_row(tx, user)? {
            None => PublishResult::UserDoesNotExist,
            Some((_, false)) => PublishResult::NotConnected,
            Some((id, true)) => {
                *seq += 1;
                let added = tx
                    .prepare_cached(
                        "INSERT INTO publications (user_id, name, description, seq) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![id, file.as_str(), description.as_str(), *seq])?;
                if added == 1 {
                    PublishResult::Ok
                } else {
                    PublishResult::AlreadyPublished
                }
            }
        }),
        Change::Delete(user, file) => Reply::Delete(match user_row(tx, user)? {
            None => DeleteResult::UserDoesNotExist,
            Some((_, false)) => DeleteResult::NotConnected,
            Some((id, true)) => {
                let removed = tx
                    .prepare_cached("DELETE FROM publications WHERE user_id = ?1 AND name = ?2")?
                    .execute(params![id, file.as_str()])?;
                if removed == 1 {
                    DeleteResult::Ok
                } else {
                    DeleteResult::NotPublished
                }
            }
        }),
    })
}

/// Applies a committed change to the in-memory copy.
fn mirror(mirror: &MemoryStore, change: &Change, decided: &Reply) -> Reply {
    match change {
        Change::Register(user) => Reply::Register(mirror.register(user)),
        Change::Unregister(user) => Reply::Unregister(mirror.unregister(user)),
        Change::Connect(user, addr) => Reply::Connect(mirror.connect(user, *addr)),
        Change::Disconnect(user) => Reply::Disconnect(mirror.disconnect(user)),
        Change::Publish(user, file, description) => {
            Reply::Publish(mirror.publish(user, file, description))
        }
        Change::Delete(user, file) => Reply::Delete(mirror.delete(user, file)),
        // Decided on the copy's liveness at commit time: applied as decided.
        Change::Expire(user, _) => match decided {
            Reply::Disconnect(DisconnectResult::Ok) => Reply::Disconnect(mirror.disconnect(user)),
            _ => Reply::Disconnect(DisconnectResult::NotConnected),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn name(s: &str) -> UserName {
        s.parse().unwrap()
    }

    fn addr(port: u16) -> PeerAddr {
        PeerAddr {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        }
    }

    #[tokio::test]
    async fn the_directory_comes_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let (a, b) = (name("alice"), name("bob"));
        let d: Description = "a song".parse().unwrap();
        {
            let s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            assert_eq!(s.register(&a).await.unwrap(), RegisterResult::Ok);
            assert_eq!(s.register(&b).await.unwrap(), RegisterResult::Ok);
            assert_eq!(s.connect(&b, addr(2)).await.unwrap(), ConnectResult::Ok);
            assert_eq!(s.connect(&a, addr(1)).await.unwrap(), ConnectResult::Ok);
            for f in ["z", "a", "m"] {
                let f: FileName = f.parse().unwrap();
                assert_eq!(s.publish(&a, &f, &d).await.unwrap(), PublishResult::Ok);
            }
            let a_file: FileName = "a".parse().unwrap();
            assert_eq!(s.delete(&a, &a_file).await.unwrap(), DeleteResult::Ok);
            assert_eq!(s.disconnect(&a).await.unwrap(), DisconnectResult::Ok);
        }
        let s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(
            s.stats().await.unwrap(),
            StoreStats {
                users: 2,
                connected: 1,
                publications: 2
            }
        );
        assert_eq!(
            s.list_content(&b, &a).await.unwrap(),
            ListContentReply::Ok(vec!["z".parse().unwrap(), "m".parse().unwrap()])
        );
        assert_eq!(s.connect(&a, addr(3)).await.unwrap(), ConnectResult::Ok);
        assert_eq!(
            s.get_user_info(&b, &a).await.unwrap(),
            GetUserInfoReply::Ok(addr(3))
        );
        // Connection order survives: bob (connected first) lists before alice.
        let c = name("carol");
        s.register(&c).await.unwrap();
        s.connect(&c, addr(4)).await.unwrap();
        let ListUsersReply::Ok(users) = s.list_users(&c).await.unwrap() else {
            panic!("carol is connected")
        };
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["bob", "alice"]);
    }

    #[test]
    fn a_second_opener_of_one_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let _first = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let second = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(matches!(second, StoreError::Locked { .. }), "{second}");
    }

    #[test]
    fn files_that_are_not_a_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let e = SqliteStore::open(&garbage, SqliteOptions::default()).unwrap_err();
        assert!(matches!(e, StoreError::Sqlite { .. }), "{e}");

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let e = SqliteStore::open(&other, SqliteOptions::default()).unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");

        let newer = dir.path().join("newer.db");
        drop(SqliteStore::open(&newer, SqliteOptions::default()).unwrap());
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = SqliteStore::open(&newer, SqliteOptions::default()).unwrap_err();
        assert!(
            matches!(e, StoreError::SchemaTooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
            "{e}"
        );
    }
}
