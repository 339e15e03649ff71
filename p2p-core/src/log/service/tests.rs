//! The log service's unit tests: the group commit, and a TCP connection's polling.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2p_proto::{Encode, StreamDecoder};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use p2p_proto::rpc::log::LogEntry;
use p2p_proto::rpc::log::{decode_sendlog_reply, sendlog_call};
use p2p_proto::rpc::record::{Record, RecordDecoder};
use tokio::sync::oneshot;

use super::*;
use super::{config::*, output::*, sink::*, tcp::*};

/// An output that records what is written, as whole `write` calls, optionally failing or
/// taking a few polls per write (so that callers pile up behind the leader).
#[derive(Clone, Default)]
struct Recorder {
    data: Arc<Mutex<Vec<u8>>>,
    writes: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    slow: bool,
    polls: usize,
}

impl Recorder {
    fn text(&self) -> String {
        String::from_utf8(self.data.lock().unwrap().clone()).unwrap()
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.slow && self.polls < 2 {
            self.polls += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.polls = 0;
        if self.fail.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::Error::other("disk full")));
        }
        self.data.lock().unwrap().extend_from_slice(buf);
        self.writes.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_writes_every_line_whole_before_acknowledging() {
    const TASKS: usize = 32;
    const BATCHES: usize = 50;
    let out = Recorder {
        slow: true,
        ..Recorder::default()
    };
    let sink = Arc::new(Sink::new(Output::Async(Box::pin(out.clone()))));
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let sink = Arc::clone(&sink);
        let out = out.clone();
        tasks.spawn(async move {
            for b in 0..BATCHES {
                let lines = format!("t{t:02} b{b:02} one\nt{t:02} b{b:02} two\n");
                commit_written(&sink, &out, &lines, false).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    sink.close().await.unwrap();
    let text = out.text();
    let mut next = [0usize; TASKS];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), TASKS * BATCHES * 2);
    for pair in lines.chunks(2) {
        let t: usize = pair[0][1..3].parse().unwrap();
        let b = next[t] / 2;
        assert_eq!(pair[0], format!("t{t:02} b{b:02} one"));
        assert_eq!(pair[1], format!("t{t:02} b{b:02} two"));
        next[t] += 2;
    }
    // Batches that queued up behind a write went out together.
    let writes = out.writes.load(Ordering::Relaxed);
    assert!(writes < TASKS * BATCHES, "{writes} writes: no grouping");
    assert!(!sink.state().writing);
}

/// Commits `lines` and checks the guarantee of an acknowledgement: the lines are out.
async fn commit_written(sink: &Sink, out: &Recorder, lines: &str, gather: bool) {
    assert!(sink.commit(lines.as_bytes(), gather).await);
    assert!(
        out.text().contains(lines),
        "{lines:?} acknowledged, not written"
    );
}

/// Writes made when `TASKS` tasks, ready in the same turn of a one-thread runtime, commit a
/// line each.
async fn writes_for_one_turn(gather: bool) -> usize {
    const TASKS: usize = 8;
    let out = Recorder::default();
    let sink = Arc::new(Sink::new(Output::Async(Box::pin(out.clone()))));
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let (sink, out) = (Arc::clone(&sink), out.clone());
        tasks.spawn(async move {
            commit_written(&sink, &out, &format!("line {t}\n"), gather).await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let mut lines: Vec<String> = out.text().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        (0..TASKS).map(|t| format!("line {t}")).collect::<Vec<_>>()
    );
    assert!(!sink.state().writing);
    out.writes.load(Ordering::Relaxed)
}

#[tokio::test]
async fn gathering_writes_the_lines_of_one_turn_at_once() {
    assert_eq!(
        writes_for_one_turn(false).await,
        8,
        "one write per connection"
    );
    assert_eq!(writes_for_one_turn(true).await, 1, "one write for the turn");
}

#[tokio::test]
async fn a_failed_write_is_reported_to_the_callers_it_covered_only() {
    let out = Recorder::default();
    let sink = Sink::new(Output::Async(Box::pin(out.clone())));
    assert!(sink.commit(b"a\n", false).await);
    out.fail.store(true, Ordering::Relaxed);
    assert!(!sink.commit(b"b\n", false).await);
    out.fail.store(false, Ordering::Relaxed);
    assert!(sink.commit(b"c\n", false).await);
    assert_eq!(out.text(), "a\nc\n");
}

#[tokio::test]
async fn a_waiter_dropped_with_the_lead_passes_it_on() {
    let out = Recorder::default();
    let sink = Sink::new(Output::Async(Box::pin(out.clone())));
    // Someone leads (as if writing); two callers queue up behind.
    sink.state().writing = true;
    let mut first = Box::pin(sink.commit(b"first\n", false));
    let mut second = Box::pin(sink.commit(b"second\n", false));
    assert!(futures_poll(first.as_mut()).is_none());
    assert!(futures_poll(second.as_mut()).is_none());
    // The leader finishes: the lead goes to `first`, which is dropped before taking it.
    sink.release();
    drop(first);
    // `second` leads and writes both pending batches.
    assert!(second.await);
    assert_eq!(out.text(), "first\nsecond\n");
    assert!(!sink.state().writing);
    // And the next caller leads at once.
    assert!(sink.commit(b"third\n", false).await);
    assert_eq!(out.text(), "first\nsecond\nthird\n");
}

fn futures_poll<F: Future>(f: Pin<&mut F>) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    match f.poll(&mut Context::from_waker(waker)) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The service with a file output, many pipelining clients: one whole line per call, and
/// each reply only once its line is in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_output_line_before_reply() {
    const CLIENTS: usize = 8;
    const CALLS: usize = 200;
    let path = std::env::temp_dir().join(format!(
        "p2p-log-service-test-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
    config.register_with_rpcbind = false;
    let service = LogService::bind(config).await.unwrap();
    let addr = service.tcp_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(service.run_to(LogOutput::file(file), async move {
        let _ = stopped.await;
    }));
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let path = path.clone();
        clients.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut decoder = RecordDecoder::new(1 << 16);
            let mut input = BytesMut::new();
            let mut answered = 0;
            for window in (0..CALLS).collect::<Vec<_>>().chunks(16) {
                let mut wire = Vec::new();
                for &r in window {
                    let e = LogEntry::new(&format!("u{c}"), "PUBLISH", &format!("{r:03}"), "f")
                        .unwrap();
                    Record(sendlog_call(r as u32, &e)).encode(&mut wire);
                }
                stream.write_all(&wire).await.unwrap();
                while answered < window[window.len() - 1] + 1 {
                    while let Some(reply) = decoder.decode(&mut input).unwrap() {
                        assert_eq!(
                            decode_sendlog_reply(&reply).unwrap(),
                            Some((answered as u32, Ok(0)))
                        );
                        let line = format!("u{c} PUBLISH f {answered:03}\n");
                        let text = std::fs::read_to_string(&path).unwrap();
                        assert!(text.contains(&line), "replied before {line:?} was written");
                        answered += 1;
                    }
                    if answered <= window[window.len() - 1] {
                        assert!(stream.read_buf(&mut input).await.unwrap() > 0);
                    }
                }
            }
        });
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut next = [0usize; CLIENTS];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "torn line {line:?}");
        let c: usize = fields[0][1..].parse().unwrap();
        assert_eq!(fields[3], format!("{:03}", next[c]));
        next[c] += 1;
    }
    assert_eq!(next, [CALLS; CLIENTS]);
}

