//! The extensions end to end (PROTOCOL.md §6.1–6.3): SEARCH from the shell
//! against p2p-server, a pinging peer that is killed and expires, a classic
//! peer that never does, and the shell against a classic server (capability
//! discovery once, the "not supported" text, `--classic`).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{LINE_TIMEOUT, LogService, Peer, Server, dead_datetime_url, temp_dir};
use p2p_proto::directory::{ListUsersReply, OpCode, Reply, Request, RequestBody};
use p2p_proto::{Decode, Encode};

fn write_file(dir: &std::path::Path, name: &str) {
    std::fs::write(dir.join(name), name.as_bytes()).unwrap();
}

#[test]
fn search_from_the_shell() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (a_dir, b_dir) = (temp_dir(), temp_dir());
    for f in ["The_Beatles-Help.mp3", "beats.wav", "notes.txt"] {
        write_file(a_dir.path(), f);
    }
    let mut alice = Peer::start("alice", server.port, &url, a_dir.path());
    let mut bob = Peer::start("bob", server.port, &url, b_dir.path());
    alice.expect("REGISTER alice", "c> REGISTER OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect(
        "PUBLISH The_Beatles-Help.mp3 a 1965 single",
        "c> PUBLISH OK",
    );
    alice.expect("PUBLISH beats.wav drum loop", "c> PUBLISH OK");
    alice.expect("PUBLISH notes.txt Beatles lyrics", "c> PUBLISH OK");
    bob.expect("SEARCH beat", "c> SEARCH FAIL, USER NOT CONNECTED");
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    // Most recent first; tab-separated owner, file, description.
    bob.expect_listing(
        "SEARCH beat",
        "c> SEARCH OK",
        &[
            "alice\tnotes.txt\tBeatles lyrics",
            "alice\tbeats.wav\tdrum loop",
            "alice\tThe_Beatles-Help.mp3\ta 1965 single",
        ],
    );
    bob.expect_listing(
        "search BEATLES help",
        "c> SEARCH OK",
        &["alice\tThe_Beatles-Help.mp3\ta 1965 single"],
    );
    bob.expect_listing("SEARCH tles", "c> SEARCH OK", &[]);
    bob.expect("SEARCH AC/DC", "c> SEARCH FAIL, BAD QUERY");
    bob.expect(
        "SEARCH",
        "c> Syntax error. Usage: SEARCH <term> [<term>...]",
    );
    // Her own files are not shown to her.
    alice.expect_listing("SEARCH beat", "c> SEARCH OK", &[]);
    // A disconnected owner's files are not found.
    alice.expect("DISCONNECT alice", "c> DISCONNECT OK");
    bob.expect_listing("SEARCH beat", "c> SEARCH OK", &[]);
    let out = server.stop();
    assert!(out.status.success());
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("s> OPERATION SEARCH FROM bob AT ")),
        "{:?}",
        out.lines
    );
}

/// Sends one classic CONNECT for `user` with a raw socket, as a classic
/// client does: it never pings.
fn classic_register_and_connect(port: u16, user: &str) {
    for (op, tail) in [("REGISTER", ""), ("CONNECT", "4000\0")] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(format!("{op}\0{user}\0{tail}").as_bytes())
            .unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, [0], "{op} {user}");
    }
}

#[test]
fn a_killed_pinging_peer_expires_and_a_classic_one_does_not() {
    let log_dir = temp_dir();
    let log = LogService::start(&log_dir.path().join("log.out"));
    let log_target = format!("127.0.0.1:{}", log.port);
    let mut server = Server::start(&["--expire-after", "2", "--log-rpc", &log_target]);
    let url = dead_datetime_url();
    let (a_dir, b_dir) = (temp_dir(), temp_dir());
    write_file(a_dir.path(), "song.mp3");
    let mut alice = Peer::start_args(
        "alice",
        server.port,
        &url,
        a_dir.path(),
        &["--ping-interval", "1"],
    );
    alice.expect("REGISTER alice", "c> REGISTER OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect("PUBLISH song.mp3 a song", "c> PUBLISH OK");
    classic_register_and_connect(server.port, "carol");
    let mut bob = Peer::start_args(
        "bob",
        server.port,
        &url,
        b_dir.path(),
        &["--ping-interval", "1"],
    );
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    // Alice pings while alive: still listed well past --expire-after.
    thread::sleep(Duration::from_secs(3));
    let (_, users) = bob.listing("LIST_USERS");
    assert!(users.iter().any(|u| u.starts_with("alice ")), "{users:?}");

    alice.proc.kill();
    let started = Instant::now();
    let line = server
        .stdout
        .wait_for(LINE_TIMEOUT, |l| l.starts_with("s> EXPIRED"));
    assert_eq!(line, "s> EXPIRED alice");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "expired too early"
    );
    let (result, users) = bob.listing("LIST_USERS");
    assert_eq!(result, "c> LIST_USERS OK");
    assert!(!users.iter().any(|u| u.starts_with("alice ")), "{users:?}");
    // Carol never pinged: never expires. Bob pings: stays.
    assert!(users.iter().any(|u| u.starts_with("carol ")), "{users:?}");
    // Her publications stay.
    bob.expect_listing("LIST_CONTENT alice", "c> LIST_CONTENT OK", &["song.mp3"]);
    // The log service got the expiry, with the server's clock.
    let deadline = Instant::now() + LINE_TIMEOUT;
    let expire = loop {
        if let Some(l) = log
            .lines()
            .into_iter()
            .find(|l| l.starts_with("alice EXPIRE "))
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no EXPIRE record: {:?}",
            log.lines()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        common::is_datetime(&expire["alice EXPIRE ".len()..]),
        "{expire}"
    );
    // She can connect again.
    let mut again = Peer::start("alice again", server.port, &url, a_dir.path());
    again.expect("CONNECT alice", "c> CONNECT OK");
    let out = server.stop();
    assert!(out.status.success());
    // PING prints no console line.
    assert!(
        !out.lines.iter().any(|l| l.contains(" PING ")),
        "{:?}",
        out.lines
    );
}

