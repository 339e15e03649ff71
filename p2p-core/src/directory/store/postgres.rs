//! The shared durable store: PostgreSQL, so that several directory servers
//! behave as one directory.
//!
//! Every operation is one SQL statement or a short retry loop of statements,
//! at the default `READ COMMITTED` isolation, with `synchronous_commit=on` so
//! a change is flushed before its reply and before any other session can see
//! it. Why each operation is linearizable:
//!
//! - REGISTER is `INSERT … ON CONFLICT DO NOTHING` on a unique name: of two
//!   REGISTERs of one name, exactly one inserts.
//! - UNREGISTER is one `DELETE` of the user's row; its publications go with it
//!   (`ON DELETE CASCADE`).
//! - CONNECT and DISCONNECT are a conditional `UPDATE` of the user's row (the
//!   condition is re-checked on the newest row version after any wait).
//! - PUBLISH and DELETE lock the user's row while connected, so a concurrent
//!   DISCONNECT or UNREGISTER waits for them, and change one publication row.
//!   PUBLISH takes the lock `FOR NO KEY UPDATE` (DELETE `FOR SHARE`): two
//!   PUBLISHes of one user run one after the other, so the sequence number
//!   that orders a user's publications is drawn in commit order. With a
//!   shared lock, one PUBLISH could draw a lower number and commit later than
//!   another, and a LIST_CONTENT or SEARCH that saw only the second would be
//!   contradicted by the order read afterwards (the model test found this).
//! - When a change does nothing, one read classifies why (unknown user, not
//!   connected, already published...) and the answer is true at that read's
//!   moment; if that read finds the change would now succeed, it is retried.
//! - Every listing is one `SELECT`: one snapshot.
//!
//! PostgreSQL features used: sequences (`nextval`), `INSERT … ON CONFLICT DO
//! NOTHING`, `SELECT … FOR SHARE` / `FOR NO KEY UPDATE` in a `WITH` query feeding an `INSERT` or a
//! `DELETE … USING`, foreign keys with `ON DELETE CASCADE`, a partial index,
//! transactional DDL, and `pg_advisory_xact_lock` to serialize migrations
//! when several servers start at once.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PublishResult, RegisterResult, SearchTerm, UnregisterResult,
    UserEntry, search_words,
};
use p2p_proto::field::{Description, FileName, UserName};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{PingAnswer, SearchAnswer, SearchHit, Store, StoreError, StoreStats};
use crate::directory::view::{ConnectedUser, DirectoryView};

/// Key of the advisory lock that serializes schema migrations.
const MIGRATION_LOCK: i64 = 0x7032_7064_0000_0001;

/// The schema, by version: entry `n` takes a database from version `n` to
/// `n + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE SEQUENCE p2p_seq;
    CREATE TABLE p2p_users (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name     text NOT NULL UNIQUE,
        conn_seq bigint,
        ip       text,
        port     integer
    );
    CREATE INDEX p2p_users_connected ON p2p_users (conn_seq) WHERE conn_seq IS NOT NULL;
    CREATE TABLE p2p_publications (
        user_id     bigint NOT NULL REFERENCES p2p_users (id) ON DELETE CASCADE,
        name        text NOT NULL,
        description text NOT NULL,
        seq         bigint NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE INDEX p2p_publications_order ON p2p_publications (user_id, seq);
",
    "
    ALTER TABLE p2p_users ADD COLUMN last_ping timestamptz;
    CREATE TABLE p2p_words (
        user_id bigint NOT NULL,
        name    text NOT NULL,
        word    text NOT NULL,
        PRIMARY KEY (user_id, name, word),
        FOREIGN KEY (user_id, name) REFERENCES p2p_publications (user_id, name) ON DELETE CASCADE
    );
    CREATE INDEX p2p_words_prefix ON p2p_words (word text_pattern_ops);
    CREATE INDEX p2p_publications_recent ON p2p_publications (seq);
",
];

/// The newest schema version this store knows: a database whose schema is
/// newer is refused at start rather than misread.
pub const SCHEMA_VERSION: i64 = 2;

/// How many times a change whose classifying read says "would succeed now"
/// is tried again before the operation answers "other error".
const MAX_ATTEMPTS: usize = 32;

