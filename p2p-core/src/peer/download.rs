//! Downloads one file from another peer, never leaving a half-written
//! destination.
//!
//! With a peer that speaks it, the request is `GET_FILE_FROM` (PROTOCOL.md
//! §6.4): the body goes to a part file beside the destination with a name
//! that depends only on the destination (`.NAME.part`, its size and digest in
//! `.NAME.part.meta`), so a failed or interrupted transfer resumes from the
//! part's length on the next attempt (within one command, at most
//! [`DownloadOptions::max_attempts`] with backoff) or on a later `GET_FILE`, as
//! long as the file's SIZE and DIGEST have not changed. The whole file's BLAKE3
//! digest is checked before the rename; on a mismatch nothing is kept.
//!
//! A peer that closes without a reply byte gets plain `GET_FILE` (§2), and the
//! [`Downloader`] remembers that address as classic for the session. A plain
//! transfer is kept only when exactly SIZE bytes arrive and the peer then
//! closes: a header that never completed, a short body, or bytes after SIZE
//! fail and leave nothing behind.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use blake3::hazmat::{self, ChainingValue};
use bytes::BytesMut;
use p2p_proto::directory::DecodeError;
use p2p_proto::field::FileName;
use p2p_proto::transfer::{
    Digest, GetFile, GetFileFrom, GetFileFromHeader, MAX_FROM_HEADER_LEN, MAX_HEADER_LEN,
    TransferHeader,
};
use p2p_proto::{Decode, Encode, MessageDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::state::{digest_of_hasher, feed_hasher, replace_file};
use crate::connection::{Connection, ReadError, Wait, is_cut};

/// Why a download failed. The destination is untouched in every case; a part
/// file stays only where a later attempt can resume from it.
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
    #[error("could not connect to the peer at {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The serving peer did not accept the connection in time (nothing
    /// answered: a host that is down or a network that drops everything).
    #[error("could not connect to the peer at {addr}: no answer within {limit:?}")]
    ConnectTimeout {
        /// The peer's address.
        addr: SocketAddr,
        /// How long the connect waited.
        limit: Duration,
    },
    /// The reply header did not decode.
    #[error("malformed transfer header: {0}")]
    Header(#[from] DecodeError),
    /// The connection closed before the reply header was complete.
    #[error("the header never completed: the peer closed after {received} bytes of it")]
    HeaderIncomplete {
        /// Header bytes received.
        received: usize,
    },
    /// The peer ended the connection before the whole body arrived.
    #[error("the peer closed the connection early: {received} of {expected} bytes arrived")]
    Short {
        /// Bytes announced (the whole file).
        expected: u64,
        /// Bytes the part file holds.
        received: u64,
    },
    /// The peer sent more than the size it announced.
    #[error("the peer sent bytes after the {size} bytes it announced")]
    TrailingBytes {
        /// The announced size.
        size: u64,
    },
    /// The file that arrived does not have the digest the peer announced.
    #[error(
        "integrity check failed: the peer announced {expected}, the file that arrived is {actual}"
    )]
    Integrity {
        /// The announced digest.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// The peer stopped sending: no byte arrived for this long (the idle
    /// timeout; a slow transfer that moves is never cut).
    #[error("the peer stopped sending: no byte for {0:?}")]
    Timeout(Duration),
    /// The peer (or something between) cut the connection: a reset.
    #[error("the peer cut the connection: {0}")]
    Cut(io::Error),
    /// The connection failed otherwise.
    #[error("connection to the peer failed: {0}")]
    Network(io::Error),
    /// A local file error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl DownloadError {
    /// Whether another attempt in the same command may succeed: the connection
    /// broke, the peer was unreachable or stalled.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ConnectTimeout { .. }
                | Self::Cut(_)
                | Self::HeaderIncomplete { .. }
                | Self::Short { .. }
                | Self::Timeout(_)
                | Self::Network(_)
        )
    }
}

/// Which request a download starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferProtocol {
    /// `GET_FILE_FROM` with a peer not yet seen to close on it, else `GET_FILE`.
    Auto,
    /// Only plain `GET_FILE`: no digest, no resume.
    Classic,
}

/// How a verified download hashes the body (all three give the same digest;
/// they differ in speed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyHashing {
    /// Read the socket into user space, hash, write (a writer thread hashes and
    /// writes while this task reads): no second read, but every byte is copied
    /// into and out of user space.
    AsItArrives,
    /// `splice` the socket into the part file (no user-space copy) while a
    /// thread hashes the part file from the page cache right behind it; on a
    /// resume it hashes the part's prefix while the rest arrives.
    FollowSplice,
    /// `splice` the whole body, then hash the part file.
    AfterReceiving,
}

/// How downloads behave.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Idle timeout: the longest wait for any progress (the connect, the
    /// header, each read); a transfer that moves bytes, however slowly, is
    /// never cut. Default 30 s.
    pub stall_timeout: Duration,
    /// Size of the read/write chunks. Default 1 MiB.
    pub chunk_size: usize,
    /// Who is told how each transfer advances (the shell's terminal front end
    /// draws a progress bar); `None` tells no one. Default `None`.
    pub progress: Option<Arc<dyn ProgressReporter>>,
    /// Attempts within one download when the connection breaks. Default 3.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each later one. Default 250 ms.
    pub retry_backoff: Duration,
    /// Which request to start with. Default [`TransferProtocol::Auto`].
    pub protocol: TransferProtocol,
    /// How the body is hashed on its way to the part file. Default
    /// [`BodyHashing::FollowSplice`] (the fastest here: docs/PERFORMANCE.md, goal 6).
    pub hashing: BodyHashing,
    /// Receive bodies with `splice(2)` from the socket through a pipe into
    /// the part file (Linux; no copy through the requester). `false`, or any
    /// other platform, reads into `chunk_size` buffers that a blocking thread
    /// writes: the same file. The tests run both. Default `true`.
    pub zero_copy: bool,
}