/// A classic directory server: answers the §1 operations (0, or an empty
/// listing) and closes at once, without a byte, on anything else (an
/// unknown OP's further bytes are left unread, so the close is a reset).
/// Records every OP it received.
fn classic_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            loop {
                if let Some(end) = buf.iter().position(|&b| b == 0) {
                    let op = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let known = OpCode::from_bytes(&buf[..end]).filter(|op| op.is_classic());
                    if known.is_none() || op == "GET_USER_INFO" {
                        record.lock().unwrap().push(op);
                        break;
                    }
                    if let Ok(Some((request, _))) = Request::decode(&buf) {
                        record.lock().unwrap().push(op);
                        let reply = match request.body {
                            RequestBody::ListUsers => Reply::ListUsers(ListUsersReply::Ok(vec![])),
                            _ => Reply::other_error(request.op()),
                        };
                        let mut out = Vec::new();
                        match reply {
                            Reply::ListUsers(_) => reply.encode(&mut out),
                            _ => out.push(0),
                        }
                        let _ = stream.write_all(&out);
                        break;
                    }
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    });
    (port, seen)
}

#[test]
fn against_a_classic_server_extensions_are_asked_once_and_never_sent() {
    let url = dead_datetime_url();
    let dir = temp_dir();
    let (port, seen) = classic_server();
    let mut peer = Peer::start("dave", port, &url, dir.path());
    peer.expect("REGISTER dave", "c> REGISTER OK");
    peer.expect("CONNECT dave", "c> CONNECT OK");
    peer.expect("SEARCH song", "c> SEARCH FAIL, NOT SUPPORTED BY THE SERVER");
    peer.expect("SEARCH song", "c> SEARCH FAIL, NOT SUPPORTED BY THE SERVER");
    // The server has no extensions (CAPABILITIES got no reply byte at
    // CONNECT): GET_USER_INFO is not sent; LIST_USERS locates.
    peer.expect("GET_FILE erin a.txt a.txt", "c> GET_FILE FAIL");
    peer.expect("GET_FILE erin a.txt a.txt", "c> GET_FILE FAIL");
    let ops = seen.lock().unwrap().clone();
    let count = |name: &str| ops.iter().filter(|op| *op == name).count();
    assert_eq!(count("CAPABILITIES"), 1, "{ops:?}");
    assert_eq!(count("SEARCH"), 0, "{ops:?}");
    assert_eq!(count("PING"), 0, "{ops:?}");
    assert_eq!(count("GET_USER_INFO"), 0, "{ops:?}");
    assert_eq!(count("LIST_USERS"), 2, "{ops:?}");

    // --classic: nothing outside §1's classic operations, ever.
    let (port, seen) = classic_server();
    let mut peer = Peer::start_args("eve", port, &url, dir.path(), &["--classic"]);
    peer.expect("REGISTER eve", "c> REGISTER OK");
    peer.expect("CONNECT eve", "c> CONNECT OK");
    peer.expect("SEARCH song", "c> SEARCH FAIL, NOT SUPPORTED BY THE SERVER");
    peer.expect("GET_FILE erin a.txt a.txt", "c> GET_FILE FAIL");
    peer.expect("DISCONNECT eve", "c> DISCONNECT OK");
    let ops = seen.lock().unwrap().clone();
    assert_eq!(
        ops,
        ["REGISTER", "CONNECT", "LIST_USERS", "DISCONNECT"],
        "a --classic peer sent only classic operations"
    );
}