const REGISTER: &str = "INSERT INTO p2p_users (name) VALUES ($1) ON CONFLICT (name) DO NOTHING";
const UNREGISTER: &str = "DELETE FROM p2p_users WHERE name = $1";
const CONNECT: &str = "UPDATE p2p_users SET conn_seq = nextval('p2p_seq'), ip = $2, port = $3, \
                       last_ping = NULL WHERE name = $1 AND conn_seq IS NULL";
const DISCONNECT: &str = "UPDATE p2p_users SET conn_seq = NULL, ip = NULL, port = NULL, last_ping = NULL \
                          WHERE name = $1 AND conn_seq IS NOT NULL";
const PING: &str = "UPDATE p2p_users SET last_ping = now() \
                    WHERE name = $1 AND conn_seq IS NOT NULL AND ip = $2";
const PING_STATE: &str = "SELECT conn_seq IS NOT NULL, ip FROM p2p_users WHERE name = $1";
const EXPIRE: &str = "UPDATE p2p_users SET conn_seq = NULL, ip = NULL, port = NULL, last_ping = NULL \
                      WHERE conn_seq IS NOT NULL AND last_ping < now() - make_interval(secs => $1) \
                      RETURNING name";
const IS_CONNECTED: &str = "SELECT conn_seq IS NOT NULL FROM p2p_users WHERE name = $1";
const PUBLISH: &str = "WITH u AS (SELECT id FROM p2p_users WHERE name = $1 AND conn_seq IS NOT NULL FOR NO KEY UPDATE), \
                       ins AS (INSERT INTO p2p_publications (user_id, name, description, seq) \
                       SELECT id, $2, $3, nextval('p2p_seq') FROM u ON CONFLICT DO NOTHING \
                       RETURNING user_id, name), \
                       w AS (INSERT INTO p2p_words (user_id, name, word) \
                       SELECT ins.user_id, ins.name, x FROM ins, unnest($4::text[]) AS x) \
                       SELECT count(*) FROM ins";
const DELETE: &str = "WITH u AS (SELECT id FROM p2p_users WHERE name = $1 AND conn_seq IS NOT NULL FOR SHARE) \
                      DELETE FROM p2p_publications p USING u WHERE p.user_id = u.id AND p.name = $2";
const HAS_FILE: &str = "SELECT u.conn_seq IS NOT NULL, EXISTS (SELECT 1 FROM p2p_publications p \
                        WHERE p.user_id = u.id AND p.name = $2) FROM p2p_users u WHERE u.name = $1";
const LIST_USERS: &str = "SELECT r.conn_seq IS NOT NULL, o.name, o.ip, o.port FROM p2p_users r \
                          LEFT JOIN p2p_users o ON r.conn_seq IS NOT NULL AND o.conn_seq IS NOT NULL AND o.id <> r.id \
                          WHERE r.name = $1 ORDER BY o.conn_seq";
const LIST_CONTENT: &str = "SELECT r.conn_seq IS NOT NULL, t.id IS NOT NULL, p.name FROM p2p_users r \
                            LEFT JOIN p2p_users t ON r.conn_seq IS NOT NULL AND t.name = $2 \
                            LEFT JOIN p2p_publications p ON p.user_id = t.id \
                            WHERE r.name = $1 ORDER BY p.seq";
const GET_USER_INFO: &str = "SELECT r.conn_seq IS NOT NULL, t.ip, t.port FROM p2p_users r \
                             LEFT JOIN p2p_users t ON r.conn_seq IS NOT NULL AND t.name = $2 AND t.conn_seq IS NOT NULL \
                             WHERE r.name = $1";
const STATS: &str = "SELECT (SELECT count(*) FROM p2p_users), \
                     (SELECT count(*) FROM p2p_users WHERE conn_seq IS NOT NULL), \
                     (SELECT count(*) FROM p2p_publications)";

const VIEW_USERS: &str = "SELECT u.name, u.ip, u.port, \
                          (SELECT count(*) FROM p2p_publications p WHERE p.user_id = u.id) \
                          FROM p2p_users u WHERE u.conn_seq IS NOT NULL ORDER BY u.conn_seq LIMIT $1";
