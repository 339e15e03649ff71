//! The in-memory store: the whole directory in one process's memory.
//!
//! It is also the read side of [`super::SqliteStore`], which applies each
//! change here once it is synced to disk.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2p_proto::Encode;
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, EncodedUserEntry, GetUserInfoReply,
    ListContentReply, ListUsersReply, PeerAddr, PublishResult, RegisterResult, Reply, SearchTerm,
    UnregisterResult, UserEntry, matches,
};
use p2p_proto::field::{Description, FileName, UserName};

use async_trait::async_trait;

use super::index::SearchIndex;
use super::{PingAnswer, SearchAnswer, SearchHit, Store, StoreError, StoreStats};
use crate::directory::view::{ConnectedUser, DirectoryView};

/// A user's record.
#[derive(Debug, Default)]
struct User {
    /// Where the user serves files, and its key in [`State::connected`].
    connection: Option<(u64, PeerAddr)>,
    /// Publications in publication order, keyed by a sequence number.
    files: BTreeMap<u64, FileName>,
    /// File name → (sequence number, description), for duplicate checks and
    /// deletion in O(log n).
    index: HashMap<FileName, (u64, Description)>,
    /// When the user last sent PING while connected (PROTOCOL.md §6.3);
    /// `None` until it does. Liveness only: never stored durably.
    last_ping: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserName, User>,
    /// Connected users in connection order, with their address, encoded at
    /// CONNECT: LIST_USERS reads only this and copies bytes.
    connected: BTreeMap<u64, EncodedUserEntry>,
    /// Every publication's words, for SEARCH.
    search: SearchIndex,
    publications: usize,
    next_seq: u64,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

/// The in-memory store: one `RwLock` over the whole directory; listings take
/// the read side, so they run concurrently with each other.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied operation:
        // every mutation below is decided before it is applied. So a poisoned
        // lock is still consistent and safe to use.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `user` is connected and has pinged, but not since `deadline`.
fn silent(user: &User, deadline: Instant) -> bool {
    user.connection.is_some() && user.last_ping.is_some_and(|last| last < deadline)
}

/// Looks up a connected user or returns the operation's failure.
macro_rules! connected_user {
    ($state:expr, $user:expr, $missing:expr, $not_connected:expr) => {
        match $state.users.get($user.as_str()) {
            None => return $missing,
            Some(u) if u.connection.is_none() => return $not_connected,
            Some(u) => u,
        }
    };
}

impl MemoryStore {
    /// See [`Store::register`].
    pub fn register(&self, user: &UserName) -> RegisterResult {
        let mut state = self.write();
        if state.users.contains_key(user.as_str()) {
            return RegisterResult::UserNameInUse;
        }
        state.users.insert(user.clone(), User::default());
        RegisterResult::Ok
    }

    /// See [`Store::unregister`].
    pub fn unregister(&self, user: &UserName) -> UnregisterResult {
        let mut state = self.write();
        let Some(removed) = state.users.remove(user.as_str()) else {
            return UnregisterResult::UserDoesNotExist;
        };
        if let Some((seq, _)) = removed.connection {
            state.connected.remove(&seq);
        }
        state.publications -= removed.files.len();
        state.search.remove(
            removed
                .index
                .iter()
                .map(|(file, (seq, description))| (*seq, file.as_str(), description.as_str())),
        );
        UnregisterResult::Ok
    }

    /// See [`Store::connect`].
    pub fn connect(&self, user: &UserName, addr: PeerAddr) -> ConnectResult {
        let mut state = self.write();
        let seq = state.next_seq();
        let Some(record) = state.users.get_mut(user.as_str()) else {
            return ConnectResult::UserDoesNotExist;
        };
        if record.connection.is_some() {
            return ConnectResult::AlreadyConnected;
        }
        record.connection = Some((seq, addr));
        record.last_ping = None;
        state.connected.insert(
            seq,
            EncodedUserEntry::new(UserEntry {
                name: user.clone(),
                addr,
            }),
        );
        ConnectResult::Ok
    }

