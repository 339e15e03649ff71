//! The group commit shared by every connection: one batch of lines written at a time, each
//! connection told when its lines are out before it replies.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::{config::*, output::*, replay::*};

/// Largest batch buffer kept for reuse after a burst.
pub(super) const KEEP_CAPACITY: usize = 1 << 20;

/// The output shared by every connection: a group commit.
///
/// A connection with lines to write becomes the leader when no batch is being written: it writes
/// its lines at once. Otherwise it appends them to `pending`, queues a waiter and waits: the
/// leader, when done, passes the lead to the oldest waiter, which writes everything pending in one
/// write and acknowledges the waiters it covered. Every line is written whole (a batch is only
/// whole lines, and one batch is written at a time), and a connection learns that its lines are
/// written (or could not be) before it sends its replies.
pub(super) struct Sink {
    pub(super) state: Mutex<Commit>,
    pub(super) out: OutputLock,
    pub(super) failed: AtomicBool,
    pub(super) replay: Mutex<ReplayCache>,
}

#[derive(Default)]
pub(super) struct Commit {
    /// A leader is writing (or has just passed the lead on); new lines wait in `pending`.
    pub(super) writing: bool,
    /// Lines of the waiters, in submission order.
    pub(super) pending: Vec<u8>,
    pub(super) waiters: VecDeque<oneshot::Sender<Ack>>,
    /// Buffers kept for the next round.
    pub(super) spare: Vec<u8>,
    pub(super) spare_waiters: VecDeque<oneshot::Sender<Ack>>,
}

/// What a waiter is told.
pub(super) enum Ack {
    /// Its lines were written (`true`) or could not be (`false`).
    Written(bool),
    /// It leads now: its lines are still pending, it writes them with everything else pending.
    Lead,
}

impl Sink {
    pub(super) fn new(output: Output) -> Self {
        Self {
            state: Mutex::new(Commit::default()),
            out: OutputLock::new(output),
            failed: AtomicBool::new(false),
            replay: Mutex::new(ReplayCache::new(REPLAY_CACHE_ENTRIES)),
        }
    }

    pub(super) fn with_replay_cache(self, capacity: usize) -> Self {
        Self {
            replay: Mutex::new(ReplayCache::new(capacity)),
            ..self
        }
    }

    pub(super) fn replay(&self) -> MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn state(&self) -> MutexGuard<'_, Commit> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `lines` (whole lines), alone or with other connections' lines; false if the
    /// output failed. With `gather`, a caller that finds no batch being written lets the
    /// runtime's other ready tasks run once before it writes, so that the lines of every
    /// connection served in the same turn go out in one `write(2)`.
    pub(super) async fn commit(&self, lines: &[u8], gather: bool) -> bool {
        // A waiter is only ever woken for pending lines: one with none could wait forever.
        if lines.is_empty() {
            return true;
        }
        let waiting = {
            let mut st = self.state();
            if st.writing {
                st.pending.extend_from_slice(lines);
                let (tx, rx) = oneshot::channel();
                st.waiters.push_back(tx);
                Some(rx)
            } else {
                st.writing = true;
                None
            }
        };
        let own = match waiting {
            None => Some(lines),
            Some(rx) => {
                let mut wait = Waiting {
                    sink: self,
                    rx: Some(rx),
                };
                let ack = match wait.rx.as_mut() {
                    Some(rx) => rx.await,
                    None => return false,
                };
                wait.rx = None;
                match ack {
                    Ok(Ack::Written(ok)) => return ok,
                    Ok(Ack::Lead) => None,
                    // The service is going away.
                    Err(_) => return false,
                }
            }
        };
        let lead = Leading(self);
        if gather && own.is_some() {
            tokio::task::yield_now().await;
        }
        let ok = self.round(own).await;
        drop(lead);
        ok
    }

    /// As the leader: writes `own` and everything pending in one write, acknowledges the waiters
    /// it covered; true if `own` (or the leader's pending lines) were written.
    pub(super) async fn round(&self, own: Option<&[u8]>) -> bool {
        let taken = {
            let mut st = self.state();
            if own.is_some() && st.pending.is_empty() {
                None
            } else {
                let mut buf = std::mem::take(&mut st.spare);
                std::mem::swap(&mut buf, &mut st.pending);
                let mut waiters = std::mem::take(&mut st.spare_waiters);
                std::mem::swap(&mut waiters, &mut st.waiters);
                Some((buf, waiters))
            }
        };
        let Some((mut buf, mut waiters)) = taken else {
            // Nothing else queued (the usual case with few callers): no copy.
            return self.write(own.unwrap_or_default()).await;
        };
        if let Some(own) = own {
            buf.extend_from_slice(own);
        }
        let ok = self.write(&buf).await;
        for waiter in waiters.drain(..) {
            // A waiter that is gone (its connection was dropped) needs no answer.
            let _ = waiter.send(Ack::Written(ok));
        }
        buf.clear();
        let mut st = self.state();
        if buf.capacity() <= KEEP_CAPACITY {
            st.spare = buf;
        }
        st.spare_waiters = waiters;
        ok
    }

    /// Ends a lead: passes it to the oldest waiter if lines are pending, else lets the next
    /// caller lead. Lines of waiters that are all gone stay pending for the next leader (or
    /// [`close`](Self::close)).
    pub(super) fn release(&self) {
        let mut st = self.state();
        if !st.pending.is_empty() {
            while let Some(waiter) = st.waiters.pop_front() {
                if waiter.send(Ack::Lead).is_ok() {
                    return;
                }
            }
        }
        st.writing = false;
    }

    pub(super) async fn write(&self, bytes: &[u8]) -> bool {
        match self.out.write_all(bytes).await {
            Ok(()) => true,
            Err(e) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!("cannot write log lines: {e}");
                }
                false
            }
        }
    }

    /// After every connection has stopped: writes what is still pending, flushes.
    pub(super) async fn close(&self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.state().pending);
        self.out.write_all(&rest).await
    }
}

/// The lead, released when the leader is done (or dropped while writing).
pub(super) struct Leading<'a>(pub(super) &'a Sink);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiter; if dropped after being given the lead but before taking it, passes the lead on.
pub(super) struct Waiting<'a> {
    pub(super) sink: &'a Sink,
    pub(super) rx: Option<oneshot::Receiver<Ack>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(Ack::Lead) = rx.try_recv() {
                self.sink.release();
            }
        }
    }
}
