//! `--http`: `/metrics` of `p2p-server` and `p2p-log` counts exactly the
//! traffic they served (scraped before and after known traffic), in the
//! Prometheus text format.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{LINE_TIMEOUT, Lines, LogService, Server, temp_dir};
use p2p_proto::directory::{Reply, Request, RequestBody};
use p2p_proto::rpc::log::{LOG_PROG, LOG_VERS, LogEntry, NULLPROC, sendlog_call};
use p2p_proto::rpc::message::RpcMessage;
use p2p_proto::rpc::record::encode_record;
use p2p_proto::{Decode, Encode};

/// One scrape: `name{labels}` → value, for every sample line.
type Samples = BTreeMap<String, f64>;

/// The `http://IP:PORT` the program printed on stderr (`PROGRAM: http: URL/`).
fn http_addr(stderr: &mut Lines) -> SocketAddr {
    let line = stderr.wait_for(LINE_TIMEOUT, |l| l.contains(": http: http://"));
    let url = line
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    url.trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// `GET path` over HTTP/1.1 with `Connection: close`: (status line, headers
/// and body as text).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP endpoint");
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("HTTP response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    (head.to_owned(), body.to_owned())
}

fn scrape(addr: SocketAddr) -> Samples {
    let (head, body) = http_get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {l:?}: {e}"));
            (series.to_owned(), value)
        })
        .collect()
}

/// How much every series whose name starts with `prefix` moved from `before`
/// to `after`, leaving out those that did not move.
fn moved(before: &Samples, after: &Samples, prefix: &str) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(series, _)| series.starts_with(prefix))
        .map(|(series, value)| {
            (
                series.clone(),
                value - before.get(series).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, delta)| *delta != 0.0)
        .collect()
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
}

/// Scrapes until `done` holds (an event the server records after the client
/// saw its end, such as a connection closing); panics after [`LINE_TIMEOUT`].
fn scrape_until(addr: SocketAddr, done: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let samples = scrape(addr);
        if done(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "never reached: {samples:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request(user: &str, body: RequestBody) -> Request {
    Request {
        timestamp: Some("24/11/2026 20:42:35".parse().unwrap()),
        user: user.parse().unwrap(),
        body,
    }
}

/// Sends `bytes` on a new connection and reads until the server closes it.
fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("the server answers");
    reply
}

/// One operation; returns the reply's result byte.
fn call(port: u16, request: &Request) -> u8 {
    let mut out = Vec::new();
    request.encode(&mut out);
    let reply = exchange(port, &out);
    assert!(
        matches!(Reply::decode_with(request.op(), &reply), Ok(Some(_))),
        "{}: bad reply {reply:?}",
        request.op()
    );
    reply[0]
}

