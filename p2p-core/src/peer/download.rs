//! Downloads one file from another peer (`GET_FILE`), never leaving a
//! half-written destination: the body goes to a temporary file beside the
//! destination, renamed into place only when exactly the announced size
//! arrived.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use p2p_proto::directory::DecodeError;
use p2p_proto::field::FileName;
use p2p_proto::transfer::{GetFile, TransferHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Why a download failed. The destination is untouched in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The serving peer answered 1: it does not publish that name.
    #[error("the peer does not publish that file")]
    NotFound,
    /// The serving peer answered 2.
    #[error("the peer refused the transfer")]
    Refused,
    /// The serving peer could not be reached.
    #[error("cannot reach the peer at {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The reply header did not decode.
    #[error("malformed transfer header: {0}")]
    Header(#[from] DecodeError),
    /// The connection closed before the whole file arrived.
    #[error("short transfer: {received} of {expected} bytes")]
    Short {
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The peer stopped sending.
    #[error("the peer stopped sending for {0:?}")]
    Timeout(Duration),
    /// A local file or socket error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How downloads behave.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Longest wait for any progress (connect, header, each read). Default 30 s.
    pub stall_timeout: Duration,
    /// Size of the read/write chunks. Default 1 MiB.
    pub chunk_size: usize,
    /// Show a progress bar on a terminal (stderr) once a transfer has taken
    /// longer than [`PROGRESS_DELAY`]. Default: whether stderr is a terminal.
    pub progress: bool,
}

/// How long a transfer runs before its progress bar appears.
pub const PROGRESS_DELAY: Duration = Duration::from_millis(500);

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_secs(30),
            chunk_size: 1 << 20,
            progress: io::stderr().is_terminal(),
        }
    }
}

async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T, DownloadError> {
    match timeout(limit, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DownloadError::Timeout(limit)),
    }
}

/// Fetches `file` from the peer at `addr` into `dest`; returns its size.
pub async fn download(
    addr: SocketAddr,
    file: &FileName,
    dest: &Path,
    options: &DownloadOptions,
) -> Result<u64, DownloadError> {
    let limit = options.stall_timeout;
    let mut stream = match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(DownloadError::Connect { addr, source }),
        Err(_) => return Err(DownloadError::Timeout(limit)),
    };
    stream.set_nodelay(true)?;
    let request = GetFile { file: file.clone() };
    let mut out = BytesMut::with_capacity(request.encoded_len());
    request.encode(&mut out);
    timed(limit, stream.write_all(&out)).await?;

    // The header, then whatever part of the body came with it.
    let mut buf = BytesMut::with_capacity(options.chunk_size.max(4096));
    let (header, used) = loop {
        if let Some(found) = TransferHeader::decode(&buf)? {
            break found;
        }
        if timed(limit, stream.read_buf(&mut buf)).await? == 0 {
            return Err(DownloadError::Short {
                expected: 0,
                received: 0,
            });
        }
    };
    let size = match header {
        TransferHeader::Ok { size } => size,
        TransferHeader::NotFound => return Err(DownloadError::NotFound),
        TransferHeader::Other => return Err(DownloadError::Refused),
    };
    let _ = buf.split_to(used);

    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(&dir)?;
    let mut out = tokio::fs::File::from_std(temp.as_file().try_clone()?);

    let mut progress = Progress::new(size, options.progress);
    // Whatever part of the body came with the header.
    let take = usize::try_from(size).map_or(buf.len(), |l| l.min(buf.len()));
    out.write_all(&buf[..take]).await?;
    out.flush().await?;
    let mut received = take as u64;
    progress.update(received);

    #[cfg(target_os = "linux")]
    if received < size {
        let base = received;
        let spliced =
            super::zerocopy::receive_file(&stream, temp.as_file(), size - received, limit, |n| {
                progress.update(base + n)
            })
            .await;
        match spliced {
            Ok(Some(n)) => {
                received += n;
                if received < size {
                    progress.abandon();
                    return Err(DownloadError::Short {
                        expected: size,
                        received,
                    });
                }
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                progress.abandon();
                return Err(DownloadError::Timeout(limit));
            }
            Err(e) => {
                progress.abandon();
                return Err(e.into());
            }
        }
    }

    // The portable path, also taken where splice is not available.
    let mut chunk = buf;
    while received < size {
        chunk.clear();
        chunk.reserve(options.chunk_size.max(4096));
        if timed(limit, stream.read_buf(&mut chunk)).await? == 0 {
            progress.abandon();
            // Dropping `temp` removes the temporary file.
            return Err(DownloadError::Short {
                expected: size,
                received,
            });
        }
        let take = usize::try_from(size - received).map_or(chunk.len(), |l| l.min(chunk.len()));
        out.write_all(&chunk[..take]).await?;
        received += take as u64;
        progress.update(received);
    }
    out.flush().await?;
    drop(out);
    temp.persist(dest).map_err(|e| DownloadError::Io(e.error))?;
    progress.finish();
    Ok(size)
}

/// A progress bar that appears only on a terminal, and only for transfers
/// that take more than a moment.
struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    size: u64,
    started: Instant,
}

impl Progress {
    fn new(size: u64, enabled: bool) -> Self {
        Self {
            bar: None,
            enabled,
            size,
            started: Instant::now(),
        }
    }

    fn update(&mut self, received: u64) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() >= PROGRESS_DELAY && received < self.size {
            let bar = ProgressBar::with_draw_target(Some(self.size), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(received);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
