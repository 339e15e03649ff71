//! The log service over real sockets on 127.0.0.1 (rpcbind registration off).

mod support;

use std::time::Duration;

use p2p_core::log::LogServiceConfig;
use support::{LogHarness, RpcClient, WAIT, entry, failure};

use p2p_proto::Encode;
use p2p_proto::rpc::log::{
    LOG_PROG, LOG_VERS, LogEntry, SENDLOG, decode_null_reply, decode_sendlog_reply, null_call,
    sendlog_call,
};
use p2p_proto::rpc::message::{AcceptStat, CallFailure, RpcMessage};
use p2p_proto::rpc::record::{RecordMark, encode_record};
use tokio::net::UdpSocket;

/// Captured from an rpcgen client: SENDLOG("alice","PUBLISH","24/11/2026 19:40:12","song.mp3").
const CALL_TCP: &str = "80000064 d4c4f146 00000000 00000002 20000099 00000001 00000001 00000000
    00000000 00000000 00000000 00000005 616c6963 65000000 00000007 5055424c 49534800 00000013
    32342f31 312f3230 32362031 393a3430 3a313200 00000008 736f6e67 2e6d7033";
/// Captured from the rpcgen server: its reply.
const REPLY_TCP: &str = "8000001c d4c4f146 00000001 00000000 00000000 00000000 00000000 00000000";
/// SENDLOG("bob","CONNECT","24/11/2026 19:40:13","") over UDP, and the reply.
const CALL_UDP: &str = "6b0e4e89 00000000 00000002 20000099 00000001 00000001 00000000 00000000
    00000000 00000000 00000003 626f6200 00000007 434f4e4e 45435400 00000013 32342f31 312f3230
    32362031 393a3430 3a313300 00000000";
const REPLY_UDP: &str = "6b0e4e89 00000001 00000000 00000000 00000000 00000000 00000000";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn call_with(prog: u32, vers: u32, procedure: u32, args: &LogEntry) -> Vec<u8> {
    let mut msg = Vec::new();
    RpcMessage::call(77, prog, vers, procedure).encode(&mut msg);
    args.encode(&mut msg);
    msg
}

#[tokio::test]
async fn tcp_null_and_captured_sendlog() {
    let mut service = LogHarness::start(4096).await;
    let mut client = RpcClient::connect(service.tcp).await;
    client.send(&encoded(&null_call(1))).await;
    let reply = client.recv().await.unwrap();
    assert_eq!(decode_null_reply(&reply).unwrap(), Some((1, Ok(()))));

    client.send_raw(&hex(CALL_TCP)).await;
    let reply = client.recv().await.unwrap();
    let mut framed = Vec::new();
    encode_record(&reply, &mut framed);
    assert_eq!(
        framed,
        hex(REPLY_TCP),
        "byte-identical to the rpcgen server's reply"
    );
    assert_eq!(
        service.line().await,
        "alice PUBLISH song.mp3 24/11/2026 19:40:12"
    );
    drop(client);
    service.finish().await;
}

#[tokio::test]
async fn udp_null_and_captured_sendlog() {
    let mut service = LogHarness::start(4096).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(service.udp).await.unwrap();
    let mut buf = vec![0; 2048];

    socket.send(&encoded(&null_call(5))).await.unwrap();
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decode_null_reply(&buf[..n]).unwrap(), Some((5, Ok(()))));

    // A malformed datagram gets no reply; the next call is served normally.
    socket
        .send(b"\x00\x00\x00\x01\x00\x00\x00\x00")
        .await
        .unwrap();
    socket.send(&hex(CALL_UDP)).await.unwrap();
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &hex(REPLY_UDP)[..]);
    assert_eq!(service.line().await, "bob CONNECT 24/11/2026 19:40:13");

    // Errors over UDP too.
    let e = entry("u", "OP", "");
    socket
        .send(&call_with(LOG_PROG, 2, SENDLOG, &e))
        .await
        .unwrap();
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failure(&buf[..n]),
        CallFailure::Accepted {
            stat: AcceptStat::ProgMismatch { low: 1, high: 1 }
        }
    );
    service.finish().await;
}