    /// See [`Store::disconnect`].
    pub fn disconnect(&self, user: &UserName) -> DisconnectResult {
        let mut state = self.write();
        let Some(record) = state.users.get_mut(user.as_str()) else {
            return DisconnectResult::UserDoesNotExist;
        };
        let Some((seq, _)) = record.connection.take() else {
            return DisconnectResult::NotConnected;
        };
        record.last_ping = None;
        state.connected.remove(&seq);
        DisconnectResult::Ok
    }

    /// See [`Store::publish`].
    pub fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> PublishResult {
        let mut state = self.write();
        let seq = state.next_seq();
        let record = match state.users.get_mut(user.as_str()) {
            None => return PublishResult::UserDoesNotExist,
            Some(u) if u.connection.is_none() => return PublishResult::NotConnected,
            Some(u) => u,
        };
        if record.index.contains_key(file.as_str()) {
            return PublishResult::AlreadyPublished;
        }
        record
            .index
            .insert(file.clone(), (seq, description.clone()));
        record.files.insert(seq, file.clone());
        state.publications += 1;
        state
            .search
            .insert(seq, user, file.as_str(), description.as_str());
        PublishResult::Ok
    }

    /// See [`Store::delete`].
    pub fn delete(&self, user: &UserName, file: &FileName) -> DeleteResult {
        let mut state = self.write();
        let record = match state.users.get_mut(user.as_str()) {
            None => return DeleteResult::UserDoesNotExist,
            Some(u) if u.connection.is_none() => return DeleteResult::NotConnected,
            Some(u) => u,
        };
        let Some((seq, description)) = record.index.remove(file.as_str()) else {
            return DeleteResult::NotPublished;
        };
        record.files.remove(&seq);
        state.publications -= 1;
        state
            .search
            .remove([(seq, file.as_str(), description.as_str())]);
        DeleteResult::Ok
    }

    /// See [`Store::list_users`].
    pub fn list_users(&self, user: &UserName) -> ListUsersReply {
        let state = self.read();
        connected_user!(
            state,
            user,
            ListUsersReply::UserDoesNotExist,
            ListUsersReply::NotConnected
        );
        let entries = state
            .connected
            .values()
            .map(EncodedUserEntry::entry)
            .filter(|entry| entry.name != *user)
            .cloned()
            .collect();
        ListUsersReply::Ok(entries)
    }

    /// See [`Store::encode_list_users`].
    pub fn encode_list_users(&self, user: &UserName, out: &mut BytesMut) {
        let state = self.read();
        connected_user!(
            state,
            user,
            Reply::ListUsers(ListUsersReply::UserDoesNotExist).encode(out),
            Reply::ListUsers(ListUsersReply::NotConnected).encode(out)
        );
        let entries: Vec<&EncodedUserEntry> = state
            .connected
            .values()
            .filter(|entry| entry.entry().name != *user)
            .collect();
        out.reserve(ListUsersReply::encoded_ok_len_from(&entries));
        ListUsersReply::encode_ok_from(&entries, out);
    }

    /// See [`Store::list_content`].
    pub fn list_content(&self, user: &UserName, target: &UserName) -> ListContentReply {
        let state = self.read();
        connected_user!(
            state,
            user,
            ListContentReply::UserDoesNotExist,
            ListContentReply::NotConnected
        );
        match state.users.get(target.as_str()) {
            None => ListContentReply::TargetDoesNotExist,
            Some(t) => ListContentReply::Ok(t.files.values().cloned().collect()),
        }
    }

    /// See [`Store::get_user_info`].
    pub fn get_user_info(&self, user: &UserName, target: &UserName) -> GetUserInfoReply {
        let state = self.read();
        connected_user!(
            state,
            user,
            GetUserInfoReply::UserDoesNotExist,
            GetUserInfoReply::NotConnected
        );
        match state.users.get(target.as_str()).and_then(|t| t.connection) {
            None => GetUserInfoReply::TargetNotFound,
            Some((_, addr)) => GetUserInfoReply::Ok(addr),
        }
    }

