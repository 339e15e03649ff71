//! A read-only view of the directory for the status page: the connected
//! users in connection order, with their address and the names of their
//! publications, and the store's totals.
//!
//! The view never holds more than LIST_USERS and LIST_CONTENT already show
//! anyone: addresses of connected users only, file names only (no
//! descriptions).
//!
//! [`StatusSource`] is what the page reads. Until the stores implement it
//! themselves, [`ViewedMemoryStore`] (the `memory:` store with a view kept
//! beside it) does; the durable stores show their totals only
//! ([`TotalsOnly`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::BytesMut;
use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PublishResult, RegisterResult, UnregisterResult,
};
use p2p_proto::field::{Description, FileName, UserName};

use super::store::{MemoryStore, Store, StoreError, StoreStats};

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

/// Where the status page reads the directory from.
#[async_trait]
pub trait StatusSource: Send + Sync + fmt::Debug + 'static {
    /// The totals and at most `limit` connected users with at most `limit`
    /// file names in all, from one consistent state.
    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError>;
}

/// A source for stores that cannot list their connected users for the page
/// yet: the totals from [`Store::stats`], no users.
#[derive(Debug)]
pub struct TotalsOnly(pub Arc<dyn Store>);

#[async_trait]
impl StatusSource for TotalsOnly {
    async fn directory_view(&self, _limit: usize) -> Result<DirectoryView, StoreError> {
        Ok(DirectoryView {
            stats: self.0.stats().await?,
            connected: Vec::new(),
            complete: false,
            listed: false,
        })
    }
}

/// The `memory:` store with the status page's view kept beside it, updated
/// by every change that succeeds.
///
/// An interim until [`MemoryStore`] answers [`StatusSource`] itself: each
/// change is applied to the store and then to the view under one lock, so
/// the view follows the same order of changes; reads go to the store alone.
#[derive(Debug, Default)]
pub struct ViewedMemoryStore {
    store: MemoryStore,
    view: Mutex<View>,
}

#[derive(Debug, Default)]
struct View {
    users: HashMap<UserName, ViewUser>,
    /// Connection order → connected user.
    connected: BTreeMap<u64, UserName>,
    next_seq: u64,
}

#[derive(Debug, Default)]
struct ViewUser {
    connection: Option<(u64, PeerAddr)>,
    files: Vec<FileName>,
}

impl ViewedMemoryStore {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Every update below is applied whole after the store's: a poisoned
        // lock still holds a consistent view.
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl StatusSource for ViewedMemoryStore {
    async fn directory_view(&self, limit: usize) -> Result<DirectoryView, StoreError> {
        let view = self.view();
        let stats = self.store.stats();
        let mut files_left = limit;
        let mut complete = view.connected.len() <= limit;
        let connected = view
            .connected
            .values()
            .take(limit)
            .filter_map(|name| {
                let user = view.users.get(name)?;
                let (_, addr) = user.connection?;
                let shown = user.files.len().min(files_left);
                files_left -= shown;
                complete &= shown == user.files.len();
                Some(ConnectedUser {
                    name: name.clone(),
                    addr,
                    publications: user.files.len(),
                    files: user.files[..shown].to_vec(),
                })
            })
            .collect();
        Ok(DirectoryView {
            stats,
            connected,
            complete,
            listed: true,
        })
    }
}

#[async_trait]
impl Store for ViewedMemoryStore {
    async fn register(&self, user: &UserName) -> Result<RegisterResult, StoreError> {
        let mut view = self.view();
        let result = self.store.register(user);
        if result == RegisterResult::Ok {
            view.users.insert(user.clone(), ViewUser::default());
        }
        Ok(result)
    }

    async fn unregister(&self, user: &UserName) -> Result<UnregisterResult, StoreError> {
        let mut view = self.view();
        let result = self.store.unregister(user);
        if result == UnregisterResult::Ok
            && let Some(ViewUser {
                connection: Some((seq, _)),
                ..
            }) = view.users.remove(user.as_str())
        {
            view.connected.remove(&seq);
        }
        Ok(result)
    }

    async fn connect(&self, user: &UserName, addr: PeerAddr) -> Result<ConnectResult, StoreError> {
        let mut view = self.view();
        let result = self.store.connect(user, addr);
        if result == ConnectResult::Ok {
            view.next_seq += 1;
            let seq = view.next_seq;
            view.connected.insert(seq, user.clone());
            if let Some(record) = view.users.get_mut(user.as_str()) {
                record.connection = Some((seq, addr));
            }
        }
        Ok(result)
    }