#[test]
fn directory_metrics_move_by_exactly_the_traffic() {
    let mut server = Server::start(&["--store", "memory:", "--http", "127.0.0.1:0"]);
    let http = http_addr(&mut server.stderr);
    let port = server.port;
    let before = scrape(http);

    for user in ["ann", "bob", "cy"] {
        assert_eq!(call(port, &request(user, RequestBody::Register)), 0);
    }
    assert_eq!(call(port, &request("ann", RequestBody::Register)), 1);
    let connect = RequestBody::Connect {
        port: "4000".parse().unwrap(),
    };
    assert_eq!(call(port, &request("ann", connect)), 0);
    for file in ["a.txt", "b.txt"] {
        let publish = RequestBody::Publish {
            file: file.parse().unwrap(),
            description: "d".parse().unwrap(),
        };
        assert_eq!(call(port, &request("ann", publish)), 0);
    }
    let publish = RequestBody::Publish {
        file: "c.txt".parse().unwrap(),
        description: "d".parse().unwrap(),
    };
    assert_eq!(
        call(port, &request("bob", publish)),
        2,
        "bob is not connected"
    );
    // Refused: an unknown OP (closed without a reply), and a client that
    // leaves without a request.
    assert_eq!(exchange(port, b"NOT_AN_OP\0"), b"");
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());

    let after = scrape_until(http, |s| {
        s.get("p2p_directory_refused_total{reason=\"client_gone\"}")
            .copied()
            .unwrap_or(0.0)
            > before
                .get("p2p_directory_refused_total{reason=\"client_gone\"}")
                .copied()
                .unwrap_or(0.0)
            && s.get("p2p_directory_open_connections") == Some(&0.0)
    });
    assert_eq!(
        moved(&before, &after, "p2p_directory_requests_total"),
        expect(&[
            (
                "p2p_directory_requests_total{op=\"CONNECT\",result=\"0\"}",
                1.0
            ),
            (
                "p2p_directory_requests_total{op=\"PUBLISH\",result=\"0\"}",
                2.0
            ),
            (
                "p2p_directory_requests_total{op=\"PUBLISH\",result=\"2\"}",
                1.0
            ),
            (
                "p2p_directory_requests_total{op=\"REGISTER\",result=\"0\"}",
                3.0
            ),
            (
                "p2p_directory_requests_total{op=\"REGISTER\",result=\"1\"}",
                1.0
            ),
        ])
    );
    assert_eq!(
        moved(&before, &after, "p2p_directory_refused_total"),
        expect(&[
            ("p2p_directory_refused_total{reason=\"client_gone\"}", 1.0),
            ("p2p_directory_refused_total{reason=\"malformed\"}", 1.0),
        ])
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "p2p_directory_request_duration_seconds_count"
        ),
        expect(&[
            (
                "p2p_directory_request_duration_seconds_count{op=\"CONNECT\"}",
                1.0
            ),
            (
                "p2p_directory_request_duration_seconds_count{op=\"PUBLISH\"}",
                3.0
            ),
            (
                "p2p_directory_request_duration_seconds_count{op=\"REGISTER\"}",
                4.0
            ),
        ])
    );
    // A histogram with buckets, not a summary.
    assert!(
        after.contains_key(
            "p2p_directory_request_duration_seconds_bucket{op=\"REGISTER\",le=\"+Inf\"}"
        ),
        "{after:#?}"
    );
    for (gauge, value) in [
        ("p2p_directory_users", 3.0),
        ("p2p_directory_connected_users", 1.0),
        ("p2p_directory_publications", 2.0),
        ("p2p_directory_open_connections", 0.0),
    ] {
        assert_eq!(after.get(gauge), Some(&value), "{gauge}");
    }
    assert!(moved(&before, &after, "p2p_directory_store_errors_total").is_empty());

    let (head, _) = http_get(http, "/nothing-here");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let out = server.stop();
    assert!(out.status.success(), "{out:?}");
}

/// Sends one record-marked call and reads one record-marked reply.
fn rpc_call(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::new();
    encode_record(message, &mut framed);
    stream.write_all(&framed).unwrap();
    let mut mark = [0; 4];
    stream.read_exact(&mut mark).expect("a reply");
    let len = u32::from_be_bytes(mark) & 0x7fff_ffff;
    let mut reply = vec![0; len as usize];
    stream.read_exact(&mut reply).expect("the whole reply");
    reply
}

fn entry(user: &str) -> LogEntry {
    LogEntry::new(user, "REGISTER", "24/11/2026 20:42:35", "").unwrap()
}

#[test]
fn log_metrics_move_by_exactly_the_calls() {
    let dir = temp_dir();
    let mut log =
        LogService::start_with(&dir.path().join("log.txt"), 0, &["--http", "127.0.0.1:0"]);
    let http = http_addr(&mut log.stderr);
    let before = scrape(http);

    let mut tcp = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
    tcp.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    for (xid, user) in [(1, "ann"), (2, "bob"), (3, "cy")] {
        rpc_call(&mut tcp, &encoded(&sendlog_call(xid, &entry(user))));
    }
    let mut null = Vec::new();
    RpcMessage::call(4, LOG_PROG, LOG_VERS, NULLPROC).encode(&mut null);
    rpc_call(&mut tcp, &null);
    let mut unknown = Vec::new();
    RpcMessage::call(5, LOG_PROG, LOG_VERS, 99).encode(&mut unknown);
    rpc_call(&mut tcp, &unknown);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    udp.send_to(
        &encoded(&sendlog_call(6, &entry("dee"))),
        ("127.0.0.1", log.port),
    )
    .unwrap();
    let mut reply = [0; 512];
    udp.recv(&mut reply).expect("a UDP reply");

    let after = scrape(http);
    assert_eq!(
        moved(&before, &after, "p2p_log_"),
        expect(&[
            (
                "p2p_log_calls_total{transport=\"tcp\",result=\"null\"}",
                1.0
            ),
            ("p2p_log_calls_total{transport=\"tcp\",result=\"ok\"}", 3.0),
            (
                "p2p_log_calls_total{transport=\"tcp\",result=\"proc_unavail\"}",
                1.0
            ),
            ("p2p_log_calls_total{transport=\"udp\",result=\"ok\"}", 1.0),
            ("p2p_log_lines_written_total", 4.0),
        ])
    );
    assert_eq!(log.wait_lines(4, LINE_TIMEOUT).len(), 4);
}

/// What a call encodes to.
fn encoded(message: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}
