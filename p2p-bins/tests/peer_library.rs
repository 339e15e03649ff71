//! The remembered library: a peer killed with SIGKILL and started again
//! with the same state directory serves what it published before, says
//! which files it can no longer serve, and forgets what DELETE and
//! UNREGISTER remove. PUBLISH of a name the directory already lists for the
//! user prints the contract's text but serves the file.

mod common;

use common::{LINE_TIMEOUT, Peer, Server, dead_datetime_url, temp_dir};

#[test]
fn a_restarted_peer_serves_its_earlier_publications() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let a_dir = temp_dir();
    let state = temp_dir();
    let a_bytes = common::pseudo_random_bytes(300_000, 7);
    std::fs::write(a_dir.path().join("a.bin"), &a_bytes).unwrap();
    std::fs::write(a_dir.path().join("b.txt"), b"soon gone").unwrap();
    std::fs::write(a_dir.path().join("my notes.txt"), b"notes").unwrap();

    let mut alice = Peer::start_with(
        "alice",
        server.port,
        &url,
        a_dir.path(),
        state.path(),
        &[],
        &[],
    );
    alice.expect("REGISTER alice", "c> REGISTER OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect("PUBLISH a.bin random bytes", "c> PUBLISH OK");
    alice.expect("PUBLISH b.txt a file", "c> PUBLISH OK");
    alice.expect("PUBLISH \"my notes.txt\" notes", "c> PUBLISH OK");
    // A crash: no DISCONNECT, nothing flushed at exit.
    alice.proc.kill();
    std::fs::remove_file(a_dir.path().join("b.txt")).unwrap();

    let mut alice = Peer::start_with(
        "alice again",
        server.port,
        &url,
        a_dir.path(),
        state.path(),
        &[],
        &[],
    );
    // The directory still has the killed peer connected; this peer's state
    // says that was an earlier run of it, now gone: CONNECT takes over.
    alice.expect("CONNECT alice", "c> CONNECT OK");
    let again = alice
        .stderr
        .wait_for(LINE_TIMEOUT, |l| l.contains("connecting again"));
    assert!(again.contains("stopped without DISCONNECT"), "{again}");
    let gone = alice.stderr.wait_for(LINE_TIMEOUT, |l| l.contains("b.txt"));
    assert!(
        gone.contains("can no longer share b.txt") && gone.contains("is gone"),
        "{gone}"
    );
    // Only b.txt is reported.
    let reported: Vec<_> = alice
        .stderr
        .poll()
        .iter()
        .filter(|l| l.contains("no longer share"))
        .cloned()
        .collect();
    assert_eq!(reported.len(), 1, "{reported:?}");

    let b_dir = temp_dir();
    let mut bob = Peer::start("bob", server.port, &url, b_dir.path());
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    bob.expect("GET_FILE alice a.bin copy.bin", "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(b_dir.path().join("copy.bin")).unwrap(),
        a_bytes
    );
    bob.expect("GET_FILE alice \"my notes.txt\"", "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(b_dir.path().join("my notes.txt")).unwrap(),
        b"notes"
    );
    bob.expect(
        "GET_FILE alice b.txt b.txt",
        "c> GET_FILE FAIL, FILE NOT EXIST",
    );

    // DELETE forgets: not served now, nor after another restart.
    alice.expect("DELETE a.bin", "c> DELETE OK");
    bob.expect(
        "GET_FILE alice a.bin again.bin",
        "c> GET_FILE FAIL, FILE NOT EXIST",
    );
    let library = std::fs::read_to_string(
        state
            .path()
            .join(format!("127.0.0.1-{}/alice/library", server.port)),
    )
    .unwrap();
    assert!(!library.contains("a.bin"), "{library}");
    assert!(library.contains("my notes.txt"), "{library}");

    // UNREGISTER forgets everything of the user.
    alice.expect("DISCONNECT alice", "c> DISCONNECT OK");
    alice.expect("UNREGISTER alice", "c> UNREGISTER OK");
    assert!(
        !state
            .path()
            .join(format!("127.0.0.1-{}/alice/library", server.port))
            .exists()
    );
    let (status, _) = alice.quit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn publish_of_a_name_already_listed_serves_the_file() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let a_dir = temp_dir();
    std::fs::write(a_dir.path().join("x.txt"), b"x marks the spot").unwrap();
    // Two runs with separate state directories: the second knows nothing.
    let mut alice = Peer::start("alice", server.port, &url, a_dir.path());
    alice.expect("REGISTER alice", "c> REGISTER OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect("PUBLISH x.txt a file", "c> PUBLISH OK");
    alice.proc.kill();

    let mut alice = Peer::start("alice again", server.port, &url, a_dir.path());
    // Nothing in this state directory says the connection was its own.
    alice.expect("CONNECT alice", "c> USER ALREADY CONNECTED");
    alice.expect("DISCONNECT alice", "c> DISCONNECT OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect(
        "PUBLISH x.txt a file",
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
    );
    let b_dir = temp_dir();
    let mut bob = Peer::start("bob", server.port, &url, b_dir.path());
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    bob.expect("GET_FILE alice x.txt", "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(b_dir.path().join("x.txt")).unwrap(),
        b"x marks the spot"
    );
}
