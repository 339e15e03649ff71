//! Hostile callers against the log service running in this process
//! (PROTOCOL.md §4, /work/shared/RPCBIND.md's list of libtirpc's edge
//! behaviour). After every attack a valid caller is still served.
//!
//! `log_service.rs` already covers, over TCP: version 2 → PROG_MISMATCH(1,1),
//! procedure 2 → PROC_UNAVAIL, unknown program → PROG_UNAVAIL, an over-long
//! user and one truncation → GARBAGE_ARGS (pipelined), rpcvers 3 → closed, a
//! huge record mark → closed, an empty middle fragment → closed, a reply sent
//! to the service → closed, a 3-fragment call → answered; over UDP: version 2
//! and one malformed datagram. This file covers the rest: every string field
//! at and over its bound and a huge announced length, every truncation of the
//! arguments and of the call header, each error over UDP, record-size limits
//! (exact, one over, many small fragments adding up), one-byte fragments and
//! an empty last fragment, credentials, thousands of garbage datagrams and
//! records, and a caller that never reads its replies.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use p2p_core::log::LogServiceConfig;
use p2p_proto::Encode;
use p2p_proto::rpc::log::{
    Dispatch, LOG_PROG, LOG_VERS, SENDLOG, decode_null_reply, decode_sendlog_reply, dispatch,
    null_call, sendlog_call,
};
use p2p_proto::rpc::message::{
    AcceptStat, AuthStat, CallFailure, MessageBody, OpaqueAuth, RejectedReply, RpcMessage,
};
use p2p_proto::rpc::record::{RecordMark, encode_record};
use p2p_proto::xdr;
use support::{LogHarness, Rng, RpcClient, WAIT, entry, failure, run_bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// The largest record the service accepts in these tests.
const MAX_RECORD: usize = 4096;

/// A TCP caller; the service may close on it at any time.
async fn connect(addr: SocketAddr) -> RpcClient {
    RpcClient::connect(addr).await.tolerating_close()
}

fn garbage_args() -> CallFailure {
    CallFailure::Accepted {
        stat: AcceptStat::GarbageArgs,
    }
}

/// A SENDLOG call with raw string fields (bounds unchecked).
fn sendlog_raw(xid: u32, fields: [&[u8]; 4]) -> Vec<u8> {
    let mut msg = Vec::new();
    RpcMessage::call(xid, LOG_PROG, LOG_VERS, SENDLOG).encode(&mut msg);
    for field in fields {
        xdr::put_u32(&mut msg, field.len() as u32);
        msg.extend_from_slice(field);
        msg.extend(std::iter::repeat_n(0, xdr::pad_len(field.len())));
    }
    msg
}

/// The length of a call header with AUTH_NONE (the arguments follow it).
fn header_len() -> usize {
    RpcMessage::call(0, LOG_PROG, LOG_VERS, SENDLOG).encoded_len()
}

/// Asserts that a TCP caller and a UDP caller are both still served, and
/// that their records are printed.
async fn assert_serving(service: &LogHarness, tag: &str) {
    let before = service.lines().len();
    let mut client = connect(service.tcp).await;
    client
        .send(&encoded(&sendlog_call(0x7777, &entry(tag, "TCP", ""))))
        .await;
    let reply = client.recv().await.expect("a reply to a valid call");
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((0x7777, Ok(0))));
    let socket = udp_socket(service).await;
    let reply = udp_call(
        &socket,
        &encoded(&sendlog_call(0x7778, &entry(tag, "UDP", ""))),
    )
    .await;
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((0x7778, Ok(0))));
    let lines = service.wait_lines(before + 2).await;
    assert_eq!(
        lines[before..],
        [
            format!("{tag} TCP 24/11/2026 19:40:12"),
            format!("{tag} UDP 24/11/2026 19:40:12")
        ]
    );
}

async fn udp_socket(service: &LogHarness) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(service.udp).await.unwrap();
    socket
}

/// Sends one datagram and returns the reply.
async fn udp_call(socket: &UdpSocket, msg: &[u8]) -> Vec<u8> {
    socket.send(msg).await.unwrap();
    let mut buf = vec![0; 70_000];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("a UDP reply in time")
        .unwrap();
    buf.truncate(n);
    buf
}