const VIEW_FILES: &str = "SELECT f.uname, f.name FROM (SELECT u.name AS uname, p.name, \
                          row_number() OVER (ORDER BY u.conn_seq, p.seq) AS n \
                          FROM (SELECT id, name, conn_seq FROM p2p_users WHERE conn_seq IS NOT NULL \
                          ORDER BY conn_seq LIMIT $1) u JOIN p2p_publications p ON p.user_id = u.id) f \
                          WHERE f.n <= $1 ORDER BY f.n";

/// Settings of [`PostgresStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Connections kept to the database. Default 16.
    pub pool_size: usize,
    /// Time one operation may take, waiting for a connection included; past
    /// it the operation answers "other error". Default 5 s, below the peers'
    /// 10 s wait for a reply.
    pub operation_timeout: Duration,
    /// Time to open one connection. Default 3 s.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            operation_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// The PostgreSQL store. See the module documentation.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    shown: String,
    options: PostgresOptions,
}

fn pg(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

/// `e` with the server's own message when there is one (tokio-postgres shows
/// only "db error" otherwise).
fn db(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
        None => pg(e),
    }
}

/// `url` with its password replaced by `***`.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let mut shown = match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    if let Some(at) = shown.find("password=") {
        let end = shown[at..].find('&').map_or(shown.len(), |e| at + e);
        shown.replace_range(at..end, "password=***");
    }
    shown
}

impl PostgresStore {
    /// Connects to `url`, creates or migrates the schema (serialized by an
    /// advisory lock, so several servers may start at once) and keeps a pool.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::InvalidUrl {
                url: redact(url),
                reason: e.to_string(),
            })?;
        config
            .application_name("p2p-server")
            .connect_timeout(options.connect_timeout)
            .options("-c synchronous_commit=on -c default_transaction_isolation=read\\ committed");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.operation_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(pg)?;
        let store = Self {
            pool,
            shown: redact(url),
            options,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pg)?;
        let tx = client.transaction().await.map_err(|e| db(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| db(&e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS p2p_schema (version bigint NOT NULL)")
            .await
            .map_err(|e| db(&e))?;
        let found: Option<i64> = tx
            .query_opt("SELECT max(version) FROM p2p_schema", &[])
            .await
            .map_err(|e| db(&e))?
            .and_then(|row| row.get(0));
        let version = found.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let from = usize::try_from(version).unwrap_or(0);
        for (n, migration) in MIGRATIONS.iter().enumerate().skip(from) {
            tx.batch_execute(migration).await.map_err(|e| db(&e))?;
            if n == 1 {
                // Version 2 indexes the words of the publications already there.
                let rows = tx
                    .query(
                        "SELECT user_id, name, description FROM p2p_publications",
                        &[],
                    )
                    .await
                    .map_err(|e| db(&e))?;
                for row in rows {
                    let (id, name, description): (i64, String, String) =
                        (row.get(0), row.get(1), row.get(2));
                    tx.execute(
                        "INSERT INTO p2p_words (user_id, name, word) \
                         SELECT $1, $2, x FROM unnest($3::text[]) AS x",
                        &[&id, &name, &publication_words(&name, &description)],
                    )
                    .await
                    .map_err(|e| db(&e))?;
                }
            }
        }
        if version < SCHEMA_VERSION {
            tx.execute("DELETE FROM p2p_schema", &[])
                .await
                .map_err(|e| db(&e))?;
            tx.execute(
                "INSERT INTO p2p_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(|e| db(&e))?;
        }
        tx.commit().await.map_err(|e| db(&e))
    }

    /// Runs `work` within the operation timeout.
    async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.options.operation_timeout, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.options.operation_timeout)))
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => db(&e),
            other => pg(other),
        })
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(|e| db(&e))?;
        client.execute(&statement, params).await.map_err(|e| db(&e))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(|e| db(&e))?;
        client.query(&statement, params).await.map_err(|e| db(&e))
    }

    /// `Some(connected)` for a registered user, `None` for an unknown one.
    async fn is_connected(&self, user: &UserName) -> Result<Option<bool>, StoreError> {
        let rows = self.query(IS_CONNECTED, &[&user.as_str()]).await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    /// `Some((connected, publishes file))` for a registered user.
    async fn has_file(
        &self,
        user: &UserName,
        file: &FileName,
    ) -> Result<Option<(bool, bool)>, StoreError> {
        let rows = self
            .query(HAS_FILE, &[&user.as_str(), &file.as_str()])
            .await?;
        Ok(rows.first().map(|row| (row.get(0), row.get(1))))
    }

    fn contention() -> StoreError {
        StoreError::Postgres(format!(
            "the change kept losing races: {MAX_ATTEMPTS} attempts"
        ))
    }
}