    /// See [`Store::stats`].
    pub fn stats(&self) -> StoreStats {
        let state = self.read();
        StoreStats {
            users: state.users.len(),
            connected: state.connected.len(),
            publications: state.publications,
        }
    }

    /// See [`Store::directory_view`].
    pub fn directory_view(&self, limit: usize) -> DirectoryView {
        let state = self.read();
        let mut files_left = limit;
        let mut complete = state.connected.len() <= limit;
        let connected = state
            .connected
            .values()
            .take(limit)
            .filter_map(|entry| {
                let entry = entry.entry();
                let user = state.users.get(entry.name.as_str())?;
                let shown = user.files.len().min(files_left);
                files_left -= shown;
                complete &= shown == user.files.len();
                Some(ConnectedUser {
                    name: entry.name.clone(),
                    addr: entry.addr,
                    publications: user.files.len(),
                    files: user.files.values().take(shown).cloned().collect(),
                })
            })
            .collect();
        DirectoryView {
            stats: StoreStats {
                users: state.users.len(),
                connected: state.connected.len(),
                publications: state.publications,
            },
            connected,
            complete,
            listed: true,
        }
    }

    /// SEARCH (PROTOCOL.md §6.2): the publications of connected users other
    /// than `user` whose file name or description has, for every term, a word
    /// that the term is a prefix of; most recently published first, at most
    /// `limit`. `terms` are lowercased and non-empty (the caller checks the
    /// query).
    pub fn search(&self, user: &UserName, terms: &[SearchTerm], limit: usize) -> SearchAnswer {
        let state = self.read();
        connected_user!(
            state,
            user,
            SearchAnswer::UserDoesNotExist,
            SearchAnswer::NotConnected
        );
        let mut hits = Vec::new();
        if limit == 0 {
            return SearchAnswer::Ok(hits);
        }
        for seq in state.search.candidates(terms) {
            let Some(owner) = state.search.owner(seq) else {
                continue;
            };
            if owner == user.as_str() {
                continue;
            }
            let Some((owner, record)) = state.users.get_key_value(owner) else {
                continue;
            };
            if record.connection.is_none() {
                continue;
            }
            let Some(file) = record.files.get(&seq) else {
                continue;
            };
            let Some((_, description)) = record.index.get(file.as_str()) else {
                continue;
            };
            if matches(terms, file.as_str(), description.as_str()) {
                hits.push(SearchHit {
                    owner: owner.clone(),
                    file: file.clone(),
                    description: description.clone(),
                });
                if hits.len() == limit {
                    break;
                }
            }
        }
        SearchAnswer::Ok(hits)
    }

    /// PING (PROTOCOL.md §6.3) from `from` at `now`: records that the
    /// connected `user` is alive. A PING from another address than the one
    /// recorded at CONNECT changes nothing.
    pub fn ping(&self, user: &UserName, from: IpAddr, now: Instant) -> PingAnswer {
        let mut state = self.write();
        match state.users.get_mut(user.as_str()) {
            None => PingAnswer::UserDoesNotExist,
            Some(record) => match record.connection {
                None => PingAnswer::NotConnected,
                Some((_, addr)) if addr.ip.to_canonical() != from.to_canonical() => {
                    PingAnswer::WrongAddress
                }
                Some(_) => {
                    record.last_ping = Some(now);
                    PingAnswer::Ok
                }
            },
        }
    }

    /// The connected users that have pinged, but not since `deadline`.
    pub fn silent_since(&self, deadline: Instant) -> Vec<UserName> {
        let state = self.read();
        state
            .connected
            .values()
            .map(|entry| &entry.entry().name)
            .filter(|name| {
                state
                    .users
                    .get(name.as_str())
                    .is_some_and(|u| silent(u, deadline))
            })
            .cloned()
            .collect()
    }

