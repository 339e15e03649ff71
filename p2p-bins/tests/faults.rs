//! Faults with the real binaries: services that are down, killed or
//! black-holed while the others keep working, peers that die mid-transfer, and
//! the directory server's memory under a hostile burst (PROTOCOL.md §1-§5).
//!
//! `e2e_datetime.rs` already covers a datetime service killed mid-session, and
//! `e2e_session.rs` runs whole sessions with no datetime service at all; here
//! the datetime service accepts connections but never answers, or answers
//! garbage.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    LINE_TIMEOUT, LogService, Peer, Server, dead_datetime_url, dir_names, free_port, is_datetime,
    parse_operation_line, pseudo_random_bytes, server_bin, temp_dir,
};
use p2p_proto::directory::{Reply, Request, RequestBody};
use p2p_proto::{Decode, Encode};

const MIB: usize = 1024 * 1024;

/// A request as `user`, with DATETIME.
fn request(user: &str, body: RequestBody) -> Request {
    Request {
        timestamp: Some("24/11/2026 20:42:35".parse().unwrap()),
        user: user.parse().unwrap(),
        body,
    }
}

/// One directory operation over a blocking socket; panics when the server
/// does not answer within [`LINE_TIMEOUT`].
fn call(port: u16, request: &Request) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("{}: cannot connect to the server: {e}", request.op()));
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    request.encode(&mut out);
    stream.write_all(&out).unwrap();
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .unwrap_or_else(|e| panic!("{}: no reply: {e}", request.op()));
    match Reply::decode_with(request.op(), &reply) {
        Ok(Some((reply, used))) if used == reply_len(&reply) => reply,
        other => panic!("{}: bad reply {reply:?}: {other:?}", request.op()),
    }
}

fn reply_len(reply: &Reply) -> usize {
    reply.encoded_len()
}

/// Asserts that REGISTER `user` succeeds.
#[track_caller]
fn register(port: u16, user: &str) {
    let reply = call(port, &request(user, RequestBody::Register));
    assert!(reply.is_ok(), "REGISTER {user}: {reply:?}");
}

