//! Moving file bodies without copying them through user space, where the
//! platform allows: `sendfile(2)` from the published file to the socket on the
//! serving side, `splice(2)` from the socket through a pipe into the file on the
//! requesting side. Both are driven by tokio's readiness, so a transfer never
//! blocks the runtime on a slow peer, and each call is bounded by a stall
//! timeout.
//!
//! Every function returns `Ok(None)` when the kernel refuses the zero-copy path
//! for these descriptors before any byte moved (`EINVAL`, `ENOSYS`, ...): the
//! caller then uses its plain read/write loop.

use std::fs::File;
use std::io;
use std::time::Duration;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Largest count handed to one `sendfile` or `splice` call.
const MAX_CALL: u64 = 1 << 20;

/// Pipe capacity requested for `splice` (the kernel may grant less).
const PIPE_SIZE: usize = 1 << 20;

fn stalled(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no byte moved for {limit:?}"),
    )
}

/// Whether an error on the first call means "this path is not supported here".
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::BADF | Errno::XDEV)
    )
}

/// Sends bytes `start..size` of `file` to `stream` with `sendfile`.
/// `Ok(Some(n))` is the number of bytes sent (less than `size - start` only if
/// the file shrank); `Ok(None)` means the caller should fall back.
pub(crate) async fn send_file(
    stream: &TcpStream,
    file: &File,
    start: u64,
    size: u64,
    stall: Duration,
) -> io::Result<Option<u64>> {
    let mut offset: u64 = start;
    while offset < size {
        let want = usize::try_from((size - offset).min(MAX_CALL)).unwrap_or(1 << 20);
        let sent = stream.async_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut offset), want).map_err(io::Error::from)
        });
        match timeout(stall, sent).await {
            Err(_) => return Err(stalled(stall)),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) if offset == start && unsupported(&e) => return Ok(None),
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(Some(offset - start))
}

/// Receives up to `want` bytes from `stream` into `file` at its current end,
/// through a pipe with `splice`, calling `progress` with the running total.
/// Returns the bytes received (less than `want` when the peer closed early),
/// or `Ok(None)` when the caller should fall back.
pub(crate) async fn receive_file(
    stream: &TcpStream,
    file: &File,
    want: u64,
    stall: Duration,
    mut progress: impl FnMut(u64),
) -> io::Result<Option<u64>> {
    let Ok((pipe_out, pipe_in)) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC) else {
        return Ok(None);
    };
    // A larger pipe means fewer syscalls; the default (64 KiB) still works.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe_in, PIPE_SIZE);
    let mut received: u64 = 0;
    while received < want {
        let chunk = usize::try_from((want - received).min(MAX_CALL)).unwrap_or(1 << 20);
        // The pipe is empty here, so a non-blocking splice waits only on the
        // socket, which tokio's readiness covers.
        let moved = stream.async_io(Interest::READABLE, || {
            rustix::pipe::splice(
                stream,
                None,
                &pipe_in,
                None,
                chunk,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )
            .map_err(io::Error::from)
        });
        let n = match timeout(stall, moved).await {
            Err(_) => return Err(stalled(stall)),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if received == 0 && unsupported(&e) => return Ok(None),
            Ok(Err(e)) => return Err(e),
        };
        // Drain the pipe into the file (regular-file writes do not wait on
        // the network).
        let mut left = n;
        while left > 0 {
            let written =
                rustix::pipe::splice(&pipe_out, None, file, None, left, SpliceFlags::MOVE)?;
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "file write stalled",
                ));
            }
            left -= written;
        }
        received += n as u64;
        progress(received);
    }
    Ok(Some(received))
}
