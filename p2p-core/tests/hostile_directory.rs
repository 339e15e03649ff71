//! Hostile clients against the directory server running in this process
//! (PROTOCOL.md §1, "an unknown OP, a malformed request, a field over the
//! limit, or a client that stalls past the read timeout: the server answers
//! the operation's other error byte where it can tell the OP, otherwise closes
//! the connection; it never crashes and never changes state for a request it
//! refused").
//!
//! Every test builds the same baseline through valid requests, attacks, then
//! checks that the server still answers and that the directory holds exactly
//! what the valid requests made it (read through the public `Store` API, see
//! `support::snapshot`). The server's memory under the same attacks is
//! measured on the real binary in `p2p-bins/tests/faults.rs`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use p2p_core::directory::ServerConfig;
use p2p_proto::Decode;
use p2p_proto::directory::{
    GetUserInfoReply, ListContentReply, MAX_REQUEST_LEN, OpCode, RegisterResult, Reply, Request,
    RequestBody,
};
use support::{
    DATETIME, Directory, Rng, Snapshot, config_with_read_timeout, desc, encode, exchange, file,
    install_probe, local, request, run_bounded, snapshot, user,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

/// Every name the tests use, registered or not.
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "mallory", "slowpoke", "capuser", "x",
];

/// How long a client waits for a reply or a close when the server's read
/// timeout is far longer: the server must decide on the bytes, not on the
/// clock.
const PATIENCE: Duration = Duration::from_secs(15);

/// A read timeout far above [`PATIENCE`].
const LONG_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts a server with `config` and builds the baseline through valid
/// requests over the socket: alice connected at port 4000 publishing a.txt
/// and b.txt, bob connected at 4001, carol registered and not connected.
async fn baseline(config: ServerConfig) -> (Directory, Snapshot) {
    let dir = Directory::start(config);
    install_probe(&*dir.store).await;
    let steps: Vec<(Request, Reply)> = vec![
        (
            request("alice", RequestBody::Register, true),
            RegisterResult::Ok.into(),
        ),
        (
            request("bob", RequestBody::Register, false),
            RegisterResult::Ok.into(),
        ),
        (
            request("carol", RequestBody::Register, true),
            RegisterResult::Ok.into(),
        ),
        (
            request("alice", connect(4000), true),
            p2p_proto::directory::ConnectResult::Ok.into(),
        ),
        (
            request("bob", connect(4001), false),
            p2p_proto::directory::ConnectResult::Ok.into(),
        ),
        (
            request("alice", publish("a.txt", "first"), true),
            p2p_proto::directory::PublishResult::Ok.into(),
        ),
        (
            request("alice", publish("b.txt", ""), false),
            p2p_proto::directory::PublishResult::Ok.into(),
        ),
    ];
    for (req, expected) in &steps {
        dir.expect(req, expected.clone()).await;
    }
    let before = snapshot(&*dir.store, NAMES).await;
    let mut users = std::collections::BTreeMap::new();
    for name in NAMES {
        let files = match *name {
            "alice" => Some(vec!["a.txt".to_owned(), "b.txt".to_owned()]),
            "bob" | "carol" => Some(vec![]),
            _ => None,
        };
        users.insert((*name).to_owned(), files);
    }
    assert_eq!(
        before,
        Snapshot {
            stats: p2p_core::directory::StoreStats {
                users: 4,
                connected: 3,
                publications: 2
            },
            connected: vec![
                ("alice".to_owned(), local(4000)),
                ("bob".to_owned(), local(4001))
            ],
            users,
        },
        "baseline"
    );
    (dir, before)
}

fn connect(port: u16) -> RequestBody {
    RequestBody::Connect {
        port: port.try_into().unwrap(),
    }
}

fn publish(name: &str, description: &str) -> RequestBody {
    RequestBody::Publish {
        file: file(name),
        description: desc(description),
    }
}

/// Valid reads that the baseline answers with known replies.
async fn assert_serving(dir: &Directory) {
    dir.expect(
        &request(
            "bob",
            RequestBody::ListContent {
                target: user("alice"),
            },
            true,
        ),
        ListContentReply::Ok(vec![file("a.txt"), file("b.txt")]),
    )
    .await;
    dir.expect(
        &request(
            "alice",
            RequestBody::GetUserInfo {
                target: user("bob"),
            },
            false,
        ),
        GetUserInfoReply::Ok(local(4001)),
    )
    .await;
}

