//! Interoperability with C programs that rpcgen generates from `p2p-proto/log.x` (libtirpc):
//!
//! (a) an rpcgen C client finds `p2p-log` through rpcbind and calls SENDLOG over TCP and UDP;
//! (b) an rpcgen C log server, found through rpcbind, receives every record of our `LogShipper`
//!     exactly once, in order;
//! (c) the same through a partition (a test proxy black-holes the link, then loses only the
//!     replies): none is lost, and the only duplicates are of records in flight at a break (the
//!     C server has no duplicate-request cache).
//!
//! Needs `rpcgen` (rpcsvc-proto), libtirpc headers (libtirpc-dev), a C compiler and an rpcbind
//! answering on 127.0.0.1:111. Run it in a private network namespace with its own rpcbind:
//!
//! ```text
//! apt-get install -y rpcsvc-proto libtirpc-dev rpcbind
//! P2P_REQUIRE_RPCGEN=1 scripts/rpc/with-rpcbind.sh cargo test -p p2p-bins --test rpcgen_interop
//! ```
//!
//! Without these, the tests print a loud note and pass, unless `P2P_REQUIRE_RPCGEN=1`: then they
//! fail, saying what is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2p_core::log::{LogShipper, LogShipperConfig, LogStats, LogTarget};
use p2p_proto::rpc::log::LogEntry;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the test proxy of p2p-core's tests, of which this file uses a part"
)]
#[path = "../../p2p-core/tests/support/proxy.rs"]
mod proxy;

/// Tests that register LOG_PROG v1 with the (shared) rpcbind take this lock first, in any test
/// binary of the workspace: `flock` on this file, held for the test's duration.
const RPCBIND_LOCK_FILE: &str = "p2p-log-prog-rpcbind.lock";

const WAIT: Duration = Duration::from_secs(20);
const TIRPC_HEADER: &str = "/usr/include/tirpc/rpc/rpc.h";

