//! The calls received together on a connection (or socket): dispatched, their lines gathered.

use std::io::Write;
use std::net::IpAddr;

use p2p_proto::rpc::log::{Dispatch, LogEntry, LogReply, dispatch};

use super::{metrics::*, replay::*, sink::*};
use crate::monitor::names;

/// The calls received together on a connection (or socket), dispatched, and their lines.
pub(super) struct Batch<T> {
    pub(super) lines: Vec<u8>,
    pub(super) replies: Vec<Answer<T>>,
    /// SENDLOG calls whose line is in `lines`.
    pub(super) logged: u64,
    pub(super) metrics: CallMetrics,
}

pub(super) struct Answer<T> {
    pub(super) reply: LogReply,
    /// A SENDLOG whose line is in the batch.
    pub(super) logged: bool,
    /// Its entry in the duplicate-request cache.
    pub(super) key: Option<ReplayKey>,
    pub(super) to: T,
}

impl<T> Batch<T> {
    pub(super) fn new(transport: &'static str) -> Self {
        Self {
            lines: Vec::new(),
            replies: Vec::new(),
            logged: 0,
            metrics: CallMetrics::new(transport),
        }
    }

    /// Dispatches one message from `client`: queues its reply (and line); false when it gets no
    /// reply (over TCP, the connection closes). A SENDLOG the duplicate-request cache knows is
    /// answered with its cached reply and not written again.
    pub(super) fn dispatch(&mut self, msg: &[u8], to: T, client: IpAddr, sink: &Sink) -> bool {
        match dispatch(msg) {
            Dispatch::Reply { reply, entry } => {
                let logged = entry.is_some();
                let mut key = None;
                if let Some(entry) = entry {
                    key = ReplayKey::of(client, msg);
                    let mut cache = sink.replay();
                    if let Some(cached) = key.as_ref().and_then(|k| cache.get(k)) {
                        drop(cache);
                        tracing::debug!(%client, "SENDLOG sent again: answered from the duplicate-request cache");
                        metrics::counter!(names::LOG_CALLS, "transport" => self.metrics.transport, "result" => "replayed")
                            .increment(1);
                        self.replies.push(Answer {
                            reply: cached,
                            logged: false,
                            key: None,
                            to,
                        });
                        return true;
                    }
                    // Recorded now, before the line is queued: a copy arriving on another
                    // connection meanwhile is answered, not written. A failed write forgets it.
                    if let Some(k) = key {
                        cache.insert(k, reply.clone());
                    }
                    drop(cache);
                    push_line(&mut self.lines, &entry);
                    self.logged += 1;
                } else {
                    self.metrics.unlogged(Some(&reply));
                }
                self.replies.push(Answer {
                    reply,
                    logged,
                    key,
                    to,
                });
                true
            }
            Dispatch::Close { reason } => {
                tracing::debug!("no reply, closing: {reason:?}");
                self.metrics.unlogged(None);
                false
            }
            other => {
                tracing::debug!("unhandled dispatch outcome: {other:?}");
                self.metrics.unlogged(None);
                false
            }
        }
    }

    /// Writes the batch's lines; if that fails, turns the SENDLOG replies into SYSTEM_ERR (the
    /// records were not logged). The replies are then ready to send, in order.
    pub(super) async fn commit(&mut self, sink: &Sink, gather: bool) {
        if self.lines.is_empty() {
            return;
        }
        let ok = sink.commit(&self.lines, gather).await;
        self.lines.clear();
        let logged = std::mem::take(&mut self.logged);
        if ok {
            self.metrics.ok.increment(logged);
            self.metrics.lines.increment(logged);
        } else {
            self.metrics.system_err.increment(logged);
        }
        if !ok {
            let mut cache = sink.replay();
            for key in self.replies.iter().filter_map(|a| a.key.as_ref()) {
                cache.remove(key);
            }
            drop(cache);
            for answer in self.replies.iter_mut().filter(|answer| answer.logged) {
                answer.reply = answer.reply.system_err();
            }
        }
    }
}

/// Appends the entry's output line and a newline.
pub(super) fn push_line(buf: &mut Vec<u8>, entry: &LogEntry) {
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{entry}");
    buf.push(b'\n');
}
