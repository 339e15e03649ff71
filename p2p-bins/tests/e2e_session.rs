//! End to end: a directory server and two peer shells (alice and bob) run a
//! whole session over real sockets, and every `c>` line is the one of
//! PROTOCOL.md §5. The datetime service is down (a dead URL): the peers use
//! their own clock, which is what the server prints after ` AT `.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Peer, Server, dead_datetime_url, dir_names, is_datetime, parse_operation_line,
    pseudo_random_bytes, raw_get_file, temp_dir,
};

const MIB: usize = 1024 * 1024;

/// Time allowed for the 50 MiB transfer in a debug build on a busy machine.
const BIG_TRANSFER_TIMEOUT: Duration = Duration::from_secs(240);

/// The requests the peers sent, as the server must print them (before ` AT `).
#[derive(Default)]
struct Sent(Vec<String>);

impl Sent {
    /// Records that `peer` sent `ops` to the server.
    fn ops(&mut self, peer: &Peer, ops: &[&str]) {
        for op in ops {
            self.0.push(format!("s> OPERATION {op} FROM {}", peer.name));
        }
    }

    /// Runs `command`, asserts its result line, records what it sent.
    #[track_caller]
    fn expect(&mut self, peer: &mut Peer, command: &str, expected: &str, ops: &[&str]) {
        peer.expect(command, expected);
        self.ops(peer, ops);
    }

    /// Runs a listing command, asserts its result line and entries, records
    /// what it sent.
    #[track_caller]
    fn expect_listing(
        &mut self,
        peer: &mut Peer,
        command: &str,
        expected: &str,
        entries: &[&str],
        ops: &[&str],
    ) {
        peer.expect_listing(command, expected, entries);
        self.ops(peer, ops);
    }
}

/// Asserts that `got` holds exactly the bytes of `want`.
#[track_caller]
fn assert_same_file(got: &Path, want: &[u8]) {
    let data = std::fs::read(got).unwrap_or_else(|e| panic!("cannot read {}: {e}", got.display()));
    assert_eq!(data.len(), want.len(), "size of {}", got.display());
    if let Some(at) = data.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{} differs from the published file at byte {at}",
            got.display()
        );
    }
}

/// The one LIST_USERS entry `NAME 127.0.0.1 PORT` of `name`; returns PORT.
#[track_caller]
fn listed_port(entries: &[String], name: &str) -> u16 {
    assert_eq!(
        entries.len(),
        1,
        "LIST_USERS must list only the other user: {entries:?}"
    );
    let fields: Vec<&str> = entries[0].split(' ').collect();
    let [listed, ip, port] = fields.as_slice() else {
        panic!("LIST_USERS entry {:?} is not `NAME IP PORT`", entries[0]);
    };
    assert_eq!(*listed, name, "LIST_USERS entry {:?}", entries[0]);
    assert_eq!(*ip, "127.0.0.1", "LIST_USERS entry {:?}", entries[0]);
    assert!(
        port.bytes().all(|b| b.is_ascii_digit()),
        "port of {:?}",
        entries[0]
    );
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("port of {:?}", entries[0]));
    assert_ne!(port, 0, "LIST_USERS entry {:?}", entries[0]);
    port
}