/// Told when a transfer starts, so it can follow it (a progress bar on a
/// terminal: the `terminal` feature's front end).
pub trait ProgressReporter: Send + Sync + fmt::Debug {
    /// A transfer of `name` (`size` bytes) begins; the returned value hears
    /// about it until it finishes or is abandoned (or dropped part way).
    fn start(&self, name: &str, size: u64) -> Box<dyn TransferProgress>;
}

/// One transfer's progress, as a [`ProgressReporter`] follows it.
pub trait TransferProgress: Send {
    /// The transfer resumes with `position` bytes already there (its rate
    /// counts what arrives from now on).
    fn start_at(&mut self, position: u64);
    /// `received` bytes of the file are there now.
    fn update(&mut self, received: u64);
    /// The transfer ended: complete, failed or stopped. Called once; a
    /// transfer dropped part way (Ctrl-C) ends through `Drop`.
    fn finish(&mut self);
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_secs(30),
            chunk_size: 1 << 20,
            progress: None,
            max_attempts: 3,
            retry_backoff: Duration::from_millis(250),
            protocol: TransferProtocol::Auto,
            hashing: BodyHashing::FollowSplice,
            zero_copy: true,
        }
    }
}

async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T, DownloadError> {
    match timeout(limit, fut).await {
        Ok(result) => result.map_err(network),
        Err(_) => Err(DownloadError::Timeout(limit)),
    }
}

/// A socket error: a cut when the other side reset or aborted.
fn network(e: io::Error) -> DownloadError {
    if is_cut(&e) {
        DownloadError::Cut(e)
    } else {
        DownloadError::Network(e)
    }
}

/// Fetches `file` from the peer at `addr` into `dest` with a fresh
/// [`Downloader`]; returns its size.
pub async fn download(
    addr: SocketAddr,
    file: &FileName,
    dest: &Path,
    options: &DownloadOptions,
) -> Result<u64, DownloadError> {
    Downloader::new(options.clone())
        .download(addr, &addr.to_string(), file, dest)
        .await
}

/// Downloads for one session: remembers which peer addresses answered
/// `GET_FILE_FROM` and which are classic.
#[derive(Debug)]
pub struct Downloader {
    options: DownloadOptions,
    peers: Mutex<Peers>,
}

#[derive(Debug, Default)]
struct Peers {
    /// Answered GET_FILE_FROM at least once.
    speak_from: HashSet<SocketAddr>,
    /// Closed on GET_FILE_FROM without a reply byte: plain GET_FILE only.
    classic: HashSet<SocketAddr>,
}

/// What one GET_FILE_FROM attempt led to, besides success and failure.
enum FromOutcome {
    Done(u64),
    /// No reply byte from a peer never seen to answer: it is classic.
    NoReply,
}

/// The part file and its description beside a destination.
struct Part {
    data: PathBuf,
    meta: PathBuf,
}

/// What the part file is a prefix of.
#[derive(Debug, PartialEq, Eq)]
struct PartMeta {
    source: String,
    file: String,
    size: u64,
    digest: Digest,
    /// BLAKE3 chaining values of the part's first complete [`LEAF`] blocks,
    /// so a resume need not read them again.
    leaves: Vec<ChainingValue>,
}

const PART_META_HEADER: &str = "# p2p-peer part v1";

/// The directory a download lands in (`.` for a bare name) and its file name.
fn dir_and_name(dest: &Path) -> (PathBuf, String) {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

impl Part {
    fn beside(dest: &Path) -> Self {
        let (dir, name) = dir_and_name(dest);
        Self {
            data: dir.join(format!(".{name}.part")),
            meta: dir.join(format!(".{name}.part.meta")),
        }
    }

    /// The description, when there is one that parses.
    fn read_meta(&self) -> Option<PartMeta> {
        let text = std::fs::read_to_string(&self.meta).ok()?;
        let mut lines = text.lines();
        if lines.next()? != PART_META_HEADER {
            return None;
        }
        let source = lines.next()?.to_owned();
        let file = lines.next()?.to_owned();
        let size = lines.next()?.parse().ok()?;
        let digest = lines.next()?.parse().ok()?;
        // Leaf lines are 64 hex digits; the first that is not ends them.
        let leaves = lines
            .map_while(|l| format!("blake3:{l}").parse::<Digest>().ok())
            .map(|cv| *cv.as_bytes())
            .collect();
        Some(PartMeta {
            source,
            file,
            size,
            digest,
            leaves,
        })
    }

    fn write_meta(&self, meta: &PartMeta) -> io::Result<()> {
        let mut text = format!(
            "{PART_META_HEADER}\n{}\n{}\n{}\n{}\n",
            meta.source.replace('\n', " "),
            meta.file,
            meta.size,
            meta.digest
        );
        for cv in &meta.leaves {
            let hex = Digest::from_bytes(*cv).to_string();
            text.push_str(hex.trim_start_matches(p2p_proto::transfer::DIGEST_PREFIX));
            text.push('\n');
        }
        // Not fsynced: a description lost in a crash costs a resume, never a
        // wrong file (the digest is checked at the end), and an fsync per
        // download costs more than a small transfer.
        replace_file(&self.meta, text.as_bytes(), false)
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.data);
        let _ = std::fs::remove_file(&self.meta);
    }
}

impl Downloader {
    /// A downloader that knows no peer yet.
    pub fn new(options: DownloadOptions) -> Self {
        Self {
            options,
            peers: Mutex::default(),
        }
    }