#[tokio::test]
async fn errors_pipelined_and_answered_in_order() {
    let mut service = LogHarness::start(4096).await;
    let mut client = RpcClient::connect(service.tcp).await;
    let e = entry("carol", "DELETE", "x.txt");
    let mut over = Vec::new();
    RpcMessage::call(77, LOG_PROG, LOG_VERS, SENDLOG).encode(&mut over);
    for s in ["u".repeat(257).as_str(), "OP", "t", ""] {
        p2p_proto::xdr::put_string(&mut over, s);
    }
    let mut truncated = encoded(&sendlog_call(77, &e));
    truncated.truncate(truncated.len() - 4);
    // All written at once, before reading any reply.
    let mut wire = Vec::new();
    for msg in [
        call_with(LOG_PROG, 2, SENDLOG, &e),
        call_with(LOG_PROG, LOG_VERS, 2, &e),
        call_with(0x2000_0098, LOG_VERS, SENDLOG, &e),
        over,
        truncated,
        encoded(&sendlog_call(78, &e)),
    ] {
        encode_record(&msg, &mut wire);
    }
    client.send_raw(&wire).await;
    let expected = [
        AcceptStat::ProgMismatch { low: 1, high: 1 },
        AcceptStat::ProcUnavail,
        AcceptStat::ProgUnavail,
        AcceptStat::GarbageArgs,
        AcceptStat::GarbageArgs,
    ];
    for stat in expected {
        let reply = client.recv().await.unwrap();
        assert_eq!(failure(&reply), CallFailure::Accepted { stat });
    }
    let reply = client.recv().await.unwrap();
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((78, Ok(0))));
    // Only the valid call was printed.
    assert_eq!(
        service.line().await,
        "carol DELETE x.txt 24/11/2026 19:40:12"
    );
    service.finish().await;
}

#[tokio::test]
async fn three_fragments() {
    let mut service = LogHarness::start(4096).await;
    let mut client = RpcClient::connect(service.tcp).await;
    let msg = encoded(&sendlog_call(9, &entry("dave", "PUBLISH", "a b.mp3")));
    let mut wire = Vec::new();
    for (part, last) in [(&msg[..3], false), (&msg[3..41], false), (&msg[41..], true)] {
        let mark = RecordMark {
            last,
            len: part.len() as u32,
        };
        wire.extend_from_slice(&mark.to_bytes());
        wire.extend_from_slice(part);
    }
    // Byte by byte, to exercise reassembly across reads.
    for b in wire {
        client.send_raw(&[b]).await;
    }
    let reply = client.recv().await.unwrap();
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((9, Ok(0))));
    assert_eq!(
        service.line().await,
        "dave PUBLISH a b.mp3 24/11/2026 19:40:12"
    );
    service.finish().await;
}