/// The user names in the log lines, in order.
fn logged_users(log: &LogService) -> Vec<String> {
    log.lines()
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until every name of `want` is in the log, and asserts that they
/// appear exactly once each and in that order.
fn assert_logged_in_order(log: &LogService, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let users = logged_users(log);
        if want.iter().all(|w| users.contains(w)) {
            let got: Vec<&String> = users.iter().filter(|u| want.contains(u)).collect();
            let want: Vec<&String> = want.iter().collect();
            assert_eq!(got, want, "records after the restart: once each, in order");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "records missing from the log: {:?}",
            want.iter()
                .filter(|w| !users.contains(w))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_service_down_at_start_then_killed_and_restarted() {
    let log_port = free_port();
    let server = Server::start(&["--log-rpc", &format!("127.0.0.1:{log_port}")]);
    let port = server.port;
    let dir = temp_dir();
    let output = dir.path().join("log.txt");

    // The log service is down: every request is answered.
    for i in 0..20 {
        register(port, &format!("early{i}"));
    }

    // It comes up: records flow (the shipper found it).
    let log = LogService::start_on(&output, log_port);
    register(port, "up");
    assert_logged_in_order(&log, &["up".to_owned()]);

    // A client keeps issuing requests while the service is killed and
    // restarted; every one is answered.
    let issued = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let background = thread::spawn({
        let (issued, stop) = (issued.clone(), stop.clone());
        move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 100_000 {
                register(port, &format!("bg{i}"));
                i += 1;
                issued.store(i, Ordering::SeqCst);
            }
        }
    });
    let wait_for_more = |n: usize| {
        let target = issued.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + LINE_TIMEOUT;
        while issued.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the directory stopped answering");
            assert!(!background.is_finished(), "the background client failed");
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for_more(30);
    let mut log = log;
    log.proc.kill();
    wait_for_more(30);
    let log = LogService::start_on(&output, log_port);
    // Requests started from here on were issued after the restart.
    let after_restart = issued.load(Ordering::SeqCst) + 1;
    wait_for_more(30);
    stop.store(true, Ordering::SeqCst);
    background.join().expect("every request was answered");
    let last = issued.load(Ordering::SeqCst);
    let mut want: Vec<String> = (after_restart..last).map(|i| format!("bg{i}")).collect();
    for i in 0..20 {
        let name = format!("late{i}");
        register(port, &name);
        want.push(name);
    }
    assert_logged_in_order(&log, &want);
    drop(log);
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {}",
        out.status
    );
}

/// A datetime "service" on 127.0.0.1: accepts connections and either never
/// answers or answers `reply`.
fn fake_datetime(reply: Option<&'static [u8]>) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/datetime", listener.local_addr().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        // Bounded: ends when the test says so, or after a while.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    if let Some(reply) = reply {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(2)))
                            .unwrap();
                        let mut request = [0u8; 1024];
                        let _ = stream.read(&mut request);
                        let _ = stream.write_all(reply);
                    } else {
                        held.push(stream);
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (url, done)
}

#[test]
fn datetime_service_black_holed_or_answering_garbage() {
    let cases: [(&str, Option<&'static [u8]>); 3] = [
        ("never answers", None),
        (
            "answers garbage",
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot-a-day"),
        ),
        ("answers nonsense", Some(b"\x00\x01\x02 garbage\r\n\r\n")),
    ];
    for (what, reply) in cases {
        let server = Server::start(&[]);
        let (url, done) = fake_datetime(reply);
        let dir = temp_dir();
        std::fs::write(dir.path().join("f.txt"), b"f").unwrap();
        let mut peer = Peer::start("erin", server.port, &url, dir.path());
        peer.expect("REGISTER erin", "c> REGISTER OK");
        peer.expect("CONNECT erin", "c> CONNECT OK");
        peer.expect("PUBLISH f.txt a file", "c> PUBLISH OK");
        peer.expect_listing("LIST_CONTENT erin", "c> LIST_CONTENT OK", &["f.txt"]);
        peer.expect("DISCONNECT erin", "c> DISCONNECT OK");
        let (status, _) = peer.quit();
        assert!(status.success(), "{what}: p2p-peer exited with {status}");
        done.store(true, Ordering::SeqCst);
        let out = server.stop();
        assert_eq!(out.lines.len(), 5, "{what}: {:?}", out.lines);
        for line in &out.lines {
            // The peer used its own clock: a well-formed DATETIME.
            let parsed = parse_operation_line(line);
            let datetime = parsed.datetime.unwrap_or_default();
            assert!(is_datetime(&datetime), "{what}: {line:?}");
        }
    }
}

/// Registers and connects a peer shell as `user`.
fn join(peer: &mut Peer, user: &str) {
    peer.expect(&format!("REGISTER {user}"), "c> REGISTER OK");
    peer.expect(&format!("CONNECT {user}"), "c> CONNECT OK");
}

/// Sends a signal to a process.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn serving_peer_killed_mid_transfer() {
    const SIZE: u64 = 200 * MIB as u64;
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (alice_dir, bob_dir) = (temp_dir(), temp_dir());
    // Sparse: the serving side reads it fast without a disk.
    std::fs::File::create(alice_dir.path().join("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let mut alice = Peer::start("alice", server.port, &url, alice_dir.path());
    let mut bob = Peer::start("bob", server.port, &url, bob_dir.path());
    join(&mut alice, "alice");
    alice.expect("PUBLISH big.bin 200 MiB", "c> PUBLISH OK");
    join(&mut bob, "bob");

    bob.send("GET_FILE alice big.bin copy.bin");
    // The transfer is in flight once bob's temporary file exists.
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let names = dir_names(bob_dir.path());
        if names
            .iter()
            .any(|n| n.starts_with(".copy.bin") && n.ends_with(".part"))
        {
            break;
        }
        assert!(
            bob.stdout
                .poll()
                .last()
                .is_none_or(|l| l != "c> GET_FILE OK"),
            "the transfer finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no transfer started: {names:?}");
        thread::sleep(Duration::from_millis(2));
    }
    // Freeze alice so that the transfer cannot finish, then kill her.
    signal(alice.proc.pid(), "-STOP");
    assert!(
        !bob.stdout
            .poll()
            .iter()
            .any(|l| l.starts_with("c> GET_FILE")),
        "the transfer ended before the kill: {:?}",
        bob.stdout.history()
    );
    alice.proc.kill();
    assert_eq!(
        bob.result_within("GET_FILE", LINE_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    // No file; the part file and its description stay for a resume (§6.4).
    let part_only: std::collections::BTreeSet<String> = [".copy.bin.part", ".copy.bin.part.meta"]
        .map(String::from)
        .into();
    assert_eq!(dir_names(bob_dir.path()), part_only);
    // bob's shell keeps working.
    bob.expect("GET_FILE alice big.bin copy.bin", "c> GET_FILE FAIL");
    bob.expect("REGISTER carol", "c> REGISTER OK");
    bob.expect_listing("LIST_CONTENT alice", "c> LIST_CONTENT OK", &["big.bin"]);
    // Piped input with failed commands (GET_FILE FAIL): status 1.
    let (status, _) = bob.quit();
    assert_eq!(status.code(), Some(1), "p2p-peer exited with {status}");
    assert_eq!(dir_names(bob_dir.path()), part_only);
    let out = server.stop();
    assert!(out.status.success());
}

#[test]
fn serving_peer_closes_mid_transfer() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    // A fake peer "mallory" that announces 1 MiB, sends 1000 bytes and
    // closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = listener.local_addr().unwrap().port();
    let served = Arc::new(Mutex::new(0));
    let fake = thread::spawn({
        let served = served.clone();
        move || {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
                let mut request = [0u8; 300];
                let _ = stream.read(&mut request);
                let mut answer = b"\x001048576\x00".to_vec();
                answer.extend(pseudo_random_bytes(1000, 7));
                let _ = stream.write_all(&answer);
                *served.lock().unwrap() += 1;
            }
        }
    });
    register(server.port, "mallory");
    let reply = call(
        server.port,
        &request(
            "mallory",
            RequestBody::Connect {
                port: fake_port.try_into().unwrap(),
            },
        ),
    );
    assert!(reply.is_ok());

    let bob_dir = temp_dir();
    let mut bob = Peer::start("bob", server.port, &url, bob_dir.path());
    join(&mut bob, "bob");
    for _ in 0..2 {
        bob.expect("GET_FILE mallory x.bin copy.bin", "c> GET_FILE FAIL");
        assert!(
            dir_names(bob_dir.path()).is_empty(),
            "no file and no temporary file: {:?}",
            dir_names(bob_dir.path())
        );
    }
    fake.join().unwrap();
    assert_eq!(*served.lock().unwrap(), 2);
    bob.expect("DISCONNECT bob", "c> DISCONNECT OK");
    // Piped input with failed commands (GET_FILE FAIL): status 1.
    let (status, _) = bob.quit();
    assert_eq!(status.code(), Some(1), "p2p-peer exited with {status}");
    let out = server.stop();
    assert!(out.status.success());
}

#[test]
fn directory_server_killed_peers_print_fail() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let dir = temp_dir();
    std::fs::write(dir.path().join("f.txt"), b"f").unwrap();
    std::fs::write(dir.path().join("g.txt"), b"g").unwrap();
    let mut alice = Peer::start("alice", port, &dead_datetime_url(), dir.path());
    join(&mut alice, "alice");
    alice.expect("PUBLISH f.txt a file", "c> PUBLISH OK");

    server.proc.kill();
    for (command, text) in [
        ("REGISTER bob", "c> REGISTER FAIL"),
        ("UNREGISTER bob", "c> UNREGISTER FAIL"),
        ("PUBLISH g.txt another", "c> PUBLISH FAIL"),
        ("DELETE f.txt", "c> DELETE FAIL"),
        ("LIST_USERS", "c> LIST_USERS FAIL"),
        ("LIST_CONTENT alice", "c> LIST_CONTENT FAIL"),
        ("GET_FILE alice f.txt copy.txt", "c> GET_FILE FAIL"),
        ("DISCONNECT alice", "c> DISCONNECT FAIL"),
        ("CONNECT bob", "c> CONNECT FAIL"),
    ] {
        alice.expect(command, text);
    }
    assert!(!dir.path().join("copy.txt").exists());

    // A new server on the same port: the shell works again.
    let server = Server::start_on(port, &[]);
    alice.expect("REGISTER bob", "c> REGISTER OK");
    alice.expect("CONNECT bob", "c> CONNECT OK");
    // Piped input with failed commands (the FAIL texts above): status 1.
    let (status, _) = alice.quit();
    assert_eq!(status.code(), Some(1), "p2p-peer exited with {status}");
    let out = server.stop();
    assert!(out.status.success());
}

/// VmRSS and VmHWM of a process, in bytes.
fn memory(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sends `bytes` on a new connection (ignoring write errors), keeps the
/// socket open, and returns what came back before the server closed.
fn raw_exchange(addr: SocketAddr, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(LINE_TIMEOUT)).unwrap();
    let reader = stream.try_clone().unwrap();
    let read = thread::spawn(move || {
        let mut reader = reader;
        let mut reply = Vec::new();
        let _ = reader.read_to_end(&mut reply);
        reply
    });
    let _ = stream.write_all(bytes);
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    read.join().unwrap()
}

#[test]
fn hostile_burst_keeps_server_memory_bounded() {
    const BOUND: usize = 64 * MIB;
    let server = Server::start(&["--read-timeout", "2", "--max-connections", "256"]);
    let addr: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let pid = server.proc.pid();
    // Warm up: every code path once.
    for i in 0..50 {
        register(server.port, &format!("warm{i}"));
    }
    let (base, _) = memory(pid);

    let mut threads = Vec::new();
    // 16 fields of 10 MiB without a NUL, at once.
    for t in 0..16 {
        threads.push(thread::spawn(move || {
            let mut bytes = b"REGISTER\0".to_vec();
            bytes.extend(std::iter::repeat_n(b'A' + t as u8, 10 * MIB));
            assert_eq!(raw_exchange(addr, &bytes, false), [2]);
        }));
    }
    // 200 idle connections, dropped at the read timeout.
    threads.push(thread::spawn(move || {
        let idle: Vec<_> = (0..200)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        for mut stream in idle {
            stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            assert!(buf.is_empty());
        }
    }));
    // 2000 random byte streams, 4 senders.
    for t in 0..4u64 {
        threads.push(thread::spawn(move || {
            for i in 0..500u64 {
                let seed = t * 1_000_000 + i;
                let len = (seed as usize * 7919) % 2000;
                let bytes = pseudo_random_bytes(len, seed);
                let reply = raw_exchange(addr, &bytes, true);
                assert!(reply.len() <= 1, "{reply:?}");
            }
        }));
    }
    for thread in threads {
        thread.join().expect("hostile client");
    }
    register(server.port, "after-the-burst");
    let (rss, peak) = memory(pid);
    assert!(
        peak.saturating_sub(base) < BOUND,
        "p2p-server grew from {} MiB to a peak of {} MiB under the burst",
        base / MIB,
        peak / MIB
    );
    assert!(rss.saturating_sub(base) < BOUND);
    eprintln!(
        "p2p-server memory: {} MiB before, peak {} MiB, {} MiB after",
        base / MIB,
        peak / MIB,
        rss / MIB
    );
    let out = server.stop();
    assert!(out.status.success());
}

#[test]
fn quiet_server_exits_on_sigterm() {
    // PROTOCOL.md §5: "SIGINT or SIGTERM: stop accepting, finish requests in
    // flight, exit 0", with or without --quiet.
    let server = Server::start(&["--quiet"]);
    register(server.port, "quiet");
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server --quiet exited with {}",
        out.status
    );
    assert!(out.lines.is_empty(), "--quiet printed {:?}", out.lines);
}

#[test]
fn server_threads_serve_alike_and_a_bad_count_is_refused() {
    // Several worker threads: every request is answered, console lines stay
    // whole, and SIGTERM still ends it with 0.
    let server = Server::start(&["--threads", "3"]);
    let workers = std::fs::read_dir(format!("/proc/{}/task", server.proc.pid()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-rt-worker"))
        .count();
    assert_eq!(workers, 3, "worker threads of p2p-server --threads 3");
    let users: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    thread::scope(|s| {
        for chunk in users.chunks(10) {
            s.spawn(|| chunk.iter().for_each(|u| register(server.port, u)));
        }
    });
    let out = server.stop();
    assert!(out.status.success(), "exited with {}", out.status);
    let mut logged: Vec<String> = out
        .lines
        .iter()
        .map(|l| parse_operation_line(l))
        .map(|line| format!("{} {}", line.op, line.user))
        .collect();
    logged.sort();
    let mut want: Vec<String> = users.iter().map(|u| format!("REGISTER {u}")).collect();
    want.sort();
    assert_eq!(logged, want);

    // No threads at all is a usage error, reported in one line, not a panic.
    let out = Command::new(server_bin())
        .args(["-p", "0", "--bind", "127.0.0.1", "--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--threads"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
