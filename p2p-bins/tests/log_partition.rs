//! `p2p-server` shipping to `p2p-log` through a partition (the test proxy of
//! p2p-core's tests black-holes the link), stopped with SIGTERM during the
//! outage: it says exactly what it sent and what it could not deliver, and
//! nothing it held arrives at the log service after it has exited.

mod common;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the test proxy of p2p-core's tests, of which this file uses a part"
)]
#[path = "../../p2p-core/tests/support/proxy.rs"]
mod proxy;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{EXIT_TIMEOUT, LINE_TIMEOUT, LogService, Server, temp_dir};
use p2p_core::log::{LogShipper, LogShipperConfig, LogTarget};
use p2p_proto::Encode;
use p2p_proto::directory::{Request, RequestBody};
use p2p_proto::rpc::log::LogEntry;

/// REGISTER `user` on the server at `port` (classic form, no DATETIME); the
/// result byte.
fn register(port: u16, user: &str) -> u8 {
    let request = Request {
        timestamp: None,
        user: user.parse().unwrap(),
        body: RequestBody::Register,
    };
    let mut out = Vec::new();
    request.encode(&mut out);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream.write_all(&out).unwrap();
    let mut reply = [0u8; 1];
    stream.read_exact(&mut reply).unwrap();
    reply[0]
}

/// The number before `what` in the server's summary line.
fn count(summary: &str, what: &str) -> u64 {
    let before = summary
        .split(what)
        .next()
        .unwrap_or_else(|| panic!("no {what:?} in {summary:?}"));
    before
        .split_whitespace()
        .last()
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no count before {what:?} in {summary:?}"))
}

#[test]
fn sigterm_during_an_outage_counts_exactly_and_nothing_arrives_later() {
    let log_dir = temp_dir();
    let mut log = LogService::start(&log_dir.path().join("log.txt"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(proxy::Proxy::start(
        format!("127.0.0.1:{}", log.port).parse().unwrap(),
    ));
    let server = Server::start(&["--log-rpc", &format!("127.0.0.1:{}", proxy.addr.port())]);
    for i in 0..20 {
        assert_eq!(register(server.port, &format!("u{i}")), 0);
    }
    let written = log.wait_lines(20, Duration::from_secs(30));
    proxy.set_mode(proxy::Mode::BlackHole);
    for i in 20..30 {
        assert_eq!(register(server.port, &format!("u{i}")), 0);
    }
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exit status {}",
        out.status
    );
    let summary = out
        .stderr
        .iter()
        .find(|l| l.starts_with("p2p-server: ") && l.contains("log records sent"))
        .unwrap_or_else(|| panic!("no summary of the log records: {:#?}", out.stderr));
    let sent = count(summary, "log records sent");
    let undelivered = count(summary, "undelivered at exit");
    assert_eq!(count(summary, "dropped (queue full)"), 0, "{summary}");
    assert_eq!(sent + undelivered, 30, "{summary}");
    assert!(sent >= 10, "{summary}");

    // The network heals after the server has gone: nothing it held may
    // arrive now. A record through a new shipper marks the moment what the
    // proxy held has had its chance.
    proxy.set_mode(proxy::Mode::Pass);
    let marker = LogEntry::new("marker", "PING", "24/11/2026 19:40:12", "").unwrap();
    let stats = runtime.block_on(async {
        let shipper = LogShipper::spawn(LogShipperConfig::new(LogTarget {
            host: "127.0.0.1".to_owned(),
            port: Some(proxy.addr.port()),
        }));
        shipper.log(marker.clone());
        shipper.shutdown().await
    });
    assert_eq!(stats.sent, 1, "{stats:?}");
    log.proc.terminate();
    assert!(log.proc.wait_exit(EXIT_TIMEOUT).success());
    let lines = log.lines();
    let users: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    let mut expected: Vec<String> = (0..sent).map(|i| format!("u{i}")).collect();
    expected.push("marker".to_owned());
    assert_eq!(
        users, expected,
        "the log holds exactly the records acknowledged before the exit, then the marker: \
         {lines:#?} (written before the partition: {written:#?})"
    );
}
