//! End to end with the log service (PROTOCOL.md §4): the directory server
//! ships one SENDLOG record per operation it handled to `p2p-log`, which
//! writes one line per record: `USER OP TIMESTAMP`, or `USER OP FILE
//! TIMESTAMP` for PUBLISH and DELETE. Two peers run their sessions in
//! parallel, in lockstep so that their operations interleave.

mod common;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::Duration;

use common::{
    EXIT_TIMEOUT, LINE_TIMEOUT, LogService, Peer, Server, dead_datetime_url, is_datetime,
    parse_operation_line, temp_dir,
};

/// How long the log service may take to write every record.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// One log line, split: (user, op, file, timestamp).
type Record = (String, String, String, String);

/// Splits `USER OP TIMESTAMP` or `USER OP FILE TIMESTAMP` (TIMESTAMP is
/// `DD/MM/YYYY HH:MM:SS`, so it holds one space; names hold none).
fn parse_log_line(line: &str) -> Record {
    let fields: Vec<&str> = line.split(' ').collect();
    let (user, op, file, date, time) = match fields.as_slice() {
        [user, op, date, time] => (*user, *op, "", *date, *time),
        [user, op, file, date, time] => (*user, *op, *file, *date, *time),
        _ => panic!("log line {line:?} is not `USER OP [FILE] DD/MM/YYYY HH:MM:SS`"),
    };
    let timestamp = format!("{date} {time}");
    assert!(
        is_datetime(&timestamp),
        "bad timestamp in log line {line:?}"
    );
    (user.to_owned(), op.to_owned(), file.to_owned(), timestamp)
}

/// Keeps two threads in step: after each step a thread tells the other and
/// waits for it, with a timeout, and fails at once when the other died.
struct Lockstep {
    tx: Sender<usize>,
    rx: Receiver<usize>,
    step: usize,
}

impl Lockstep {
    fn pair() -> (Self, Self) {
        let (a_tx, a_rx) = channel();
        let (b_tx, b_rx) = channel();
        (
            Self {
                tx: a_tx,
                rx: b_rx,
                step: 0,
            },
            Self {
                tx: b_tx,
                rx: a_rx,
                step: 0,
            },
        )
    }

    fn wait(&mut self) {
        self.step += 1;
        // The other thread may have finished (and dropped its receiver) only
        // after its last step, which is also ours.
        let _ = self.tx.send(self.step);
        match self.rx.recv_timeout(LINE_TIMEOUT * 4) {
            Ok(step) => assert_eq!(step, self.step, "threads out of step"),
            Err(e) => panic!("the other peer's thread stopped at step {}: {e}", self.step),
        }
    }
}

/// One user's session; returns the (op, file) records the server must log
/// for it, in order.
fn session(mut peer: Peer, other: &str, mut step: Lockstep) -> Vec<(String, String)> {
    let user = peer.name.clone();
    let a = format!("{user}-a.txt");
    let b = format!("{user}-b.txt");
    std::fs::write(peer.dir.join(&a), format!("{user} a")).unwrap();
    std::fs::write(peer.dir.join(&b), format!("{user} b")).unwrap();
    let mut logged = Vec::new();
    let mut log = |op: &str, file: &str| logged.push((op.to_owned(), file.to_owned()));

    peer.expect(&format!("REGISTER {user}"), "c> REGISTER OK");
    log("REGISTER", "");
    step.wait();
    peer.expect(&format!("CONNECT {user}"), "c> CONNECT OK");
    log("CONNECT", "");
    step.wait();
    peer.expect(&format!("PUBLISH {a} first file"), "c> PUBLISH OK");
    log("PUBLISH", &a);
    step.wait();
    peer.expect(&format!("PUBLISH {b} second file"), "c> PUBLISH OK");
    log("PUBLISH", &b);
    step.wait();
    peer.expect(
        &format!("PUBLISH {a} again"),
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
    );
    log("PUBLISH", &a);
    step.wait();
    // Both users are connected at this step.
    let (result, entries) = peer.listing("LIST_USERS");
    assert_eq!(result, "c> LIST_USERS OK", "{user}: LIST_USERS");
    assert_eq!(entries.len(), 1, "{user}: LIST_USERS entries {entries:?}");
    assert!(
        entries[0].starts_with(&format!("{other} 127.0.0.1 ")),
        "{user}: {entries:?}"
    );
    log("LIST_USERS", "");
    step.wait();
    peer.expect_listing(
        &format!("LIST_CONTENT {user}"),
        "c> LIST_CONTENT OK",
        &[&a, &b],
    );
    log("LIST_CONTENT", "");
    step.wait();
    peer.expect(&format!("DELETE {a}"), "c> DELETE OK");
    log("DELETE", &a);
    step.wait();
    peer.expect(
        &format!("DELETE {a}"),
        "c> DELETE FAIL, CONTENT NOT PUBLISHED",
    );
    log("DELETE", &a);
    step.wait();
    peer.expect(&format!("DISCONNECT {user}"), "c> DISCONNECT OK");
    log("DISCONNECT", "");
    step.wait();
    peer.expect(&format!("UNREGISTER {user}"), "c> UNREGISTER OK");
    log("UNREGISTER", "");
    step.wait();
    // Piped input with failed commands above (ALREADY PUBLISHED, NOT
    // PUBLISHED): status 1.
    let (status, _) = peer.quit();
    assert_eq!(
        status.code(),
        Some(1),
        "{user}: p2p-peer exited with {status}"
    );
    logged
}