/// The distinct words of a publication, as the index keeps them.
fn publication_words(file: &str, description: &str) -> Vec<String> {
    let mut all: Vec<String> = search_words(file)
        .chain(search_words(description))
        .map(std::borrow::Cow::into_owned)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// SEARCH with `terms` terms: one `EXISTS` per term over the words index.
fn search_sql(terms: usize) -> String {
    let mut conditions = String::new();
    for i in 0..terms {
        conditions.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM p2p_words w WHERE w.user_id = p.user_id \
               AND w.name = p.name AND w.word LIKE ${} ESCAPE '\\')",
            i + 3
        ));
    }
    format!(
        "SELECT r.c, x.owner, x.name, x.description FROM \
         (SELECT conn_seq IS NOT NULL AS c FROM p2p_users WHERE name = $1) r \
         LEFT JOIN LATERAL (SELECT o.name AS owner, p.name, p.description, p.seq \
         FROM p2p_publications p JOIN p2p_users o ON o.id = p.user_id \
         WHERE r.c AND o.conn_seq IS NOT NULL AND o.name <> $1{conditions} \
         ORDER BY p.seq DESC LIMIT $2) x ON true ORDER BY x.seq DESC"
    )
}

/// `term` as a LIKE pattern for the words it is a prefix of.
fn prefix_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 1);
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn address(ip: Option<String>, port: Option<i32>) -> Result<PeerAddr, StoreError> {
    let invalid = || StoreError::Invalid(format!("address {ip:?}:{port:?}"));
    let ip: IpAddr = ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(invalid)?;
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(invalid)?;
    Ok(PeerAddr { ip, port })
}

fn parse<T: FromStr>(what: &str, value: String) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Invalid(format!("{what} {value:?}: {e}")))
}

#[async_trait]
impl Store for PostgresStore {
    async fn register(&self, user: &UserName) -> Result<RegisterResult, StoreError> {
        self.timed(async {
            Ok(match self.execute(REGISTER, &[&user.as_str()]).await? {
                1 => RegisterResult::Ok,
                _ => RegisterResult::UserNameInUse,
            })
        })
        .await
    }

    async fn unregister(&self, user: &UserName) -> Result<UnregisterResult, StoreError> {
        self.timed(async {
            Ok(match self.execute(UNREGISTER, &[&user.as_str()]).await? {
                1 => UnregisterResult::Ok,
                _ => UnregisterResult::UserDoesNotExist,
            })
        })
        .await
    }

    async fn connect(&self, user: &UserName, addr: PeerAddr) -> Result<ConnectResult, StoreError> {
        let ip = addr.ip.to_string();
        let port = i32::from(addr.port);
        self.timed(async {
            for _ in 0..MAX_ATTEMPTS {
                if self.execute(CONNECT, &[&user.as_str(), &ip, &port]).await? == 1 {
                    return Ok(ConnectResult::Ok);
                }
                match self.is_connected(user).await? {
                    None => return Ok(ConnectResult::UserDoesNotExist),
                    Some(true) => return Ok(ConnectResult::AlreadyConnected),
                    Some(false) => {}
                }
            }
            Err(Self::contention())
        })
        .await
    }

    async fn disconnect(&self, user: &UserName) -> Result<DisconnectResult, StoreError> {
        self.timed(async {
            for _ in 0..MAX_ATTEMPTS {
                if self.execute(DISCONNECT, &[&user.as_str()]).await? == 1 {
                    return Ok(DisconnectResult::Ok);
                }
                match self.is_connected(user).await? {
                    None => return Ok(DisconnectResult::UserDoesNotExist),
                    Some(false) => return Ok(DisconnectResult::NotConnected),
                    Some(true) => {}
                }
            }
            Err(Self::contention())
        })
        .await
    }

