//! Serves the user's published files to other peers: `GET_FILE` (§2) and
//! `GET_FILE_FROM` (§6.4: size, BLAKE3 digest, and the bytes from an offset).
//!
//! Only names the user currently publishes are served, each from the absolute
//! path recorded at PUBLISH: the requested name is a key, never a path, so
//! `../`, absolute system paths and deleted names all get "does not exist".

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use p2p_proto::MessageDecoder;
use p2p_proto::field::FileName;
use p2p_proto::transfer::{
    GetFileFromHeader, MAX_GET_FILE_FROM_LEN, MAX_GET_FILE_LEN, TransferHeader, TransferRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::DigestCache;
use crate::connection::{Connection, ReadError, Wait, is_cut, reset_on_close};
use crate::serve::{DRAIN_TIMEOUT, ServeLimits, ServedStream, serve as serve_loop};

/// The files a user publishes: protocol name → absolute local path, and the
/// digests of those files.
#[derive(Clone, Debug, Default)]
pub struct Library {
    files: Arc<RwLock<HashMap<FileName, PathBuf>>>,
    digests: DigestCache,
}

impl Library {
    /// An empty library whose digests are kept in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty library that keeps its digests in `digests`.
    pub fn with_digests(digests: DigestCache) -> Self {
        Self {
            files: Arc::default(),
            digests,
        }
    }

    /// The digests of the published files.
    pub fn digests(&self) -> &DigestCache {
        &self.digests
    }

    /// Records `name` as served from `path`.
    pub fn insert(&self, name: FileName, path: PathBuf) {
        self.write().insert(name, path);
    }

    /// Stops serving `name`.
    pub fn remove(&self, name: &str) -> Option<PathBuf> {
        self.write().remove(name)
    }

    /// Where `name` is served from, if it is published.
    pub fn get(&self, name: &str) -> Option<PathBuf> {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Forgets every file.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<FileName, PathBuf>> {
        self.files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Limits of the file server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileServerConfig {
    /// Where to listen; port 0 picks a free one. Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// Transfers at once; more requesters wait. Default 64.
    pub max_connections: usize,
    /// Time a requester has to send its request. Default 10 s.
    pub read_timeout: Duration,
    /// Idle timeout of the reply: the transfer is cut (with a reset, and a
    /// `warn`) only when no byte of it has moved for this long, however slow
    /// the link; a stalled requester never blocks the others. Default 30 s.
    pub write_timeout: Duration,
    /// Size of the read/write chunks. Default 1 MiB.
    pub chunk_size: usize,
    /// `TCP_NOTSENT_LOWAT` of a transfer's socket (Linux): at most this many
    /// bytes wait unsent in the kernel, so the server sees each bit of
    /// progress on a slow link (a write completes every half of it) instead
    /// of the moment a large, autotuned send buffer drains by a third.
    /// `write_timeout` must be well above the time the slowest link accepted
    /// takes to move half of it. Default 128 KiB ([`SEND_LOW_WATER`]).
    pub send_low_water: u32,
    /// TCP congestion control asked of the kernel for transfers (Linux
    /// `TCP_CONGESTION`, e.g. `bbr`); `None` keeps the system's default.
    /// A name the kernel refuses is reported once at `warn` and the
    /// system's is used. Default `None`.
    pub congestion: Option<String>,
    /// Send file bodies with `sendfile(2)` (Linux; the file's pages go to
    /// the socket without a copy through the server). `false`, or any other
    /// platform, reads and writes in `chunk_size` pieces: the same bytes,
    /// more CPU. The tests run both. Default `true`.
    pub zero_copy: bool,
    /// At [`FileServer::stop`], how long the transfers in flight may take to
    /// finish before they are aborted. Default 10 s ([`DRAIN_TIMEOUT`]).
    pub drain_timeout: Duration,
}

/// Default [`FileServerConfig::send_low_water`]: at the default 30 s idle
/// timeout, a link must move 64 KiB per 30 s (about 2 KiB/s) to count as
/// moving.
pub const SEND_LOW_WATER: u32 = 128 * 1024;

impl Default for FileServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            max_connections: 64,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            chunk_size: 1 << 20,
            send_low_water: SEND_LOW_WATER,
            congestion: None,
            zero_copy: true,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// A running file server.
#[derive(Debug)]
pub struct FileServer {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl FileServer {
    /// Binds and starts serving `library`.
    pub async fn start(config: FileServerConfig, library: Library) -> io::Result<Self> {
        let listener = crate::directory::bind(config.bind)?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            library,
            Arc::new(config),
            stop.clone(),
        ));
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, and waits for the transfers in flight to finish, at
    /// most [`FileServerConfig::drain_timeout`]; those still running then are
    /// aborted ([`crate::serve`]).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    library: Library,
    config: Arc<FileServerConfig>,
    stop: CancellationToken,
) {
    let limits = ServeLimits::new(config.max_connections, config.drain_timeout);
    serve_loop(listener, limits, stop, move |stream, peer| {
        let library = library.clone();
        let config = config.clone();
        async move {
            if let Err(e) = serve(stream, peer, &library, &config).await {
                tracing::debug!(%peer, error = %e, "transfer ended with an error");
            }
        }
    })
    .await;
}

/// Serves one GET_FILE or GET_FILE_FROM from `peer`; a transfer is reported at
/// `debug` (requester, name, offset, bytes sent, time).
/// What a request's first read asks for: every request fits.
const REQUEST_CAPACITY: usize = 512;

/// The longest request: a longer one is refused by the decoder (an over-long
/// field) before this is reached.
const MAX_REQUEST_LEN: usize = if MAX_GET_FILE_FROM_LEN > MAX_GET_FILE_LEN {
    MAX_GET_FILE_FROM_LEN
} else {
    MAX_GET_FILE_LEN
};

async fn serve(
    stream: ServedStream,
    peer: SocketAddr,
    library: &Library,
    config: &FileServerConfig,
) -> io::Result<()> {
    let started = std::time::Instant::now();
    stream.set_nodelay(true)?;
    tune(&stream, config);
    let mut conn = Connection::with_capacity(stream, REQUEST_CAPACITY);
    let deadline = Instant::now() + config.read_timeout;
    let mut decoder = MessageDecoder::<TransferRequest>::new();
    let request = match conn
        .read_message(&mut decoder, Wait::Until(deadline), MAX_REQUEST_LEN)
        .await
    {
        Ok(request) => request,
        // Something else than a request, or nothing: closed without an answer.
        Err(ReadError::Malformed(e)) => {
            tracing::debug!(%peer, error = %e, "bad transfer request");
            return Ok(());
        }
        Err(ReadError::Closed | ReadError::TooLong(_)) => return Ok(()),
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::TimedOut) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request timeout"));
        }
    };
    let (file_name, offset) = match &request {
        TransferRequest::GetFile(r) => (&r.file, None),
        TransferRequest::GetFileFrom(r) => (&r.file, Some(r.offset)),
    };
    tracing::debug!(%peer, file = %file_name, offset = offset.unwrap_or(0), from = offset.is_some(), "transfer requested");
    let path = library.get(file_name.as_str());
    let opened = match &path {
        Some(path) => open_regular(path).await,
        None => None,
    };
    let Some((file, size)) = opened else {
        tracing::debug!(%peer, file = %file_name, "transfer refused: not published or not readable");
        return match offset {
            None => send_header(&mut conn, TransferHeader::NotFound, config).await,
            Some(_) => send_from_header(&mut conn, GetFileFromHeader::NotFound, config).await,
        };
    };
    let (file, size, start) = match (offset, path) {
        (None, _) => {
            send_header(&mut conn, TransferHeader::Ok { size }, config).await?;
            (file, size, 0)
        }
        (Some(offset), Some(path)) => {
            // The digest of the very file about to be served: recorded, or hashed now
            // when its size or modification time changed since PUBLISH.
            let digests = library.digests().clone();
            let mut std_file = file.into_std().await;
            let hashed = tokio::task::spawn_blocking(move || {
                let result = digests.digest_of_open(&path, &mut std_file);
                (std_file, result)
            })
            .await;
            let (std_file, (digest, size)) = match hashed {
                Ok((std_file, Ok((digest, size, _)))) => (std_file, (digest, size)),
                Ok((_, Err(e))) => {
                    tracing::debug!(%peer, file = %file_name, error = %e, "cannot hash the file");
                    return send_from_header(&mut conn, GetFileFromHeader::Other, config).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hashing task failed");
                    return send_from_header(&mut conn, GetFileFromHeader::Other, config).await;
                }
            };
            if offset > size {
                tracing::debug!(%peer, file = %file_name, offset, size, "offset beyond the file");
                return send_from_header(&mut conn, GetFileFromHeader::OffsetBeyondSize, config)
                    .await;
            }
            send_from_header(&mut conn, GetFileFromHeader::Ok { size, digest }, config).await?;
            (tokio::fs::File::from_std(std_file), size, offset)
        }
        (Some(_), None) => return Ok(()),
    };
    if let Err(e) = send_body(&mut conn, file, start, size, config).await {
        // Said at `warn`: the requester sees a failed transfer, and the
        // reason is on this side.
        let reason = match e.kind() {
            io::ErrorKind::TimedOut => "the requester took no byte",
            io::ErrorKind::UnexpectedEof => "the file shrank while serving",
            _ if is_cut(&e) => "the requester closed or reset the connection",
            _ => "the connection failed",
        };
        tracing::warn!(
            %peer,
            file = %file_name,
            offset = start,
            size,
            error = %e,
            "transfer dropped: {reason}"
        );
        // A transfer cut short is reset, never ended as if complete.
        reset_on_close(conn.get_ref());
        return Ok(());
    }
    conn.get_mut().shutdown().await?;
    tracing::debug!(
        %peer,
        file = %file_name,
        offset = start,
        bytes = size - start,
        size,
        duration_ms = started.elapsed().as_millis() as u64,
        "file served"
    );
    Ok(())
}

async fn open_regular(path: &std::path::Path) -> Option<(tokio::fs::File, u64)> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let meta = file.metadata().await.ok()?;
    meta.is_file().then_some((file, meta.len()))
}

async fn send_from_header(
    conn: &mut Connection<ServedStream>,
    header: GetFileFromHeader,
    config: &FileServerConfig,
) -> io::Result<()> {
    conn.write_message(&header, Some(config.write_timeout))
        .await
}

async fn send_header(
    conn: &mut Connection<ServedStream>,
    header: TransferHeader,
    config: &FileServerConfig,
) -> io::Result<()> {
    conn.write_message(&header, Some(config.write_timeout))
        .await
}

/// Streams bytes `start..size`, with `sendfile` where the platform has it
/// and `config.zero_copy` asks for it. A
/// file that shrank since it was measured ends the transfer early, and the
/// requester sees a short transfer.
async fn send_body(
    conn: &mut Connection<ServedStream>,
    file: tokio::fs::File,
    start: u64,
    size: u64,
    config: &FileServerConfig,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let file = if config.zero_copy {
        let std_file = file.into_std().await;
        match super::zerocopy::send_file(
            conn.get_ref(),
            &std_file,
            start,
            size,
            config.write_timeout,
        )
        .await?
        {
            Some(sent) if sent == size - start => return Ok(()),
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while serving",
                ));
            }
            None => tokio::fs::File::from_std(std_file),
        }
    } else {
        file
    };
    copy_body(conn, file, start, size, config).await
}

