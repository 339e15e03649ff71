//! Model-based concurrency test of the directory server: many clients at once,
//! and a sequential model of the directory that must explain every reply.
//!
//! # Design
//!
//! 64 clients, each with its own seeded generator, issue random operations
//! (every one on its own TCP connection through `DirectoryClient`, half with
//! DATETIME and half without) over a small pool of 8 user names and 6 file
//! names, so that they constantly race on the same users: two REGISTERs of
//! one name, a PUBLISH against a DISCONNECT, a LIST_USERS during CONNECTs...
//! They run in 160 rounds: in each round all 64 clients send one operation at
//! the same moment (10 240 operations in all), and when every reply is in, the
//! test reads the whole directory through the public `Store` API (users, who
//! is connected at which address, publications in order; `support::snapshot`).
//! For every operation the test records the request, the reply and its
//! real-time window: an `Instant` before connecting and one after the whole
//! reply arrived. The server applied the operation inside that window.
//!
//! The check is linearizability (Herlihy & Wing) against [`Model`], a plain
//! sequential reimplementation of PROTOCOL.md §1: for each round there must be
//! one order of its 64 operations that (a) respects real time (an operation
//! whose reply came before another was sent comes first), (b) in which the
//! model, started from the state read before the round, gives every operation
//! exactly the reply the server gave, and (c) that ends in exactly the state
//! read after the round. Nothing runs between rounds, so the whole history is
//! linearizable if and only if every round is; reading the state at those
//! quiescent points keeps each search small (64 operations with known ends)
//! instead of one search over 10 240. The search is the Wing–Gong algorithm
//! with Lowe's memoisation of visited (operations done, model state) pairs; an
//! operation whose reply says it changed nothing is placed as soon as it
//! matches, without a choice point (placing it later cannot help), and
//! state-changing candidates are tried in order of response time.
//!
//! This is sound: if the server answered something that no order explains (a
//! lost update, two winners of one REGISTER, a listing that no single moment
//! shows, a reply that went to the wrong connection, a change left behind by a
//! refused request), the search fails and the test reports the round and the
//! operation it could not place. The unit tests at the end feed the checker
//! such histories and check that it refuses them.
//!
//! PROTOCOL.md does not fix the order of a LIST_USERS listing, so it is
//! compared as a set; LIST_CONTENT's publication order is checked.

#[path = "support/postgres.rs"]
mod postgres;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use std::sync::Arc;

use p2p_core::directory::{
    PostgresOptions, PostgresStore, ServerConfig, SqliteOptions, SqliteStore, Store, StoreStats,
};
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PingResult, PublishResult, RegisterResult, Reply, Request,
    RequestBody, SearchEntry, SearchReply, UnregisterResult, UserEntry, matches,
};
use p2p_proto::field::{FileName, UserName};
use postgres::PgCluster;
use support::{
    Directory, PROBE, PROBE_PORT, Rng, Snapshot, desc, file, install_probe, local, request,
    snapshot, user,
};

const CLIENTS: usize = 64;
const ROUNDS: usize = 160;
const USERS: &[&str] = &["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
const FILES: &[&str] = &["f0", "f1", "f2", "f3", "f4", "f5"];

/// One operation as a client saw it.
#[derive(Debug, Clone)]
struct Op {
    #[allow(dead_code, reason = "shown in the failure report")]
    client: usize,
    invoke: Instant,
    response: Instant,
    request: Request,
    reply: Reply,
}

/// One user of the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct ModelUser {
    addr: Option<PeerAddr>,
    files: Vec<FileName>,
}

/// The directory of PROTOCOL.md §1 as a plain sequential value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Model {
    users: BTreeMap<UserName, ModelUser>,
}

impl Model {
    /// The requester as a connected user, or `Err(code)`: 1 unknown, 2 not connected.
    fn acting(&self, name: &UserName) -> Result<&ModelUser, u8> {
        match self.users.get(name) {
            None => Err(1),
            Some(u) if u.addr.is_none() => Err(2),
            Some(u) => Ok(u),
        }
    }