    async fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> Result<PublishResult, StoreError> {
        let words_of = publication_words(file.as_str(), description.as_str());
        self.timed(async {
            for _ in 0..MAX_ATTEMPTS {
                let params: [&(dyn ToSql + Sync); 4] = [
                    &user.as_str(),
                    &file.as_str(),
                    &description.as_str(),
                    &words_of,
                ];
                let added: i64 = self
                    .query(PUBLISH, &params)
                    .await?
                    .first()
                    .map_or(0, |row| row.get(0));
                if added == 1 {
                    return Ok(PublishResult::Ok);
                }
                match self.has_file(user, file).await? {
                    None => return Ok(PublishResult::UserDoesNotExist),
                    Some((false, _)) => return Ok(PublishResult::NotConnected),
                    Some((true, true)) => return Ok(PublishResult::AlreadyPublished),
                    Some((true, false)) => {}
                }
            }
            Err(Self::contention())
        })
        .await
    }

    async fn delete(&self, user: &UserName, file: &FileName) -> Result<DeleteResult, StoreError> {
        self.timed(async {
            for _ in 0..MAX_ATTEMPTS {
                if self
                    .execute(DELETE, &[&user.as_str(), &file.as_str()])
                    .await?
                    == 1
                {
                    return Ok(DeleteResult::Ok);
                }
                match self.has_file(user, file).await? {
                    None => return Ok(DeleteResult::UserDoesNotExist),
                    Some((false, _)) => return Ok(DeleteResult::NotConnected),
                    Some((true, false)) => return Ok(DeleteResult::NotPublished),
                    Some((true, true)) => {}
                }
            }
            Err(Self::contention())
        })
        .await
    }

