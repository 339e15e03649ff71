//! A TCP proxy on `127.0.0.1:0` that plays a bad network between a client and
//! a server: a rate limit with back-pressure (it reads only as fast as it
//! writes, through small socket buffers, so the sender's own socket fills and
//! waits as on a slow link), a stall, a black hole, a reply direction that
//! loses everything, and a cut (both sides reset).
//!
//! The mode applies at once to every connection, open or new: bytes read
//! while forwarding is held stay in the proxy (at most one small chunk per
//! direction) and go on when it resumes, as a healed link delivers what the
//! sender retransmits.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Socket buffers of the proxy's own sockets: small, so that back-pressure
/// reaches the sender instead of megabytes sitting in loopback buffers.
pub const PROXY_SOCKET_BUFFER: u32 = 16 * 1024;

/// Largest piece forwarded at once.
const CHUNK: usize = 4096;

/// What the network does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow (within the rate limit).
    Pass,
    /// Nothing moves in either direction; connections stay open, new ones are
    /// accepted and held. Lifting it delivers what was held.
    BlackHole,
    /// Requests reach the server; everything the server sends back, its end
    /// of stream included, is lost.
    DropReplies,
}

#[derive(Clone, Copy, Debug)]
struct State {
    mode: Mode,
    /// Bytes per second in each direction, per connection; `None` unlimited.
    rate: Option<u64>,
    /// Bumped by [`Proxy::cut`]: connections open then are reset.
    cuts: u64,
}

