//! One TCP connection: record reassembly, batched replies, idle timeout, busy polling.

use std::io::{self};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2p_proto::rpc::record::{Record, RecordDecoder};
use p2p_proto::{Encode, StreamDecoder};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{batch::*, sink::*};
use crate::serve::ServedStream;

/// What bounds one TCP connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    pub(super) max_record: usize,
    pub(super) idle_timeout: Duration,
    pub(super) write_timeout: Duration,
    pub(super) busy_poll: Duration,
}

/// One open TCP connection, counted in the service's total for as long as it lives.
pub(super) struct OpenConnection(pub(super) Arc<AtomicUsize>);

impl OpenConnection {
    pub(super) fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }

    /// No other TCP connection is open.
    pub(super) fn alone(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 1
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a busy poll of a connection found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Polled {
    /// Bytes arrived.
    Input,
    /// The peer closed the connection, or it broke.
    Closed,
    /// Nothing before the time ran out: sleep until the socket is readable.
    TimedOut,
    /// Another connection opened: sleep until the socket is readable.
    Crowded,
}

/// Whether a connection busy polls after answering. Adaptive, like KVM's halt polling: a poll
/// that times out stops the polling, since the client is not calling that fast (the directory's
/// shipper sends a batch every 10 ms, say); input that arrives after an answer, within a few
/// budgets of it, starts it again. Input already waiting when the answer went out (the rest of a
/// pipelined batch) says nothing about how fast the client answers, and is not counted.
#[derive(Debug)]
pub(super) struct PollPolicy {
    pub(super) budget: Duration,
    pub(super) worth_it: bool,
}

impl PollPolicy {
    /// A call arriving this many budgets after the answer, or sooner, is worth polling for
    /// (waking the sleeping service adds tens of microseconds to what the client took).
    pub(super) const RESTART: u32 = 4;

    pub(super) const fn new(budget: Duration) -> Self {
        Self {
            budget,
            worth_it: !budget.is_zero(),
        }
    }

    /// Busy polling is configured at all (a non-zero budget).
    pub(super) const fn enabled(&self) -> bool {
        !self.budget.is_zero()
    }

    /// How long to poll now, if at all.
    pub(super) const fn budget(&self) -> Option<Duration> {
        if self.worth_it {
            Some(self.budget)
        } else {
            None
        }
    }

    pub(super) fn polled(&mut self, polled: &Polled) {
        if *polled == Polled::TimedOut {
            self.worth_it = false;
        }
    }

    /// With polling off, the next input came `gap` after the answer (none was waiting then).
    pub(super) fn answered_after(&mut self, gap: Duration) {
        self.worth_it = self.enabled() && gap <= self.budget * Self::RESTART;
    }
}

/// Checks the socket for input until `budget` has passed or `open` is no longer alone, yielding
/// to the runtime between checks: the runtime polls its I/O driver (a non-blocking
/// `epoll_wait`) before the task runs again, which is what makes the socket's readiness, and
/// any other connection's, visible; other ready tasks run in between.
pub(super) async fn busy_poll(
    stream: &TcpStream,
    input: &mut BytesMut,
    budget: Duration,
    open: &OpenConnection,
    stop: &CancellationToken,
) -> Polled {
    let until = Instant::now() + budget;
    loop {
        // The service is stopping: the connection ends as if the client had closed.
        if stop.is_cancelled() {
            return Polled::Closed;
        }
        if !open.alone() {
            return Polled::Crowded;
        }
        match stream.try_read_buf(input) {
            Ok(0) => return Polled::Closed,
            Ok(_) => return Polled::Input,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Polled::Closed,
        }
        if Instant::now() >= until {
            return Polled::TimedOut;
        }
        tokio::task::yield_now().await;
    }
}

/// Whether input (or the end of the stream) is waiting on the socket now: a peek (`MSG_PEEK`,
/// every platform), which does not wait because tokio's sockets are non-blocking, whatever
/// readiness tokio last saw.
pub(super) fn input_waiting(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    !matches!(
        socket2::SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

/// Serves one TCP client: reassembles records, answers each call in order, closes when the
/// dispatcher says so or the stream breaks. The calls of one read are handled together: their
/// lines in one batch, their replies in one write.
pub(super) async fn serve_tcp(
    mut stream: ServedStream,
    client: IpAddr,
    sink: Arc<Sink>,
    limits: ConnectionLimits,
    open: &OpenConnection,
    stop: &CancellationToken,
) {
    let mut decoder = RecordDecoder::new(limits.max_record);
    let mut input = BytesMut::with_capacity(4096);
    let mut batch = Batch::new("tcp");
    let mut replies = Vec::new();
    // The idle check costs nothing per call: one timer per connection that goes off every
    // `idle_timeout`, closing the connection if no call completed since it last went off.
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut called = false;
    let mut policy = PollPolicy::new(limits.busy_poll);
    loop {
        let mut close = false;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(record)) => {
                    called = true;
                    if !batch.dispatch(&record, (), client, &sink) {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("closing connection: {e}");
                    close = true;
                    break;
                }
            }
        }
        batch.commit(&sink, !open.alone()).await;
        for answer in batch.replies.drain(..) {
            Record(&answer.reply).encode(&mut replies);
        }
        if !replies.is_empty() {
            match crate::log::write_moving(&mut stream, &replies, limits.write_timeout).await {
                Ok(()) => replies.clear(),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    tracing::debug!(
                        "closing connection: no reply byte taken for {:?}",
                        limits.write_timeout
                    );
                    return;
                }
                Err(_) => return,
            }
        }
        // At shutdown the calls received are answered; a partial one is left to the client,
        // which sends it again elsewhere or later.
        if close || stop.is_cancelled() {
            return;
        }
        let answered = Instant::now();
        let waiting = if let Some(budget) = policy.budget() {
            let polled = busy_poll(&stream, &mut input, budget, open, stop).await;
            policy.polled(&polled);
            match polled {
                Polled::Input => continue,
                Polled::Closed => return,
                Polled::TimedOut | Polled::Crowded => false,
            }
        } else {
            policy.enabled() && input_waiting(&stream)
        };
        loop {
            tokio::select! {
                biased;
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !waiting {
                            policy.answered_after(answered.elapsed());
                        }
                        break;
                    }
                },
                () = stop.cancelled() => return,
                () = &mut idle => {
                    if !std::mem::take(&mut called) {
                        tracing::debug!("closing connection: no call for {:?}", limits.idle_timeout);
                        return;
                    }
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                }
            }
        }
    }
}