    async fn list_users(&self, user: &UserName) -> Result<ListUsersReply, StoreError> {
        self.timed(async {
            let rows = self.query(LIST_USERS, &[&user.as_str()]).await?;
            let Some(first) = rows.first() else {
                return Ok(ListUsersReply::UserDoesNotExist);
            };
            if !first.get::<_, bool>(0) {
                return Ok(ListUsersReply::NotConnected);
            }
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(name) = row.get::<_, Option<String>>(1) else {
                    continue;
                };
                entries.push(UserEntry {
                    name: parse("user", name)?,
                    addr: address(row.get(2), row.get(3))?,
                });
            }
            Ok(ListUsersReply::Ok(entries))
        })
        .await
    }

    async fn list_content(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<ListContentReply, StoreError> {
        self.timed(async {
            let rows = self
                .query(LIST_CONTENT, &[&user.as_str(), &target.as_str()])
                .await?;
            let Some(first) = rows.first() else {
                return Ok(ListContentReply::UserDoesNotExist);
            };
            if !first.get::<_, bool>(0) {
                return Ok(ListContentReply::NotConnected);
            }
            if !first.get::<_, bool>(1) {
                return Ok(ListContentReply::TargetDoesNotExist);
            }
            let mut files = Vec::with_capacity(rows.len());
            for row in rows {
                if let Some(name) = row.get::<_, Option<String>>(2) {
                    files.push(parse("file", name)?);
                }
            }
            Ok(ListContentReply::Ok(files))
        })
        .await
    }

    async fn get_user_info(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<GetUserInfoReply, StoreError> {
        self.timed(async {
            let rows = self
                .query(GET_USER_INFO, &[&user.as_str(), &target.as_str()])
                .await?;
            let Some(row) = rows.first() else {
                return Ok(GetUserInfoReply::UserDoesNotExist);
            };
            if !row.get::<_, bool>(0) {
                return Ok(GetUserInfoReply::NotConnected);
            }
            let ip: Option<String> = row.get(1);
            if ip.is_none() {
                return Ok(GetUserInfoReply::TargetNotFound);
            }
            Ok(GetUserInfoReply::Ok(address(ip, row.get(2))?))
        })
        .await
    }

    async fn search(
        &self,
        user: &UserName,
        terms: &[SearchTerm],
        limit: usize,
    ) -> Result<SearchAnswer, StoreError> {
        let sql = search_sql(terms.len());
        let patterns: Vec<String> = terms.iter().map(|t| prefix_pattern(t.as_str())).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.timed(async {
            let name = user.as_str();
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name, &limit];
            params.extend(patterns.iter().map(|p| p as &(dyn ToSql + Sync)));
            let rows = self.query(&sql, &params).await?;
            let Some(first) = rows.first() else {
                return Ok(SearchAnswer::UserDoesNotExist);
            };
            if !first.get::<_, bool>(0) {
                return Ok(SearchAnswer::NotConnected);
            }
            let mut hits = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(owner) = row.get::<_, Option<String>>(1) else {
                    continue;
                };
                hits.push(SearchHit {
                    owner: parse("user", owner)?,
                    file: parse("file", row.get(2))?,
                    description: parse("description", row.get(3))?,
                });
            }
            Ok(SearchAnswer::Ok(hits))
        })
        .await
    }

    async fn ping(&self, user: &UserName, from: IpAddr) -> Result<PingAnswer, StoreError> {
        let ip = from.to_canonical().to_string();
        self.timed(async {
            for _ in 0..MAX_ATTEMPTS {
                if self.execute(PING, &[&user.as_str(), &ip]).await? == 1 {
                    return Ok(PingAnswer::Ok);
                }
                let rows = self.query(PING_STATE, &[&user.as_str()]).await?;
                let Some(row) = rows.first() else {
                    return Ok(PingAnswer::UserDoesNotExist);
                };
                if !row.get::<_, bool>(0) {
                    return Ok(PingAnswer::NotConnected);
                }
                if row.get::<_, Option<String>>(1).as_deref() != Some(ip.as_str()) {
                    return Ok(PingAnswer::WrongAddress);
                }
                // Connected from this address since the UPDATE looked: again.
            }
            Err(Self::contention())
        })
        .await
    }

    async fn expire(&self, silence: Duration) -> Result<Vec<UserName>, StoreError> {
        let seconds = silence.as_secs_f64();
        self.timed(async {
            let rows = self.query(EXPIRE, &[&seconds]).await?;
            rows.into_iter()
                .map(|row| parse("user", row.get(0)))
                .collect()
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.timed(async {
            let rows = self.query(STATS, &[]).await?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Postgres("no counts".into()))?;
            let count = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Ok(StoreStats {
                users: count(0),
                connected: count(1),
                publications: count(2),
            })
        })
        .await
    }

    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError> {
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        self.timed(async {
            let mut client = self.client().await?;
            // Three reads, one snapshot.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| db(&e))?;
            let totals = tx.query_one(STATS, &[]).await.map_err(|e| db(&e))?;
            let count = |i: usize| usize::try_from(totals.get::<_, i64>(i)).unwrap_or(0);
            let stats = StoreStats {
                users: count(0),
                connected: count(1),
                publications: count(2),
            };
            let users = tx
                .query(VIEW_USERS, &[&limit_sql])
                .await
                .map_err(|e| db(&e))?;
            let files = tx
                .query(VIEW_FILES, &[&limit_sql])
                .await
                .map_err(|e| db(&e))?;
            tx.commit().await.map_err(|e| db(&e))?;
            let mut connected = Vec::with_capacity(users.len());
            let mut index = std::collections::HashMap::new();
            for row in users {
                let name: UserName = parse("user", row.get(0))?;
                index.insert(name.clone(), connected.len());
                connected.push(ConnectedUser {
                    name,
                    addr: address(row.get(1), row.get(2))?,
                    publications: usize::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                    files: Vec::new(),
                });
            }
            for row in files {
                let name: String = row.get(0);
                let file: FileName = parse("file", row.get(1))?;
                if let Some(&i) = index.get(name.as_str()) {
                    connected[i].files.push(file);
                }
            }
            let complete = stats.connected <= limit
                && connected.iter().all(|u| u.files.len() == u.publications);
            Ok(DirectoryView {
                stats,
                connected,
                complete,
                listed: true,
            })
        })
        .await
    }

    fn describe(&self) -> String {
        format!(
            "PostgreSQL database {} (synchronous commit, {} connections)",
            self.shown, self.options.pool_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://p2p:secret@db:5432/dir"),
            "postgres://p2p:***@db:5432/dir"
        );
        assert_eq!(
            redact("postgres://p2p@db/dir?password=secret&sslmode=disable"),
            "postgres://p2p@db/dir?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://p2p@db/dir"), "postgres://p2p@db/dir");
    }
}
