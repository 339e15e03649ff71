//! End to end, PROTOCOL.md §6.4: transfers a person can trust. Real peers
//! (and, where a test needs one, a relay that cuts or holds the connection,
//! or a Python peer that speaks only classic GET_FILE) show that a download
//! resumes after the serving peer is killed and restarted, starts over when
//! the part file no longer matches, refuses a file whose digest is wrong,
//! survives a connection broken twice, and falls back to plain GET_FILE once
//! per address.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{
    LINE_TIMEOUT, Lines, Peer, Proc, Server, dead_datetime_url, dir_names, pseudo_random_bytes,
    python3_or_skip, temp_dir,
};
use p2p_proto::directory::{Reply, Request, RequestBody};
use p2p_proto::{Decode, Encode};

const MIB: usize = 1024 * 1024;

/// Time allowed for a 64 MiB transfer in a debug build on a busy machine.
const BIG_TIMEOUT: Duration = Duration::from_secs(240);

/// One directory operation over a blocking socket, as a fake peer's user.
fn call(port: u16, user: &str, body: RequestBody) -> Reply {
    let request = Request {
        timestamp: Some("24/11/2026 20:42:35".parse().unwrap()),
        user: user.parse().unwrap(),
        body,
    };
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    request.encode(&mut out);
    stream.write_all(&out).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    match Reply::decode_with(request.op(), &reply) {
        Ok(Some((reply, _))) => reply,
        other => panic!("{}: bad reply {reply:?}: {other:?}", request.op()),
    }
}

/// Registers `user` and connects it with transfer port `port`: GET_FILE from
/// that user goes to whatever listens there.
fn fake_user(server_port: u16, user: &str, port: u16) {
    assert!(call(server_port, user, RequestBody::Register).is_ok());
    let port = port.try_into().unwrap();
    assert!(call(server_port, user, RequestBody::Connect { port }).is_ok());
}

fn join(peer: &mut Peer, user: &str) {
    peer.expect(&format!("REGISTER {user}"), "c> REGISTER OK");
    peer.expect(&format!("CONNECT {user}"), "c> CONNECT OK");
}

#[track_caller]
fn assert_same_file(got: &Path, want: &[u8]) {
    let data = std::fs::read(got).unwrap_or_else(|e| panic!("cannot read {}: {e}", got.display()));
    assert_eq!(data.len(), want.len(), "size of {}", got.display());
    assert!(
        data == want,
        "{} differs from the published file",
        got.display()
    );
}

/// The value of `name=` in a tracing line.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

/// Waits for the serving peer's next `file served` event; returns (offset, bytes).
fn next_served(peer: &mut Peer) -> (u64, u64) {
    let line = peer
        .stderr
        .wait_for(BIG_TIMEOUT, |l| l.contains("file served"));
    (
        field(&line, "offset").unwrap_or_else(|| panic!("no offset in {line:?}")),
        field(&line, "bytes").unwrap_or_else(|| panic!("no bytes in {line:?}")),
    )
}