    /// Whether `user` is connected and has pinged, but not since `deadline`.
    pub fn is_silent_since(&self, user: &UserName, deadline: Instant) -> bool {
        self.read()
            .users
            .get(user.as_str())
            .is_some_and(|u| silent(u, deadline))
    }

    /// Disconnects `user` (as DISCONNECT: publications stay) when it is still
    /// connected and has pinged, but not since `deadline`. Returns whether it
    /// did.
    pub fn expire(&self, user: &UserName, deadline: Instant) -> bool {
        let mut state = self.write();
        let Some(record) = state.users.get_mut(user.as_str()) else {
            return false;
        };
        if !silent(record, deadline) {
            return false;
        }
        let Some((seq, _)) = record.connection.take() else {
            return false;
        };
        record.last_ping = None;
        state.connected.remove(&seq);
        true
    }

    /// Gives back memory the index grew into while a durable store loaded.
    pub(crate) fn compact(&self) {
        self.write().search.compact();
    }

    /// Adds a user as a durable store read it back: `connection` carries the
    /// position in connection order the user had.
    pub(crate) fn restore_user(&self, user: UserName, connection: Option<(u64, PeerAddr)>) {
        let mut state = self.write();
        if let Some((seq, addr)) = connection {
            state.connected.insert(
                seq,
                EncodedUserEntry::new(UserEntry {
                    name: user.clone(),
                    addr,
                }),
            );
            state.next_seq = state.next_seq.max(seq);
        }
        state.users.insert(
            user,
            User {
                connection,
                ..User::default()
            },
        );
    }

    /// Adds a publication of a restored user, at position `seq` of the
    /// publication order. Returns false when the user is unknown or already
    /// lists the file (a store that reads such rows is not consistent).
    pub(crate) fn restore_publication(
        &self,
        user: &UserName,
        seq: u64,
        file: FileName,
        description: Description,
    ) -> bool {
        let mut state = self.write();
        state.next_seq = state.next_seq.max(seq);
        let Some(record) = state.users.get_mut(user.as_str()) else {
            return false;
        };
        // One lookup each; a failed load is discarded whole, so a repeat may
        // leave its half-inserted entry behind.
        match record.index.entry(file.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => return false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((seq, description.clone()));
            }
        }
        if record.files.insert(seq, file.clone()).is_some() {
            return false;
        }
        state.publications += 1;
        state
            .search
            .insert(seq, user, file.as_str(), description.as_str());
        true
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn register(&self, user: &UserName) -> Result<RegisterResult, StoreError> {
        Ok(Self::register(self, user))
    }

    async fn unregister(&self, user: &UserName) -> Result<UnregisterResult, StoreError> {
        Ok(Self::unregister(self, user))
    }

    async fn connect(&self, user: &UserName, addr: PeerAddr) -> Result<ConnectResult, StoreError> {
        Ok(Self::connect(self, user, addr))
    }

    async fn disconnect(&self, user: &UserName) -> Result<DisconnectResult, StoreError> {
        Ok(Self::disconnect(self, user))
    }

    async fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> Result<PublishResult, StoreError> {
        Ok(Self::publish(self, user, file, description))
    }

    async fn delete(&self, user: &UserName, file: &FileName) -> Result<DeleteResult, StoreError> {
        Ok(Self::delete(self, user, file))
    }

    async fn list_users(&self, user: &UserName) -> Result<ListUsersReply, StoreError> {
        Ok(Self::list_users(self, user))
    }

    async fn encode_list_users(
        &self,
        user: &UserName,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        Self::encode_list_users(self, user, out);
        Ok(())
    }

