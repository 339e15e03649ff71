//! GET_FILE's destination, checked before anything is fetched (a folder
//! receives the remote name's last part, no local name means the working
//! directory, a missing folder fails at once, a published file is never
//! overwritten, new files get the umask's mode), and the shell's input
//! rules: double quotes, over-long fields, lines that are not UTF-8, and the
//! exit status with piped input.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Peer, Server, dead_datetime_url, dir_names, temp_dir};

/// The mode this process's umask gives a new file (the peer inherits it).
fn umask_mode(dir: &Path) -> u32 {
    let probe = dir.join("probe");
    std::fs::File::create(&probe).unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(probe).unwrap();
    mode
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// alice publishes `music/song.bin` and `x.txt`; bob is connected.
fn setup(
    server: &Server,
    url: &str,
    a_dir: &Path,
    b_dir: &Path,
    bob_args: &[&str],
) -> (Peer, Peer) {
    std::fs::create_dir(a_dir.join("music")).unwrap();
    std::fs::write(a_dir.join("music/song.bin"), b"la la la").unwrap();
    std::fs::write(a_dir.join("x.txt"), b"x").unwrap();
    let mut alice = Peer::start("alice", server.port, url, a_dir);
    alice.expect("REGISTER alice", "c> REGISTER OK");
    alice.expect("CONNECT alice", "c> CONNECT OK");
    alice.expect("PUBLISH music/song.bin a song", "c> PUBLISH OK");
    alice.expect("PUBLISH x.txt a letter", "c> PUBLISH OK");
    let mut bob = Peer::start_args("bob", server.port, url, b_dir, bob_args);
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    (alice, bob)
}

#[test]
fn destinations_are_checked_before_anything_is_fetched() {
    let mut server = Server::start(&[]);
    let url = dead_datetime_url();
    let (a_dir, b_dir) = (temp_dir(), temp_dir());
    let (_alice, mut bob) = setup(&server, &url, a_dir.path(), b_dir.path(), &[]);
    let expected_mode = umask_mode(b_dir.path());

    // An existing folder receives the remote name's last part.
    std::fs::create_dir(b_dir.path().join("sub")).unwrap();
    bob.expect("GET_FILE alice music/song.bin sub", "c> GET_FILE OK");
    let saved = b_dir.path().join("sub/song.bin");
    assert_eq!(std::fs::read(&saved).unwrap(), b"la la la");
    assert_eq!(mode(&saved), expected_mode, "the umask's mode, not 0600");

    // No local name: the working directory.
    bob.expect("GET_FILE alice music/song.bin", "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(b_dir.path().join("song.bin")).unwrap(),
        b"la la la"
    );

    // A missing folder fails at once: the directory server is not even asked
    // where alice is.
    // (REGISTER marks where the server's lines for this command start.)
    bob.expect("REGISTER before", "c> REGISTER OK");
    server
        .stdout
        .wait_for(common::LINE_TIMEOUT, |l| l.contains("REGISTER FROM before"));
    let before = server.stdout.history().len();
    bob.expect("GET_FILE alice x.txt nope/x.txt", "c> GET_FILE FAIL");
    let why = bob
        .stderr
        .wait_for(common::LINE_TIMEOUT, |l| l.contains("nope"));
    assert!(why.contains("does not exist"), "{why}");
    bob.expect("REGISTER carol", "c> REGISTER OK");
    server
        .stdout
        .wait_for(common::LINE_TIMEOUT, |l| l.contains("REGISTER FROM carol"));
    let ops: Vec<_> = server.stdout.history()[before..].to_vec();
    assert!(
        !ops.iter().any(|l| l.contains("FROM bob")),
        "only REGISTER reached the server: {ops:?}"
    );

    // A file bob publishes is never overwritten.
    std::fs::write(b_dir.path().join("mine.txt"), b"my own").unwrap();
    bob.expect("PUBLISH mine.txt mine", "c> PUBLISH OK");
    bob.expect("GET_FILE alice x.txt mine.txt", "c> GET_FILE FAIL");
    assert_eq!(
        std::fs::read(b_dir.path().join("mine.txt")).unwrap(),
        b"my own"
    );
    let why = bob
        .stderr
        .wait_for(common::LINE_TIMEOUT, |l| l.contains("mine.txt"));
    assert!(why.contains("not overwritten"), "{why}");

    // Nothing else was left behind.
    assert_eq!(
        dir_names(b_dir.path()),
        ["mine.txt", "song.bin", "sub"].map(String::from).into()
    );
    let (status, _) = bob.quit();
    assert_eq!(status.code(), Some(1), "a command failed: {status}");
}

#[test]
fn classic_downloads_get_the_umask_mode_too() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let (a_dir, b_dir) = (temp_dir(), temp_dir());
    let (_alice, mut bob) = setup(&server, &url, a_dir.path(), b_dir.path(), &["--classic"]);
    bob.expect("GET_FILE alice x.txt copy.txt", "c> GET_FILE OK");
    let saved = b_dir.path().join("copy.txt");
    assert_eq!(std::fs::read(&saved).unwrap(), b"x");
    assert_eq!(mode(&saved), umask_mode(b_dir.path()));
    // Only OK results: status 0.
    let (status, _) = bob.quit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn quotes_long_fields_and_bad_bytes() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let dir = temp_dir();
    std::fs::write(dir.path().join("my file.txt"), b"spaces").unwrap();
    let mut peer = Peer::start("dave", server.port, &url, dir.path());
    peer.expect("REGISTER dave", "c> REGISTER OK");
    peer.expect("CONNECT dave", "c> CONNECT OK");
    // Double quotes hold spaces and are not part of the name.
    peer.expect(
        "PUBLISH \"my file.txt\" a file with spaces",
        "c> PUBLISH OK",
    );
    peer.expect_listing("LIST_CONTENT dave", "c> LIST_CONTENT OK", &["my file.txt"]);
    peer.expect(
        "DELETE \"my file.txt",
        "c> Syntax error. A double quote is not closed",
    );
    // Over 255 bytes: too long, with the limit.
    let long = "d".repeat(300);
    peer.expect(
        &format!("PUBLISH \"my file.txt\" {long}"),
        "c> ERROR: the description is 300 bytes long; at most 255 bytes are allowed",
    );
    peer.expect(
        &format!("LIST_CONTENT {}", "u".repeat(256)),
        "c> ERROR: the user name is 256 bytes long; at most 255 bytes are allowed",
    );
    // A line that is not UTF-8: an error, and the session goes on.
    peer.send_bytes(b"REGISTER \xff\xfe\n");
    assert_eq!(
        peer.result_within("not UTF-8", common::LINE_TIMEOUT),
        "c> ERROR: the line is not valid UTF-8; it was ignored"
    );
    peer.expect("DELETE \"my file.txt\"", "c> DELETE OK");
    let (status, _) = peer.quit();
    assert_eq!(status.code(), Some(1), "commands failed: {status}");
}

#[test]
fn a_piped_session_without_failures_exits_zero() {
    let server = Server::start(&[]);
    let url = dead_datetime_url();
    let dir = temp_dir();
    let mut peer = Peer::start("erin", server.port, &url, dir.path());
    peer.expect("REGISTER erin", "c> REGISTER OK");
    peer.expect("CONNECT erin", "c> CONNECT OK");
    peer.expect_listing("LIST_USERS", "c> LIST_USERS OK", &[]);
    peer.send("HELP");
    assert!(peer.stdout.next_line().starts_with("Commands"));
    let (status, _) = peer.quit();
    assert_eq!(status.code(), Some(0), "{status}");
}