/// The server still answers, and the directory is what the valid requests
/// made it.
async fn assert_unchanged(dir: &Directory, before: &Snapshot) {
    assert_serving(dir).await;
    assert_eq!(
        &snapshot(&*dir.store, NAMES).await,
        before,
        "the directory changed"
    );
}

/// The OP of `bytes` when its first field is complete and names an operation.
fn op_of(bytes: &[u8]) -> Option<OpCode> {
    let end = bytes.iter().position(|&b| b == 0)?;
    OpCode::from_bytes(&bytes[..end])
}

/// One byte: `op`'s "other error".
fn other_error(op: OpCode) -> Vec<u8> {
    vec![Reply::other_error(op).code()]
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_of_10_mib_without_nul_is_refused_on_the_limit() {
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    let big = vec![b'A'; 10 * MIB];
    let dt = format!("{DATETIME}\0");
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("OP", big.clone(), vec![]),
        (
            "REGISTER USER",
            concat(&[b"REGISTER\0", &big]),
            other_error(OpCode::Register),
        ),
        (
            "REGISTER DATETIME USER",
            concat(&[b"REGISTER\0", dt.as_bytes(), &big]),
            other_error(OpCode::Register),
        ),
        (
            "CONNECT PORT",
            concat(&[b"CONNECT\0carol\0", &vec![b'1'; 10 * MIB]]),
            other_error(OpCode::Connect),
        ),
        (
            "PUBLISH FILE",
            concat(&[b"PUBLISH\0alice\0", &big]),
            other_error(OpCode::Publish),
        ),
        (
            "PUBLISH DESCRIPTION",
            concat(&[b"PUBLISH\0", dt.as_bytes(), b"alice\0x.txt\0", &big]),
            other_error(OpCode::Publish),
        ),
        (
            "DELETE FILE",
            concat(&[b"DELETE\0alice\0", &big]),
            other_error(OpCode::Delete),
        ),
        (
            "LIST_CONTENT TARGET",
            concat(&[b"LIST_CONTENT\0alice\0", &big]),
            other_error(OpCode::ListContent),
        ),
        (
            "GET_USER_INFO TARGET",
            concat(&[b"GET_USER_INFO\0alice\0", &big]),
            other_error(OpCode::GetUserInfo),
        ),
    ];
    for (what, bytes, expected) in cases {
        // The socket stays open: only the field limit can end the exchange
        // before the client's patience runs out.
        let got = exchange(dir.addr, &bytes, false, PATIENCE).await;
        assert_eq!(got.reply, expected, "10 MiB {what} field");
        assert_unchanged(&dir, &before).await;
    }
    dir.stop().await;
}

/// A hostile byte stream: pure noise, a known OP followed by noise, a soup of
/// protocol tokens, or a valid request with one mutation.
fn hostile_stream(rng: &mut Rng) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"REGISTER",
        b"UNREGISTER",
        b"CONNECT",
        b"DISCONNECT",
        b"PUBLISH",
        b"DELETE",
        b"LIST_USERS",
        b"LIST_CONTENT",
        b"GET_USER_INFO",
        b"GET_FILE",
        b"alice",
        b"bob",
        b"carol",
        b"x",
        b"24/11/2026 20:42:35",
        b"00/00/0000 00:00:00",
        b"99/99/9999 99:99:99",
        b"",
        b"0",
        b"65535",
        b"65536",
        b"-1",
        b"4294967297",
        b"a.txt",
        b"a b",
        b"\t",
        b"\xff\xfe",
        b"\xc3\xa9",
        b"\xed\xa0\x80",
    ];
    match rng.below(4) {
        0 => {
            let len = rng.below(1200);
            rng.bytes(len)
        }
        1 => {
            let mut out = rng.pick(&OpCode::ALL).as_str().as_bytes().to_vec();
            out.push(0);
            let len = rng.below(700);
            for b in rng.bytes(len) {
                out.push(if b % 16 == 0 { 0 } else { b });
            }
            out
        }
        2 => {
            let mut out = Vec::new();
            for _ in 0..=rng.below(8) {
                match rng.below(10) {
                    0 => {
                        let len = rng.below(300);
                        out.extend(rng.bytes(len));
                    }
                    1 => out.extend(std::iter::repeat_n(b'x', 250 + rng.below(20))),
                    _ => out.extend_from_slice(rng.choose(TOKENS)),
                }
                if rng.chance(9, 10) {
                    out.push(0);
                }
            }
            out
        }
        _ => {
            let bodies = [
                RequestBody::Register,
                RequestBody::Unregister,
                connect(1 + rng.below(65535) as u16),
                RequestBody::Disconnect,
                publish("c.txt", "desc"),
                RequestBody::Delete {
                    file: file("a.txt"),
                },
                RequestBody::ListUsers,
                RequestBody::ListContent {
                    target: user("alice"),
                },
                RequestBody::GetUserInfo {
                    target: user("bob"),
                },
            ];
            let body = rng.pick(&bodies).clone();
            let name = rng.choose(&["alice", "bob", "carol", "dave"]);
            let mut out = encode(&request(name, body, rng.chance(1, 2)));
            let at = rng.below(out.len());
            match rng.below(4) {
                0 => out[at] = rng.next_u64() as u8,
                1 => {
                    out.remove(at);
                }
                2 => out.insert(at, rng.next_u64() as u8),
                _ => {
                    out.truncate(at);
                    let len = rng.below(40);
                    out.extend(rng.bytes(len));
                }
            }
            out
        }
    }
}