    /// Its options.
    pub fn options(&self) -> &DownloadOptions {
        &self.options
    }

    /// Tells `reporter` (or no one) how each later transfer advances.
    pub fn set_progress(&mut self, reporter: Option<Arc<dyn ProgressReporter>>) {
        self.options.progress = reporter;
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches `file` from `source` (the owner's name: a part file resumes only
    /// for the same source and file) at `addr` into `dest`; returns its size.
    /// A broken connection is retried, resuming where the protocol allows.
    pub async fn download(
        &self,
        addr: SocketAddr,
        source: &str,
        file: &FileName,
        dest: &Path,
    ) -> Result<u64, DownloadError> {
        let attempts = self.options.max_attempts.max(1);
        let mut backoff = self.options.retry_backoff;
        let mut attempt = 1;
        loop {
            let result = self.attempt(addr, source, file, dest).await;
            match result {
                Err(e) if e.retryable() && attempt < attempts => {
                    tracing::info!(%addr, %file, attempt, error = %e, "transfer broken; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        addr: SocketAddr,
        source: &str,
        file: &FileName,
        dest: &Path,
    ) -> Result<u64, DownloadError> {
        let classic = self.options.protocol == TransferProtocol::Classic
            || self.peers().classic.contains(&addr);
        if !classic {
            match self.attempt_from(addr, source, file, dest).await? {
                FromOutcome::Done(size) => return Ok(size),
                FromOutcome::NoReply => {
                    tracing::info!(%addr, "the peer closed on GET_FILE_FROM: using GET_FILE with it");
                    self.peers().classic.insert(addr);
                }
            }
        }
        download_plain(addr, file, dest, &self.options).await
    }

    async fn attempt_from(
        &self,
        addr: SocketAddr,
        source: &str,
        file: &FileName,
        dest: &Path,
    ) -> Result<FromOutcome, DownloadError> {
        let options = &self.options;
        let limit = options.stall_timeout;
        let part = Part::beside(dest);
        let mut offset = match part.read_meta() {
            Some(meta) if meta.source == source && meta.file == file.as_str() => {
                match std::fs::metadata(&part.data) {
                    Ok(m) if m.is_file() && m.len() <= meta.size => m.len(),
                    _ => 0,
                }
            }
            _ => 0,
        };
        let mut known = part.read_meta().filter(|_| offset > 0);
        loop {
            let mut conn = Connection::with_capacity(
                connect(addr, limit).await?,
                options.chunk_size.max(4096),
            );
            let request = GetFileFrom {
                file: file.clone(),
                offset,
            };
            let seen = self.peers().speak_from.contains(&addr);
            let header = match send_request(&mut conn, &request, limit).await {
                Ok(()) => read_header::<GetFileFromHeader>(&mut conn, limit).await,
                Err(e) => Err(e),
            };
            let header = match header {
                Ok(header) => header,
                // A classic peer closes, or resets, on an operation it does not know.
                Err(DownloadError::HeaderIncomplete { received: 0 }) if !seen => {
                    return Ok(FromOutcome::NoReply);
                }
                Err(DownloadError::Cut(_)) if !seen && conn.buffered().is_empty() => {
                    return Ok(FromOutcome::NoReply);
                }
                Err(e) => return Err(e),
            };
            self.peers().speak_from.insert(addr);
            let (size, digest) = match header {
                GetFileFromHeader::Ok { size, digest } => (size, digest),
                GetFileFromHeader::NotFound => return Err(DownloadError::NotFound),
                GetFileFromHeader::Other => return Err(DownloadError::Refused),
                GetFileFromHeader::OffsetBeyondSize if offset > 0 => {
                    tracing::info!(%addr, %file, offset, "the part is longer than the file: starting over");
                    offset = 0;
                    known = None;
                    continue;
                }
                GetFileFromHeader::OffsetBeyondSize => return Err(DownloadError::Refused),
            };
            if offset > 0
                && known
                    .as_ref()
                    .is_none_or(|k| k.size != size || k.digest != digest)
            {
                tracing::info!(%addr, %file, "the file changed since the part was written: starting over");
                offset = 0;
                known = None;
                continue;
            }
            let (stream, buf) = conn.into_parts();
            return self
                .receive_from(
                    stream,
                    buf,
                    &part,
                    PartMeta {
                        source: source.to_owned(),
                        file: file.as_str().to_owned(),
                        size,
                        digest,
                        leaves: known.map(|k| k.leaves).unwrap_or_default(),
                    },
                    dest,
                    offset,
                )
                .await
                .map(FromOutcome::Done);
        }
    }

    /// Receives bytes `offset..size` into the part file, checks the digest of
    /// the whole, renames it to `dest`.
    async fn receive_from(
        &self,
        mut stream: TcpStream,
        buf: BytesMut,
        part: &Part,
        mut meta: PartMeta,
        dest: &Path,
        offset: u64,
    ) -> Result<u64, DownloadError> {
        let options = &self.options;
        let limit = options.stall_timeout;
        let (size, digest) = (meta.size, meta.digest);
        if offset == 0 {
            meta.leaves.clear();
            part.write_meta(&meta)?;
        }
        // Leaves recorded for blocks the part still holds whole.
        let kept_leaves = usize::try_from(offset / LEAF).unwrap_or(usize::MAX);
        meta.leaves.truncate(kept_leaves);
        let out_std = open_part(&part.data, offset)?;
        let mode = options.hashing;
        // AsItArrives hashes the part's prefix from disk first, then what
        // arrives; FollowSplice hashes the whole part file from its start on
        // a thread that trails the writes; AfterReceiving hashes it at the end.
        let mut hasher = blake3::Hasher::new();
        if offset > 0 && mode == BodyHashing::AsItArrives {
            hasher = hash_prefix(&part.data, offset, hasher).await?;
        }
        let mut out = tokio::fs::File::from_std(out_std);
        {
            use tokio::io::AsyncSeekExt;
            out.seek(io::SeekFrom::Start(offset)).await?;
        }
        let mut progress = Progress::new(&meta.file, size, options.progress.as_deref());
        // A resume's rate counts what arrives now, not what the part held.
        progress.start_at(offset);
        let take = usize::try_from(size - offset).map_or(buf.len(), |l| l.min(buf.len()));
        out.write_all(&buf[..take]).await?;
        out.flush().await?;
        if mode == BodyHashing::AsItArrives {
            hasher.update(&buf[..take]);
        }
        let extra = buf.len() > take;
        let mut received = offset + take as u64;
        progress.update(received);
        let follower = match mode {
            BodyHashing::FollowSplice => {
                // Small files are hashed whole; larger ones by LEAF blocks,
                // from the first block without a recorded leaf.
                let first = if size > LEAF {
                    meta.leaves.len() as u64 * LEAF
                } else {
                    0
                };
                Some(Follower::start(part.data.clone(), first, received, size)?)
            }
            _ => None,
        };
        let result = if extra {
            Err(DownloadError::TrailingBytes { size })
        } else {
            receive_body(
                &mut stream,
                &mut out,
                &mut received,
                size,
                options,
                (mode == BodyHashing::AsItArrives).then_some(&mut hasher),
                follower.as_ref(),
                &mut progress,
            )
            .await
        };
        out.flush().await?;
        drop(out);
        let followed = match follower {
            Some(f) => Some(f.finish(received).await?),
            None => None,
        };
        if let (Err(e), Some(Followed::Leaves(leaves))) = (&result, &followed)
            && e.retryable()
        {
            // What the next attempt need not hash again.
            meta.leaves.extend_from_slice(leaves);
            if let Err(e) = part.write_meta(&meta) {
                tracing::debug!(error = %e, "cannot record the part's leaves");
            }
        }
        match result {
            Ok(()) => {}
            Err(e @ DownloadError::TrailingBytes { .. }) => {
                progress.abandon();
                part.remove();
                return Err(e);
            }
            Err(e) => {
                progress.abandon();
                // The part file stays: the next attempt resumes from it.
                return Err(e);
            }
        }
        if let Err(e) = expect_close(&mut stream, limit).await {
            progress.abandon();
            part.remove();
            return Err(e.with_size(size));
        }
        let actual = match (mode, followed) {
            (BodyHashing::AsItArrives, _) => digest_of_hasher(&hasher),
            (_, Some(Followed::Whole(digest))) => digest,
            (_, Some(Followed::Leaves(leaves))) => {
                meta.leaves.extend_from_slice(&leaves);
                match root_from_leaves(&meta.leaves, size) {
                    Some(root) => Digest::from_bytes(*root.as_bytes()),
                    None => {
                        return Err(DownloadError::Io(io::Error::other(
                            "the part's leaves do not cover the file",
                        )));
                    }
                }
            }
            _ => hash_prefix(&part.data, size, blake3::Hasher::new())
                .await
                .map(|h| digest_of_hasher(&h))?,
        };
        if actual != digest {
            progress.abandon();
            part.remove();
            return Err(DownloadError::Integrity {
                expected: digest,
                actual,
            });
        }
        std::fs::rename(&part.data, dest)?;
        let _ = std::fs::remove_file(&part.meta);
        progress.finish();
        tracing::debug!(file = %meta.file, offset, size, "file received and verified");
        Ok(size)
    }
}

/// After the body: the peer must close without sending more.
#[derive(Debug)]
enum CloseError {
    Trailing,
    Other(DownloadError),
}

impl CloseError {
    fn with_size(self, size: u64) -> DownloadError {
        match self {
            Self::Trailing => DownloadError::TrailingBytes { size },
            Self::Other(e) => e,
        }
    }
}

async fn expect_close(stream: &mut TcpStream, limit: Duration) -> Result<(), CloseError> {
    let mut probe = [0u8; 1];
    match timed(limit, stream.read(&mut probe)).await {
        Ok(0) => Ok(()),
        Ok(_) => Err(CloseError::Trailing),
        // A reset after the whole body: everything announced arrived
        // (`network` made the cuts `Cut`).
        Err(DownloadError::Cut(_)) => Ok(()),
        Err(DownloadError::Network(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(CloseError::Other(e)),
    }
}

async fn hash_prefix(
    path: &Path,
    len: u64,
    mut hasher: blake3::Hasher,
) -> Result<blake3::Hasher, DownloadError> {
    let path = path.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || -> io::Result<blake3::Hasher> {
        use std::io::Read;
        let mut prefix = std::fs::File::open(&path)?.take(len);
        feed_hasher(&mut hasher, &mut prefix)?;
        Ok(hasher)
    })
    .await
    .map_err(io::Error::other)??;
    Ok(hashed)
}

async fn connect(addr: SocketAddr, limit: Duration) -> Result<TcpStream, DownloadError> {
    let stream = match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(DownloadError::Connect { addr, source }),
        Err(_) => return Err(DownloadError::ConnectTimeout { addr, limit }),
    };
    stream.set_nodelay(true).map_err(network)?;
    Ok(stream)
}

/// Sends a transfer request; `limit` bounds each write that moves no byte.
async fn send_request(
    conn: &mut Connection<TcpStream>,
    request: &impl Encode,
    limit: Duration,
) -> Result<(), DownloadError> {
    match conn.write_message(request, Some(limit)).await {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(DownloadError::Timeout(limit)),
        written => written.map_err(network),
    }
}

/// Reads a transfer header (at most `limit` between bytes); the body's bytes
/// that came with it stay buffered in `conn`.
async fn read_header<H>(
    conn: &mut Connection<TcpStream>,
    limit: Duration,
) -> Result<H, DownloadError>
where
    H: Decode<Error = DecodeError>,
{
    let mut decoder = MessageDecoder::<H>::new();
    let read = conn
        .read_message(
            &mut decoder,
            Wait::Idle(limit),
            MAX_FROM_HEADER_LEN.max(MAX_HEADER_LEN),
        )
        .await;
    read.map_err(|e| match e {
        ReadError::Malformed(e) => DownloadError::from(e),
        // The decoders refuse an over-long header themselves: this is one
        // that never completed.
        ReadError::Closed | ReadError::TooLong(_) => DownloadError::HeaderIncomplete {
            received: conn.buffered().len(),
        },
        ReadError::TimedOut => DownloadError::Timeout(limit),
        ReadError::Io(e) => network(e),
    })
}

/// Receives the body until `received == size`: with `splice` when nothing needs
/// to see the bytes, else read, hash, write.
#[allow(
    clippy::too_many_arguments,
    reason = "three call sites; each argument is a distinct fact of the transfer"
)]
async fn receive_body(
    stream: &mut TcpStream,
    out: &mut tokio::fs::File,
    received: &mut u64,
    size: u64,
    options: &DownloadOptions,
    hasher: Option<&mut blake3::Hasher>,
    follower: Option<&Follower>,
    progress: &mut Progress,
) -> Result<(), DownloadError> {
    let limit = options.stall_timeout;
    // Elsewhere the follower hashes at the end (it is told the final length).
    #[cfg(not(target_os = "linux"))]
    let _ = (follower, limit);
    #[cfg(target_os = "linux")]
    if options.zero_copy && hasher.is_none() && *received < size {
        out.flush().await?;
        let std_out = out.try_clone().await?.into_std().await;
        let base = *received;
        let spliced = super::zerocopy::receive_file(stream, &std_out, size - base, limit, |n| {
            progress.update(base + n);
            if let Some(follower) = follower {
                follower.written(base + n);
            }
        })
        .await;
        match spliced {
            Ok(Some(n)) => {
                *received += n;
                if *received < size {
                    return Err(DownloadError::Short {
                        expected: size,
                        received: *received,
                    });
                }
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(DownloadError::Timeout(limit));
            }
            Err(e) => return Err(network(e)),
        }
    }
    // The portable path, also taken where splice is not available: this task
    // reads the socket; a blocking thread hashes and writes, so hashing and
    // disk writes overlap the network. WRITE_QUEUE buffers of `chunk_size`
    // go round between the two (reused: no allocation, no page faults).
    out.flush().await?;
    let std_out = out.try_clone().await?.into_std().await;
    let (full_tx, mut full_rx) = tokio::sync::mpsc::channel::<(Vec<u8>, usize)>(WRITE_QUEUE);
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let mut own = hasher.as_deref().cloned();
    let writer = tokio::task::spawn_blocking(move || -> io::Result<Option<blake3::Hasher>> {
        use std::io::Write;
        let mut file = std_out;
        while let Some((buf, n)) = full_rx.blocking_recv() {
            if let Some(hasher) = own.as_mut() {
                hasher.update(&buf[..n]);
            }
            file.write_all(&buf[..n])?;
            let _ = free_tx.blocking_send(buf);
        }
        Ok(own)
    });
    let read = read_chunks(
        stream,
        &full_tx,
        &mut free_rx,
        received,
        size,
        options,
        progress,
    )
    .await;
    drop(full_tx);
    let written = writer.await.map_err(io::Error::other)??;
    if let (Some(hasher), Some(written)) = (hasher, written) {
        *hasher = written;
    }
    read
}

/// Opens the part file holding exactly its first `offset` bytes. A part that
/// starts over is a new file rather than one truncated to zero: ext4
/// (`auto_da_alloc`) starts writing a file truncated to zero back to disk when
/// it is closed, which cost about 0.3 s per GiB received here.
fn open_part(path: &Path, offset: u64) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true).read(true);
    let file = options.open(path)?;
    let len = file.metadata()?.len();
    if len == offset {
        return Ok(file);
    }
    if offset == 0 {
        drop(file);
        std::fs::remove_file(path)?;
        return options.open(path);
    }
    file.set_len(offset)?;
    Ok(file)
}

/// Buffers going round between the reading task and the writer thread.
const WRITE_QUEUE: usize = 4;

/// Reads the body in chunks of up to `chunk_size` and queues them for the
/// writer; `received` counts what was queued.
async fn read_chunks(
    stream: &mut TcpStream,
    full: &tokio::sync::mpsc::Sender<(Vec<u8>, usize)>,
    free: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    received: &mut u64,
    size: u64,
    options: &DownloadOptions,
    progress: &mut Progress,
) -> Result<(), DownloadError> {
    let limit = options.stall_timeout;
    let cap = options.chunk_size.max(4096);
    let mut made = 0;
    while *received < size {
        let left = size - *received;
        let want = usize::try_from(left).map_or(cap, |l| l.min(cap));
        let mut buf = match free.try_recv() {
            Ok(buf) => buf,
            Err(_) if made < WRITE_QUEUE => {
                made += 1;
                vec![0u8; cap]
            }
            Err(_) => match free.recv().await {
                Some(buf) => buf,
                // The writer stopped: its error is the one to report.
                None => return Ok(()),
            },
        };
        let mut n = 0;
        let mut closed = false;
        while n < want {
            let got = timed(limit, stream.read(&mut buf[n..want])).await?;
            if got == 0 {
                closed = true;
                break;
            }
            n += got;
        }
        if n > 0 {
            if full.send((buf, n)).await.is_err() {
                return Ok(());
            }
            *received += n as u64;
            progress.update(*received);
        }
        if closed {
            return Err(DownloadError::Short {
                expected: size,
                received: *received,
            });
        }
    }
    Ok(())
}

/// Bytes per BLAKE3 subtree whose chaining value a part's description keeps
/// (a power of two of at least one chunk, so every leaf is a valid subtree).
const LEAF: u64 = 1 << 20;

/// The root hash of a file of `len` bytes (more than [`LEAF`]) from the
/// chaining values of its `LEAF` blocks, the last one possibly shorter; `None`
/// when there are not exactly that many.
fn root_from_leaves(leaves: &[ChainingValue], len: u64) -> Option<blake3::Hash> {
    fn subtree(leaves: &[ChainingValue], offset: u64, len: u64) -> Option<ChainingValue> {
        if len <= LEAF {
            return leaves.get(usize::try_from(offset / LEAF).ok()?).copied();
        }
        let left = hazmat::left_subtree_len(len);
        Some(hazmat::merge_subtrees_non_root(
            &subtree(leaves, offset, left)?,
            &subtree(leaves, offset + left, len - left)?,
            hazmat::Mode::Hash,
        ))
    }
    if len <= LEAF || leaves.len() as u64 != len.div_ceil(LEAF) {
        return None;
    }
    let left = hazmat::left_subtree_len(len);
    Some(hazmat::merge_subtrees_root(
        &subtree(leaves, 0, left)?,
        &subtree(leaves, left, len - left)?,
        hazmat::Mode::Hash,
    ))
}

/// The chaining value of the block of the file that starts at `offset` (a
/// multiple of [`LEAF`]); `bytes` is not empty and at most `LEAF` long.
fn leaf(offset: u64, bytes: &[u8]) -> ChainingValue {
    use hazmat::HasherExt;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// What a [`Follower`] hashed.
enum Followed {
    /// A file of at most one leaf, hashed whole from its start.
    Whole(Digest),
    /// The chaining values of the complete blocks from the first one it read
    /// (and of the last, shorter block once the whole file was there).
    Leaves(Vec<ChainingValue>),
    /// Told to hurry ([`Follower::finish`]) with blocks still to hash: the
    /// leaves of the blocks before `next`; the rest is for a thread of
    /// normal priority.
    Behind {
        leaves: Vec<ChainingValue>,
        next: u64,
    },
}

/// The nice value of the thread that hashes behind the writes (Linux): it
/// runs when a CPU is otherwise idle.
#[cfg(target_os = "linux")]
const FOLLOW_NICE: i32 = 19;

/// A thread that hashes the part file from `first`, never past what has been
/// written (reads come from the page cache, right behind the writes).
struct Follower {
    path: PathBuf,
    size: u64,
    state: Arc<FollowState>,
    thread: std::thread::Thread,
    handle: Option<std::thread::JoinHandle<io::Result<Followed>>>,
}

impl Drop for Follower {
    /// A transfer stopped part way (Ctrl-C drops its future): the thread
    /// ends instead of waiting for bytes that never come.
    fn drop(&mut self) {
        // Nobody waits for the digest: stop at the next block.
        self.state.hurry.store(true, Ordering::Release);
        self.state.done.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[derive(Debug)]
struct FollowState {
    written: AtomicU64,
    done: AtomicBool,
    /// Hand what is left over (see [`Followed::Behind`]).
    hurry: AtomicBool,
}

impl Follower {
    /// Starts hashing `path` of a `size`-byte file from `first` (0, or a
    /// multiple of [`LEAF`] for a file larger than one); `written` bytes are
    /// there already.
    fn start(path: PathBuf, first: u64, written: u64, size: u64) -> io::Result<Self> {
        let state = Arc::new(FollowState {
            written: AtomicU64::new(written),
            done: AtomicBool::new(false),
            hurry: AtomicBool::new(false),
        });
        let shared = state.clone();
        let followed = path.clone();
        let handle = std::thread::Builder::new()
            .name("hash-follow".into())
            .spawn(move || {
                // Hash on spare CPU only: on a machine with none to spare
                // the receiving path (and, on loopback, the sender) must not
                // wait for the hashing; what is left at the end is hashed at
                // normal priority (`finish`). Linux's nice is per thread.
                #[cfg(target_os = "linux")]
                let _ = rustix::process::setpriority_process(None, FOLLOW_NICE);
                follow(&followed, first, size, &shared)
            })?;
        Ok(Self {
            path,
            size,
            state,
            thread: handle.thread().clone(),
            handle: Some(handle),
        })
    }

    /// The part file now holds `upto` bytes (said by the splice path, Linux).
    #[cfg(target_os = "linux")]
    fn written(&self, upto: u64) {
        self.state.written.store(upto, Ordering::Release);
        self.thread.unpark();
    }

    /// No more bytes come: the part file holds `upto`. The low-priority
    /// thread stops at its next block, and what it had not hashed yet is
    /// hashed here at normal priority.
    async fn finish(mut self, upto: u64) -> Result<Followed, DownloadError> {
        self.state.written.store(upto, Ordering::Release);
        self.state.hurry.store(true, Ordering::Release);
        self.state.done.store(true, Ordering::Release);
        self.thread.unpark();
        let Some(handle) = self.handle.take() else {
            return Err(DownloadError::Io(io::Error::other(
                "the hashing thread is gone",
            )));
        };
        let (path, size) = (self.path.clone(), self.size);
        let followed = tokio::task::spawn_blocking(move || {
            let followed = handle
                .join()
                .map_err(|_| io::Error::other("the hashing thread panicked"))??;
            let Followed::Behind { mut leaves, next } = followed else {
                return Ok(followed);
            };
            let rest = FollowState {
                written: AtomicU64::new(upto),
                done: AtomicBool::new(true),
                hurry: AtomicBool::new(false),
            };
            match follow(&path, next, size, &rest)? {
                Followed::Leaves(more) => {
                    leaves.extend(more);
                    Ok(Followed::Leaves(leaves))
                }
                _ => Err(io::Error::other("the hashing thread lost its place")),
            }
        });
        followed
            .await
            .map_err(io::Error::other)?
            .map_err(DownloadError::Io)
    }
}

fn follow(path: &Path, first: u64, size: u64, state: &FollowState) -> io::Result<Followed> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    file.seek(io::SeekFrom::Start(first))?;
    let whole = size <= LEAF;
    let mut hasher = blake3::Hasher::new();
    let mut leaves = Vec::new();
    // One LEAF block at a time.
    let mut block = vec![0u8; usize::try_from(LEAF).unwrap_or(1 << 20)];
    let mut filled = 0usize;
    let mut hashed = first;
    loop {
        // `done` first: once it is set, `written` is final.
        let done = state.done.load(Ordering::Acquire);
        let upto = state.written.load(Ordering::Acquire).min(size);
        if !whole && filled == 0 && hashed < upto && state.hurry.load(Ordering::Acquire) {
            return Ok(Followed::Behind {
                leaves,
                next: hashed,
            });
        }
        if hashed < upto {
            let room = block.len() - filled;
            let want = usize::try_from(upto - hashed).map_or(room, |l| l.min(room));
            let n = file.read(&mut block[filled..filled + want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the part file is shorter than what was written",
                ));
            }
            if whole {
                hasher.update(&block[filled..filled + n]);
            }
            filled += n;
            hashed += n as u64;
            let block_start = hashed - filled as u64;
            if !whole && (filled == block.len() || hashed == size) {
                leaves.push(leaf(block_start, &block[..filled]));
                filled = 0;
            } else if whole {
                filled = 0;
            }
        } else if done {
            return Ok(if whole {
                Followed::Whole(digest_of_hasher(&hasher))
            } else {
                Followed::Leaves(leaves)
            });
        } else {
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}

/// One plain GET_FILE (§2): no digest, so no resume; nothing is kept unless
/// exactly SIZE bytes arrived and the peer then closed.
async fn download_plain(
    addr: SocketAddr,
    file: &FileName,
    dest: &Path,
    options: &DownloadOptions,
) -> Result<u64, DownloadError> {
    let limit = options.stall_timeout;
    let mut conn =
        Connection::with_capacity(connect(addr, limit).await?, options.chunk_size.max(4096));
    send_request(&mut conn, &GetFile { file: file.clone() }, limit).await?;
    let size = match read_header::<TransferHeader>(&mut conn, limit).await? {
        TransferHeader::Ok { size } => size,
        TransferHeader::NotFound => return Err(DownloadError::NotFound),
        TransferHeader::Other => return Err(DownloadError::Refused),
    };
    let (mut stream, buf) = conn.into_parts();
    if buf.len() as u64 > size {
        return Err(DownloadError::TrailingBytes { size });
    }

    let (dir, name) = dir_and_name(dest);
    // A random name: a classic transfer cannot resume, and dropping `temp`
    // removes it on every failure.
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".part");
    // The file gets the mode the umask gives a new file (0644 typically), as
    // the part file of a verified transfer does; tempfile's default is 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let temp = builder.tempfile_in(&dir)?;
    let mut out = tokio::fs::File::from_std(temp.as_file().try_clone()?);
    let mut progress = Progress::new(file.as_str(), size, options.progress.as_deref());
    out.write_all(&buf).await?;
    let mut received = buf.len() as u64;
    progress.update(received);
    let result = receive_body(
        &mut stream,
        &mut out,
        &mut received,
        size,
        options,
        None,
        None,
        &mut progress,
    )
    .await;
    if let Err(e) = result {
        progress.abandon();
        return Err(e);
    }
    if let Err(e) = expect_close(&mut stream, limit).await {
        progress.abandon();
        return Err(e.with_size(size));
    }
    out.flush().await?;
    drop(out);
    temp.persist(dest).map_err(|e| DownloadError::Io(e.error))?;
    progress.finish();
    Ok(size)
}

/// A transfer's [`TransferProgress`], if anyone follows it; ended exactly
/// once, also when the transfer's future is dropped part way (Ctrl-C).
struct Progress(Option<Box<dyn TransferProgress>>);

impl Progress {
    fn new(name: &str, size: u64, reporter: Option<&dyn ProgressReporter>) -> Self {
        Self(reporter.map(|r| r.start(name, size)))
    }

    /// The transfer starts with `position` bytes already there.
    fn start_at(&mut self, position: u64) {
        if let Some(p) = &mut self.0 {
            p.start_at(position);
        }
    }

    fn update(&mut self, received: u64) {
        if let Some(p) = &mut self.0 {
            p.update(received);
        }
    }

    fn finish(&mut self) {
        if let Some(mut p) = self.0.take() {
            p.finish();
        }
    }

    fn abandon(&mut self) {
        self.finish();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of `data`, merged, give BLAKE3 of the whole.
    #[test]
    fn leaves_merge_to_the_whole_hash() {
        let leaf_len = usize::try_from(LEAF).unwrap();
        for len in [
            leaf_len + 1,
            2 * leaf_len,
            2 * leaf_len + 1,
            3 * leaf_len + 5,
            5 * leaf_len - 1,
            8 * leaf_len,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let leaves: Vec<ChainingValue> = data
                .chunks(leaf_len)
                .enumerate()
                .map(|(i, block)| leaf(i as u64 * LEAF, block))
                .collect();
            let root = root_from_leaves(&leaves, len as u64).unwrap();
            assert_eq!(root, blake3::hash(&data), "{len} bytes");
            assert!(root_from_leaves(&leaves[1..], len as u64).is_none());
        }
        assert!(root_from_leaves(&[], LEAF).is_none());
    }

    /// However far the low-priority thread got when the transfer ended, the
    /// leaves it and the catch-up hash together merge to the file's digest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_follower_and_its_catch_up_cover_the_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part");
        let size = 5 * LEAF + 12_345;
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let expected = blake3::hash(&bytes);
        // Told the bytes are all there at once, at the start, and at the end
        // after it was told of each block as it was written.
        for told_along in [false, true] {
            let follower = Follower::start(path.clone(), 0, 0, size).expect("start");
            if told_along {
                for upto in (0..=size).step_by(usize::try_from(LEAF).expect("leaf")) {
                    follower.state.written.store(upto, Ordering::Release);
                    follower.thread.unpark();
                }
            }
            let Followed::Leaves(leaves) = follower.finish(size).await.expect("finish") else {
                panic!("a file of several leaves is hashed by leaves");
            };
            assert_eq!(root_from_leaves(&leaves, size), Some(expected));
        }
        // Resuming from the third block: the leaves from there on.
        let follower = Follower::start(path.clone(), 2 * LEAF, 2 * LEAF, size).expect("start");
        let Followed::Leaves(tail) = follower.finish(size).await.expect("finish") else {
            panic!("leaves");
        };
        let mut all: Vec<ChainingValue> = (0..2)
            .map(|i| {
                let start = usize::try_from(i * LEAF).expect("offset");
                leaf(
                    i * LEAF,
                    &bytes[start..start + usize::try_from(LEAF).expect("leaf")],
                )
            })
            .collect();
        all.extend(tail);
        assert_eq!(root_from_leaves(&all, size), Some(expected));
    }

    #[test]
    fn part_meta_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let part = Part::beside(&dir.path().join("x.bin"));
        let meta = PartMeta {
            source: "alice".into(),
            file: "a b.txt".into(),
            size: 3 << 20,
            digest: Digest::from_bytes([7; 32]),
            leaves: vec![[1; 32], [2; 32]],
        };
        part.write_meta(&meta).unwrap();
        assert_eq!(part.read_meta(), Some(meta));
    }
}

/// What a [`ProgressReporter`] hears, recorded.
#[cfg(test)]
mod progress_tests {
    use super::*;
    use crate::peer::file_server::{FileServer, FileServerConfig, Library};

    #[derive(Debug, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    struct Follow(Arc<Mutex<Vec<String>>>);

    impl ProgressReporter for Recorder {
        fn start(&self, name: &str, size: u64) -> Box<dyn TransferProgress> {
            self.0.lock().unwrap().push(format!("start {name} {size}"));
            Box::new(Follow(self.0.clone()))
        }
    }

    impl TransferProgress for Follow {
        fn start_at(&mut self, position: u64) {
            self.0.lock().unwrap().push(format!("at {position}"));
        }

        fn update(&mut self, received: u64) {
            self.0.lock().unwrap().push(format!("update {received}"));
        }

        fn finish(&mut self) {
            self.0.lock().unwrap().push("finish".to_owned());
        }
    }

    /// Each transfer, GET_FILE_FROM or plain GET_FILE, is started once
    /// with its name and size, its updates never go back and end at the
    /// size, and it is finished exactly once; a refused request starts none.
    #[tokio::test]
    async fn downloads_drive_the_progress_reporter() {
        const SIZE: usize = 300_000;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.bin");
        std::fs::write(&source, vec![7_u8; SIZE]).unwrap();
        let library = Library::new();
        library.insert(FileName::new("song.bin").unwrap(), source);
        let config = FileServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..FileServerConfig::default()
        };
        let server = FileServer::start(config, library).await.unwrap();
        let file = FileName::new("song.bin").unwrap();
        for protocol in [TransferProtocol::Auto, TransferProtocol::Classic] {
            let recorder = Recorder::default();
            let events = recorder.0.clone();
            let mut options = DownloadOptions {
                protocol,
                chunk_size: 64 * 1024,
                progress: Some(Arc::new(recorder)),
                ..DownloadOptions::default()
            };
            let dest = dir.path().join(format!("copy-{protocol:?}.bin"));
            let size = download(server.local_addr(), &file, &dest, &options)
                .await
                .unwrap();
            assert_eq!(size, SIZE as u64);
            let events = events.lock().unwrap().clone();
            assert_eq!(events[0], format!("start song.bin {SIZE}"), "{protocol:?}");
            assert_eq!(events.last().map(String::as_str), Some("finish"));
            assert_eq!(events.iter().filter(|e| *e == "finish").count(), 1);
            let updates: Vec<u64> = events
                .iter()
                .filter_map(|e| e.strip_prefix("update ")?.parse().ok())
                .collect();
            assert!(updates.is_sorted(), "{protocol:?}: {updates:?}");
            assert_eq!(updates.last(), Some(&(SIZE as u64)), "{protocol:?}");

            let recorder = Recorder::default();
            let events = recorder.0.clone();
            options.progress = Some(Arc::new(recorder));
            let missing = FileName::new("missing.bin").unwrap();
            let result = download(server.local_addr(), &missing, &dest, &options).await;
            assert!(matches!(result, Err(DownloadError::NotFound)), "{result:?}");
            assert!(events.lock().unwrap().is_empty(), "{protocol:?}");
        }
        server.stop().await;
    }
}