    /// Applies `request` (from 127.0.0.1) and returns the reply the protocol
    /// prescribes.
    fn apply(&mut self, request: &Request) -> Reply {
        let name = &request.user;
        match &request.body {
            RequestBody::Register => {
                if self.users.contains_key(name) {
                    return RegisterResult::UserNameInUse.into();
                }
                self.users.insert(name.clone(), ModelUser::default());
                RegisterResult::Ok.into()
            }
            RequestBody::Unregister => {
                if self.users.remove(name).is_none() {
                    return UnregisterResult::UserDoesNotExist.into();
                }
                UnregisterResult::Ok.into()
            }
            RequestBody::Connect { port } => {
                let Some(u) = self.users.get_mut(name) else {
                    return ConnectResult::UserDoesNotExist.into();
                };
                if u.addr.is_some() {
                    return ConnectResult::AlreadyConnected.into();
                }
                u.addr = Some(local(port.get()));
                ConnectResult::Ok.into()
            }
            RequestBody::Disconnect => {
                let Some(u) = self.users.get_mut(name) else {
                    return DisconnectResult::UserDoesNotExist.into();
                };
                if u.addr.take().is_none() {
                    return DisconnectResult::NotConnected.into();
                }
                DisconnectResult::Ok.into()
            }
            RequestBody::Publish { file, .. } => {
                match self.acting(name) {
                    Err(1) => return PublishResult::UserDoesNotExist.into(),
                    Err(_) => return PublishResult::NotConnected.into(),
                    Ok(u) if u.files.contains(file) => {
                        return PublishResult::AlreadyPublished.into();
                    }
                    Ok(_) => {}
                }
                self.users.get_mut(name).unwrap().files.push(file.clone());
                PublishResult::Ok.into()
            }
            RequestBody::Delete { file } => {
                match self.acting(name) {
                    Err(1) => return DeleteResult::UserDoesNotExist.into(),
                    Err(_) => return DeleteResult::NotConnected.into(),
                    Ok(u) if !u.files.contains(file) => {
                        return DeleteResult::NotPublished.into();
                    }
                    Ok(_) => {}
                }
                self.users
                    .get_mut(name)
                    .unwrap()
                    .files
                    .retain(|f| f != file);
                DeleteResult::Ok.into()
            }
            RequestBody::ListUsers => match self.acting(name) {
                Err(1) => ListUsersReply::UserDoesNotExist.into(),
                Err(_) => ListUsersReply::NotConnected.into(),
                // In name order: see `normalize`.
                Ok(_) => ListUsersReply::Ok(
                    self.users
                        .iter()
                        .filter(|(u, _)| *u != name)
                        .filter_map(|(u, record)| {
                            Some(UserEntry {
                                name: u.clone(),
                                addr: record.addr?,
                            })
                        })
                        .collect(),
                )
                .into(),
            },
            RequestBody::ListContent { target } => match self.acting(name) {
                Err(1) => ListContentReply::UserDoesNotExist.into(),
                Err(_) => ListContentReply::NotConnected.into(),
                Ok(_) => match self.users.get(target) {
                    None => ListContentReply::TargetDoesNotExist.into(),
                    Some(t) => ListContentReply::Ok(t.files.clone()).into(),
                },
            },
            RequestBody::GetUserInfo { target } => match self.acting(name) {
                Err(1) => GetUserInfoReply::UserDoesNotExist.into(),
                Err(_) => GetUserInfoReply::NotConnected.into(),
                Ok(_) => match self.users.get(target).and_then(|t| t.addr) {
                    None => GetUserInfoReply::TargetNotFound.into(),
                    Some(addr) => GetUserInfoReply::Ok(addr).into(),
                },
            },
            RequestBody::Search { query } => {
                let acting = self.acting(name);
                let Ok(terms) = query.terms() else {
                    // The query is judged before the requester (PROTOCOL.md §6.2 lists
                    // "bad query" as its own result; the server checks it first).
                    return SearchReply::BadQuery.into();
                };
                match acting {
                    Err(1) => SearchReply::UserDoesNotExist.into(),
                    Err(_) => SearchReply::NotConnected.into(),
                    Ok(_) => {
                        let mut hits: Vec<SearchEntry> = self
                            .users
                            .iter()
                            .filter(|(owner, u)| *owner != name && u.addr.is_some())
                            .flat_map(|(owner, u)| u.files.iter().map(move |f| (owner, f)))
                            .filter(|(_, f)| {
                                matches(&terms, f.as_str(), description_of(f.as_str()))
                            })
                            .map(|(owner, f)| SearchEntry {
                                owner: owner.clone(),
                                file: f.clone(),
                                description: desc(description_of(f.as_str())),
                            })
                            .collect();
                        sort_hits(&mut hits);
                        SearchReply::Ok(hits).into()
                    }
                }
            }
            // Liveness is not modelled (expiry is off in these tests): PING
            // only checks the user; every client sends from 127.0.0.1.
            RequestBody::Ping => match self.acting(name) {
                Err(1) => PingResult::UserDoesNotExist.into(),
                Err(_) => PingResult::NotConnected.into(),
                Ok(_) => PingResult::Ok.into(),
            },
        }
    }

