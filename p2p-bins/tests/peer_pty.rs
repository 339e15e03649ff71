//! The peer shell as a person sees it: the real `p2p-peer` on a
//! pseudo-terminal (rexpect), against a real `p2p-server`.
//!
//! Ctrl-C during a transfer returns a prompt and the next command works;
//! SIGTERM and SIGHUP disconnect and exit 0; `help`; Tab completion; history
//! across two runs. Also SIGINT with piped input.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::thread;

use common::{LINE_TIMEOUT, Peer, Server, dead_datetime_url, dir_names, peer_bin, temp_dir};
use p2p_proto::transfer::{Digest, GetFileFromHeader, TransferHeader, TransferRequest};
use p2p_proto::{Decode, Encode};
use rexpect::process::{Signal, WaitStatus};
use rexpect::session::PtySession;

/// Milliseconds any expected output may take (debug builds, two loaded cores).
const EXPECT_MS: u64 = 30_000;

/// Starts `p2p-peer` on a pseudo-terminal in `dir` with `--state-dir state`.
fn pty_peer(server_port: u16, dir: &Path, state: &Path) -> PtySession {
    let mut command = Command::new(peer_bin());
    command
        .args(["-s", "127.0.0.1", "-p", &server_port.to_string()])
        .args(["--datetime-url", &dead_datetime_url()])
        .args(["--listen-addr", "127.0.0.1", "--listen-port", "0"])
        .arg("--state-dir")
        .arg(state)
        .current_dir(dir)
        .env("TERM", "xterm")
        .env_remove("DATETIME_URL")
        .env_remove("P2P_STATE_DIR");
    let mut session =
        rexpect::session::spawn_command(command, Some(EXPECT_MS)).expect("start p2p-peer");
    session.exp_string("c> ").expect("the first prompt");
    session
}

/// Types `line` and Enter, waits for `expected` (a result line), then for
/// the next prompt (rustyline shows it once the terminal is in raw mode
/// again, so keys typed after it are keys, not signals). QUIT has no prompt
/// after it.
#[track_caller]
fn run(session: &mut PtySession, line: &str, expected: &str) {
    session.send_line(line).expect("type a line");
    if let Err(e) = session.exp_string(expected) {
        panic!("`{line}`: no {expected:?}: {e}");
    }
    if !line.eq_ignore_ascii_case("QUIT") {
        session.exp_string("c> ").expect("the next prompt");
    }
}

/// Types `text` without Enter (rexpect buffers until a newline or a flush).
fn keys(session: &mut PtySession, text: &str) {
    session.send(text).expect("type keys");
    session.flush().expect("send the keys");
}

/// Waits for the process to exit and returns its exit code.
fn exit_code(session: &PtySession) -> i32 {
    match session.process().wait() {
        Ok(WaitStatus::Exited(_, code)) => code,
        other => panic!("p2p-peer did not exit normally: {other:?}"),
    }
}

/// A user whose transfer listener is `port`, registered and connected the
/// classic way (no DATETIME), as a peer on another machine would be.
fn register_and_connect(server_port: u16, user: &str, port: u16) {
    for request in [
        format!("REGISTER\0{user}\0"),
        format!("CONNECT\0{user}\0{port}\0"),
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut result = [0u8; 1];
        stream.read_exact(&mut result).unwrap();
        assert_eq!(result[0], 0, "{request:?}");
    }
}

/// What the slow peer reports.
#[derive(Debug, PartialEq, Eq)]
enum Slow {
    /// It sent the header and the first bytes, then stopped sending.
    Started,
    /// The requester closed the connection.
    Closed,
}

/// Size of the file the slow peer announces.
const SLOW_SIZE: u64 = 64 << 20;
/// Bytes it sends at once.
const SLOW_SENT: usize = 1 << 20;
/// Bytes it sends every 50 ms after those.
const TRICKLE: usize = 16 << 10;

/// A peer that serves one 64 MiB file of zeros: it sends the header and
/// the first MiB, then trickles 16 KiB every 50 ms until the requester
/// closes, so a transfer is interruptible at a known point and runs long
/// enough for its progress bar. Answers GET_FILE_FROM and GET_FILE.
fn slow_peer() -> (u16, Receiver<Slow>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    let zeros = vec![0u8; usize::try_from(SLOW_SIZE).unwrap()];
    let digest = Digest::from_bytes(*blake3::hash(&zeros).as_bytes());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            let request = loop {
                if let Ok(Some((request, _))) = TransferRequest::decode(&buf) {
                    break Some(request);
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let mut out = Vec::new();
            match request {
                Some(TransferRequest::GetFileFrom(_)) => GetFileFromHeader::Ok {
                    size: SLOW_SIZE,
                    digest,
                }
                .encode(&mut out),
                Some(TransferRequest::GetFile(_)) => {
                    TransferHeader::Ok { size: SLOW_SIZE }.encode(&mut out);
                }
                None => continue,
            }
            out.extend_from_slice(&zeros[..SLOW_SENT]);
            if stream.write_all(&out).is_err() {
                continue;
            }
            let _ = tx.send(Slow::Started);
            // A trickle (at most ~10 MiB in 30 s): the write fails once the
            // requester has gone.
            let mut offset = SLOW_SENT;
            while offset + TRICKLE <= zeros.len()
                && stream.write_all(&zeros[offset..offset + TRICKLE]).is_ok()
            {
                offset += TRICKLE;
                thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = tx.send(Slow::Closed);
        }
    });
    (port, rx)
}