#[tokio::test]
async fn closes_without_reply() {
    let mut service = LogHarness::start(4096).await;
    // An oversized record mark: closed at once, without the announced bytes being sent.
    let mut client = RpcClient::connect(service.tcp).await;
    client.send_raw(&0x8010_0000u32.to_be_bytes()).await;
    assert!(client.recv().await.is_none());

    // rpcvers 3.
    let mut client = RpcClient::connect(service.tcp).await;
    let mut msg = encoded(&sendlog_call(3, &entry("e", "OP", "")));
    msg[8..12].copy_from_slice(&3u32.to_be_bytes());
    client.send(&msg).await;
    assert!(client.recv().await.is_none());

    // An empty middle fragment.
    let mut client = RpcClient::connect(service.tcp).await;
    let mut wire = Vec::new();
    wire.extend_from_slice(
        &RecordMark {
            last: false,
            len: 4,
        }
        .to_bytes(),
    );
    wire.extend_from_slice(&[0, 0, 0, 1]);
    wire.extend_from_slice(
        &RecordMark {
            last: false,
            len: 0,
        }
        .to_bytes(),
    );
    client.send_raw(&wire).await;
    assert!(client.recv().await.is_none());

    // A reply sent to the server.
    let mut client = RpcClient::connect(service.tcp).await;
    client.send_raw(&hex(REPLY_TCP)).await;
    assert!(client.recv().await.is_none());

    // The service still serves.
    let mut client = RpcClient::connect(service.tcp).await;
    client
        .send(&encoded(&sendlog_call(4, &entry("f", "OP", ""))))
        .await;
    assert!(client.recv().await.is_some());
    assert_eq!(service.line().await, "f OP 24/11/2026 19:40:12");
    service.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lines_whole() {
    const CLIENTS: usize = 16;
    const RECORDS: usize = 100;
    let mut service = LogHarness::start(4096).await;
    let addr = service.tcp;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            let mut client = RpcClient::connect(addr).await;
            // Long fields, so that a torn write would show.
            let file = format!("{c:02}-{}", "f".repeat(250));
            let mut wire = Vec::new();
            for r in 0..RECORDS {
                let e = LogEntry::new(&format!("user{c:02}"), "PUBLISH", &format!("{r:04}"), &file)
                    .unwrap();
                encode_record(&encoded(&sendlog_call(r as u32, &e)), &mut wire);
            }
            client.send_raw(&wire).await;
            for r in 0..RECORDS {
                let reply = client.recv().await.unwrap();
                assert_eq!(
                    decode_sendlog_reply(&reply).unwrap(),
                    Some((r as u32, Ok(0)))
                );
            }
        }));
    }
    let mut next = [0usize; CLIENTS];
    for _ in 0..CLIENTS * RECORDS {
        let line = service.line().await;
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "torn line: {line}");
        let c: usize = fields[0].strip_prefix("user").unwrap().parse().unwrap();
        assert_eq!(fields[1], "PUBLISH");
        assert_eq!(fields[2], format!("{c:02}-{}", "f".repeat(250)));
        // Each client's records appear in the order it sent them.
        assert_eq!(fields[3], format!("{:04}", next[c]));
        next[c] += 1;
    }
    for c in clients {
        c.await.unwrap();
    }
    service.finish().await;
}

/// A connection busy polling for a minute (on this single-threaded runtime, which also runs the
/// test) still leaves the service to every other caller: UDP, a new connection, its own next
/// calls, and a stop.
#[tokio::test]
async fn a_busy_polling_connection_holds_up_no_other_caller() {
    let mut config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
    config.busy_poll = Duration::from_secs(60);
    // A poll that held the runtime would show as a stall of a minute, which every await below
    // would otherwise wait out and pass.
    let started = std::time::Instant::now();
    let mut service = LogHarness::start_with(config).await;
    let mut alone = RpcClient::connect(service.tcp).await;
    for round in 0..3 {
        logged(&mut alone, &mut service, round, ("alone", "PUBLISH", "f")).await;
    }
    // `alone` is now polling its socket, for up to a minute.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(service.udp).await.unwrap();
    socket
        .send(&encoded(&sendlog_call(10, &entry("udp", "CONNECT", ""))))
        .await
        .unwrap();
    let mut buf = vec![0; 2048];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("a UDP call is answered beside a busy poll")
        .unwrap();
    assert_eq!(decode_sendlog_reply(&buf[..n]).unwrap(), Some((10, Ok(0))));
    assert_eq!(service.line().await, "udp CONNECT 24/11/2026 19:40:12");
    let mut other = RpcClient::connect(service.tcp).await;
    logged(&mut other, &mut service, 20, ("other", "DELETE", "f")).await;
    logged(&mut alone, &mut service, 30, ("alone", "DISCONNECT", "")).await;
    drop(other);
    // Alone again: one more call starts another minute-long poll, which the stop cuts short
    // (`finish` fails unless the service stops within WAIT).
    logged(&mut alone, &mut service, 40, ("alone", "UNREGISTER", "")).await;
    service.finish().await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the busy poll held up the runtime: {:?}",
        started.elapsed()
    );
}

/// Makes a SENDLOG call of `(user, op, file)` and checks its reply and its line.
async fn logged(
    client: &mut RpcClient,
    service: &mut LogHarness,
    xid: u32,
    (user, op, file): (&str, &str, &str),
) {
    client
        .send(&encoded(&sendlog_call(xid, &entry(user, op, file))))
        .await;
    let reply = client.recv().await.expect("answered");
    assert_eq!(decode_sendlog_reply(&reply).unwrap(), Some((xid, Ok(0))));
    let line = [user, op, file, "24/11/2026 19:40:12"]
        .into_iter()
        .filter(|field| !field.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(service.line().await, line);
}

/// What a call encodes to.
fn encoded(message: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}