    /// What `support::snapshot` reads from a store in this state, normalized
    /// (see [`normalize_snapshot`]).
    fn snapshot(&self) -> Snapshot {
        let connected: Vec<_> = self
            .users
            .iter()
            .filter(|(u, _)| u.as_str() != PROBE)
            .filter_map(|(u, record)| Some((u.to_string(), record.addr?)))
            .collect();
        Snapshot {
            stats: StoreStats {
                users: self.users.len(),
                connected: connected.len() + 1,
                publications: self.users.values().map(|u| u.files.len()).sum(),
            },
            connected,
            users: USERS
                .iter()
                .map(|n| {
                    let files = self
                        .users
                        .get(*n)
                        .map(|u| u.files.iter().map(ToString::to_string).collect());
                    ((*n).to_owned(), files)
                })
                .collect(),
        }
    }

    /// The model of what a snapshot shows: the pool's users and the probe,
    /// connected.
    fn from_snapshot(snapshot: &Snapshot) -> Self {
        let mut users = BTreeMap::new();
        users.insert(
            user(PROBE),
            ModelUser {
                addr: Some(local(PROBE_PORT)),
                files: vec![],
            },
        );
        for (name, files) in &snapshot.users {
            if let Some(files) = files {
                let addr = snapshot
                    .connected
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, addr)| *addr);
                users.insert(
                    user(name),
                    ModelUser {
                        addr,
                        files: files.iter().map(|f| file(f)).collect(),
                    },
                );
            }
        }
        Self { users }
    }
}

/// LIST_USERS in name order (PROTOCOL.md does not fix its order); SEARCH
/// results in (owner, file) order: the model does not keep the order of
/// publications across users (`search_store.rs` checks SEARCH's order).
fn normalize(reply: Reply) -> Reply {
    match reply {
        Reply::ListUsers(ListUsersReply::Ok(mut entries)) => {
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            ListUsersReply::Ok(entries).into()
        }
        Reply::Search(SearchReply::Ok(mut hits)) => {
            sort_hits(&mut hits);
            SearchReply::Ok(hits).into()
        }
        other => other,
    }
}

fn sort_hits(hits: &mut [SearchEntry]) {
    hits.sort_by(|a, b| (&a.owner, &a.file).cmp(&(&b.owner, &b.file)));
}

/// Each file of the pool is always published with the same description, so
/// the model (read back from LIST_CONTENT, which shows no descriptions) knows
/// every publication's description.
fn description_of(file: &str) -> &'static str {
    match file {
        "f1" | "f3" => "a song",
        "f2" | "f4" => "notes",
        "f5" => "a song, notes",
        _ => "",
    }
}