    async fn list_content(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<ListContentReply, StoreError> {
        Ok(Self::list_content(self, user, target))
    }

    async fn get_user_info(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<GetUserInfoReply, StoreError> {
        Ok(Self::get_user_info(self, user, target))
    }

    async fn search(
        &self,
        user: &UserName,
        terms: &[SearchTerm],
        limit: usize,
    ) -> Result<SearchAnswer, StoreError> {
        Ok(Self::search(self, user, terms, limit))
    }

    async fn ping(&self, user: &UserName, from: IpAddr) -> Result<PingAnswer, StoreError> {
        Ok(Self::ping(self, user, from, Instant::now()))
    }

    async fn expire(&self, silence: Duration) -> Result<Vec<UserName>, StoreError> {
        let Some(deadline) = Instant::now().checked_sub(silence) else {
            return Ok(Vec::new());
        };
        Ok(self
            .silent_since(deadline)
            .into_iter()
            .filter(|user| Self::expire(self, user, deadline))
            .collect())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(Self::stats(self))
    }

    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError> {
        Ok(Self::directory_view(self, limit))
    }

    fn describe(&self) -> String {
        "in memory (nothing is kept after the server stops)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn name(s: &str) -> UserName {
        s.parse().unwrap()
    }
    fn file(s: &str) -> FileName {
        s.parse().unwrap()
    }
    fn addr(port: u16) -> PeerAddr {
        PeerAddr {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        }
    }

    #[test]
    fn lifecycle_follows_the_contract() {
        let s = MemoryStore::new();
        let (a, b) = (name("alice"), name("bob"));
        let desc: Description = "d".parse().unwrap();
        assert_eq!(s.unregister(&a), UnregisterResult::UserDoesNotExist);
        assert_eq!(s.register(&a), RegisterResult::Ok);
        assert_eq!(s.register(&a), RegisterResult::UserNameInUse);
        assert_eq!(
            s.publish(&a, &file("f"), &desc),
            PublishResult::NotConnected
        );
        assert_eq!(s.connect(&a, addr(1000)), ConnectResult::Ok);
        assert_eq!(s.connect(&a, addr(1001)), ConnectResult::AlreadyConnected);
        assert_eq!(s.connect(&b, addr(1001)), ConnectResult::UserDoesNotExist);
        assert_eq!(s.register(&b), RegisterResult::Ok);
        assert_eq!(s.connect(&b, addr(2000)), ConnectResult::Ok);
        assert_eq!(s.publish(&a, &file("f1"), &desc), PublishResult::Ok);
        assert_eq!(s.publish(&a, &file("f0"), &desc), PublishResult::Ok);
        assert_eq!(
            s.publish(&a, &file("f1"), &desc),
            PublishResult::AlreadyPublished
        );
        assert_eq!(
            s.list_content(&b, &a),
            ListContentReply::Ok(vec![file("f1"), file("f0")]),
            "publication order"
        );
        assert_eq!(
            s.list_content(&b, &name("zed")),
            ListContentReply::TargetDoesNotExist
        );
        assert_eq!(
            s.list_users(&a),
            ListUsersReply::Ok(vec![UserEntry {
                name: b.clone(),
                addr: addr(2000)
            }])
        );
        assert_eq!(s.get_user_info(&a, &b), GetUserInfoReply::Ok(addr(2000)));
        assert_eq!(s.delete(&a, &file("f1")), DeleteResult::Ok);
        assert_eq!(s.delete(&a, &file("f1")), DeleteResult::NotPublished);
        assert_eq!(s.disconnect(&b), DisconnectResult::Ok);
        assert_eq!(s.disconnect(&b), DisconnectResult::NotConnected);
        assert_eq!(s.get_user_info(&a, &b), GetUserInfoReply::TargetNotFound);
        assert_eq!(s.list_users(&b), ListUsersReply::NotConnected);
        assert_eq!(s.list_users(&a), ListUsersReply::Ok(vec![]));
        // Disconnected users keep their publications.
        assert_eq!(
            s.list_content(&a, &a),
            ListContentReply::Ok(vec![file("f0")])
        );
        assert_eq!(
            s.stats(),
            StoreStats {
                users: 2,
                connected: 1,
                publications: 1
            }
        );
        assert_eq!(s.unregister(&a), UnregisterResult::Ok);
        assert_eq!(
            s.stats(),
            StoreStats {
                users: 1,
                connected: 0,
                publications: 0
            }
        );
        assert_eq!(s.register(&a), RegisterResult::Ok);
        assert_eq!(s.connect(&a, addr(1)), ConnectResult::Ok);
        assert_eq!(s.list_content(&a, &a), ListContentReply::Ok(vec![]));
    }

    #[test]
    fn the_view_shows_connected_users_in_order_within_the_limit() {
        let s = MemoryStore::new();
        let desc: Description = "d".parse().unwrap();
        for n in ["ann", "bob", "cy"] {
            s.register(&name(n));
        }
        s.connect(&name("bob"), addr(2));
        s.connect(&name("ann"), addr(1));
        for f in ["a1", "a2", "a3"] {
            s.publish(&name("ann"), &file(f), &desc);
        }
        s.delete(&name("ann"), &file("a2"));
        s.publish(&name("bob"), &file("b1"), &desc);
        let shown = |v: &DirectoryView| -> Vec<(String, u16, Vec<String>)> {
            v.connected
                .iter()
                .map(|u| {
                    (
                        u.name.to_string(),
                        u.addr.port,
                        u.files.iter().map(ToString::to_string).collect(),
                    )
                })
                .collect()
        };
        let view = s.directory_view(100);
        assert!(view.complete && view.listed);
        assert_eq!(
            view.stats,
            StoreStats {
                users: 3,
                connected: 2,
                publications: 3
            }
        );
        assert_eq!(
            shown(&view),
            [
                ("bob".into(), 2, vec!["b1".into()]),
                ("ann".into(), 1, vec!["a1".into(), "a3".into()])
            ]
        );
        // Two file names in all: bob's one, then one of ann's.
        let view = s.directory_view(2);
        assert!(!view.complete);
        assert_eq!(
            shown(&view),
            [
                ("bob".into(), 2, vec!["b1".into()]),
                ("ann".into(), 1, vec!["a1".into()])
            ]
        );
        assert_eq!(view.connected[1].publications, 2);
        // One user at most.
        assert_eq!(s.directory_view(1).connected.len(), 1);
        // A disconnected user leaves the view; its files stay counted.
        s.disconnect(&name("bob"));
        let view = s.directory_view(100);
        assert_eq!(shown(&view).len(), 1);
        assert_eq!(view.stats.publications, 3);
    }

    /// The encoded listing is the typed listing's bytes, for every outcome.
    #[test]
    fn encoded_listing_matches_the_typed_one() {
        let s = MemoryStore::new();
        let check = |s: &MemoryStore, who: &UserName| {
            let mut typed = Vec::new();
            Reply::ListUsers(s.list_users(who)).encode(&mut typed);
            let mut encoded = BytesMut::new();
            s.encode_list_users(who, &mut encoded);
            assert_eq!(&encoded[..], &typed[..], "{who:?}");
            typed
        };
        let (a, b, c) = (name("alice"), name("bob"), name("carol"));
        assert_eq!(check(&s, &a), [1], "no such user");
        s.register(&a);
        assert_eq!(check(&s, &a), [2], "not connected");
        s.connect(&a, addr(1000));
        assert_eq!(check(&s, &a), b"\x000\0", "alone");
        for (user, port) in [(&b, 2000), (&c, 3000)] {
            s.register(user);
            s.connect(user, addr(port));
        }
        assert_eq!(
            check(&s, &b),
            b"\x002\0alice\x00127.0.0.1\x001000\0carol\x00127.0.0.1\x003000\0",
            "the others, in connection order"
        );
        s.disconnect(&a);
        s.connect(&a, addr(1001));
        assert_eq!(
            check(&s, &c),
            b"\x002\0bob\x00127.0.0.1\x002000\0alice\x00127.0.0.1\x001001\0",
            "a reconnection moves to the end with its new port"
        );
    }
}
