//! The duplicate-request cache: SENDLOG calls answered again without being written twice.

use std::collections::VecDeque;
use std::net::IpAddr;

use p2p_proto::rpc::log::LogReply;

/// A SENDLOG call as the duplicate-request cache knows it: client address, xid, and a digest
/// of the whole call (so a reused xid with other arguments is a new call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ReplayKey {
    pub(super) client: IpAddr,
    pub(super) xid: u32,
    pub(super) call: [u8; 16],
}

impl ReplayKey {
    pub(super) fn of(client: IpAddr, msg: &[u8]) -> Option<Self> {
        let xid = u32::from_be_bytes(msg.get(..4)?.try_into().ok()?);
        let digest = blake3::hash(msg);
        let mut call = [0u8; 16];
        call.copy_from_slice(&digest.as_bytes()[..16]);
        Some(Self { client, xid, call })
    }
}

/// The duplicate-request cache: the replies of the last `capacity` SENDLOG calls written, the
/// oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct ReplayCache {
    pub(super) capacity: usize,
    pub(super) replies: std::collections::HashMap<ReplayKey, LogReply>,
    pub(super) order: VecDeque<ReplayKey>,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    pub(super) fn get(&self, key: &ReplayKey) -> Option<LogReply> {
        self.replies.get(key).cloned()
    }

    /// Records `key` as written, with its reply.
    pub(super) fn insert(&mut self, key: ReplayKey, reply: LogReply) {
        if self.capacity == 0 {
            return;
        }
        if self.replies.insert(key, reply).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.replies.remove(&old);
            }
        }
    }

    /// Forgets `key` (its line could not be written: a call sent again must be written).
    pub(super) fn remove(&mut self, key: &ReplayKey) {
        if self.replies.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}