/// What the server must answer to `stream` followed by end of input, or
/// `None` when the stream holds a valid request (which would change state).
fn expected_reply(stream: &[u8]) -> Option<Vec<u8>> {
    match Request::decode(stream) {
        Ok(Some(_)) => None,
        // Incomplete, then end of input: nothing to answer.
        Ok(None) => {
            assert!(stream.len() <= MAX_REQUEST_LEN);
            Some(vec![])
        }
        Err(e) => Some(e.op.map(other_error).unwrap_or_default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_random_byte_streams() {
    const STREAMS: usize = 2000;
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    let mut rng = Rng::new(0x5eed_0001);
    let mut jobs = Vec::new();
    let mut skipped = 0;
    let mut attempts = 0;
    while jobs.len() < STREAMS {
        attempts += 1;
        assert!(
            attempts < 10 * STREAMS,
            "the generator makes too many valid requests"
        );
        let stream = hostile_stream(&mut rng);
        let Some(expected) = expected_reply(&stream) else {
            skipped += 1;
            continue;
        };
        let addr = dir.addr;
        jobs.push(async move {
            let got = exchange(addr, &stream, true, PATIENCE).await;
            (stream, expected, got.reply)
        });
    }
    let mut answered = 0;
    for (stream, expected, got) in run_bounded(32, jobs).await {
        assert_eq!(
            got,
            expected,
            "reply to {:?}",
            String::from_utf8_lossy(&stream)
        );
        answered += usize::from(!got.is_empty());
    }
    // The mix exercises both outcomes, not only one.
    assert!(answered > 100, "only {answered} streams got an error byte");
    assert!(skipped < STREAMS, "{skipped} valid requests skipped");
    assert_unchanged(&dir, &before).await;
    dir.stop().await;
}

/// One valid request of each operation, in an order in which each would
/// succeed on the baseline; the caller makes both forms.
fn valid_requests(with_datetime: bool) -> Vec<Request> {
    [
        ("dave", RequestBody::Register),
        ("carol", connect(5000)),
        (
            "alice",
            RequestBody::GetUserInfo {
                target: user("bob"),
            },
        ),
        ("alice", RequestBody::ListUsers),
        (
            "alice",
            RequestBody::ListContent {
                target: user("alice"),
            },
        ),
        ("alice", publish("c.txt", "a description")),
        (
            "alice",
            RequestBody::Delete {
                file: file("a.txt"),
            },
        ),
        ("bob", RequestBody::Disconnect),
        ("carol", RequestBody::Unregister),
    ]
    .into_iter()
    .map(|(name, body)| request(name, body, with_datetime))
    .collect()
}

/// Every strict prefix of every valid request (both forms).
fn every_cut() -> Vec<Vec<u8>> {
    let mut cuts = Vec::new();
    for with_datetime in [false, true] {
        for req in valid_requests(with_datetime) {
            let bytes = encode(&req);
            for cut in 0..bytes.len() {
                cuts.push(bytes[..cut].to_vec());
            }
        }
    }
    cuts
}

/// Each valid request, whole, succeeds afterwards: the cuts were requests
/// that would have changed the directory.
async fn assert_whole_requests_succeed(dir: &Directory) {
    for req in valid_requests(true) {
        let reply = dir.call(&req).await;
        assert!(reply.is_ok(), "{req:?} answered {reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_request_cut_at_every_byte_and_closed() {
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    let cuts = every_cut();
    assert!(cuts.len() > 500);
    let jobs: Vec<_> = cuts
        .into_iter()
        .map(|cut| {
            let addr = dir.addr;
            async move { (exchange(addr, &cut, true, PATIENCE).await.reply, cut) }
        })
        .collect();
    for (reply, cut) in run_bounded(32, jobs).await {
        assert_eq!(
            reply,
            b"",
            "a request cut after {:?} and closed gets no reply",
            String::from_utf8_lossy(&cut)
        );
    }
    assert_unchanged(&dir, &before).await;
    assert_whole_requests_succeed(&dir).await;
    dir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_request_cut_at_every_byte_and_left_to_time_out() {
    let (dir, before) = baseline(config_with_read_timeout(Duration::from_secs(1))).await;
    let cuts = every_cut();
    let jobs: Vec<_> = cuts
        .into_iter()
        .map(|cut| {
            let addr = dir.addr;
            async move { (exchange(addr, &cut, false, PATIENCE).await.reply, cut) }
        })
        .collect();
    let mut answered = 0;
    // Many at once: each waits for the read timeout.
    for (reply, cut) in run_bounded(256, jobs).await {
        // At the read timeout: the OP's other error when the OP field is
        // complete, else a close.
        let expected = op_of(&cut).map(other_error).unwrap_or_default();
        assert_eq!(
            reply,
            expected,
            "a request cut after {:?} and left open",
            String::from_utf8_lossy(&cut)
        );
        answered += usize::from(!reply.is_empty());
    }
    assert!(answered > 300, "{answered} cuts answered");
    assert_unchanged(&dir, &before).await;
    assert_whole_requests_succeed(&dir).await;
    dir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ops_are_closed_without_a_reply() {
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    // Each has a complete OP field (NUL-terminated, or longer than any OP),
    // so the server can decide without waiting for more bytes.
    let cases: &[&[u8]] = &[
        b"FOO\0alice\0",
        b"register\0alice\0",
        b"Register\0alice\0",
        b"REGISTERX\0alice\0",
        b"REGISTER \0alice\0",
        b" REGISTER\0alice\0",
        b"REGISTER\n\0alice\0",
        b"REGISTER\xc0\x80\0alice\0",
        b"GET_FILE\0a.txt\0",
        b"QUIT\0",
        b"\0alice\0",
        b"\0\0\0\0",
        b"\xff\xfe\xfd\0alice\0",
        b"GET_USER_INFOX",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"\x80\x00\x00\x28\x00\x00\x00\x01",
    ];
    for case in cases {
        let got = exchange(dir.addr, case, false, PATIENCE).await;
        assert_eq!(
            got.reply,
            b"",
            "unknown OP {:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_unchanged(&dir, &before).await;
    dir.stop().await;
}

/// A client that writes something after its request (a stray newline, a
/// second request) still gets its whole reply and an orderly end of stream.
/// The bytes it added may still be unread when the server closes, and closing
/// a socket with unread input sends a reset: the reply and the FIN must be on
/// their way before that, or the client sees a reset instead of its reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_request_do_not_cost_the_reply() {
    const CLIENTS: usize = 400;
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    let list = encode(&request(
        "bob",
        RequestBody::ListContent {
            target: user("alice"),
        },
        true,
    ));
    let clean = exchange(dir.addr, &list, true, PATIENCE).await;
    assert!(
        matches!(
            Reply::decode_with(OpCode::ListContent, &clean.reply),
            Ok(Some((Reply::ListContent(ListContentReply::Ok(ref files)), _))) if files.len() == 2
        ),
        "the listing of alice's two files, got {:?}",
        clean.reply
    );
    let jobs = (0..CLIENTS)
        .map(|i| {
            let list = list.clone();
            let addr = dir.addr;
            async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(&list).await.unwrap();
                // A separate write, so it may arrive after the server read
                // the request. Half the clients add a whole second request.
                let extra: &[u8] = if i % 2 == 0 { b"\n" } else { &list };
                let _ = stream.write_all(extra).await;
                let mut reply = Vec::new();
                let end = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await;
                (reply, end.map(|r| r.map_err(|e| e.kind())))
            }
        })
        .collect();
    for (i, (reply, end)) in run_bounded(16, jobs).await.into_iter().enumerate() {
        assert_eq!(end, Ok(Ok(clean.reply.len())), "client {i}: end of stream");
        assert_eq!(reply, clean.reply, "client {i}: reply");
    }
    assert_unchanged(&dir, &before).await;
    dir.stop().await;
}

/// A client that sends `head` at once, then `tail` one byte per `pace`, until
/// the server answers or closes. Returns what the server sent. `answered` is
/// set as soon as the server sent anything or closed.
async fn trickle(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    tail: Vec<u8>,
    pace: Duration,
    answered: Arc<AtomicBool>,
) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let _ = writer.write_all(&head).await;
    let mut ticks = tokio::time::interval(pace);
    ticks.tick().await;
    let mut tail = tail.into_iter();
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    // Bounded: the tail is finite, and after it the server's read timeout
    // (or the client's patience) ends the exchange.
    let deadline = tokio::time::sleep(pace * 60 + PATIENCE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered.store(true, Ordering::SeqCst);
                    reply.extend_from_slice(&buf[..n]);
                }
            },
            _ = ticks.tick() => {
                if let Some(b) = tail.next() {
                    let _ = writer.write_all(&[b]).await;
                }
            }
            () = &mut deadline => panic!("the server neither answered nor closed a slow client"),
        }
    }
    answered.store(true, Ordering::SeqCst);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_does_not_hold_up_others_and_is_dropped_at_the_read_timeout() {
    const PACE: Duration = Duration::from_secs(1);
    let slow_register = || {
        (
            b"REGISTER\0".to_vec(),
            b"slowpoke-with-a-name-long-enough-to-take-a-while\0".to_vec(),
        )
    };

    // Phase 1: a read timeout far away. While two clients trickle, others
    // are served at once.
    let (dir, before) = baseline(config_with_read_timeout(LONG_READ_TIMEOUT)).await;
    let mut slow = Vec::new();
    for (head, tail) in [slow_register(), (b"".to_vec(), b"REG".to_vec())] {
        let answered = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(trickle(dir.addr, head, tail, PACE, answered.clone()));
        slow.push((task, answered));
    }
    for _ in 0..10 {
        assert_serving(&dir).await;
        let req = request("mallory", RequestBody::Register, true);
        dir.expect(&req, RegisterResult::Ok).await;
        let req = request("mallory", RequestBody::Unregister, false);
        dir.expect(&req, p2p_proto::directory::UnregisterResult::Ok)
            .await;
    }
    for (task, answered) in slow {
        assert!(
            !answered.load(Ordering::SeqCst),
            "a slow client was answered before its request was complete or timed out"
        );
        task.abort();
    }
    assert_unchanged(&dir, &before).await;
    dir.stop().await;

    // Phase 2: a short read timeout drops them.
    let (dir, before) = baseline(config_with_read_timeout(Duration::from_secs(2))).await;
    let cases = [
        // The OP is complete: answered REGISTER's other error.
        (slow_register(), other_error(OpCode::Register)),
        // The OP never completes in time: closed.
        ((b"".to_vec(), b"REGISTER\0x\0".to_vec()), vec![]),
        // A complete OP and a stalled TARGET.
        (
            (b"LIST_CONTENT\0alice\0al".to_vec(), vec![]),
            other_error(OpCode::ListContent),
        ),
        // Nothing at all.
        ((vec![], vec![]), vec![]),
    ];
    let mut tasks = Vec::new();
    for ((head, tail), expected) in cases {
        let task = tokio::spawn(trickle(
            dir.addr,
            head.clone(),
            tail,
            PACE,
            Arc::new(AtomicBool::new(false)),
        ));
        tasks.push((task, head, expected));
    }
    // Served meanwhile.
    assert_serving(&dir).await;
    for (task, head, expected) in tasks {
        let got = task.await.unwrap();
        assert_eq!(
            got,
            expected,
            "slow client starting {:?}",
            String::from_utf8_lossy(&head)
        );
    }
    assert_unchanged(&dir, &before).await;
    dir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_connections_than_the_cap_wait_and_the_server_recovers() {
    const CAP: usize = 8;
    const IDLE: usize = 50;
    let mut config = config_with_read_timeout(Duration::from_secs(1));
    config.max_connections = CAP;
    let (dir, before) = baseline(config).await;

    // 50 idle connections: 8 are served (and time out), the rest wait.
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(
            TcpStream::connect(dir.addr)
                .await
                .expect("extra connections wait in the backlog, they are not refused"),
        );
    }
    let mut valid = tokio::spawn({
        let client = dir.client();
        async move {
            client
                .call(&request("capuser", RequestBody::Register, true))
                .await
        }
    });
    // The cap holds: the request queued behind the idle connections is not
    // served while they occupy every slot (a correct server cannot answer
    // within this window: the first slot frees after the 1 s read timeout).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut valid)
            .await
            .is_err(),
        "a request was served although {CAP} idle connections held every slot"
    );
    assert_eq!(snapshot(&*dir.store, NAMES).await, before);

    // Each idle connection is closed at its read timeout, without a byte.
    let closes: Vec<_> = idle
        .into_iter()
        .map(|mut stream| async move {
            let mut buf = Vec::new();
            tokio::time::timeout(support::WAIT * 2, stream.read_to_end(&mut buf))
                .await
                .expect("an idle connection is closed at its read timeout")
                .ok();
            buf
        })
        .collect();
    for got in run_bounded(IDLE, closes).await {
        assert_eq!(got, b"", "an idle connection got bytes");
    }
    // The queued request is then served.
    let reply = tokio::time::timeout(support::WAIT, valid)
        .await
        .expect("the queued request is served once the idle connections are gone")
        .unwrap()
        .expect("a reply");
    assert_eq!(reply, RegisterResult::Ok.into());

    // And a burst larger than the cap is served.
    let jobs: Vec<_> = (0..4 * CAP)
        .map(|i| {
            let client = dir.client();
            async move {
                let req = request(
                    if i % 2 == 0 { "alice" } else { "bob" },
                    RequestBody::ListContent {
                        target: user("alice"),
                    },
                    i % 3 == 0,
                );
                client.call(&req).await.expect("a reply")
            }
        })
        .collect();
    for reply in run_bounded(4 * CAP, jobs).await {
        assert_eq!(
            reply,
            ListContentReply::Ok(vec![file("a.txt"), file("b.txt")]).into()
        );
    }
    let mut after = snapshot(&*dir.store, NAMES).await;
    // The one valid request changed exactly what it says.
    assert_eq!(after.users.remove("capuser"), Some(Some(vec![])));
    after.stats.users -= 1;
    let mut expected = before.clone();
    expected.users.remove("capuser");
    assert_eq!(after, expected);
    dir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_its_list_reply() {
    const FILES: usize = 40_000;
    let mut config = config_with_read_timeout(Duration::from_secs(5));
    config.write_timeout = Duration::from_secs(2);
    let (dir, _) = baseline(config).await;
    // A big listing (about 8 MB), built through the store's own operations.
    let dave = user("dave");
    assert_eq!(dir.store.register(&dave), RegisterResult::Ok);
    assert_eq!(
        dir.store.connect(&dave, local(4002)),
        p2p_proto::directory::ConnectResult::Ok
    );
    let names: Vec<_> = (0..FILES)
        .map(|i| file(&format!("{i:06}-{}", "x".repeat(190))))
        .collect();
    for name in &names {
        assert_eq!(
            dir.store.publish(&dave, name, &desc("")),
            p2p_proto::directory::PublishResult::Ok
        );
    }
    let before = snapshot(&*dir.store, NAMES).await;
    let list = encode(&request(
        "bob",
        RequestBody::ListContent {
            target: user("dave"),
        },
        true,
    ));
    let full = support::encode_reply(&ListContentReply::Ok(names.clone()).into());
    assert!(full.len() > 7 * MIB);

    // The hostile client asks and never reads.
    let mut stuck = TcpStream::connect(dir.addr).await.unwrap();
    stuck.write_all(&list).await.unwrap();

    // Meanwhile other clients are served, including one that reads the same
    // big listing whole.
    assert_unchanged(&dir, &before).await;
    let got = exchange(dir.addr, &list, false, support::WAIT).await;
    assert_eq!(got.reply.len(), full.len(), "a reading client gets it all");
    assert!(got.reply == full, "a reading client gets the right listing");
    assert_unchanged(&dir, &before).await;

    // The server gives up on the stuck client at its write timeout: shutting
    // down (which waits for every connection) completes.
    dir.stop().await;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(support::WAIT, stuck.read_to_end(&mut received)).await;
    assert!(
        received.len() < full.len(),
        "the stuck client was dropped, not served to the end"
    );
}