#[test]
fn log_service_gets_one_line_per_operation_from_interleaved_peers() {
    let log_dir = temp_dir();
    let mut log_service = LogService::start(&log_dir.path().join("log.txt"));
    let server = Server::start(&["--log-rpc", &format!("127.0.0.1:{}", log_service.port)]);
    let datetime_url = dead_datetime_url();
    let alice_dir = temp_dir();
    let bob_dir = temp_dir();
    let alice = Peer::start("alice", server.port, &datetime_url, alice_dir.path());
    let bob = Peer::start("bob", server.port, &datetime_url, bob_dir.path());

    let (alice_step, bob_step) = Lockstep::pair();
    let alice = thread::spawn(move || session(alice, "bob", alice_step));
    let bob = thread::spawn(move || session(bob, "alice", bob_step));
    let alice_want = alice.join().expect("alice's session");
    let bob_want = bob.join().expect("bob's session");
    let total = alice_want.len() + bob_want.len();

    // Shipping is asynchronous: wait until every record arrived.
    log_service.wait_lines(total, LOG_TIMEOUT);

    // SIGTERM flushes the server's queue; nothing more may arrive.
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {} on SIGTERM",
        out.status
    );
    log_service.proc.terminate();
    let log_status = log_service.proc.wait_exit(EXIT_TIMEOUT);
    assert!(
        log_status.success(),
        "p2p-log exited with {log_status} on SIGTERM"
    );
    let lines = log_service.lines();
    assert_eq!(lines.len(), total, "log lines: {lines:#?}");

    let records: Vec<Record> = lines.iter().map(|l| parse_log_line(l)).collect();
    // The server's console: the same operations with the same DATETIME.
    let printed: Vec<(String, String, String)> = out
        .lines
        .iter()
        .map(|l| {
            let parsed = parse_operation_line(l);
            let datetime = parsed
                .datetime
                .unwrap_or_else(|| panic!("no DATETIME in {l:?}"));
            (parsed.user, parsed.op, datetime)
        })
        .collect();
    for (user, want) in [("alice", &alice_want), ("bob", &bob_want)] {
        let got: Vec<(String, String)> = records
            .iter()
            .filter(|r| r.0 == user)
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect();
        assert_eq!(&got, want, "{user}'s log records, in order: {lines:#?}");
        let logged_times: Vec<(&str, &str)> = records
            .iter()
            .filter(|r| r.0 == user)
            .map(|r| (r.1.as_str(), r.3.as_str()))
            .collect();
        let printed_times: Vec<(&str, &str)> = printed
            .iter()
            .filter(|p| p.0 == user)
            .map(|p| (p.1.as_str(), p.2.as_str()))
            .collect();
        assert_eq!(
            logged_times, printed_times,
            "{user}: log timestamps vs server lines"
        );
    }
    assert_eq!(
        records
            .iter()
            .filter(|r| r.0 != "alice" && r.0 != "bob")
            .count(),
        0
    );

    // Interleaved: each step logs one record per user, and a step starts
    // only after both finished the previous one, so the step numbers never
    // go down along the log (records are shipped in the order handled).
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    let steps: Vec<usize> = records
        .iter()
        .map(|r| {
            let n = seen.entry(r.0.as_str()).or_default();
            *n += 1;
            *n
        })
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "log records not interleaved step by step: {lines:#?}"
    );
}

/// `p2p-log --idle-timeout 1 --max-connections 1`: a client that connects and sends nothing loses
/// the only slot within two idle periods, and the next client is served.
#[test]
fn p2p_log_closes_an_unused_connection_at_its_idle_timeout() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let log = LogService::start_with(
        &dir.path().join("log.txt"),
        0,
        &["--idle-timeout", "1", "--max-connections", "1"],
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], log.port));
    let started = std::time::Instant::now();
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    // EOF (or a reset) once the service closes it; a read timeout would fail here.
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut => {}
        other => panic!("the idle connection was not closed: {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}, expected one to two idle periods of 1 s"
    );
    // The slot is free: a call is answered and printed.
    let mut call = Vec::new();
    p2p_proto::Encode::encode(
        &p2p_proto::rpc::record::Record(p2p_proto::rpc::log::sendlog_call(
            7,
            &p2p_proto::rpc::log::LogEntry::new("carol", "REGISTER", "24/11/2026 19:40:12", "")
                .unwrap(),
        )),
        &mut call,
    );
    let mut next = std::net::TcpStream::connect(addr).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    next.write_all(&call).unwrap();
    let mut reply = Vec::new();
    while reply.len() < 4
        || reply.len()
            < 4 + (u32::from_be_bytes(reply[..4].try_into().unwrap()) & 0x7fff_ffff) as usize
    {
        let n = next.read(&mut buf).expect("a reply in time");
        assert!(n > 0, "closed before the reply");
        reply.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        p2p_proto::rpc::log::decode_sendlog_reply(&reply[4..]).unwrap(),
        Some((7, Ok(0)))
    );
    assert_eq!(
        log.wait_lines(1, Duration::from_secs(10)),
        ["carol REGISTER 24/11/2026 19:40:12"]
    );
}
