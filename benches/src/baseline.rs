//! The plain reference implementations the system is measured against.
//!
//! - A minimal directory-like server: accept → read until the first NUL (the OP) → write one
//!   result byte → close. No parsing, no state, no console, no log: the cost of the connection
//!   handling alone, with the same runtime and listen backlog as `p2p-server`.
//! - Plain file transfers over a loopback socket, a thread (or process) on each side:
//!   1 MiB read/write loops, and the zero-copy pair `sendfile(2)` (file → socket) with
//!   `splice(2)` (socket → pipe → file), through `rustix`'s safe wrappers, blocking.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::thread::{self, JoinHandle};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Chunk size of the plain transfer loops.
pub const CHUNK: usize = 1 << 20;

/// Binds the baseline's listener exactly as `p2p-server` binds its own (address
/// reuse, the same backlog), so the comparison measures the serving, not the
/// socket setup.
pub use p2p_core::directory::bind;

/// Serves the minimal protocol forever: one task per connection, the accept loop itself a task
/// on the runtime's workers (as in `p2p-server`).
pub async fn serve_minimal(listener: TcpListener) -> io::Result<()> {
    tokio::spawn(accept_minimal(listener))
        .await
        .map_err(io::Error::other)?
}

async fn accept_minimal(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                eprintln!("baseline: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = answer_one(stream).await;
        });
    }
}

/// Reads up to the first NUL, answers one byte; dropping the stream closes it (as `p2p-server`
/// does: no `TCP_NODELAY`, no `shutdown`, each a syscall per request that changes nothing here).
async fn answer_one(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    let mut seen = 0;
    loop {
        let n = stream.read(&mut buf[seen..]).await?;
        if n == 0 {
            return Ok(());
        }
        if buf[seen..seen + n].contains(&0) {
            break;
        }
        seen = (seen + n) % buf.len();
    }
    stream.write_all(&[0]).await
}

/// A minimal server running on its own thread and tokio runtime (`worker_threads` workers, 0 for
/// tokio's default of one per core).
#[derive(Debug)]
pub struct MinimalServer {
    /// Where it listens.
    pub addr: SocketAddr,
    _thread: JoinHandle<()>,
}

impl MinimalServer {
    /// Starts the server on `addr` (port 0 picks a free one). It runs until the process exits.
    pub fn start(addr: SocketAddr, worker_threads: usize) -> io::Result<Self> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if worker_threads > 0 {
            builder.worker_threads(worker_threads);
        }
        let runtime = builder.build()?;
        let listener = runtime.block_on(async { bind(addr) })?;
        let addr = listener.local_addr()?;
        let thread = thread::Builder::new()
            .name("baseline-server".into())
            .spawn(move || {
                if let Err(e) = runtime.block_on(serve_minimal(listener)) {
                    eprintln!("baseline server stopped: {e}");
                }
            })?;
        Ok(Self {
            addr,
            _thread: thread,
        })
    }
}

/// Writes the whole of `src` to `sock` in [`CHUNK`] reads and writes, then closes the write side.
pub fn send_file_plain(src: &Path, sock: &mut StdStream) -> io::Result<u64> {
    let mut file = File::open(src)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sock.write_all(&buf[..n])?;
        total += n as u64;
    }
    sock.shutdown(Shutdown::Write)?;
    Ok(total)
}

/// Reads `sock` to its end in [`CHUNK`] reads, writing everything to a new file at `dest`.
pub fn receive_file_plain(sock: &mut StdStream, dest: &Path) -> io::Result<u64> {
    let mut file = File::create(dest)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        total += n as u64;
    }
    file.flush()?;
    Ok(total)
}

/// Sends the whole of `src` to `sock` with `sendfile(2)` (1 MiB per call), then closes the write
/// side.
pub fn send_file_zero_copy(src: &Path, sock: &mut StdStream) -> io::Result<u64> {
    let file = File::open(src)?;
    let size = file.metadata()?.len();
    let mut offset = 0u64;
    while offset < size {
        let want = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = rustix::fs::sendfile(&*sock, &file, Some(&mut offset), want)?;
        if n == 0 {
            break;
        }
    }
    sock.shutdown(Shutdown::Write)?;
    Ok(offset)
}