/// The portable path: read and write in `chunk_size` pieces.
async fn copy_body(
    conn: &mut Connection<ServedStream>,
    mut file: tokio::fs::File,
    start: u64,
    size: u64,
    config: &FileServerConfig,
) -> io::Result<()> {
    use tokio::io::AsyncSeekExt;
    file.seek(io::SeekFrom::Start(start)).await?;
    let mut buf = vec![0u8; config.chunk_size.max(4096)];
    let mut left = size - start;
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while serving",
            ));
        }
        conn.write_all(&buf[..n], Some(config.write_timeout))
            .await?;
        left -= n as u64;
    }
    Ok(())
}

/// The transfer socket's low-water mark and congestion control.
fn tune(stream: &TcpStream, config: &FileServerConfig) {
    #[cfg(target_os = "linux")]
    {
        let socket = socket2::SockRef::from(stream);
        if let Err(e) = socket.set_tcp_notsent_lowat(config.send_low_water) {
            tracing::debug!(error = %e, "cannot set TCP_NOTSENT_LOWAT");
        }
        if let Some(name) = &config.congestion {
            set_congestion(stream, name);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Neither option exists here: the system's behaviour stays.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let _ = stream;
        if let Some(name) = &config.congestion
            && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                congestion = %name,
                "TCP congestion control is chosen only on Linux; the system's is used"
            );
        }
    }
}

/// Asks the kernel for congestion control `name` on `socket` (Linux); a
/// refusal is said once at `warn` (the system's default stays).
#[cfg(target_os = "linux")]
fn set_congestion(socket: &impl std::os::fd::AsFd, name: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = rustix::net::sockopt::set_tcp_congestion(socket, name)
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            congestion = name,
            error = %io::Error::from(e),
            "the kernel refuses this congestion control (is its module loaded? see \
             /proc/sys/net/ipv4/tcp_available_congestion_control); using the system's"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A transfer socket gets the congestion control asked for (`reno` is
    /// built into every Linux kernel); a name the kernel does not know
    /// leaves the system's.
    #[tokio::test]
    async fn congestion_control_is_asked_of_the_kernel() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let system = rustix::net::sockopt::tcp_congestion(&stream).unwrap();
        set_congestion(&stream, "no-such-cc");
        assert_eq!(
            rustix::net::sockopt::tcp_congestion(&stream).unwrap(),
            system
        );
        set_congestion(&stream, "reno");
        assert_eq!(
            rustix::net::sockopt::tcp_congestion(&stream).unwrap(),
            "reno"
        );
    }
}
