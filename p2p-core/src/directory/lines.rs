//! A console writer that never makes stdout the bottleneck: lines go through a
//! bounded channel to one thread that writes them into a buffer and flushes
//! whenever it has nothing more to write, so a burst costs one `write(2)`, and
//! a quiet server still shows each line at once.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};

/// Lines waiting for the writer thread before senders wait for it.
pub const LINE_QUEUE: usize = 16 * 1024;

/// Handle to the writer thread. Cloning shares the thread; it ends when every
/// clone is dropped and the queue is drained (see [`LineWriter::finish`]).
#[derive(Debug, Clone)]
pub struct LineWriter {
    tx: Option<SyncSender<String>>,
}

/// The writer thread, to join at shutdown so every line is out.
#[derive(Debug)]
pub struct LineWriterThread(JoinHandle<()>);

impl LineWriterThread {
    /// Waits until every line sent before all senders were dropped is written
    /// and flushed.
    pub fn join(self) {
        // A panic in the writer thread (a broken stdout) has nothing left to
        // report, and must not bring the server down at exit.
        let _ = self.0.join();
    }
}

impl LineWriter {
    /// Starts a writer thread over `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> (Self, LineWriterThread) {
        let (tx, rx) = mpsc::sync_channel(LINE_QUEUE);
        let thread = thread::Builder::new()
            .name("console".into())
            .spawn(move || write_lines(rx, out))
            .map(LineWriterThread);
        match thread {
            Ok(thread) => (Self { tx: Some(tx) }, thread),
            // Without a thread there is no console: keep serving silently.
            Err(_) => (Self { tx: None }, LineWriterThread(thread::spawn(|| ()))),
        }
    }

    /// A writer that drops every line (`--quiet`).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Queues one line (without its newline). Waits only when the queue is
    /// full, which is back-pressure from a console slower than the server.
    pub fn line(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(line)) => {
                let _ = tx.send(line);
            }
        }
    }
}

fn write_lines<W: Write>(rx: Receiver<String>, out: W) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        if writeln!(out, "{line}").is_err() {
            return;
        }
        while let Ok(line) = rx.try_recv() {
            if writeln!(out, "{line}").is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
            writer.line(format!("line {i}"));
        }
        drop(writer);
        thread.join();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50_000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[49_999], "line 49999");
    }
}