#[test]
fn ctrl_c_stops_a_transfer_and_the_prompt_returns() {
    let server = Server::start(&[]);
    let (slow_port, slow) = slow_peer();
    register_and_connect(server.port, "slow", slow_port);
    let dir = temp_dir();
    let state = temp_dir();
    let mut bob = pty_peer(server.port, dir.path(), state.path());
    run(&mut bob, "REGISTER bob", "c> REGISTER OK");
    run(&mut bob, "CONNECT bob", "c> CONNECT OK");
    bob.send_line("GET_FILE slow big.bin copy.bin").unwrap();
    assert_eq!(slow.recv_timeout(LINE_TIMEOUT), Ok(Slow::Started));
    // After half a second a progress bar names the file and its size.
    bob.exp_regex(r"big\.bin .*/64\.00 MiB")
        .expect("a progress bar naming the file");
    // Ctrl-C while the command runs: the terminal is in its normal mode, so
    // this is a SIGINT.
    bob.send_control('c').unwrap();
    bob.exp_string("c> GET_FILE FAIL")
        .expect("the stopped command's result");
    bob.exp_string("c> ").expect("a prompt after Ctrl-C");
    assert_eq!(slow.recv_timeout(LINE_TIMEOUT), Ok(Slow::Closed));
    // The next command works; the process is alive.
    run(&mut bob, "LIST_USERS", "c> LIST_USERS OK");
    assert_eq!(bob.process().status(), Some(WaitStatus::StillAlive));
    // PROTOCOL.md §6.4: after a cancel the part file stays, the destination
    // does not exist.
    let names = dir_names(dir.path());
    assert!(names.contains(".copy.bin.part"), "{names:?}");
    assert!(!names.contains("copy.bin"), "{names:?}");
    // Ctrl-C at the prompt clears the line; the shell goes on.
    keys(&mut bob, "LIST_US");
    bob.send_control('c').unwrap();
    bob.exp_string("c> ").expect("a fresh prompt after Ctrl-C");
    run(&mut bob, "LIST_USERS", "c> LIST_USERS OK");
    run(&mut bob, "QUIT", "");
    assert_eq!(exit_code(&bob), 0);
}

/// bob, with piped input, connected and in the middle of a GET_FILE from a
/// peer that trickles the file; with that peer's port, its events and bob's
/// working directory.
fn piped_bob_downloading_slowly(server: &Server) -> (Peer, u16, Receiver<Slow>, tempfile::TempDir) {
    let (slow_port, slow) = slow_peer();
    register_and_connect(server.port, "slow", slow_port);
    let dir = temp_dir();
    let url = dead_datetime_url();
    let mut bob = Peer::start("bob", server.port, &url, dir.path());
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    bob.send("GET_FILE slow big.bin copy.bin");
    assert_eq!(slow.recv_timeout(LINE_TIMEOUT), Ok(Slow::Started));
    (bob, slow_port, slow, dir)
}