/// Takes the workspace-wide lock on the LOG_PROG registration; released when dropped.
fn lock() -> std::fs::File {
    let path = std::env::temp_dir().join(RPCBIND_LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// What is missing to run these tests, if anything.
fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    for tool in ["rpcgen", "cc"] {
        if !on_path(tool) {
            missing.push(format!("`{tool}` not on PATH"));
        }
    }
    if !Path::new(TIRPC_HEADER).exists() {
        missing.push(format!("{TIRPC_HEADER} (libtirpc-dev)"));
    }
    let rpcbind = SocketAddr::from(([127, 0, 0, 1], 111));
    if TcpStream::connect_timeout(&rpcbind, Duration::from_secs(1)).is_err() {
        missing.push("rpcbind answering on 127.0.0.1:111".to_owned());
    }
    missing
}

/// True when the tests can run; false (after a loud note) to skip; panics when
/// `P2P_REQUIRE_RPCGEN=1` and something is missing.
fn can_run(test: &str) -> bool {
    let missing = missing();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    let how = "install `rpcsvc-proto libtirpc-dev rpcbind` and run under \
               scripts/rpc/with-rpcbind.sh (as root)";
    assert!(
        std::env::var("P2P_REQUIRE_RPCGEN").as_deref() != Ok("1"),
        "{test}: P2P_REQUIRE_RPCGEN=1 but missing: {what}; {how}"
    );
    // Written to the stderr handle, not with eprintln!: the test harness captures the macros'
    // output and would hide the note of a passing test.
    let bang = "!".repeat(78);
    let note = format!(
        "\n{bang}\n!! SKIPPED {test}: missing {what}\n!! {how};\n!! set \
         P2P_REQUIRE_RPCGEN=1 to make this a failure.\n{bang}\n"
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
    false
}

/// Takes the LOG_PROG lock and checks that the registrations the test will change are its own
/// to change; `None` (after a loud note) to skip.
///
/// `p2p-log` and rpcgen's C server both unset every LOG_PROG v1 entry before setting theirs, and
/// remove them when they stop. Inside `scripts/rpc/with-rpcbind.sh` (`P2P_RPCBIND_NS=1`) the
/// rpcbind is private, so that is harmless. Outside it is the machine's rpcbind, where those
/// entries may belong to a log service that is running: the test then runs only when LOG_PROG v1
/// is not registered at all (checked under the lock, so another test of this workspace is never
/// the one seen). With `P2P_REQUIRE_RPCGEN=1` a foreign registration is a failure.
fn lock_log_prog(test: &str) -> Option<std::fs::File> {
    let lock = lock();
    if std::env::var("P2P_RPCBIND_NS").as_deref() == Ok("1") {
        return Some(lock);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = runtime.block_on(p2p_core::log::rpcbind::lookup_tcp(
        [127, 0, 0, 1].into(),
        Duration::from_secs(2),
    ));
    let Ok(addr) = found else {
        return Some(lock);
    };
    let what = format!(
        "LOG_PROG v1 is registered with this machine's rpcbind (tcp {addr}): running would \
         remove another program's registration"
    );
    let how = "stop that log service, or run under scripts/rpc/with-rpcbind.sh (as root)";
    assert!(
        std::env::var("P2P_REQUIRE_RPCGEN").as_deref() != Ok("1"),
        "{test}: P2P_REQUIRE_RPCGEN=1 but {what}; {how}"
    );
    let bang = "!".repeat(78);
    let note = format!("\n{bang}\n!! SKIPPED {test}: {what};\n!! {how}.\n{bang}\n");
    let _ = std::io::stderr().write_all(note.as_bytes());
    None
}

/// A child process killed when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CLIENT_C: &str = r#"
#include <stdio.h>
#include "log.h"

/* usage: client HOST tcp|udp USER OP TIMESTAMP FILE */
int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST tcp|udp USER OP TIMESTAMP FILE\n", argv[0]);
        return 2;
    }
    CLIENT *clnt = clnt_create(argv[1], LOG_PROG, LOG_VERS, argv[2]);
    if (clnt == NULL) {
        clnt_pcreateerror(argv[1]);
        return 1;
    }
    log_entry entry;
    entry.user = argv[3];
    entry.op = argv[4];
    entry.timestamp = argv[5];
    entry.file = argv[6];
    int result = -1;
    if (sendlog_1(entry, &result, clnt) != RPC_SUCCESS) {
        clnt_perror(clnt, "sendlog_1");
        return 1;
    }
    printf("%d\n", result);
    clnt_destroy(clnt);
    return result == 0 ? 0 : 1;
}
"#;

/// The C server's procedures, shared with the bench's reference server.
const SERVER_C: &str = include_str!("../../benches/rpcgen/log_proc.c");

/// Runs `rpcgen -NM` on a copy of the shipped `log.x` and compiles `program` from `sources`.
fn build(dir: &Path, program: &str, own_source: &str, generated: &[&str]) -> PathBuf {
    let log_x = Path::new(env!("CARGO_MANIFEST_DIR")).join("../p2p-proto/log.x");
    std::fs::copy(&log_x, dir.join("log.x")).unwrap();
    if !dir.join("log.h").exists() {
        run_ok(
            Command::new("rpcgen")
                .arg("-NM")
                .arg("log.x")
                .current_dir(dir),
        );
    }
    let own = format!("{program}_main.c");
    std::fs::write(dir.join(&own), own_source).unwrap();
    run_ok(
        Command::new("cc")
            .args(["-I/usr/include/tirpc", "-o", program, &own])
            .args(generated)
            .arg("-ltirpc")
            .current_dir(dir),
    );
    dir.join(program)
}

/// Waits for a line containing `needle` on `lines`; panics with what was seen otherwise.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?}; seen:\n{}", seen.join("\n"));
}