    async fn disconnect(&self, user: &UserName) -> Result<DisconnectResult, StoreError> {
        let mut view = self.view();
        let result = self.store.disconnect(user);
        if result == DisconnectResult::Ok
            && let Some((seq, _)) = view
                .users
                .get_mut(user.as_str())
                .and_then(|u| u.connection.take())
        {
            view.connected.remove(&seq);
        }
        Ok(result)
    }

    async fn publish(
        &self,
        user: &UserName,
        file: &FileName,
        description: &Description,
    ) -> Result<PublishResult, StoreError> {
        let mut view = self.view();
        let result = self.store.publish(user, file, description);
        if result == PublishResult::Ok
            && let Some(record) = view.users.get_mut(user.as_str())
        {
            record.files.push(file.clone());
        }
        Ok(result)
    }

    async fn delete(&self, user: &UserName, file: &FileName) -> Result<DeleteResult, StoreError> {
        let mut view = self.view();
        let result = self.store.delete(user, file);
        if result == DeleteResult::Ok
            && let Some(record) = view.users.get_mut(user.as_str())
        {
            record.files.retain(|f| f != file);
        }
        Ok(result)
    }

    async fn list_users(&self, user: &UserName) -> Result<ListUsersReply, StoreError> {
        Ok(self.store.list_users(user))
    }

    async fn encode_list_users(
        &self,
        user: &UserName,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        self.store.encode_list_users(user, out);
        Ok(())
    }

    async fn list_content(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<ListContentReply, StoreError> {
        Ok(self.store.list_content(user, target))
    }

    async fn get_user_info(
        &self,
        user: &UserName,
        target: &UserName,
    ) -> Result<GetUserInfoReply, StoreError> {
        Ok(self.store.get_user_info(user, target))
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(self.store.stats())
    }

    fn describe(&self) -> String {
        Store::describe(&self.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserName {
        UserName::try_from(s).unwrap()
    }

    fn file(s: &str) -> FileName {
        FileName::try_from(s).unwrap()
    }

    fn addr(port: u16) -> PeerAddr {
        PeerAddr {
            ip: [127, 0, 0, 1].into(),
            port,
        }
    }

    #[tokio::test]
    async fn the_view_follows_the_changes_that_succeed() {
        let store = ViewedMemoryStore::new();
        let desc = Description::try_from("d").unwrap();
        for name in ["ann", "bob", "cy"] {
            store.register(&user(name)).await.unwrap();
        }
        store.connect(&user("bob"), addr(2)).await.unwrap();
        store.connect(&user("ann"), addr(1)).await.unwrap();
        // Refused: not connected, so nothing to show.
        store.publish(&user("cy"), &file("c"), &desc).await.unwrap();
        for f in ["a1", "a2", "a3"] {
            store.publish(&user("ann"), &file(f), &desc).await.unwrap();
        }
        store.delete(&user("ann"), &file("a2")).await.unwrap();
        store
            .publish(&user("bob"), &file("b1"), &desc)
            .await
            .unwrap();

        let view = store.directory_view(100).await.unwrap();
        assert_eq!(
            view.stats,
            StoreStats {
                users: 3,
                connected: 2,
                publications: 3
            }
        );
        assert!(view.complete && view.listed);
        let shown: Vec<(&str, u16, Vec<&str>)> = view
            .connected
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    u.addr.port,
                    u.files.iter().map(FileName::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [("bob", 2, vec!["b1"]), ("ann", 1, vec!["a1", "a3"])]
        );

        // A disconnected user leaves the view; its files stay counted.
        store.disconnect(&user("bob")).await.unwrap();
        store.unregister(&user("ann")).await.unwrap();
        let view = store.directory_view(100).await.unwrap();
        assert!(view.connected.is_empty());
        assert_eq!(view.stats.publications, 1);
    }

    #[tokio::test]
    async fn the_limit_bounds_users_and_file_names() {
        let store = ViewedMemoryStore::new();
        let desc = Description::try_from("d").unwrap();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            store.register(&user(name)).await.unwrap();
            store.connect(&user(name), addr(i as u16)).await.unwrap();
            store.publish(&user(name), &file("f"), &desc).await.unwrap();
        }
        let view = store.directory_view(2).await.unwrap();
        assert_eq!(view.connected.len(), 2);
        assert!(!view.complete);
        assert_eq!(view.connected[1].publications, 1);
        let view = store.directory_view(3).await.unwrap();
        assert!(view.complete);
    }
}