#[test]
fn sigint_with_piped_input_stops_the_running_command() {
    let server = Server::start(&[]);
    let (mut bob, slow_port, slow, _dir) = piped_bob_downloading_slowly(&server);
    bob.proc.interrupt();
    assert_eq!(
        bob.result_within("GET_FILE", LINE_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    assert_eq!(slow.recv_timeout(LINE_TIMEOUT), Ok(Slow::Closed));
    let (result, users) = bob.listing("LIST_USERS");
    assert_eq!(result, "c> LIST_USERS OK");
    assert_eq!(users, [format!("slow 127.0.0.1 {slow_port}")]);
    // A command failed: status 1 with piped input.
    let (status, _) = bob.quit();
    assert_eq!(status.code(), Some(1), "{status}");
}

/// SIGTERM or SIGHUP at the prompt: the user is disconnected, the status is 0.
fn signal_acts_like_quit(signal: Signal) {
    let mut server = Server::start(&[]);
    let dir = temp_dir();
    let state = temp_dir();
    let mut alice = pty_peer(server.port, dir.path(), state.path());
    run(&mut alice, "REGISTER alice", "c> REGISTER OK");
    run(&mut alice, "CONNECT alice", "c> CONNECT OK");
    // Another user sees alice connected.
    let url = dead_datetime_url();
    let mut bob = Peer::start("bob", server.port, &url, dir.path());
    bob.expect("REGISTER bob", "c> REGISTER OK");
    bob.expect("CONNECT bob", "c> CONNECT OK");
    let (_, users) = bob.listing("LIST_USERS");
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(users[0].starts_with("alice "), "{users:?}");
    // On a terminal a download ends with a summary (size, time, rate) after
    // its OK line.
    std::fs::write(dir.path().join("f.txt"), b"hello").unwrap();
    bob.expect("PUBLISH f.txt five bytes", "c> PUBLISH OK");
    alice.send_line("GET_FILE bob f.txt copy.txt").unwrap();
    alice.exp_string("c> GET_FILE OK").expect("the download");
    alice
        .exp_string("copy.txt: 5 B in ")
        .expect("the summary after the OK line");
    alice.exp_string("c> ").expect("the next prompt");

    alice.process_mut().signal(signal).unwrap();
    assert_eq!(exit_code(&alice), 0, "{signal:?}");
    server.stdout.wait_for(LINE_TIMEOUT, |l| {
        l.starts_with("s> OPERATION DISCONNECT FROM alice")
    });
    bob.expect_listing("LIST_USERS", "c> LIST_USERS OK", &[]);
}

#[test]
fn sigterm_disconnects_and_exits_zero() {
    signal_acts_like_quit(Signal::SIGTERM);
}

#[test]
fn sighup_disconnects_and_exits_zero() {
    signal_acts_like_quit(Signal::SIGHUP);
}

#[test]
fn help_tab_completion_and_history_across_runs() {
    let server = Server::start(&[]);
    let dir = temp_dir();
    let state = temp_dir();
    let mut peer = pty_peer(server.port, dir.path(), state.path());
    peer.send_line("help").unwrap();
    peer.exp_string("GET_FILE <userName> <remote_fileName> [<local_fileName>]")
        .expect("help lists GET_FILE's usage");
    peer.exp_string("Disconnects the connected user and leaves")
        .expect("help lists QUIT");
    peer.exp_string("c> ").expect("the next prompt");
    run(
        &mut peer,
        "help publish",
        "PUBLISH <fileName> <description>: Shares a local file",
    );
    // Tab completes a command word: `LIST_C<Tab>` becomes `LIST_CONTENT `.
    keys(&mut peer, "LIST_C");
    keys(&mut peer, "\t");
    run(
        &mut peer,
        "carol",
        "c> LIST_CONTENT FAIL, USER NOT CONNECTED",
    );
    run(&mut peer, "REGISTER hist_user", "c> REGISTER OK");
    // A user name seen in this session completes too, and a local path.
    keys(&mut peer, "CONNECT hist_");
    keys(&mut peer, "\t");
    run(&mut peer, "", "c> CONNECT OK");
    std::fs::write(dir.path().join("local_file.txt"), b"x").unwrap();
    keys(&mut peer, "PUBLISH local_f");
    keys(&mut peer, "\t");
    run(&mut peer, " a file", "c> PUBLISH OK");
    run(&mut peer, "QUIT", "");
    assert_eq!(exit_code(&peer), 0);
    let history = std::fs::read_to_string(state.path().join("history")).unwrap();
    assert!(history.contains("REGISTER hist_user"), "{history}");
    assert!(history.contains("CONNECT hist_user"), "{history}");

    // A second run: Up twice brings back the line before the first run's
    // QUIT (which disconnected hist_user).
    let mut again = pty_peer(server.port, dir.path(), state.path());
    keys(&mut again, "\x1b[A");
    again.exp_string("QUIT").expect("Up shows the last line");
    keys(&mut again, "\x1b[A");
    again
        .exp_string("PUBLISH local_file.txt a file")
        .expect("Up again shows the line before it");
    run(&mut again, "", "c> PUBLISH FAIL, USER NOT CONNECTED");
    run(&mut again, "QUIT", "");
    assert_eq!(exit_code(&again), 0);
}

#[test]
fn sigterm_during_a_transfer_stops_it_and_disconnects() {
    let mut server = Server::start(&[]);
    let (mut bob, _, slow, _dir) = piped_bob_downloading_slowly(&server);
    bob.proc.terminate();
    assert_eq!(
        bob.result_within("GET_FILE", LINE_TIMEOUT),
        "c> GET_FILE FAIL"
    );
    assert_eq!(slow.recv_timeout(LINE_TIMEOUT), Ok(Slow::Closed));
    server.stdout.wait_for(LINE_TIMEOUT, |l| {
        l.starts_with("s> OPERATION DISCONNECT FROM bob")
    });
    // As QUIT with piped input after a failed command (the stopped one).
    let status = bob.proc.wait_exit(common::EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{status}");
}