/// The transfer port of `user` in `peer`'s LIST_USERS.
fn listed_port(peer: &mut Peer, user: &str) -> u16 {
    let (result, entries) = peer.listing("LIST_USERS");
    assert_eq!(result, "c> LIST_USERS OK");
    entries
        .iter()
        .find_map(|e| {
            let fields: Vec<&str> = e.split(' ').collect();
            (fields[0] == user).then(|| fields[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{user} not in {entries:?}"))
}

/// What the relay does with the serving side's bytes on one connection.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Forward everything.
    Pass,
    /// Forward this many bytes, then close both sides.
    Cut(u64),
    /// Forward this many bytes, report it, hold the connection until told, then close.
    Hold(u64),
}

/// A TCP relay in front of a serving peer: each accepted connection follows
/// the next [`Plan`] (then [`Plan::Pass`]).
struct Relay {
    port: u16,
    upstream: Arc<AtomicU16>,
    held: Receiver<()>,
    release: Sender<()>,
    accepted: Arc<Mutex<usize>>,
}

impl Relay {
    fn start(upstream: u16, plans: Vec<Plan>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Arc::new(AtomicU16::new(upstream));
        let (held_tx, held) = channel();
        let (release, release_rx) = channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let accepted = Arc::new(Mutex::new(0));
        let shared = (upstream.clone(), accepted.clone());
        thread::spawn(move || {
            let (upstream, accepted) = shared;
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { return };
                *accepted.lock().unwrap() += 1;
                let plan = plans.get(n).copied().unwrap_or(Plan::Pass);
                let target = upstream.load(Ordering::SeqCst);
                let (held_tx, release_rx) = (held_tx.clone(), release_rx.clone());
                thread::spawn(move || relay(client, target, plan, &held_tx, &release_rx));
            }
        });
        Self {
            port,
            upstream,
            held,
            release,
            accepted,
        }
    }
}

fn relay(
    mut client: TcpStream,
    target: u16,
    plan: Plan,
    held: &Sender<()>,
    release: &Mutex<Receiver<()>>,
) {
    // A dead serving peer: the requester sees the connection close at once.
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let limit = match plan {
        Plan::Pass => u64::MAX,
        Plan::Cut(n) | Plan::Hold(n) => n,
    };
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while sent < limit {
        let want = usize::try_from(limit - sent).map_or(buf.len(), |l| l.min(buf.len()));
        match server.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
            }
        }
    }
    if let Plan::Hold(_) = plan {
        let _ = held.send(());
        let _ = release.lock().unwrap().recv_timeout(BIG_TIMEOUT);
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// The serving peer is killed (SIGKILL) at half of a 64 MiB transfer and
/// restarted on the same state directory; the same GET_FILE then completes by
/// resuming, and the serving side sends only the rest. Then: part files whose
/// size or digest no longer match start over.
#[test]
fn serving_peer_killed_at_half_then_resumed() {
    const SIZE: usize = 64 * MIB;
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (alice_dir, bob_dir, alice_state) = (temp_dir(), temp_dir(), temp_dir());
    let big = pseudo_random_bytes(SIZE, 0x0bad_cafe);
    std::fs::write(alice_dir.path().join("big.bin"), &big).unwrap();
    let debug = [("RUST_LOG", "debug")];
    let start_alice = || {
        Peer::start_with(
            "alice",
            server.port,
            &url,
            alice_dir.path(),
            alice_state.path(),
            &debug,
            &[],
        )
    };
    let mut alice = start_alice();
    join(&mut alice, "alice");
    alice.expect("PUBLISH big.bin 64 MiB", "c> PUBLISH OK");
    let line = alice
        .stderr
        .wait_for(LINE_TIMEOUT, |l| l.contains("digest at PUBLISH"));
    assert!(line.contains("Hashed"), "{line}");
    let mut bob = Peer::start("bob", server.port, &url, bob_dir.path());
    join(&mut bob, "bob");

    // "relay" is a user whose transfer port is a relay in front of alice: it
    // holds the first connection at half of the file.
    let alice_port = listed_port(&mut bob, "alice");
    let relay = Relay::start(alice_port, vec![Plan::Hold(SIZE as u64 / 2)]);
    fake_user(server.port, "relay", relay.port);

    bob.send("GET_FILE relay big.bin copy.bin");
    relay
        .held
        .recv_timeout(BIG_TIMEOUT)
        .expect("half of the file went through");
    alice.proc.kill();
    relay.release.send(()).unwrap();
    // Every attempt of the command now finds nobody.
    assert_eq!(
        bob.result_within("GET_FILE", BIG_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    assert_eq!(*relay.accepted.lock().unwrap(), 3, "three attempts");
    let part = bob_dir.path().join(".copy.bin.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && kept < SIZE as u64 / 2,
        "the part file holds what arrived: {kept}"
    );
    assert!(!bob_dir.path().join("copy.bin").exists());
    // The part's description keeps the BLAKE3 chaining value of each whole
    // MiB that arrived, so the resume does not read them again.
    let meta = std::fs::read_to_string(bob_dir.path().join(".copy.bin.part.meta")).unwrap();
    let leaves = meta.lines().skip(5).count() as u64;
    assert_eq!(leaves, kept / MIB as u64, "{meta}");

    // alice again, same state directory: her file is not hashed again.
    let mut alice = start_alice();
    alice.expect("DISCONNECT alice", "c> DISCONNECT OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect("DELETE big.bin", "c> DELETE OK");
    alice.expect("PUBLISH big.bin 64 MiB", "c> PUBLISH OK");
    let line = alice
        .stderr
        .wait_for(LINE_TIMEOUT, |l| l.contains("digest at PUBLISH"));
    assert!(line.contains("Recorded"), "not hashed again: {line}");
    relay
        .upstream
        .store(listed_port(&mut bob, "alice"), Ordering::SeqCst);

    assert_eq!(
        bob.cmd_within("GET_FILE relay big.bin copy.bin", BIG_TIMEOUT),
        "c> GET_FILE OK"
    );
    let (offset, bytes) = next_served(&mut alice);
    assert_eq!(offset, kept, "resumed at the part's length");
    assert_eq!(bytes, SIZE as u64 - kept, "only the rest was sent");
    assert_same_file(&bob_dir.path().join("copy.bin"), &big);
    assert_eq!(
        dir_names(bob_dir.path()),
        BTreeSet::from(["copy.bin".to_owned()])
    );

    // Part files that no longer match what alice serves: start over.
    let digest = format!("blake3:{}", blake3::hash(&big).to_hex());
    let other = format!("blake3:{}", blake3::hash(b"other").to_hex());
    let cases = [
        ("another digest", SIZE.to_string(), other),
        ("another size", (SIZE + 1).to_string(), digest),
    ];
    for (what, size, digest) in cases {
        std::fs::write(bob_dir.path().join(".again.bin.part"), vec![0x55; MIB]).unwrap();
        std::fs::write(
            bob_dir.path().join(".again.bin.part.meta"),
            format!("# p2p-peer part v1\nalice\nbig.bin\n{size}\n{digest}\n"),
        )
        .unwrap();
        assert_eq!(
            bob.cmd_within("GET_FILE alice big.bin again.bin", BIG_TIMEOUT),
            "c> GET_FILE OK",
            "{what}"
        );
        assert_eq!(next_served(&mut alice), (0, SIZE as u64), "{what}");
        assert_same_file(&bob_dir.path().join("again.bin"), &big);
        std::fs::remove_file(bob_dir.path().join("again.bin")).unwrap();
    }
    // A part that matches SIZE and DIGEST but holds other bytes: resumed, and
    // the digest check refuses the result.
    let digest = format!("blake3:{}", blake3::hash(&big).to_hex());
    std::fs::write(bob_dir.path().join(".again.bin.part"), vec![0x55; MIB]).unwrap();
    std::fs::write(
        bob_dir.path().join(".again.bin.part.meta"),
        format!("# p2p-peer part v1\nalice\nbig.bin\n{SIZE}\n{digest}\n"),
    )
    .unwrap();
    assert_eq!(
        bob.cmd_within("GET_FILE alice big.bin again.bin", BIG_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    assert_eq!(next_served(&mut alice), (MIB as u64, (SIZE - MIB) as u64));
    bob.stderr
        .wait_for(LINE_TIMEOUT, |l| l.contains("integrity check failed"));
    assert_eq!(
        dir_names(bob_dir.path()),
        BTreeSet::from(["copy.bin".to_owned()])
    );
}

/// The source overwritten with other bytes of the same size, its mtime put
/// back: alice serves the recorded digest, bob refuses the file. Then a
/// connection broken twice during one transfer still ends in GET_FILE OK.
#[test]
fn integrity_failure_and_a_connection_broken_twice() {
    const SIZE: usize = 16 * MIB;
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (alice_dir, bob_dir) = (temp_dir(), temp_dir());
    let data = pseudo_random_bytes(SIZE, 41);
    let path = alice_dir.path().join("data.bin");
    std::fs::write(&path, &data).unwrap();
    let mut alice = Peer::start_with(
        "alice",
        server.port,
        &url,
        alice_dir.path(),
        &alice_dir.path().join(".state"),
        &[("RUST_LOG", "debug")],
        &[],
    );
    join(&mut alice, "alice");
    alice.expect("PUBLISH data.bin sixteen MiB", "c> PUBLISH OK");
    let mut bob = Peer::start("bob", server.port, &url, bob_dir.path());
    join(&mut bob, "bob");

    // Cut after 3 MiB, then after 5 MiB more; the third connection passes.
    let alice_port = listed_port(&mut bob, "alice");
    let relay = Relay::start(
        alice_port,
        vec![Plan::Cut(3 * MIB as u64), Plan::Cut(5 * MIB as u64)],
    );
    fake_user(server.port, "relay", relay.port);
    assert_eq!(
        bob.cmd_within("GET_FILE relay data.bin copy.bin", BIG_TIMEOUT),
        "c> GET_FILE OK"
    );
    assert_same_file(&bob_dir.path().join("copy.bin"), &data);
    assert_eq!(*relay.accepted.lock().unwrap(), 3);
    // alice saw three requests, each resuming further; the last one served the rest.
    let resumed: Vec<u64> = (0..3)
        .map(|_| {
            let line = alice
                .stderr
                .wait_for(LINE_TIMEOUT, |l| l.contains("transfer requested"));
            field(&line, "offset").unwrap()
        })
        .collect();
    assert_eq!(resumed[0], 0);
    assert!(
        resumed[1] > 0 && resumed[2] > resumed[1],
        "each attempt resumed: {resumed:?}"
    );
    let (offset, bytes) = next_served(&mut alice);
    assert_eq!((offset, offset + bytes), (resumed[2], SIZE as u64));
    assert_eq!(
        dir_names(bob_dir.path()),
        BTreeSet::from(["copy.bin".to_owned()])
    );

    // Other bytes, same size, same mtime.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut changed = data.clone();
    changed[SIZE / 2] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        bob.cmd_within("GET_FILE alice data.bin bad.bin", BIG_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    let line = bob
        .stderr
        .wait_for(LINE_TIMEOUT, |l| l.starts_with("GET_FILE:"));
    assert!(line.contains("integrity check failed"), "{line}");
    assert_eq!(
        dir_names(bob_dir.path()),
        BTreeSet::from(["copy.bin".to_owned()]),
        "nothing kept"
    );
}

/// A Python serving peer: `classic` answers GET_FILE and closes on anything
/// else; `extra` does the same but sends bytes after SIZE; `stream` answers
/// any request with the raw file and no header. It prints its port, then one
/// line per request (the operation name).
const PY_PEER: &str = r#"
import socket, sys
mode, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    buf = b""
    while buf.count(b"\0") < 2:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    op = buf.split(b"\0")[0].decode("ascii", "replace")
    print(op, flush=True)
    if mode == "stream":
        conn.sendall(data)
    elif op == "GET_FILE":
        conn.sendall(b"\0" + str(len(data)).encode() + b"\0" + data)
        if mode == "extra":
            conn.sendall(b"more")
    conn.close()
"#;

struct PyPeer {
    _proc: Proc,
    port: u16,
    ops: Lines,
}

fn py_peer(mode: &str, file: &Path) -> PyPeer {
    let mut command = Command::new("python3");
    command
        .args(["-c", PY_PEER, mode])
        .arg(file)
        .stdin(Stdio::null());
    let mut proc = Proc::spawn(format!("python peer ({mode})"), &mut command);
    let mut ops = Lines::spawn(format!("python peer ({mode})"), proc.take_stdout());
    let port = ops.next_line().parse().unwrap();
    PyPeer {
        _proc: proc,
        port,
        ops,
    }
}

/// Against classic peers: the fallback to plain GET_FILE works and is
/// remembered per address; a peer that streams without a header, or sends
/// bytes after SIZE, fails and leaves nothing.
#[test]
fn classic_python_peers() {
    if !python3_or_skip("classic_python_peers") {
        return;
    }
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (files, bob_dir) = (temp_dir(), temp_dir());
    let text = files.path().join("a.txt");
    let content = pseudo_random_bytes(3 * MIB + 7, 5);
    std::fs::write(&text, &content).unwrap();
    let streamed = files.path().join("s.txt");
    std::fs::write(&streamed, b"5\0hello world").unwrap();

    let mut classic = py_peer("classic", &text);
    let mut stream = py_peer("stream", &streamed);
    let mut extra = py_peer("extra", &text);
    fake_user(server.port, "carol", classic.port);
    fake_user(server.port, "dave", stream.port);
    fake_user(server.port, "erin", extra.port);
    let mut bob = Peer::start("bob", server.port, &url, bob_dir.path());
    join(&mut bob, "bob");

    bob.expect("GET_FILE carol a.txt one.txt", "c> GET_FILE OK");
    assert_eq!(classic.ops.next_line(), "GET_FILE_FROM");
    assert_eq!(classic.ops.next_line(), "GET_FILE");
    bob.expect("GET_FILE carol a.txt two.txt", "c> GET_FILE OK");
    assert_eq!(
        classic.ops.next_line(),
        "GET_FILE",
        "the address is remembered as classic: no GET_FILE_FROM"
    );
    assert_same_file(&bob_dir.path().join("one.txt"), &content);
    assert_same_file(&bob_dir.path().join("two.txt"), &content);
    let kept = BTreeSet::from(["one.txt".to_owned(), "two.txt".to_owned()]);
    assert_eq!(dir_names(bob_dir.path()), kept);

    // The stream's first bytes are no valid GET_FILE_FROM header.
    bob.expect("GET_FILE dave s.txt s.txt", "c> GET_FILE FAIL");
    assert_eq!(stream.ops.next_line(), "GET_FILE_FROM");
    assert_eq!(dir_names(bob_dir.path()), kept, "nothing kept");

    bob.expect("GET_FILE erin a.txt e.txt", "c> GET_FILE FAIL");
    assert_eq!(extra.ops.next_line(), "GET_FILE_FROM");
    assert_eq!(extra.ops.next_line(), "GET_FILE");
    let line = bob
        .stderr
        .wait_for(LINE_TIMEOUT, |l| l.contains("bytes after"));
    assert!(line.starts_with("GET_FILE:"), "{line}");
    assert_eq!(dir_names(bob_dir.path()), kept, "nothing kept");
}