/// A connected pair on loopback: (the service's side, the client's side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (served, _) = listener.accept().await.unwrap();
    (served, client)
}

const LONG: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn busy_poll_finds_input_and_closes_while_alone() {
    let running = CancellationToken::new();
    let open = Arc::new(AtomicUsize::new(0));
    let alone = OpenConnection::new(&open);
    let (served, mut client) = pair().await;
    let mut input = BytesMut::new();
    let writer = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        client.write_all(b"call").await.unwrap();
    };
    // The poll yields between checks, or the writer above would never run.
    let (polled, ()) = tokio::time::timeout(WAIT, async {
        tokio::join!(
            busy_poll(&served, &mut input, LONG, &alone, &running),
            writer
        )
    })
    .await
    .expect("input found long before the budget");
    assert_eq!(polled, Polled::Input);
    assert_eq!(&input[..], b"call");
    drop(client);
    let polled = tokio::time::timeout(WAIT, busy_poll(&served, &mut input, LONG, &alone, &running))
        .await
        .expect("the close found long before the budget");
    assert_eq!(polled, Polled::Closed);
}

#[tokio::test]
async fn busy_poll_gives_up_at_its_budget_or_beside_another_connection() {
    let running = CancellationToken::new();
    let open = Arc::new(AtomicUsize::new(0));
    let first = OpenConnection::new(&open);
    let (served, _client) = pair().await;
    let mut input = BytesMut::new();
    let started = Instant::now();
    let polled = busy_poll(
        &served,
        &mut input,
        Duration::from_millis(20),
        &first,
        &running,
    )
    .await;
    assert_eq!(polled, Polled::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(20));
    // A second connection opening while the first polls ends the poll.
    let second = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        OpenConnection::new(&open)
    };
    let (polled, second) = tokio::time::timeout(WAIT, async {
        tokio::join!(
            busy_poll(&served, &mut input, LONG, &first, &running),
            second
        )
    })
    .await
    .expect("the poll ends once another connection opens");
    assert_eq!(polled, Polled::Crowded);
    // Not alone from the start: no poll at all.
    let started = Instant::now();
    assert_eq!(
        busy_poll(&served, &mut input, LONG, &first, &running).await,
        Polled::Crowded
    );
    assert!(started.elapsed() < WAIT);
    drop(second);
    assert!(first.alone());
    assert!(input.is_empty());
}