/// Sends `msg`, then a NULL call with xid `sentinel`, and returns every
/// reply that came before the sentinel's (the service serves datagrams in
/// order, so whatever `msg` caused is among them).
async fn udp_exchange(socket: &UdpSocket, msg: &[u8], sentinel: u32) -> Vec<Vec<u8>> {
    socket.send(msg).await.unwrap();
    socket.send(&encoded(&null_call(sentinel))).await.unwrap();
    let mut before = Vec::new();
    let mut buf = vec![0; 70_000];
    loop {
        let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
            .await
            .expect("the sentinel's reply in time")
            .unwrap();
        if decode_null_reply(&buf[..n]).ok().flatten() == Some((sentinel, Ok(()))) {
            return before;
        }
        before.push(buf[..n].to_vec());
        assert!(before.len() <= 1, "one datagram got several replies");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_string_at_and_over_its_bound() {
    // The same call twice on purpose: no duplicate-request cache.
    let service = LogHarness::start_without_replay_cache(MAX_RECORD).await;
    let socket = udp_socket(&service).await;
    let bounds = [256usize, 64, 32, 256];
    let mut expected_lines = Vec::new();
    for (field, &bound) in bounds.iter().enumerate() {
        for (len, ok) in [(bound, true), (bound + 1, false)] {
            let long = vec![b'w'; len];
            let mut fields: [&[u8]; 4] = [b"u", b"OP", b"t", b""];
            fields[field] = &long;
            let msg = sendlog_raw(field as u32, fields);
            // TCP.
            let mut client = connect(service.tcp).await;
            client.send(&msg).await;
            let reply = client.recv().await.expect("a reply");
            // UDP.
            let udp_reply = udp_call(&socket, &msg).await;
            if ok {
                assert_eq!(
                    decode_sendlog_reply(&reply).unwrap(),
                    Some((field as u32, Ok(0)))
                );
                assert_eq!(udp_reply, reply.to_vec());
                let text: Vec<String> = fields
                    .iter()
                    .map(|f| String::from_utf8(f.to_vec()).unwrap())
                    .collect();
                let line = if text[3].is_empty() {
                    format!("{} {} {}", text[0], text[1], text[2])
                } else {
                    format!("{} {} {} {}", text[0], text[1], text[3], text[2])
                };
                expected_lines.push(line.clone());
                expected_lines.push(line);
            } else {
                assert_eq!(
                    failure(&reply),
                    garbage_args(),
                    "field {field} of {len} bytes"
                );
                assert_eq!(
                    failure(&udp_reply),
                    garbage_args(),
                    "field {field} over UDP"
                );
            }
        }
        // A length near 2^32, with no bytes behind it: refused on the length.
        let mut msg = Vec::new();
        RpcMessage::call(99, LOG_PROG, LOG_VERS, SENDLOG).encode(&mut msg);
        for _ in 0..field {
            xdr::put_string(&mut msg, "x");
        }
        xdr::put_u32(&mut msg, u32::MAX - 3);
        let mut client = connect(service.tcp).await;
        client.send(&msg).await;
        assert_eq!(failure(&client.recv().await.unwrap()), garbage_args());
        assert_eq!(failure(&udp_call(&socket, &msg).await), garbage_args());
    }
    assert_eq!(
        service.wait_lines(expected_lines.len()).await,
        expected_lines
    );
    assert_serving(&service, "bounds").await;
    let lines = service.stop().await;
    assert_eq!(
        lines.len(),
        expected_lines.len() + 2,
        "nothing else was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_truncation_of_the_arguments_gets_garbage_args() {
    let service = LogHarness::start(MAX_RECORD).await;
    let full = encoded(&sendlog_call(1, &entry("alice", "PUBLISH", "song.mp3")));
    let header = header_len();
    // All pipelined on one connection, and each as a datagram.
    let mut wire = Vec::new();
    for cut in header..full.len() {
        encode_record(&full[..cut], &mut wire);
    }
    let mut client = connect(service.tcp).await;
    client.send_raw(&wire).await;
    for cut in header..full.len() {
        let reply = client.recv().await.expect("a reply to each truncated call");
        assert_eq!(failure(&reply), garbage_args(), "arguments cut at {cut}");
    }
    let socket = udp_socket(&service).await;
    for cut in header..full.len() {
        let reply = udp_call(&socket, &full[..cut]).await;
        assert_eq!(failure(&reply), garbage_args(), "datagram cut at {cut}");
    }
    assert!(service.lines().is_empty(), "a truncated call was printed");
    assert_serving(&service, "truncated").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_truncation_of_the_call_header_is_dropped() {
    let service = LogHarness::start(MAX_RECORD).await;
    let full = encoded(&sendlog_call(1, &entry("alice", "PUBLISH", "song.mp3")));
    let socket = udp_socket(&service).await;
    for cut in 0..header_len() {
        // TCP: a record holding a partial header closes the connection.
        let mut client = connect(service.tcp).await;
        client.send(&full[..cut]).await;
        assert!(client.recv().await.is_none(), "header cut at {cut}: closed");
        // UDP: dropped.
        let replies = udp_exchange(&socket, &full[..cut], 0x5e00_0000 + cut as u32).await;
        assert!(
            replies.is_empty(),
            "header cut at {cut} over UDP: {replies:?}"
        );
    }
    assert!(service.lines().is_empty());
    assert_serving(&service, "header").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_over_udp() {
    let service = LogHarness::start(MAX_RECORD).await;
    let socket = udp_socket(&service).await;
    let e = entry("u", "OP", "");
    let call_with = |prog, vers, procedure| {
        let mut msg = Vec::new();
        RpcMessage::call(5, prog, vers, procedure).encode(&mut msg);
        e.encode(&mut msg);
        msg
    };
    let cases = [
        (
            call_with(0x2000_0098, LOG_VERS, SENDLOG),
            AcceptStat::ProgUnavail,
        ),
        (
            call_with(LOG_PROG, 0, SENDLOG),
            AcceptStat::ProgMismatch { low: 1, high: 1 },
        ),
        (call_with(LOG_PROG, LOG_VERS, 2), AcceptStat::ProcUnavail),
        (
            call_with(LOG_PROG, LOG_VERS, u32::MAX),
            AcceptStat::ProcUnavail,
        ),
    ];
    for (msg, stat) in cases {
        assert_eq!(
            failure(&udp_call(&socket, &msg).await),
            CallFailure::Accepted { stat }
        );
    }
    // rpcvers 3 and a reply sent to the service: dropped without a reply.
    let mut wrong_rpcvers = encoded(&sendlog_call(6, &e));
    wrong_rpcvers[8..12].copy_from_slice(&3u32.to_be_bytes());
    let mut reply = Vec::new();
    RpcMessage::accepted(7, AcceptStat::Success).encode(&mut reply);
    for (i, msg) in [wrong_rpcvers, reply].iter().enumerate() {
        let replies = udp_exchange(&socket, msg, 0x6000 + i as u32).await;
        assert!(replies.is_empty(), "{replies:?}");
    }
    assert!(service.lines().is_empty());
    assert_serving(&service, "udp").await;
    service.stop().await;
}

/// A SENDLOG call padded with trailing bytes to exactly `len` bytes.
fn call_of_len(xid: u32, len: usize) -> Vec<u8> {
    let mut msg = encoded(&sendlog_call(xid, &entry("pad", "OP", "")));
    assert!(msg.len() <= len);
    msg.resize(len, 0);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_size_limits() {
    let service = LogHarness::start(MAX_RECORD).await;
    // Exactly the limit: served.
    let mut client = connect(service.tcp).await;
    client.send(&call_of_len(1, MAX_RECORD)).await;
    let reply = client
        .recv()
        .await
        .expect("a record of exactly the limit is served");
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((1, Ok(0))));
    assert_eq!(service.wait_lines(1).await, ["pad OP 24/11/2026 19:40:12"]);

    // One byte over, announced in one mark: closed before the bytes come.
    let mut client = connect(service.tcp).await;
    client
        .send_raw(
            &RecordMark {
                last: true,
                len: MAX_RECORD as u32 + 1,
            }
            .to_bytes(),
        )
        .await;
    assert!(client.recv().await.is_none());

    // Many small fragments adding up past the limit: closed.
    let mut client = connect(service.tcp).await;
    let msg = call_of_len(2, 2 * MAX_RECORD);
    let mut wire = Vec::new();
    for chunk in msg.chunks(100) {
        wire.extend_from_slice(
            &RecordMark {
                last: false,
                len: chunk.len() as u32,
            }
            .to_bytes(),
        );
        wire.extend_from_slice(chunk);
    }
    client.send_raw(&wire).await;
    assert!(
        client.recv().await.is_none(),
        "fragments adding up past the limit"
    );

    // The largest marks, with and without the last-fragment bit.
    for mark in [0x7fff_ffffu32, 0xffff_ffff] {
        let mut client = connect(service.tcp).await;
        client.send_raw(&mark.to_be_bytes()).await;
        assert!(client.recv().await.is_none(), "mark {mark:#x}");
    }
    assert_eq!(service.lines().len(), 1);
    assert_serving(&service, "limits").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_over_the_limit_is_not_served() {
    let service = LogHarness::start(MAX_RECORD).await;
    let socket = udp_socket(&service).await;
    // `LogServiceConfig::max_record`: "largest accepted call, in bytes (TCP
    // record or UDP datagram)". One byte over: a valid SENDLOG followed by
    // padding, so a service that cut it to the limit would see a valid call.
    let replies = udp_exchange(&socket, &call_of_len(3, MAX_RECORD + 1), 0x8000).await;
    assert!(
        replies.is_empty(),
        "a datagram over max_record was served: {replies:?}"
    );
    assert!(
        service.lines().is_empty(),
        "and printed: {:?}",
        service.lines()
    );
    assert_serving(&service, "datagram-limit").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_shapes_that_are_answered() {
    // The same call twice on purpose: no duplicate-request cache.
    let service = LogHarness::start_without_replay_cache(MAX_RECORD).await;
    let msg = encoded(&sendlog_call(11, &entry("frag", "OP", "f")));
    // Every byte its own fragment.
    let mut wire = Vec::new();
    for (i, byte) in msg.iter().enumerate() {
        let last = i + 1 == msg.len();
        wire.extend_from_slice(&RecordMark { last, len: 1 }.to_bytes());
        wire.push(*byte);
    }
    // Then the same call with an empty last fragment.
    wire.extend_from_slice(
        &RecordMark {
            last: false,
            len: msg.len() as u32,
        }
        .to_bytes(),
    );
    wire.extend_from_slice(&msg);
    wire.extend_from_slice(&RecordMark { last: true, len: 0 }.to_bytes());
    let mut client = connect(service.tcp).await;
    client.send_raw(&wire).await;
    for _ in 0..2 {
        let reply = client.recv().await.expect("answered");
        assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((11, Ok(0))));
    }
    assert_eq!(
        service.wait_lines(2).await,
        [
            "frag OP f 24/11/2026 19:40:12",
            "frag OP f 24/11/2026 19:40:12"
        ]
    );
    assert_serving(&service, "frag").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials() {
    let service = LogHarness::start(MAX_RECORD).await;
    let e = entry("cred", "OP", "");
    let with_cred = |cred: OpaqueAuth| {
        let mut header = RpcMessage::call(21, LOG_PROG, LOG_VERS, SENDLOG);
        if let MessageBody::Call(call) = &mut header.body {
            call.cred = cred;
        }
        let mut msg = Vec::new();
        header.encode(&mut msg);
        e.encode(&mut msg);
        msg
    };
    let mut sys_body = Vec::new();
    xdr::put_u32(&mut sys_body, 1); // stamp
    xdr::put_string(&mut sys_body, "host");
    xdr::put_u32(&mut sys_body, 1000); // uid
    xdr::put_u32(&mut sys_body, 1000); // gid
    xdr::put_u32(&mut sys_body, 0); // no gids
    let mut client = connect(service.tcp).await;
    // AUTH_SYS: accepted.
    client
        .send(&with_cred(OpaqueAuth::new(1, sys_body.clone()).unwrap()))
        .await;
    let reply = client.recv().await.unwrap();
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((21, Ok(0))));
    // A broken AUTH_SYS body: AUTH_BADCRED.
    client
        .send(&with_cred(OpaqueAuth::new(1, vec![0, 0, 0, 1]).unwrap()))
        .await;
    assert_eq!(
        failure(&client.recv().await.unwrap()),
        CallFailure::Denied {
            reason: RejectedReply::AuthError {
                stat: AuthStat::BadCred
            }
        }
    );
    // An unknown flavor: refused with an AUTH_ERROR.
    client
        .send(&with_cred(
            OpaqueAuth::new(0x1234, vec![1, 2, 3, 4]).unwrap(),
        ))
        .await;
    assert!(matches!(
        failure(&client.recv().await.unwrap()),
        CallFailure::Denied {
            reason: RejectedReply::AuthError { .. }
        }
    ));
    // A credential body over the 400-byte limit: the header does not decode,
    // the connection is closed.
    let mut msg = Vec::new();
    for word in [22u32, 0, 2, LOG_PROG, LOG_VERS, SENDLOG, 0, 404] {
        xdr::put_u32(&mut msg, word);
    }
    msg.extend(std::iter::repeat_n(0, 404));
    msg.extend_from_slice(&[0; 8]);
    e.encode(&mut msg);
    client.send(&msg).await;
    assert!(client.recv().await.is_none());
    assert_eq!(service.wait_lines(1).await, ["cred OP 24/11/2026 19:40:12"]);
    assert_serving(&service, "cred").await;
    service.stop().await;
}

/// A hostile message: noise, a valid call with some bytes changed, a valid
/// header with noise for arguments, or a valid call cut short.
fn hostile_message(rng: &mut Rng) -> Vec<u8> {
    let valid = encoded(&sendlog_call(
        rng.next_u64() as u32,
        &entry("rnd", "PUBLISH", "x.mp3"),
    ));
    match rng.below(4) {
        0 => {
            let len = rng.below(300);
            rng.bytes(len)
        }
        1 => {
            let mut msg = valid;
            for _ in 0..=rng.below(4) {
                let at = rng.below(msg.len());
                msg[at] = rng.next_u64() as u8;
            }
            msg
        }
        2 => {
            let mut msg = valid[..header_len()].to_vec();
            let len = rng.below(200);
            msg.extend(rng.bytes(len));
            msg
        }
        _ => {
            let cut = rng.below(valid.len());
            valid[..cut].to_vec()
        }
    }
}

/// What the service must do with `msg`: the reply bytes, or `None` for no
/// reply; and the line it prints.
fn oracle(msg: &[u8]) -> (Option<Vec<u8>>, Option<String>) {
    match dispatch(msg) {
        Dispatch::Reply { reply, entry } => (Some(encoded(&reply)), entry.map(|e| e.to_string())),
        _ => (None, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_garbage_datagrams() {
    const DATAGRAMS: usize = 3000;
    let service = LogHarness::start(MAX_RECORD).await;
    let socket = udp_socket(&service).await;
    let mut rng = Rng::new(0x5eed_0d06);
    let mut expected_lines = Vec::new();
    let mut answered = 0;
    for i in 0..DATAGRAMS {
        let msg = hostile_message(&mut rng);
        let (reply, line) = oracle(&msg);
        let got = udp_exchange(&socket, &msg, 0xa000_0000 + i as u32).await;
        assert_eq!(
            got,
            reply.into_iter().collect::<Vec<_>>(),
            "datagram {msg:02x?}"
        );
        if let Some(reply) = got.first() {
            answered += 1;
            // A reply always goes to the caller's xid.
            assert_eq!(reply[..4], msg[..4]);
        }
        expected_lines.extend(line);
    }
    assert!(answered > 300, "only {answered} datagrams were answered");
    assert_eq!(
        service.wait_lines(expected_lines.len()).await,
        expected_lines
    );
    assert_serving(&service, "udp-garbage").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_garbage_records() {
    const RECORDS: usize = 600;
    let service = LogHarness::start(MAX_RECORD).await;
    let mut rng = Rng::new(0x5eed_7c90);
    let mut jobs = Vec::new();
    let mut expected_lines = Vec::new();
    for _ in 0..RECORDS {
        let msg = hostile_message(&mut rng);
        let (reply, line) = oracle(&msg);
        expected_lines.extend(line);
        let addr = service.tcp;
        jobs.push(async move {
            let mut client = connect(addr).await;
            client.send(&msg).await;
            let got = client.recv().await.map(|r| r.to_vec());
            (msg, reply, got)
        });
    }
    for (msg, reply, got) in run_bounded(16, jobs).await {
        assert_eq!(got, reply, "record {msg:02x?}");
    }
    let mut lines = service.wait_lines(expected_lines.len()).await;
    // Connections run in parallel: compare as multisets.
    lines.sort();
    expected_lines.sort();
    assert_eq!(lines, expected_lines);
    assert_serving(&service, "tcp-garbage").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_that_never_reads_its_replies_does_not_block_others() {
    let service = LogHarness::start(MAX_RECORD).await;
    // 50 000 NULL calls, pipelined, replies never read: the service's writes
    // to this caller block once the socket buffers are full.
    let mut wire = Vec::new();
    for xid in 0..50_000 {
        encode_record(&encoded(&null_call(xid)), &mut wire);
    }
    let stuck = TcpStream::connect(service.tcp).await.unwrap();
    let writer = tokio::spawn(async move {
        let mut stuck = stuck;
        let _ = stuck.write_all(&wire).await;
        // Hold the connection open, still not reading.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(stuck);
    });
    for round in 0..5 {
        assert_serving(&service, &format!("beside-a-stuck-caller-{round}")).await;
    }
    writer.abort();
    service.stop().await;
}

/// A service with one connection slot and short limits, for the tests of what frees a slot.
async fn one_slot(idle: Duration, write: Duration) -> LogHarness {
    let mut config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
    config.max_record = MAX_RECORD;
    config.max_connections = 1;
    config.idle_timeout = idle;
    config.write_timeout = write;
    LogHarness::start_with(config).await
}

/// Reads until the service closes the connection; fails the test if it does not in time.
async fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the service kept the connection open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_unused_connection_gives_its_slot_back() {
    let service = one_slot(Duration::from_millis(300), Duration::from_secs(10)).await;
    // Half a call, then nothing: it holds the only slot until the idle limit.
    let mut framed = Vec::new();
    encode_record(
        &encoded(&sendlog_call(1, &entry("stalled", "PUBLISH", ""))),
        &mut framed,
    );
    let mut stalled = TcpStream::connect(service.tcp).await.unwrap();
    stalled
        .write_all(&framed[..framed.len() / 2])
        .await
        .unwrap();
    // The next caller is accepted once the stalled one is closed.
    assert_serving(&service, "after-a-stalled-caller").await;
    assert_closed(&mut stalled, "half a call").await;
    // A connection that never sends anything is closed the same way.
    let mut silent = TcpStream::connect(service.tcp).await.unwrap();
    assert_closed(&mut silent, "no call at all").await;
    // One that keeps calling is not, however long it lives: 10 calls, 4 idle periods.
    let mut busy = connect(service.tcp).await;
    for xid in 0..10 {
        busy.send(&encoded(&sendlog_call(
            xid,
            &entry("busy", "LIST_USERS", ""),
        )))
        .await;
        let reply = busy.recv().await.expect("the busy caller is still served");
        assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((xid, Ok(0))));
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    drop(busy);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_never_reads_its_replies_is_disconnected() {
    let service = one_slot(Duration::from_secs(60), Duration::from_millis(300)).await;
    // Enough pipelined calls that the replies (28 bytes each, 11 MB) overflow the service's send
    // buffer (at most 4 MiB by default) and this caller's receive buffer, kept small.
    const CALLS: u32 = 400_000;
    let mut wire = Vec::new();
    for xid in 0..CALLS {
        encode_record(&encoded(&null_call(xid)), &mut wire);
    }
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stuck = socket.connect(service.tcp).await.unwrap();
    let (mut reader, mut writer) = stuck.into_split();
    let sending = tokio::spawn(async move {
        // Fails once the service gives up on this caller.
        let _ = writer.write_all(&wire).await;
        writer
    });
    // Only the write limit frees the only slot for this caller.
    assert_serving(&service, "after-a-caller-that-does-not-read").await;
    // Its replies were cut short: it gets a close, not all of them.
    let mut replies = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => replies += n,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the service kept the connection open");
    assert!(
        replies < CALLS as usize * 28,
        "every reply was sent: {replies} bytes"
    );
    drop(sending.await.unwrap());
    service.stop().await;
}

/// What a call encodes to.
fn encoded(message: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}