#[test]
fn two_users_register_publish_transfer_delete_disconnect() {
    let server = Server::start(&[]);
    let datetime_url = dead_datetime_url();
    let alice_dir = temp_dir();
    let bob_dir = temp_dir();

    // alice's files: empty, text, 50 MiB of noise; bob's: one text file.
    let notes = "first line\nsecond line: ünïcödé\n\n\tlast line without newline".as_bytes();
    let big = pseudo_random_bytes(50 * MIB, 0x5eed_1234_abcd_ef01);
    let bob_text = b"hello from bob\n";
    std::fs::write(alice_dir.path().join("empty.dat"), b"").unwrap();
    std::fs::write(alice_dir.path().join("notes.txt"), notes).unwrap();
    std::fs::write(alice_dir.path().join("big.bin"), &big).unwrap();
    std::fs::write(bob_dir.path().join("bob.txt"), bob_text).unwrap();

    let mut alice = Peer::start("alice", server.port, &datetime_url, alice_dir.path());
    let mut bob = Peer::start("bob", server.port, &datetime_url, bob_dir.path());
    let mut sent = Sent::default();

    for peer in [&mut alice, &mut bob] {
        let user = peer.name.clone();
        sent.expect(
            peer,
            &format!("UNREGISTER {user}"),
            "c> USER DOES NOT EXIST",
            &["UNREGISTER"],
        );
        sent.expect(
            peer,
            &format!("REGISTER {user}"),
            "c> REGISTER OK",
            &["REGISTER"],
        );
        sent.expect(
            peer,
            &format!("REGISTER {user}"),
            "c> USERNAME IN USE",
            &["REGISTER"],
        );
        sent.expect(
            peer,
            &format!("CONNECT {user}"),
            "c> CONNECT OK",
            &["CONNECT"],
        );
    }

    // PUBLISH, then the same name again.
    sent.expect(
        &mut alice,
        "PUBLISH empty.dat an empty file",
        "c> PUBLISH OK",
        &["PUBLISH"],
    );
    sent.expect(
        &mut alice,
        "PUBLISH empty.dat the same name again",
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
        &["PUBLISH"],
    );
    sent.expect(
        &mut alice,
        "PUBLISH notes.txt some notes",
        "c> PUBLISH OK",
        &["PUBLISH"],
    );
    sent.expect(
        &mut alice,
        "PUBLISH big.bin fifty MiB of noise",
        "c> PUBLISH OK",
        &["PUBLISH"],
    );
    sent.expect(
        &mut bob,
        "PUBLISH bob.txt hello",
        "c> PUBLISH OK",
        &["PUBLISH"],
    );
    sent.expect(
        &mut bob,
        "PUBLISH bob.txt hello again",
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
        &["PUBLISH"],
    );

    // LIST_USERS shows the other user (never the requester) with its
    // listener's address.
    let (result, entries) = alice.listing("LIST_USERS");
    sent.ops(&alice, &["LIST_USERS"]);
    assert_eq!(result, "c> LIST_USERS OK");
    let bob_port = listed_port(&entries, "bob");
    let (result, entries) = bob.listing("LIST_USERS");
    sent.ops(&bob, &["LIST_USERS"]);
    assert_eq!(result, "c> LIST_USERS OK");
    let alice_port = listed_port(&entries, "alice");
    assert_ne!(alice_port, bob_port);

    // The listed port is bob's transfer listener: it serves bob's published
    // file, and nothing else.
    let (code, body) = raw_get_file(bob_port, "bob.txt");
    assert_eq!(code, 0, "GET_FILE bob.txt on bob's listed port {bob_port}");
    assert_eq!(body, Some((bob_text.len() as u64, bob_text.to_vec())));
    let bob_abs = bob_dir.path().join("bob.txt").canonicalize().unwrap();
    for name in [
        "nothere.txt",
        "../bob.txt",
        "/etc/passwd",
        bob_abs.to_str().unwrap(),
    ] {
        assert_eq!(
            raw_get_file(bob_port, name).0,
            1,
            "GET_FILE {name:?} on bob's listener"
        );
    }
    assert_eq!(
        raw_get_file(alice_port, "notes.txt").0,
        0,
        "alice's listed port {alice_port}"
    );

    // LIST_CONTENT: of self, of the other user, of an unknown user.
    sent.expect_listing(
        &mut alice,
        "LIST_CONTENT alice",
        "c> LIST_CONTENT OK",
        &["empty.dat", "notes.txt", "big.bin"],
        &["LIST_CONTENT"],
    );
    sent.expect_listing(
        &mut bob,
        "LIST_CONTENT bob",
        "c> LIST_CONTENT OK",
        &["bob.txt"],
        &["LIST_CONTENT"],
    );
    sent.expect_listing(
        &mut bob,
        "LIST_CONTENT alice",
        "c> LIST_CONTENT OK",
        &["empty.dat", "notes.txt", "big.bin"],
        &["LIST_CONTENT"],
    );
    for peer in [&mut alice, &mut bob] {
        sent.expect_listing(
            peer,
            "LIST_CONTENT nobody",
            "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
            &[],
            &["LIST_CONTENT"],
        );
    }

    // GET_FILE: byte-identical copies, nothing else left in the directory.
    sent.expect(
        &mut bob,
        "GET_FILE alice empty.dat got_empty.dat",
        "c> GET_FILE OK",
        &["GET_USER_INFO"],
    );
    assert_same_file(&bob_dir.path().join("got_empty.dat"), b"");
    sent.expect(
        &mut bob,
        "GET_FILE alice notes.txt got_notes.txt",
        "c> GET_FILE OK",
        &["GET_USER_INFO"],
    );
    assert_same_file(&bob_dir.path().join("got_notes.txt"), notes);
    let result = bob.cmd_within("GET_FILE alice big.bin got_big.bin", BIG_TRANSFER_TIMEOUT);
    sent.ops(&bob, &["GET_USER_INFO"]);
    assert_eq!(
        result, "c> GET_FILE OK",
        "bob: GET_FILE alice big.bin got_big.bin"
    );
    assert_same_file(&bob_dir.path().join("got_big.bin"), &big);
    drop(big);
    sent.expect(
        &mut alice,
        "GET_FILE bob bob.txt from_bob.txt",
        "c> GET_FILE OK",
        &["GET_USER_INFO"],
    );
    assert_same_file(&alice_dir.path().join("from_bob.txt"), bob_text);
    let bob_files = dir_names(bob_dir.path());
    assert_eq!(
        bob_files,
        ["bob.txt", "got_big.bin", "got_empty.dat", "got_notes.txt"]
            .map(String::from)
            .into(),
        "bob's directory after the downloads"
    );

    // GET_FILE of a name alice never published: fails, creates nothing.
    sent.expect(
        &mut bob,
        "GET_FILE alice nothere.txt got_nothere.txt",
        "c> GET_FILE FAIL, FILE NOT EXIST",
        &["GET_USER_INFO"],
    );
    assert_eq!(
        dir_names(bob_dir.path()),
        bob_files,
        "a failed GET_FILE must leave nothing behind"
    );

    // DELETE, then again; GET_FILE of the deleted file fails.
    sent.expect(&mut alice, "DELETE notes.txt", "c> DELETE OK", &["DELETE"]);
    sent.expect(
        &mut alice,
        "DELETE notes.txt",
        "c> DELETE FAIL, CONTENT NOT PUBLISHED",
        &["DELETE"],
    );
    sent.expect(
        &mut bob,
        "GET_FILE alice notes.txt after_delete.txt",
        "c> GET_FILE FAIL, FILE NOT EXIST",
        &["GET_USER_INFO"],
    );
    assert_eq!(
        dir_names(bob_dir.path()),
        bob_files,
        "a failed GET_FILE must leave nothing behind"
    );
    assert_eq!(
        raw_get_file(alice_port, "notes.txt").0,
        1,
        "a deleted file is no longer served"
    );
    sent.expect_listing(
        &mut alice,
        "LIST_CONTENT alice",
        "c> LIST_CONTENT OK",
        &["empty.dat", "big.bin"],
        &["LIST_CONTENT"],
    );

    // DISCONNECT; then the commands that act as the connected user fail
    // locally, and DISCONNECT again is refused by the server.
    for peer in [&mut alice, &mut bob] {
        let user = peer.name.clone();
        sent.expect(
            peer,
            &format!("DISCONNECT {user}"),
            "c> DISCONNECT OK",
            &["DISCONNECT"],
        );
    }
    for peer in [&mut alice, &mut bob] {
        let user = peer.name.clone();
        let file = if user == "alice" {
            "empty.dat"
        } else {
            "bob.txt"
        };
        sent.expect(
            peer,
            &format!("PUBLISH {file} once more"),
            "c> PUBLISH FAIL, USER NOT CONNECTED",
            &[],
        );
        sent.expect_listing(
            peer,
            "LIST_USERS",
            "c> LIST_USERS FAIL, USER NOT CONNECTED",
            &[],
            &[],
        );
        sent.expect_listing(
            peer,
            &format!("LIST_CONTENT {user}"),
            "c> LIST_CONTENT FAIL, USER NOT CONNECTED",
            &[],
            &[],
        );
        sent.expect(
            peer,
            &format!("DELETE {file}"),
            "c> DELETE FAIL, USER NOT CONNECTED",
            &[],
        );
        sent.expect(
            peer,
            &format!("DISCONNECT {user}"),
            "c> DISCONNECT FAIL, USER NOT CONNECTED",
            &["DISCONNECT"],
        );
        sent.expect(
            peer,
            &format!("UNREGISTER {user}"),
            "c> UNREGISTER OK",
            &["UNREGISTER"],
        );
    }

    // QUIT ends each shell (with nobody connected it sends nothing); with
    // piped input the status is 1, as commands above failed.
    for peer in [&mut alice, &mut bob] {
        let (status, _) = peer.quit();
        assert_eq!(
            status.code(),
            Some(1),
            "{}: QUIT exited with {status}",
            peer.name
        );
    }

    // The server printed one line per request, in order, each with the
    // DATETIME the peer sent (its own clock: the service is down).
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {} on SIGTERM",
        out.status
    );
    let mut printed = Vec::new();
    for line in &out.lines {
        let parsed = parse_operation_line(line);
        let datetime = parsed
            .datetime
            .unwrap_or_else(|| panic!("no ` AT DATETIME` in {line:?}"));
        assert!(is_datetime(&datetime), "bad DATETIME in {line:?}");
        printed.push(format!("s> OPERATION {} FROM {}", parsed.op, parsed.user));
    }
    assert_eq!(printed, sent.0, "server lines (without ` AT ...`)");
}

/// End of input acts like QUIT: a connected user is disconnected, exit 0.
#[test]
fn end_of_input_disconnects_and_exits_zero() {
    let server = Server::start(&[]);
    let dir = temp_dir();
    let mut carol = Peer::start("carol", server.port, &dead_datetime_url(), dir.path());
    carol.expect("REGISTER carol", "c> REGISTER OK");
    carol.expect("CONNECT carol", "c> CONNECT OK");
    carol.close_stdin();
    carol.stdout.read_to_eof(common::EXIT_TIMEOUT);
    let status = carol.proc.wait_exit(common::EXIT_TIMEOUT);
    assert!(
        status.success(),
        "p2p-peer exited with {status} at end of input"
    );

    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {} on SIGTERM",
        out.status
    );
    let ops: Vec<(String, String)> = out
        .lines
        .iter()
        .map(|l| parse_operation_line(l))
        .map(|l| (l.op, l.user))
        .collect();
    let want = [
        ("REGISTER", "carol"),
        ("CONNECT", "carol"),
        ("DISCONNECT", "carol"),
    ]
    .map(|(op, user)| (op.to_owned(), user.to_owned()));
    assert_eq!(ops, want, "server lines");
}
