//! Where the lines go: a file (plain `write(2)`s) or an asynchronous writer.

use std::fmt;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where the log service writes its lines.
///
/// Lines are written in batches (every line of the calls received together, and of the batches
/// that queued up meanwhile), each batch with one `write_all` then `flush`; a reply is sent only
/// after its line's batch is written.
pub struct LogOutput(pub(super) Output);

pub(super) enum Output {
    /// Written on the worker thread of the connection leading the batch.
    Blocking(Box<dyn Write + Send>),
    /// Written through tokio.
    Async(Pin<Box<dyn AsyncWrite + Send>>),
}

impl LogOutput {
    /// A file (open it with `append` to add to it): one `write(2)` per batch, made on the runtime
    /// worker thread of the connection leading the batch (an append to the page cache takes
    /// microseconds; no hand-off to another thread).
    #[must_use]
    pub fn file(file: std::fs::File) -> Self {
        Self::blocking(file)
    }

    /// Standard output, written like [`file`](Self::file) with `write(2)` on a duplicate of file
    /// descriptor 1: no user-space buffering, one system call per batch.
    ///
    /// A terminal or pipe that stops reading blocks the worker thread writing to it (and, since
    /// replies wait for their lines, every caller) until it reads again.
    pub fn stdout() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            Ok(Self::file(std::fs::File::from(fd)))
        }
        #[cfg(not(unix))]
        {
            Ok(Self::blocking(io::stdout()))
        }
    }

    /// Any blocking writer, written with `write_all` then `flush` per batch on a runtime worker
    /// thread: it must not block for long.
    #[must_use]
    pub fn blocking(writer: impl Write + Send + 'static) -> Self {
        Self(Output::Blocking(Box::new(writer)))
    }

    /// An asynchronous writer (a test's in-memory pipe, for instance).
    #[must_use]
    pub fn writer(writer: impl AsyncWrite + Send + 'static) -> Self {
        Self(Output::Async(Box::pin(writer)))
    }
}

impl fmt::Debug for LogOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Output::Blocking(_) => "LogOutput::Blocking",
            Output::Async(_) => "LogOutput::Async",
        })
    }
}

/// The output, locked by the leader while it writes (so never contended in practice).
pub(super) enum OutputLock {
    Blocking(Mutex<Box<dyn Write + Send>>),
    Async(tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>),
}

impl OutputLock {
    pub(super) fn new(output: Output) -> Self {
        match output {
            Output::Blocking(w) => Self::Blocking(Mutex::new(w)),
            Output::Async(w) => Self::Async(tokio::sync::Mutex::new(w)),
        }
    }

    pub(super) async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Blocking(w) => {
                let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
                w.write_all(bytes)?;
                w.flush()
            }
            Self::Async(w) => {
                let mut w = w.lock().await;
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }
}