/// Builds the rpcgen log server in `dir`, starts it, and returns it with its
/// stdout's lines.
fn start_c_log_server(dir: &Path) -> (Guard, mpsc::Receiver<String>) {
    let server = build(dir, "server", SERVER_C, &["log_svc.c", "log_xdr.c"]);
    let mut c_server = Guard(
        Command::new(&server)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = line_reader(c_server.0.stdout.take().unwrap());
    (c_server, stdout)
}

fn line_reader(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn rpcgen_client_calls_p2p_log_over_tcp_and_udp() {
    if !can_run("rpcgen_client_calls_p2p_log_over_tcp_and_udp") {
        return;
    }
    let Some(_lock) = lock_log_prog("rpcgen_client_calls_p2p_log_over_tcp_and_udp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let client = build(dir.path(), "client", CLIENT_C, &["log_clnt.c", "log_xdr.c"]);
    let output = dir.path().join("log.out");

    let mut service = Guard(
        Command::new(env!("CARGO_BIN_EXE_p2p-log"))
            .args(["--bind", "127.0.0.1", "--output"])
            .arg(&output)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = line_reader(service.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    wait_for_line(&stderr, "registered with rpcbind", &mut seen);
    assert!(
        !seen.iter().any(|l| l.contains("not registered")),
        "{seen:?}"
    );

    let call = |proto: &str, user: &str, op: &str, ts: &str, file: &str| {
        run(Command::new(&client).args(["127.0.0.1", proto, user, op, ts, file]))
    };
    for (proto, user, op, ts, file) in [
        ("tcp", "alice", "PUBLISH", "24/11/2026 19:40:12", "song.mp3"),
        ("udp", "bob", "CONNECT", "24/11/2026 19:40:13", ""),
        ("tcp", "alice", "DELETE", "24/11/2026 19:40:14", "song.mp3"),
        ("udp", "bob", "LIST_USERS", "24/11/2026 19:40:15", ""),
    ] {
        let out = call(proto, user, op, ts, file);
        assert!(
            out.status.success(),
            "rpcgen client over {proto}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    }
    // Over its bound (user<256>): the C stub refuses to encode it, nothing is printed.
    let out = call("tcp", &"u".repeat(257), "OP", "t", "");
    assert!(!out.status.success());

    // Replies are sent only after the line is flushed: the file is complete now.
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "alice PUBLISH song.mp3 24/11/2026 19:40:12\n\
         bob CONNECT 24/11/2026 19:40:13\n\
         alice DELETE song.mp3 24/11/2026 19:40:14\n\
         bob LIST_USERS 24/11/2026 19:40:15\n"
    );

    // SIGTERM: exit 0 after unsetting the registration.
    run_ok(Command::new("kill").args(["-TERM", &service.0.id().to_string()]));
    let status = service.0.wait().unwrap();
    assert!(status.success(), "p2p-log exit status {status}");
    let out = call("tcp", "carol", "REGISTER", "t", "");
    assert!(
        !out.status.success(),
        "LOG_PROG still registered after p2p-log stopped"
    );
}

#[test]
fn log_shipper_feeds_rpcgen_server() {
    if !can_run("log_shipper_feeds_rpcgen_server") {
        return;
    }
    let Some(_lock) = lock_log_prog("log_shipper_feeds_rpcgen_server") else {
        return;
    };
    const N: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let (mut c_server, stdout) = start_c_log_server(dir.path());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expected: Vec<LogEntry> = (0..N)
        .map(|i| {
            let file = if i.is_multiple_of(2) {
                format!("file {i}.mp3")
            } else {
                String::new()
            };
            LogEntry::new(&format!("user{i}"), "PUBLISH", "24/11/2026 19:40:12", &file).unwrap()
        })
        .collect();
    let stats = runtime.block_on(async {
        // The C server registers after start-up: wait until rpcbind knows it.
        let deadline = Instant::now() + WAIT;
        loop {
            let found =
                p2p_core::log::rpcbind::lookup_tcp([127, 0, 0, 1].into(), Duration::from_secs(2))
                    .await;
            match found {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => panic!("C server never registered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let target: LogTarget = "127.0.0.1".parse().unwrap();
        let shipper = LogShipper::spawn(LogShipperConfig::new(target));
        for entry in &expected {
            shipper.log(entry.clone());
        }
        shipper.shutdown().await
    });
    assert_eq!(
        stats,
        LogStats {
            sent: N as u64,
            dropped: 0,
            ..LogStats::default()
        }
    );
    for (i, entry) in expected.iter().enumerate() {
        let line = stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("line {i} from the C server: {e}"));
        assert_eq!(line, entry.to_string(), "line {i}");
    }
    let _ = c_server.0.kill();
    let _ = c_server.0.wait();
    assert!(
        stdout.recv_timeout(WAIT).is_err(),
        "a record was printed more than once"
    );
    // A killed C server leaves its registration behind; it is the test's own (`lock_log_prog`).
    let _ = Command::new("rpcinfo")
        .args(["-d", "536871065", "1"])
        .output();
}

#[test]
fn log_stream_through_a_partition_to_rpcgen_server() {
    if !can_run("log_stream_through_a_partition_to_rpcgen_server") {
        return;
    }
    let Some(_lock) = lock_log_prog("log_stream_through_a_partition_to_rpcgen_server") else {
        return;
    };
    const N: usize = 350;
    let dir = tempfile::tempdir().unwrap();
    let (mut c_server, stdout) = start_c_log_server(dir.path());
    let record = |i: usize| {
        LogEntry::new(
            &format!("user{i}"),
            "PUBLISH",
            "24/11/2026 19:40:12",
            "f.mp3",
        )
        .unwrap()
    };
    let read_lines = |count: usize, seen: &mut Vec<String>| {
        for _ in 0..count {
            let line = stdout
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("line {} from the C server: {e}", seen.len()));
            seen.push(line);
        }
    };
    let mut seen = Vec::new();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stats, in_flight_at_breaks) = runtime.block_on(async {
        // The C server registers after start-up: wait until rpcbind knows it.
        let deadline = Instant::now() + WAIT;
        let c_addr = loop {
            let found =
                p2p_core::log::rpcbind::lookup_tcp([127, 0, 0, 1].into(), Duration::from_secs(2))
                    .await;
            match found {
                Ok(addr) => break addr,
                Err(e) if Instant::now() > deadline => panic!("C server never registered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let proxy = proxy::Proxy::start(c_addr).await;
        let mut config = LogShipperConfig::new(LogTarget {
            host: "127.0.0.1".to_owned(),
            port: Some(proxy.addr.port()),
        });
        // Long enough that a loaded machine never times out a call outside the breaks.
        config.call_timeout = Duration::from_secs(3);
        config.connect_timeout = Duration::from_secs(1);
        config.backoff_min = Duration::from_millis(10);
        config.backoff_max = Duration::from_millis(200);
        config.flush_timeout = WAIT;
        let shipper = LogShipper::spawn(config);
        let until_resent = |at_least: u64| {
            let shipper = &shipper;
            async move {
                let deadline = Instant::now() + WAIT;
                while shipper.stats().resent < at_least {
                    assert!(
                        Instant::now() < deadline,
                        "nothing sent again: {:?}",
                        shipper.stats()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        for i in 0..100 {
            shipper.log(record(i));
        }
        let deadline = Instant::now() + WAIT;
        while shipper.stats().sent < 100 {
            assert!(
                Instant::now() < deadline,
                "not acknowledged: {:?}",
                shipper.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A partition: the calls in flight go unanswered, the shipper gives the connection up.
        proxy.set_mode(proxy::Mode::BlackHole);
        for i in 100..200 {
            shipper.log(record(i));
        }
        until_resent(1).await;
        proxy.set_mode(proxy::Mode::Pass);
        for i in 200..300 {
            shipper.log(record(i));
        }
        let deadline = Instant::now() + WAIT;
        while shipper.stats().sent < 300 {
            assert!(
                Instant::now() < deadline,
                "not acknowledged: {:?}",
                shipper.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Only the replies lost: the C server printed these, and prints them again when they
        // are sent again.
        let before = shipper.stats().resent;
        proxy.set_mode(proxy::Mode::DropReplies);
        for i in 300..N {
            shipper.log(record(i));
        }
        until_resent(before + 1).await;
        proxy.set_mode(proxy::Mode::Pass);
        let stats = shipper.shutdown().await;
        (stats, [100..200, 300..N])
    });
    assert_eq!(
        (stats.sent, stats.dropped, stats.refused, stats.undelivered),
        (N as u64, 0, 0, 0),
        "{stats:?}"
    );
    // Every record acknowledged was printed: read until each has been seen, then the rest.
    let expected: Vec<String> = (0..N).map(|i| record(i).to_string()).collect();
    let mut distinct = std::collections::HashSet::new();
    while distinct.len() < N {
        read_lines(1, &mut seen);
        distinct.insert(seen.last().unwrap().clone());
    }
    let _ = c_server.0.kill();
    let _ = c_server.0.wait();
    while let Ok(line) = stdout.recv_timeout(Duration::from_secs(1)) {
        seen.push(line);
    }
    // None lost, in order of first printing.
    let mut first = Vec::new();
    let mut printed = std::collections::HashSet::new();
    for line in &seen {
        if printed.insert(line.clone()) {
            first.push(line.clone());
        }
    }
    assert_eq!(first, expected, "records lost or out of order");
    // Duplicates only of records in flight at a break.
    let may_repeat: std::collections::HashSet<String> = in_flight_at_breaks
        .into_iter()
        .flatten()
        .map(|i| record(i).to_string())
        .collect();
    let repeated: Vec<&String> = {
        let mut once = std::collections::HashSet::new();
        seen.iter().filter(|l| !once.insert(*l)).collect()
    };
    // The C server printed the records whose replies were lost, and again when resent.
    assert!(!repeated.is_empty(), "the lost replies caused no resend");
    assert!(
        repeated.iter().all(|l| may_repeat.contains(*l)),
        "a record not in flight at a break was printed twice: {repeated:?}"
    );
    // A killed C server leaves its registration behind; it is the test's own (`lock_log_prog`).
    let _ = Command::new("rpcinfo")
        .args(["-d", "536871065", "1"])
        .output();
}