/// A running proxy to one upstream address.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
    /// Bytes forwarded from the server to clients.
    down: Arc<AtomicU64>,
    /// The next connections accepted whose replies are lost.
    drop_next: Arc<AtomicU64>,
    /// Connections accepted so far.
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream`, passing everything at full speed.
    pub async fn start(upstream: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        // Accepted sockets inherit these.
        socket
            .set_recv_buffer_size(PROXY_SOCKET_BUFFER)
            .expect("rcvbuf");
        socket
            .set_send_buffer_size(PROXY_SOCKET_BUFFER)
            .expect("sndbuf");
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("bind 127.0.0.1:0");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().unwrap();
        let (state, watched) = watch::channel(State {
            mode: Mode::Pass,
            rate: None,
            cuts: 0,
        });
        let down = Arc::new(AtomicU64::new(0));
        let drop_next = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            watched,
            down.clone(),
            [drop_next.clone(), accepted.clone()],
        ));
        Self {
            addr,
            state,
            down,
            drop_next,
            accepted,
            task,
        }
    }

    /// Sets what the network does from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// Limits each direction of each connection to `bytes_per_second`.
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        self.state.send_modify(|s| s.rate = bytes_per_second);
    }

    /// Resets every open connection, on both sides.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.cuts += 1);
    }

    /// The replies of the next `connections` accepted are lost (with their
    /// end of stream): one-operation-per-connection clients lose exactly
    /// that many replies.
    pub fn drop_replies_of_next(&self, connections: u64) {
        self.drop_next.store(connections, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the server towards clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<State>,
    down: Arc<AtomicU64>,
    [drop_next, accepted]: [Arc<AtomicU64>; 2],
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let down = down.clone();
        let lose_replies = drop_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        connections.spawn(async move {
            let _ = relay(client, upstream, state, down, lose_replies).await;
        });
        // Reap the finished ones.
        while connections.try_join_next().is_some() {}
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    down: Arc<AtomicU64>,
    lose_replies: bool,
) -> io::Result<()> {
    let cuts = state.borrow().cuts;
    // A black hole holds a new connection before it reaches the server.
    wait_for(&mut state, cuts, |s| s.mode != Mode::BlackHole).await?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(PROXY_SOCKET_BUFFER)?;
    socket.set_send_buffer_size(PROXY_SOCKET_BUFFER)?;
    let server = socket.connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        state.clone(),
        cuts,
        Direction::Up,
        None,
    );
    let back = pump(
        server_read,
        client_write,
        state.clone(),
        cuts,
        if lose_replies {
            Direction::Lost
        } else {
            Direction::Down
        },
        Some(down),
    );
    let (up, back) = tokio::join!(up, back);
    let cut = up.is_err() || back.is_err();
    let ((client_read, server_write), (server_read, client_write)) = (
        up.unwrap_or_else(|halves| halves),
        back.unwrap_or_else(|halves| halves),
    );
    if cut {
        // Reset both sides, so that neither sees a clean end.
        for stream in [
            client_read.reunite(client_write),
            server_read.reunite(server_write),
        ]
        .into_iter()
        .flatten()
        {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
    /// Server to client, every byte lost.
    Lost,
}

/// Waits until `ready` holds; `Err` when a cut happens meanwhile.
async fn wait_for(
    state: &mut watch::Receiver<State>,
    cuts: u64,
    ready: impl Fn(&State) -> bool,
) -> io::Result<()> {
    loop {
        {
            let s = state.borrow_and_update();
            if s.cuts != cuts {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            if ready(&s) {
                return Ok(());
            }
        }
        if state.changed().await.is_err() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
    }
}

/// Forwards one direction until its end of stream, within the rate; returns
/// the halves for the caller to close or reset.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    cuts: u64,
    direction: Direction,
    counter: Option<Arc<AtomicU64>>,
) -> Result<(OwnedReadHalf, OwnedWriteHalf), (OwnedReadHalf, OwnedWriteHalf)> {
    let mut buf = vec![0u8; CHUNK];
    // Pacing: the bytes sent since `since` at `rate`.
    let mut since = Instant::now();
    let mut paced: u64 = 0;
    let mut rate_seen = state.borrow().rate;
    let passes = move |s: &State| match s.mode {
        Mode::Pass => true,
        Mode::BlackHole => false,
        Mode::DropReplies => direction == Direction::Up,
    } && direction != Direction::Lost;
    loop {
        // Read only when the bytes could go on (or be lost): back-pressure.
        if wait_for(&mut state, cuts, |s| s.mode != Mode::BlackHole)
            .await
            .is_err()
        {
            return Err((from, to));
        }
        let rate = state.borrow().rate;
        if rate != rate_seen {
            rate_seen = rate;
            since = Instant::now();
            paced = 0;
        }
        let want = match rate {
            Some(r) => usize::try_from(r / 8).map_or(CHUNK, |r| r.clamp(1, CHUNK)),
            None => CHUNK,
        };
        let read = tokio::select! {
            read = from.read(&mut buf[..want]) => read,
            () = cut(&state, cuts) => return Err((from, to)),
        };
        let n = match read {
            Ok(0) => {
                // End of stream: passed on unless this direction loses everything.
                if wait_for(&mut state, cuts, passes).await.is_err() {
                    return Err((from, to));
                }
                let _ = to.shutdown().await;
                return Ok((from, to));
            }
            Ok(n) => n,
            Err(_) => return Err((from, to)),
        };
        let lost = {
            let s = state.borrow();
            (s.mode == Mode::DropReplies && direction == Direction::Down)
                || direction == Direction::Lost
        };
        if lost {
            continue;
        }
        // Held while forwarding is stopped; the bytes stay here meanwhile.
        if wait_for(&mut state, cuts, passes).await.is_err() {
            return Err((from, to));
        }
        // A sender that reset its connection meanwhile (during a black hole, its
        // bytes would never have been retransmitted): they are lost, and the
        // connection is cut.
        if let Ok(Some(_)) | Err(_) = socket2::SockRef::from(from.as_ref()).take_error() {
            return Err((from, to));
        }
        if let Some(rate) = rate {
            paced += n as u64;
            let due = since + Duration::from_secs_f64(paced as f64 / rate as f64);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = cut(&state, cuts) => return Err((from, to)),
            }
        }
        let written = tokio::select! {
            written = to.write_all(&buf[..n]) => written,
            () = cut(&state, cuts) => return Err((from, to)),
        };
        if written.is_err() {
            return Err((from, to));
        }
        if let Some(counter) = &counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Completes when a cut happens.
async fn cut(state: &watch::Receiver<State>, cuts: u64) {
    let mut state = state.clone();
    loop {
        if state.borrow_and_update().cuts != cuts {
            return;
        }
        if state.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