/// Reads `sock` to its end with `splice(2)` into a pipe and from the pipe into a new file at
/// `dest` (1 MiB pipe when the kernel grants it).
pub fn receive_file_zero_copy(sock: &mut StdStream, dest: &Path) -> io::Result<u64> {
    use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
    let file = File::create(dest)?;
    let (pipe_out, pipe_in) = pipe_with(PipeFlags::CLOEXEC)?;
    let _ = fcntl_setpipe_size(&pipe_in, CHUNK);
    let mut total = 0u64;
    loop {
        let n = splice(&*sock, None, &pipe_in, None, CHUNK, SpliceFlags::MOVE)?;
        if n == 0 {
            break;
        }
        let mut left = n;
        while left > 0 {
            let w = splice(&pipe_out, None, &file, None, left, SpliceFlags::MOVE)?;
            if w == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= w;
        }
        total += n as u64;
    }
    Ok(total)
}

/// How a baseline copy moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// 1 MiB `read`/`write` loops on both sides.
    ReadWrite,
    /// `sendfile` on the sending side, `splice` through a pipe on the receiving side.
    ZeroCopy,
}

/// A plain file server on its own thread: it sends `src` with `method` to every client that
/// connects, then closes; it runs until the process exits. The counterpart of a running
/// `FileServer`, so that a benchmark iteration pays only for the transfer.
#[derive(Debug)]
pub struct PlainFileServer {
    /// Where it listens.
    pub addr: SocketAddr,
}

impl PlainFileServer {
    /// Starts serving `src` on a free loopback port.
    pub fn start(src: &Path, method: Method) -> io::Result<Self> {
        let listener = StdListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let src = src.to_path_buf();
        thread::Builder::new()
            .name("plain-file-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut sock) = conn else { continue };
                    let sent = match method {
                        Method::ReadWrite => send_file_plain(&src, &mut sock),
                        Method::ZeroCopy => send_file_zero_copy(&src, &mut sock),
                    };
                    if let Err(e) = sent {
                        eprintln!("plain file server: {e}");
                    }
                }
            })?;
        Ok(Self { addr })
    }

    /// Receives the file into a new file at `dest` with `method`; returns the bytes received.
    pub fn fetch(&self, dest: &Path, method: Method) -> io::Result<u64> {
        let mut sock = StdStream::connect(self.addr)?;
        match method {
            Method::ReadWrite => receive_file_plain(&mut sock, dest),
            Method::ZeroCopy => receive_file_zero_copy(&mut sock, dest),
        }
    }
}

/// Copies `src` to `dest` through a loopback socket with 1 MiB read/write loops: a server thread
/// sends, this thread receives. Returns the bytes received.
pub fn plain_copy(src: &Path, dest: &Path) -> io::Result<u64> {
    copy_via_socket(src, dest, Method::ReadWrite)
}

/// Copies `src` to `dest` through a loopback socket with `method`: a server thread sends, this
/// thread receives. Returns the bytes received.
pub fn copy_via_socket(src: &Path, dest: &Path, method: Method) -> io::Result<u64> {
    let listener = StdListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let src = src.to_path_buf();
    let sender = thread::spawn(move || -> io::Result<u64> {
        let (mut sock, _) = listener.accept()?;
        match method {
            Method::ReadWrite => send_file_plain(&src, &mut sock),
            Method::ZeroCopy => send_file_zero_copy(&src, &mut sock),
        }
    });
    let mut sock = StdStream::connect(addr)?;
    let received = match method {
        Method::ReadWrite => receive_file_plain(&mut sock, dest)?,
        Method::ZeroCopy => receive_file_zero_copy(&mut sock, dest)?,
    };
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("sender thread panicked"))??;
    if sent != received {
        return Err(io::Error::other(format!(
            "plain copy sent {sent} bytes but received {received}"
        )));
    }
    Ok(received)
}

/// Creates a file of `size` bytes of a non-trivial pattern at `path` (written in 1 MiB blocks).
pub fn make_file(path: &Path, size: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    let block: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_copy_moves_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let dest = dir.path().join("dest");
        make_file(&src, 3 * CHUNK as u64 + 17).unwrap();
        for method in [Method::ReadWrite, Method::ZeroCopy] {
            let _ = std::fs::remove_file(&dest);
            assert_eq!(
                copy_via_socket(&src, &dest, method).unwrap(),
                3 * CHUNK as u64 + 17
            );
            assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dest).unwrap());
        }
    }

    #[test]
    fn minimal_server_answers_one_byte() {
        let server = MinimalServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
        let mut sock = StdStream::connect(server.addr).unwrap();
        sock.write_all(b"LIST_USERS\0").unwrap();
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, [0]);
    }
}