#[test]
fn polling_stops_for_a_slow_client_and_starts_again_for_a_fast_one() {
    let budget = Duration::from_micros(50);
    let mut policy = PollPolicy::new(budget);
    assert_eq!(policy.budget(), Some(budget), "polls from the first answer");
    policy.polled(&Polled::Input);
    assert_eq!(policy.budget(), Some(budget));
    // Another connection says nothing about this client.
    policy.polled(&Polled::Crowded);
    assert_eq!(policy.budget(), Some(budget));
    // A client slower than the budget (a shipper's batch every 10 ms): no more polling...
    policy.polled(&Polled::TimedOut);
    assert_eq!(policy.budget(), None);
    policy.answered_after(Duration::from_millis(10));
    assert_eq!(policy.budget(), None);
    // ...until its calls come right after the answers again.
    policy.answered_after(Duration::from_micros(120));
    assert_eq!(policy.budget(), Some(budget));
    policy.answered_after(budget * PollPolicy::RESTART + Duration::from_nanos(1));
    assert_eq!(policy.budget(), None);
    // Off stays off.
    let mut off = PollPolicy::new(Duration::ZERO);
    assert_eq!(off.budget(), None);
    off.answered_after(Duration::ZERO);
    assert_eq!(off.budget(), None);
}

#[tokio::test]
async fn input_waiting_sees_bytes_and_the_end_whatever_tokio_last_saw() {
    let (served, mut client) = pair().await;
    assert!(!input_waiting(&served));
    client.write_all(b"x").await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !input_waiting(&served) {
        assert!(Instant::now() < deadline, "the byte never showed");
        tokio::task::yield_now().await;
    }
    // A peek: the byte is still there to read.
    let mut input = BytesMut::new();
    assert_eq!(
        busy_poll(
            &served,
            &mut input,
            LONG,
            &OpenConnection::new(&Arc::default()),
            &CancellationToken::new()
        )
        .await,
        Polled::Input
    );
    assert_eq!(&input[..], b"x");
    assert!(!input_waiting(&served));
    drop(client);
    let deadline = Instant::now() + WAIT;
    while !input_waiting(&served) {
        assert!(Instant::now() < deadline, "the close never showed");
        tokio::task::yield_now().await;
    }
}
