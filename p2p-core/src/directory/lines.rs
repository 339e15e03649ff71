//! A console writer that never makes stdout the bottleneck.
//!
//! Request handlers format their line straight into a shared byte buffer; one
//! thread swaps that buffer out and writes it with a single `write`. A handler
//! wakes the writer only when it is idle, and after each write the writer lets
//! lines gather for [`COALESCE`] before taking the next batch. So on a quiet
//! server each line goes out at once, and under load lines go out in batches
//! with one `write` per batch and no wake-up per line: a futex wake per line
//! costs more than the rest of a request's handling.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Bytes the buffer may hold before handlers wait for the writer: back-pressure
/// from a console slower than the server, with memory bounded.
pub const LINE_BUFFER_LIMIT: usize = 4 << 20;

/// How long the writer lets lines gather after a write before taking the next
/// batch: the most a line waits behind a busy console, and at 20 000 requests/s
/// about 40 lines per `write`.
pub const COALESCE: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
struct State {
    pending: String,
    /// Every writer handle is gone: write what is left and stop.
    closed: bool,
    /// The output failed (a closed pipe): lines are dropped from now on.
    failed: bool,
    /// The writer waits on `ready`: the next line must wake it.
    writer_idle: bool,
    /// Handlers waiting on `drained` for room in the buffer.
    waiting_for_room: usize,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when `pending` becomes non-empty or `closed` is set.
    ready: Condvar,
    /// Signalled when the writer took the pending bytes.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a byte buffer and two flags: consistent whatever
        // panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes the buffer when the last [`LineWriter`] clone is dropped.
#[derive(Debug)]
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
    }
}

/// Handle to the console writer thread; clones share it. The thread ends once
/// every clone is dropped and what they wrote is out (see
/// [`LineWriterThread::join`]).
#[derive(Debug, Clone)]
pub struct LineWriter {
    handle: Option<Arc<Handle>>,
}

/// The writer thread, to join at shutdown so every line is out.
#[derive(Debug)]
pub struct LineWriterThread(Option<JoinHandle<()>>);

impl LineWriterThread {
    /// Waits until every line written before all writers were dropped is
    /// written and flushed.
    pub fn join(self) {
        if let Some(thread) = self.0 {
            // A panic in the writer thread (a broken stdout) has nothing left
            // to report, and must not bring the server down at exit.
            let _ = thread.join();
        }
    }
}

impl LineWriter {
    /// Starts a writer thread over `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> (Self, LineWriterThread) {
        let shared = Arc::new(Shared::default());
        let for_thread = shared.clone();
        let thread = thread::Builder::new()
            .name("console".into())
            .spawn(move || write_lines(&for_thread, out));
        match thread {
            Ok(thread) => (
                Self {
                    handle: Some(Arc::new(Handle(shared))),
                },
                LineWriterThread(Some(thread)),
            ),
            // Without a thread there is no console: keep serving silently.
            Err(_) => (Self::disabled(), LineWriterThread(None)),
        }
    }

    /// A writer that drops every line (`--quiet`).
    pub fn disabled() -> Self {
        Self { handle: None }
    }

    /// Appends one line (its newline is added). Waits only when the console
    /// is more than [`LINE_BUFFER_LIMIT`] bytes behind.
    pub fn line(&self, line: impl fmt::Display) {
        let Some(handle) = &self.handle else { return };
        let shared = &handle.0;
        let mut state = shared.lock();
        while state.pending.len() >= LINE_BUFFER_LIMIT && !state.failed {
            state.waiting_for_room += 1;
            state = shared
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting_for_room -= 1;
        }
        if state.failed {
            return;
        }
        // Formatting into a String cannot fail.
        let _ = writeln!(state.pending, "{line}");
        // Only the first line after the writer went idle wakes it; a busy
        // writer finds the others when its pause ends.
        let wake = mem::replace(&mut state.writer_idle, false);
        drop(state);
        if wake {
            shared.ready.notify_one();
        }
    }
}

fn write_lines<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = String::new();
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() && !state.closed {
            state.writer_idle = true;
            state = shared
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_idle = false;
        if state.pending.is_empty() {
            return;
        }
        mem::swap(&mut state.pending, &mut batch);
        let room_wanted = state.waiting_for_room > 0;
        let closed = state.closed;
        drop(state);
        if room_wanted {
            shared.drained.notify_all();
        }
        let written = out.write_all(batch.as_bytes()).and_then(|()| out.flush());
        if let Err(e) = written {
            fail(shared, &e);
            return;
        }
        batch.clear();
        if !closed {
            thread::sleep(COALESCE);
        }
    }
}

/// The output is gone: stop buffering, and release handlers waiting for room.
fn fail(shared: &Shared, error: &io::Error) {
    tracing::warn!(%error, "console output failed; further lines are dropped");
    let mut state = shared.lock();
    state.failed = true;
    state.pending = String::new();
    drop(state);
    shared.drained.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order() {
        let out = Shared::default();
        let (writer, thread) = LineWriter::spawn(out.clone());
        for i in 0..50_000 {
            writer.line(format_args!("line {i}"));
        }
        drop(writer);
        thread.join();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50_000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[49_999], "line 49999");
    }

    #[test]
    fn lines_from_many_threads_stay_whole() {
        let out = Shared::default();
        let (writer, thread) = LineWriter::spawn(out.clone());
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..5_000 {
                        writer.line(format_args!("thread {t} line {i} end"));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        drop(writer);
        thread.join();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 5, "whole line: {line:?}");
            let t: usize = words[1].parse().unwrap();
            assert_eq!(
                words[3].parse::<usize>().unwrap(),
                next[t],
                "per-thread order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_output_never_blocks_handlers() {
        let (writer, thread) = LineWriter::spawn(Broken);
        // Far more than the buffer limit: must not wait for ever.
        let line = "x".repeat(1000);
        for _ in 0..(2 * LINE_BUFFER_LIMIT / 1000) {
            writer.line(&line);
        }
        drop(writer);
        thread.join();
    }
}