/// SEARCH queries: prefixes of file names and description words, several
/// terms, no match, and bad queries (empty, a non-word character).
const QUERIES: &[&str] = &[
    "f",
    "F1",
    "f2",
    "song",
    "NOT",
    "a",
    "song notes",
    "f5 so",
    "zzz",
    "",
    "x/y",
    "s s s s s s s s s",
];

/// The connected users in name order.
fn normalize_snapshot(mut snapshot: Snapshot) -> Snapshot {
    snapshot.connected.sort_by(|a, b| a.0.cmp(&b.0));
    snapshot
}

fn state_hash(model: &Model) -> u64 {
    let mut h = DefaultHasher::new();
    model.hash(&mut h);
    h.finish()
}

/// Where the search stopped when no order explains the history.
#[derive(Debug)]
struct Unexplained {
    /// Operations linearized on the deepest path found.
    depth: usize,
    /// An operation that could not be placed there, with the reply the model
    /// would have given.
    stuck: Option<(Op, Reply)>,
    /// Whether every operation was placed but the final state differed.
    final_state_differs: bool,
    budget_exhausted: bool,
}

/// Maximum steps of the search; a correct history of this size needs a few
/// times its length.
const SEARCH_BUDGET: u64 = 50_000_000;

/// Finds a linearization of `ops` from `initial` whose final state satisfies
/// `final_ok`, and returns that final state.
fn linearize(
    ops: &[Op],
    initial: Model,
    final_ok: impl Fn(&Model) -> bool,
) -> Result<Model, Box<Unexplained>> {
    let n = ops.len();
    // Events in time order; on a tie a call comes first (fewer constraints).
    let mut events: Vec<(Instant, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        assert!(op.invoke <= op.response);
        events.push((op.invoke, false, i));
        events.push((op.response, true, i));
    }
    events.sort_by_key(|&(t, is_return, _)| (t, is_return));
    // A doubly linked list over the events; index 2n is the head sentinel and
    // 2n + 1 the end.
    let head = 2 * n;
    let end = 2 * n + 1;
    let mut next = vec![end; 2 * n + 2];
    let mut prev = vec![head; 2 * n + 2];
    let order: Vec<usize> = std::iter::once(head)
        .chain(0..2 * n)
        .chain(std::iter::once(end))
        .collect();
    for pair in order.windows(2) {
        next[pair[0]] = pair[1];
        prev[pair[1]] = pair[0];
    }
    let mut call_at = vec![0; n];
    let mut ret_at = vec![0; n];
    for (e, &(_, is_return, i)) in events.iter().enumerate() {
        if is_return {
            ret_at[i] = e;
        } else {
            call_at[i] = e;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        prev[q] = e;
    };
    let mut rng = Rng::new(0x11ea_2121);
    let zobrist: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();

    // An operation whose reply says it changed nothing (a failure, a
    // listing, a lookup) is linearized as soon as it is a candidate and its
    // reply matches, without a choice point: if any order from here exists,
    // one with that operation next exists too (it changes no state, and
    // everything that must precede it already did), so trying it later can
    // only find the same answers. Only state-changing operations branch.
    let read_only: Vec<bool> = ops.iter().map(|op| !changes_state(&op.reply)).collect();

    let mut state = initial;
    let mut set_hash = 0u64;
    let mut stack: Vec<Frame> = Vec::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut steps = 0u64;
    let mut deepest = Unexplained {
        depth: 0,
        stuck: None,
        final_state_differs: false,
        budget_exhausted: false,
    };
    // The state-changing candidates of the current node still to try, in
    // order of response time: the server applied each operation shortly
    // before its client saw the reply, so that order is usually right at the
    // first try.
    let mut candidates: Vec<usize> = Vec::new();
    let mut tried = 0;
    let mut fresh = true;
    loop {
        steps += 1;
        if steps > SEARCH_BUDGET {
            deepest.budget_exhausted = true;
            return Err(Box::new(deepest));
        }
        let mut backtrack = false;
        if next[head] == end {
            if final_ok(&state) {
                return Ok(state);
            }
            deepest.final_state_differs = true;
            backtrack = true;
        } else if fresh {
            // Read-only candidates that match go first, without a choice.
            let mut e = next[head];
            let mut placed = false;
            candidates = Vec::new();
            while e != end && !events[e].1 {
                let i = events[e].2;
                if read_only[i] {
                    if state.clone().apply(&ops[i].request) == ops[i].reply {
                        stack.push(Frame {
                            op: i,
                            before: state.clone(),
                            choice: None,
                        });
                        set_hash ^= zobrist[i];
                        unlink(&mut next, &mut prev, call_at[i]);
                        unlink(&mut next, &mut prev, ret_at[i]);
                        placed = true;
                        break;
                    }
                } else {
                    candidates.push(i);
                }
                e = next[e];
            }
            if !placed {
                // The operation that must be linearized before anything
                // invoked after its response.
                if e != end && stack.len() >= deepest.depth {
                    let i = events[e].2;
                    let would = state.clone().apply(&ops[i].request);
                    deepest.depth = stack.len();
                    deepest.stuck = Some((ops[i].clone(), would));
                }
                candidates.sort_by_key(|&i| ops[i].response);
                tried = 0;
                fresh = false;
            }
        } else if tried == candidates.len() {
            backtrack = true;
        } else {
            let i = candidates[tried];
            tried += 1;
            let mut after = state.clone();
            let reply = after.apply(&ops[i].request);
            if reply == ops[i].reply && seen.insert((set_hash ^ zobrist[i], state_hash(&after))) {
                let before = std::mem::replace(&mut state, after);
                stack.push(Frame {
                    op: i,
                    before,
                    choice: Some((std::mem::take(&mut candidates), tried)),
                });
                set_hash ^= zobrist[i];
                unlink(&mut next, &mut prev, call_at[i]);
                unlink(&mut next, &mut prev, ret_at[i]);
                fresh = true;
            }
        }
        if backtrack {
            // Undo the forced operations back to the last choice point, then
            // try that node's next candidate.
            loop {
                let Some(frame) = stack.pop() else {
                    return Err(Box::new(deepest));
                };
                state = frame.before;
                set_hash ^= zobrist[frame.op];
                relink(&mut next, &mut prev, ret_at[frame.op]);
                relink(&mut next, &mut prev, call_at[frame.op]);
                if let Some((rest, at)) = frame.choice {
                    candidates = rest;
                    tried = at;
                    fresh = false;
                    break;
                }
            }
        }
    }
}

/// One linearized operation on the search path.
struct Frame {
    op: usize,
    /// The model before it.
    before: Model,
    /// For a choice: that node's candidates and how many were tried;
    /// `None` for a read-only operation placed without a choice.
    choice: Option<(Vec<usize>, usize)>,
}

/// Whether a reply says that its operation changed the directory: a success
/// of REGISTER, UNREGISTER, CONNECT, DISCONNECT, PUBLISH or DELETE.
fn changes_state(reply: &Reply) -> bool {
    let mutating = !matches!(
        reply,
        Reply::ListUsers(_)
            | Reply::ListContent(_)
            | Reply::GetUserInfo(_)
            | Reply::Search(_)
            | Reply::Ping(_)
    );
    mutating && reply.is_ok()
}

/// One client's random operation.
fn random_request(rng: &mut Rng) -> Request {
    let name = rng.choose(USERS);
    let target = user(rng.choose(USERS));
    let roll = rng.below(100);
    let body = match roll {
        0..11 => RequestBody::Register,
        11..16 => RequestBody::Unregister,
        16..31 => RequestBody::Connect {
            port: (1 + rng.below(65_535) as u16).try_into().unwrap(),
        },
        31..38 => RequestBody::Disconnect,
        38..56 => {
            let name = rng.choose(FILES);
            RequestBody::Publish {
                file: file(name),
                description: desc(description_of(name)),
            }
        }
        56..65 => RequestBody::Delete {
            file: file(rng.choose(FILES)),
        },
        65..73 => RequestBody::ListUsers,
        73..83 => RequestBody::ListContent { target },
        83..89 => RequestBody::GetUserInfo { target },
        89..96 => RequestBody::Search {
            query: rng.choose(QUERIES).parse().unwrap(),
        },
        _ => RequestBody::Ping,
    };
    request(name, body, rng.chance(1, 2))
}

/// One round: the operations, and the directory read before and after.
struct Round {
    ops: Vec<Op>,
    before: Snapshot,
    after: Snapshot,
}

fn config() -> ServerConfig {
    let mut config = support::config_with_read_timeout(Duration::from_secs(30));
    // Liveness is not part of the model: nobody expires.
    config.expire_after = None;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_are_explained_by_a_sequential_directory() {
    explain(vec![Directory::start(config())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_is_explained_by_a_sequential_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.db");
    let store = tokio::task::spawn_blocking(move || {
        SqliteStore::open(&path, SqliteOptions::default()).expect("open the SQLite store")
    })
    .await
    .unwrap();
    explain(vec![Directory::start_with(config(), Arc::new(store))]).await;
}

/// Two servers, each with its own connection pool, on one PostgreSQL database:
/// the clients are spread over both, and the history must still be one
/// directory's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgresql_are_explained_by_one_sequential_directory() {
    let Some(cluster) = tokio::task::spawn_blocking(|| {
        PgCluster::start("two_servers_on_one_postgresql_are_explained_by_one_sequential_directory")
    })
    .await
    .unwrap() else {
        return;
    };
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::connect(&cluster.url(), PostgresOptions::default())
            .await
            .expect("connect to PostgreSQL");
        dirs.push(Directory::start_with(config(), Arc::new(store)));
    }
    explain(dirs).await;
    drop(cluster);
}

/// Runs [`ROUNDS`] rounds of [`CLIENTS`] concurrent random operations, client
/// `c` talking to server `c % servers.len()`, and checks that every round is
/// linearizable (see the module documentation).
async fn explain<S: Store>(servers: Vec<Directory<S>>) {
    let dir = &servers[0];
    install_probe(&*dir.store).await;
    let mut rngs: Vec<Rng> = (0..CLIENTS)
        .map(|c| Rng::new(0xc0c0_0000 + c as u64))
        .collect();
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut before = normalize_snapshot(snapshot(&*dir.store, USERS).await);
    for _ in 0..ROUNDS {
        let mut tasks = Vec::with_capacity(CLIENTS);
        for (c, rng) in rngs.iter_mut().enumerate() {
            let request = random_request(rng);
            let client = servers[c % servers.len()].client();
            tasks.push(tokio::spawn(async move {
                let invoke = Instant::now();
                let reply = client
                    .call(&request)
                    .await
                    .unwrap_or_else(|e| panic!("client {c}: {request:?} got no reply: {e}"));
                let response = Instant::now();
                Op {
                    client: c,
                    invoke,
                    response,
                    request,
                    reply: normalize(reply),
                }
            }));
        }
        let mut ops = Vec::with_capacity(CLIENTS);
        for task in tasks {
            ops.push(task.await.expect("client task"));
        }
        let after = normalize_snapshot(snapshot(&*dir.store, USERS).await);
        rounds.push(Round {
            ops,
            before: before.clone(),
            after: after.clone(),
        });
        before = after;
    }
    for server in servers {
        server.stop().await;
    }
    let total: usize = rounds.iter().map(|r| r.ops.len()).sum();
    assert!(total >= 10_000);

    // The history is varied: most kinds of reply occur.
    let mut kinds = HashSet::new();
    for op in rounds.iter().flat_map(|r| &r.ops) {
        kinds.insert((op.request.op(), op.reply.code()));
    }
    assert!(kinds.len() >= 25, "too few kinds of reply: {kinds:?}");

    tokio::task::spawn_blocking(move || {
        for (r, round) in rounds.iter().enumerate() {
            let start = Model::from_snapshot(&round.before);
            assert_eq!(
                start.snapshot(),
                round.before,
                "round {r}: the model reads back"
            );
            if let Err(unexplained) = linearize(&round.ops, start, |m| m.snapshot() == round.after)
            {
                panic!(
                    "round {r}: no sequential order of the directory explains the replies: \
                     {unexplained:#?}\nbefore: {:#?}\nafter: {:#?}\nops: {:#?}",
                    round.before, round.after, round.ops
                );
            }
        }
    })
    .await
    .unwrap();
}

/// The checker itself: it must refuse histories that no order explains.
mod checker {
    use super::*;

    fn op(client: usize, at: (u64, u64), req: Request, reply: impl Into<Reply>) -> Op {
        let base = *BASE;
        Op {
            client,
            invoke: base + Duration::from_millis(at.0),
            response: base + Duration::from_millis(at.1),
            request: req,
            reply: reply.into(),
        }
    }

    static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    fn register(name: &str) -> Request {
        request(name, RequestBody::Register, false)
    }

    #[test]
    fn two_winners_of_one_register_are_refused() {
        let ops = vec![
            op(0, (0, 10), register("a"), RegisterResult::Ok),
            op(1, (5, 15), register("a"), RegisterResult::Ok),
        ];
        assert!(linearize(&ops, Model::default(), |_| true).is_err());
    }

    #[test]
    fn overlapping_operations_may_take_either_order() {
        // The later response won: only possible because they overlap.
        let ops = vec![
            op(0, (0, 10), register("a"), RegisterResult::UserNameInUse),
            op(1, (5, 15), register("a"), RegisterResult::Ok),
        ];
        assert!(linearize(&ops, Model::default(), |_| true).is_ok());
    }

    #[test]
    fn real_time_order_is_respected() {
        // Same replies, but the first finished before the second started.
        let ops = vec![
            op(0, (0, 10), register("a"), RegisterResult::UserNameInUse),
            op(1, (20, 30), register("a"), RegisterResult::Ok),
        ];
        assert!(linearize(&ops, Model::default(), |_| true).is_err());
    }

    #[test]
    fn a_listing_no_moment_shows_is_refused() {
        let mut ops = Vec::new();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let t = 10 * i as u64;
            ops.push(op(i, (t, t + 1), register(name), RegisterResult::Ok));
        }
        let connect = |name: &str, port: u16| {
            request(
                name,
                RequestBody::Connect {
                    port: port.try_into().unwrap(),
                },
                true,
            )
        };
        ops.push(op(0, (40, 41), connect("a", 1), ConnectResult::Ok));
        // b connects then disconnects; c connects after b disconnected.
        ops.push(op(1, (50, 51), connect("b", 2), ConnectResult::Ok));
        ops.push(op(
            1,
            (60, 61),
            request("b", RequestBody::Disconnect, false),
            DisconnectResult::Ok,
        ));
        ops.push(op(2, (70, 71), connect("c", 3), ConnectResult::Ok));
        // A listing that overlaps all of that but shows b and c together.
        let list = request("a", RequestBody::ListUsers, false);
        let both = ListUsersReply::Ok(vec![
            UserEntry {
                name: user("b"),
                addr: local(2),
            },
            UserEntry {
                name: user("c"),
                addr: local(3),
            },
        ]);
        let mut bad = ops.clone();
        bad.push(op(0, (45, 80), list.clone(), both));
        assert!(linearize(&bad, Model::default(), |_| true).is_err());
        // Showing only c is fine.
        let only_c = ListUsersReply::Ok(vec![UserEntry {
            name: user("c"),
            addr: local(3),
        }]);
        ops.push(op(0, (45, 80), list, only_c));
        assert!(linearize(&ops, Model::default(), |_| true).is_ok());
    }

    #[test]
    fn a_final_state_no_order_reaches_is_refused() {
        let ops = vec![op(0, (0, 10), register("a"), RegisterResult::Ok)];
        assert!(linearize(&ops, Model::default(), |m| m.users.is_empty()).is_err());
        assert!(linearize(&ops, Model::default(), |m| m.users.len() == 1).is_ok());
    }
}
