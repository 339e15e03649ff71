//! The directory's durable stores with the real `p2p-server` binary
//! (PROTOCOL.md §1, `--store`):
//!
//! - SQLite survives SIGKILL: clients hammer the server, it is killed at a
//!   random moment, restarted on the same file, and the state read back
//!   through the protocol must be what the answered operations built (the one
//!   request in flight per client applied whole or not at all).
//! - Start-up refusals: corrupt files, another program's SQLite file, a newer
//!   schema, a file in use, bad URLs, a directory; the default store and
//!   `P2P_STORE`.
//! - A clean restart keeps everything, in order.
//! - PostgreSQL: two servers share one directory, PostgreSQL restarting under
//!   load, a newer schema, several servers migrating an empty database at once.
//!   Skipped visibly when PostgreSQL is not installed.
//!
//! Requests are written as the exact bytes of PROTOCOL.md §1 on one TCP
//! connection each, so that what the test checks is the wire contract.

mod common;
#[path = "../../p2p-core/tests/support/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{EXIT_TIMEOUT, LINE_TIMEOUT, Lines, Proc, Server, free_port, server_bin, temp_dir};
use postgres::PgCluster;

/// The DATETIME every request carries.
const DATETIME: &str = "24/11/2026 20:42:35";

/// Bound on one whole request (connect, send, reply) unless a test says
/// otherwise. Generous: debug builds on two busy cores.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The wire: one request per connection, exact bytes.
// ---------------------------------------------------------------------------

/// `OP\0DATETIME\0USER\0FIELDS...`
fn encode(op: &str, user: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [op, DATETIME, user].iter().chain(fields) {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    out
}

/// Sends `request` on a new connection and reads until the server closes.
/// `Err` says why there is no reply: not reachable, reset, timed out, or
/// closed without a byte.
fn exchange(port: u16, request: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let deadline = Instant::now() + timeout;
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .map_err(|e| format!("socket options: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no end of reply within {timeout:?} (got {reply:?})"
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("socket options: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read (after {} bytes): {e}", reply.len())),
        }
    }
    if reply.is_empty() {
        return Err("the server closed the connection without a reply".to_owned());
    }
    Ok(reply)
}

/// A change operation (the ones the clients of the kill test issue).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Register,
    Unregister,
    Connect(u16),
    Disconnect,
    Publish(String, String),
    Delete(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Action {
    user: String,
    op: Op,
}

impl Action {
    fn bytes(&self) -> Vec<u8> {
        let user = self.user.as_str();
        match &self.op {
            Op::Register => encode("REGISTER", user, &[]),
            Op::Unregister => encode("UNREGISTER", user, &[]),
            Op::Connect(port) => encode("CONNECT", user, &[&port.to_string()]),
            Op::Disconnect => encode("DISCONNECT", user, &[]),
            Op::Publish(file, description) => encode("PUBLISH", user, &[file, description]),
            Op::Delete(file) => encode("DELETE", user, &[file]),
        }
    }

    /// The operation's "other error" byte.
    fn other_error(&self) -> u8 {
        match self.op {
            Op::Register | Op::Unregister => 2,
            Op::Connect(_) | Op::Disconnect => 3,
            Op::Publish(..) | Op::Delete(_) => 4,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            Op::Register => write!(f, "REGISTER {}", self.user),
            Op::Unregister => write!(f, "UNREGISTER {}", self.user),
            Op::Connect(port) => write!(f, "CONNECT {} {port}", self.user),
            Op::Disconnect => write!(f, "DISCONNECT {}", self.user),
            Op::Publish(file, _) => write!(f, "PUBLISH {} {file}", self.user),
            Op::Delete(file) => write!(f, "DELETE {} {file}", self.user),
        }
    }
}

/// Sends a change and returns its result byte; `Err` when no reply came.
/// Panics on a reply that is not exactly one byte in the operation's range.
fn change_within(port: u16, action: &Action, timeout: Duration) -> Result<u8, String> {
    let reply = exchange(port, &action.bytes(), timeout)?;
    let max = action.other_error();
    assert!(
        reply.len() == 1 && reply[0] <= max,
        "`{action}`: the reply must be one byte 0..={max}, got {reply:?}"
    );
    Ok(reply[0])
}

/// [`change_within`] that must get a reply.
fn change(port: u16, action: &Action) -> u8 {
    change_within(port, action, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("`{action}` on port {port}: no reply: {e}"))
}

fn act(user: &str, op: Op) -> Action {
    Action {
        user: user.to_owned(),
        op,
    }
}

/// The NUL-terminated strings of a listing (`rest` must end with a NUL).
fn strings(rest: &[u8], what: &str) -> Vec<String> {
    assert!(
        rest.last() == Some(&0),
        "{what}: the reply must end with a NUL, got {rest:?}"
    );
    rest[..rest.len() - 1]
        .split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).expect("UTF-8 field"))
        .collect()
}

/// A connected user as LIST_USERS shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    ip: String,
    port: u16,
}

/// The result byte of LIST_USERS and, after a 0, its entries.
fn parse_list_users(reply: &[u8]) -> (u8, Vec<Entry>) {
    let what = "LIST_USERS";
    if reply[0] != 0 {
        assert!(
            reply.len() == 1 && reply[0] <= 3,
            "{what}: bad reply {reply:?}"
        );
        return (reply[0], Vec::new());
    }
    let fields = strings(&reply[1..], what);
    let n: usize = fields[0].parse().expect("LIST_USERS count");
    assert_eq!(fields.len(), 1 + 3 * n, "{what}: {n} entries in {fields:?}");
    let entries = fields[1..]
        .chunks(3)
        .map(|c| Entry {
            name: c[0].clone(),
            ip: c[1].clone(),
            port: c[2].parse().expect("LIST_USERS port"),
        })
        .collect();
    (0, entries)
}

/// The result byte of LIST_CONTENT and, after a 0, its file names.
fn parse_list_content(reply: &[u8]) -> (u8, Vec<String>) {
    let what = "LIST_CONTENT";
    if reply[0] != 0 {
        assert!(
            reply.len() == 1 && reply[0] <= 4,
            "{what}: bad reply {reply:?}"
        );
        return (reply[0], Vec::new());
    }
    let fields = strings(&reply[1..], what);
    let n: usize = fields[0].parse().expect("LIST_CONTENT count");
    assert_eq!(fields.len(), 1 + n, "{what}: {n} entries in {fields:?}");
    (0, fields[1..].to_vec())
}

fn list_users(port: u16, user: &str) -> (u8, Vec<Entry>) {
    let reply = exchange(port, &encode("LIST_USERS", user, &[]), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("LIST_USERS {user} on port {port}: no reply: {e}"));
    parse_list_users(&reply)
}

fn list_content(port: u16, user: &str, target: &str) -> (u8, Vec<String>) {
    let reply = exchange(port, &encode("LIST_CONTENT", user, &[target]), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("LIST_CONTENT {user} {target} on port {port}: no reply: {e}"));
    parse_list_content(&reply)
}

/// Asserts a change's result byte.
#[track_caller]
fn expect(port: u16, user: &str, op: Op, expected: u8) {
    let action = act(user, op);
    let got = change(port, &action);
    assert_eq!(got, expected, "`{action}` on port {port}");
}

fn entries(list: &[(&str, u16)]) -> Vec<Entry> {
    list.iter()
        .map(|&(name, port)| Entry {
            name: name.to_owned(),
            ip: "127.0.0.1".to_owned(),
            port,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Processes.
// ---------------------------------------------------------------------------

/// A `p2p-server` command on 127.0.0.1 with a hermetic environment (no log
/// service, no `P2P_STORE`) and no store argument.
fn server_command(port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(server_bin());
    command
        .args(["-p", &port.to_string(), "--bind", "127.0.0.1"])
        .args(extra)
        .env_remove("LOG_RPC_IP")
        .env_remove("P2P_STORE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// A server started by a test's own command (the harness' `Server` always
/// picks the store itself unless given `--store`).
#[derive(Debug)]
struct Started {
    proc: Proc,
    stdout: Lines,
    stderr: Lines,
    port: u16,
}

/// Spawns `command` without waiting for anything.
fn spawn(mut command: Command) -> (Proc, Lines, Lines) {
    let mut proc = Proc::spawn("p2p-server", &mut command);
    let stdout = Lines::spawn("p2p-server stdout", proc.take_stdout());
    let stderr = Lines::spawn("p2p-server stderr", proc.take_stderr());
    (proc, stdout, stderr)
}

/// Waits for the init line of a spawned server.
fn wait_ready(proc: Proc, mut stdout: Lines, mut stderr: Lines) -> Started {
    let Some(init) = stdout.next_within(LINE_TIMEOUT) else {
        let mut proc = proc;
        let status = proc.wait_exit(EXIT_TIMEOUT);
        let err = stderr.read_to_eof(EXIT_TIMEOUT).to_vec();
        panic!("p2p-server exited ({status}) before its init line; stderr: {err:#?}");
    };
    let port = init
        .strip_prefix("s> init server 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first server line {init:?}"));
    Started {
        proc,
        stdout,
        stderr,
        port,
    }
}

impl Started {
    fn start(command: Command) -> Self {
        let (proc, stdout, stderr) = spawn(command);
        wait_ready(proc, stdout, stderr)
    }

    /// SIGTERM, then the exit status and the stderr lines.
    fn stop(mut self) -> (ExitStatus, Vec<String>) {
        self.proc.terminate();
        self.stdout.read_to_eof(EXIT_TIMEOUT);
        let status = self.proc.wait_exit(EXIT_TIMEOUT);
        (status, self.stderr.read_to_eof(EXIT_TIMEOUT).to_vec())
    }
}

/// What a server that was expected to refuse to start did.
#[derive(Debug)]
struct Exited {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

/// Runs `command` and waits for it to exit; panics (with what it printed)
/// when it is still running after 30 s, e.g. because it started serving.
fn run_to_exit(command: Command) -> Exited {
    let (mut proc, mut stdout, mut stderr) = spawn(command);
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = try_status(&mut proc) {
            return Exited {
                status,
                stdout: stdout.read_to_eof(EXIT_TIMEOUT).to_vec(),
                stderr: stderr.read_to_eof(EXIT_TIMEOUT).to_vec(),
            };
        }
        if Instant::now() > deadline {
            proc.kill();
            panic!(
                "p2p-server did not exit within {EXIT_TIMEOUT:?}; stdout: {:#?}, stderr: {:#?}",
                stdout.poll(),
                stderr.poll()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The exit status if the process has exited (it is then reaped).
fn try_status(proc: &mut Proc) -> Option<ExitStatus> {
    // `wait_exit` with a zero timeout would kill and panic; poll through
    // `/proc` instead: a zombie or a vanished pid means it has exited.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", proc.pid())).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    match state {
        Some("Z") | None => Some(proc.wait_exit(EXIT_TIMEOUT)),
        _ => None,
    }
}

/// Asserts that a store was refused at start: exit 1, nothing on stdout, one
/// stderr line `p2p-server: store URL: ...` that contains `reason`.
#[track_caller]
fn assert_refused(exited: &Exited, url: &str, reason: &str) {
    let context = format!("p2p-server --store {url}: {exited:#?}");
    assert_eq!(exited.status.code(), Some(1), "exit status; {context}");
    assert!(exited.stdout.is_empty(), "nothing on stdout; {context}");
    assert_eq!(exited.stderr.len(), 1, "exactly one stderr line; {context}");
    let line = &exited.stderr[0];
    let prefix = format!("p2p-server: store {url}: ");
    assert!(
        line.starts_with(&prefix),
        "the line starts with {prefix:?}; {context}"
    );
    assert!(line.contains(reason), "the line says {reason:?}; {context}");
}

/// Whether python3 runs here (it writes the foreign SQLite files).
/// Without it: skipped with a loud note, or failed under `P2P_REQUIRE_PYTHON=1` (CI).
fn python3() -> bool {
    common::python3_or_skip("durable_store (a test writing foreign SQLite files)")
}

/// Runs a python3 snippet with `path` as `sys.argv[1]`.
fn python_sqlite(script: &str, path: &Path) {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = common::dir_names(dir).into_iter().collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// A seeded generator.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 once, so that close seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index into `weights`, chosen with those weights.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut pick = self.below(weights.iter().sum());
        for (i, &w) in weights.iter().enumerate() {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        unreachable!("pick < sum")
    }
}

/// The seed: `P2P_TEST_SEED` when set, else from the clock.
fn seed() -> u64 {
    std::env::var("P2P_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

// ---------------------------------------------------------------------------
// 1. SQLite survives SIGKILL.
// ---------------------------------------------------------------------------

const CLIENTS: usize = 8;
const USERS_PER_CLIENT: usize = 4;
const FILES_PER_USER: u64 = 12;
const KILL_CYCLES: usize = 22;
const OBSERVER: &str = "observer";
const OBSERVER_PORT: u16 = 7;

/// One user in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UserState {
    port: Option<u16>,
    /// In publication order.
    files: Vec<String>,
}

/// The users of one client (present = registered).
type ClientState = BTreeMap<String, UserState>;

/// Applies a change to the model and returns the result byte the server must
/// answer (PROTOCOL.md §1 table).
fn apply(state: &mut ClientState, action: &Action) -> u8 {
    let user = state.get_mut(&action.user);
    match (&action.op, user) {
        (Op::Register, Some(_)) => 1,
        (Op::Register, None) => {
            state.insert(
                action.user.clone(),
                UserState {
                    port: None,
                    files: Vec::new(),
                },
            );
            0
        }
        (Op::Unregister, None) => 1,
        (Op::Unregister, Some(_)) => {
            state.remove(&action.user);
            0
        }
        (_, None) => 1,
        (Op::Connect(_), Some(u)) if u.port.is_some() => 2,
        (Op::Connect(port), Some(u)) => {
            u.port = Some(*port);
            0
        }
        (_, Some(u)) if u.port.is_none() => 2,
        (Op::Disconnect, Some(u)) => {
            u.port = None;
            0
        }
        (Op::Publish(file, _), Some(u)) => {
            if u.files.contains(file) {
                3
            } else {
                u.files.push(file.clone());
                0
            }
        }
        (Op::Delete(file), Some(u)) => match u.files.iter().position(|f| f == file) {
            Some(i) => {
                u.files.remove(i);
                0
            }
            None => 3,
        },
    }
}

/// How a connected user's place in LIST_USERS is constrained.
#[derive(Clone, Copy, Debug)]
enum Mark {
    /// Connected before this cycle, at this place of the last verified list.
    Old(usize),
    /// Connected in this cycle by a CONNECT sent at `sent` and answered at
    /// `replied` (`None`: in flight when the server was killed).
    New {
        sent: Instant,
        replied: Option<Instant>,
    },
}

/// Whether the user marked `a` must come before the one marked `b` in
/// LIST_USERS (connection order).
fn must_precede(a: Mark, b: Mark) -> bool {
    match (a, b) {
        (Mark::Old(x), Mark::Old(y)) => x < y,
        (Mark::Old(_), Mark::New { .. }) => true,
        (Mark::New { .. }, Mark::Old(_)) => false,
        (Mark::New { replied, .. }, Mark::New { sent, .. }) => replied.is_some_and(|r| r < sent),
    }
}

/// One request of a client: what, when, and what came back.
#[derive(Clone, Debug)]
struct Record {
    action: Action,
    sent: Instant,
    /// The result byte and when it arrived, or why no reply came and when.
    outcome: Result<(u8, Instant), (String, Instant)>,
}

/// Picks a client's next operation, weighted so that state accumulates.
fn choose(rng: &mut Rng, client: usize, state: &ClientState, next_port: &mut u16) -> Action {
    let user = format!("k{client}u{}", rng.below(USERS_PER_CLIENT as u64));
    let any_file = |rng: &mut Rng| format!("f{}", rng.below(FILES_PER_USER));
    let mut port = || {
        *next_port = if *next_port >= 60_000 {
            1024
        } else {
            *next_port + 1
        };
        *next_port
    };
    let description = |rng: &mut Rng| format!("file number {} of client {client}", rng.next());
    // Weights: REGISTER UNREGISTER CONNECT DISCONNECT PUBLISH DELETE
    let weights: [u64; 6] = match state.get(&user) {
        None => [85, 3, 4, 2, 3, 3],
        Some(u) if u.port.is_none() => [3, 4, 70, 4, 12, 7],
        Some(_) => [2, 2, 3, 5, 65, 23],
    };
    let op = match rng.weighted(&weights) {
        0 => Op::Register,
        1 => Op::Unregister,
        2 => Op::Connect(port()),
        3 => Op::Disconnect,
        4 => Op::Publish(any_file(rng), description(rng)),
        _ => {
            let files = state.get(&user).map(|u| u.files.as_slice()).unwrap_or(&[]);
            if !files.is_empty() && rng.below(4) != 0 {
                Op::Delete(files[rng.below(files.len() as u64) as usize].clone())
            } else {
                Op::Delete(any_file(rng))
            }
        }
    };
    Action { user, op }
}

/// A client: issues operations on its own users, one at a time, until one
/// gets no reply (the server was killed), then returns what it did.
fn run_client(
    client: usize,
    port: u16,
    mut state: ClientState,
    mut rng: Rng,
    give_up: Instant,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut next_port = 1024 + (client as u16) * 7000;
    loop {
        let action = choose(&mut rng, client, &state, &mut next_port);
        let sent = Instant::now();
        let outcome = change_within(port, &action, CALL_TIMEOUT);
        let now = Instant::now();
        match outcome {
            Ok(code) => {
                // Follow the server: the check compares the two afterwards.
                let mut after = state.clone();
                let expected = apply(&mut after, &action);
                if expected == code {
                    state = after;
                }
                records.push(Record {
                    action,
                    sent,
                    outcome: Ok((code, now)),
                });
                if expected != code || now > give_up {
                    return records;
                }
            }
            Err(e) => {
                records.push(Record {
                    action,
                    sent,
                    outcome: Err((e, now)),
                });
                return records;
            }
        }
    }
}

/// What the directory holds, as read back through the protocol.
#[derive(Debug)]
struct Observed {
    /// LIST_USERS of the observer, in order.
    connected: Vec<Entry>,
    /// LIST_CONTENT of every user of every client: `None` when the target
    /// does not exist.
    content: BTreeMap<String, Option<Vec<String>>>,
}

fn user_names(client: usize) -> Vec<String> {
    (0..USERS_PER_CLIENT)
        .map(|u| format!("k{client}u{u}"))
        .collect()
}

fn observe(port: u16) -> Observed {
    let (code, connected) = list_users(port, OBSERVER);
    assert_eq!(
        code, 0,
        "LIST_USERS of the observer, registered and connected at the start: the state was lost"
    );
    let mut content = BTreeMap::new();
    for client in 0..CLIENTS {
        for name in user_names(client) {
            let (code, files) = list_content(port, OBSERVER, &name);
            let files = match code {
                0 => Some(files),
                3 => None,
                other => panic!("LIST_CONTENT {OBSERVER} {name}: result {other}"),
            };
            content.insert(name, files);
        }
    }
    Observed { connected, content }
}

/// The part of `observed` that belongs to `client`, as a model state.
fn observed_state(observed: &Observed, client: usize) -> Result<ClientState, String> {
    let mut state = ClientState::new();
    for name in user_names(client) {
        let connected: Vec<&Entry> = observed
            .connected
            .iter()
            .filter(|e| e.name == name)
            .collect();
        match (&observed.content[&name], connected.as_slice()) {
            (None, []) => {}
            (None, [entry]) => {
                return Err(format!(
                    "{name} is listed as connected ({entry:?}) but LIST_CONTENT says it does not exist"
                ));
            }
            (Some(files), []) => {
                state.insert(
                    name,
                    UserState {
                        port: None,
                        files: files.clone(),
                    },
                );
            }
            (Some(files), [entry]) => {
                if entry.ip != "127.0.0.1" {
                    return Err(format!("{name} is listed with IP {}", entry.ip));
                }
                state.insert(
                    name,
                    UserState {
                        port: Some(entry.port),
                        files: files.clone(),
                    },
                );
            }
            (_, many) => return Err(format!("{name} is listed {} times", many.len())),
        }
    }
    Ok(state)
}

/// The verified state between cycles.
#[derive(Clone, Debug, Default)]
struct World {
    clients: Vec<ClientState>,
    /// Connected users, in LIST_USERS order.
    order: Vec<String>,
}

/// Counts for the summary.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    in_flight_applied: usize,
    in_flight_not_applied: usize,
    in_flight_either: usize,
}

/// Replays every client's answered operations on the model, resolves the one
/// in flight by what was observed, and checks LIST_USERS order. Returns the
/// new verified state, or a description of every disagreement.
fn verify(
    world: &World,
    logs: &[Vec<Record>],
    observed: &Observed,
    tally: &mut Tally,
) -> Result<World, String> {
    let mut problems = String::new();
    let mut next = World::default();
    let mut marks: BTreeMap<String, Mark> = world
        .order
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), Mark::Old(i)))
        .collect();
    for (client, log) in logs.iter().enumerate() {
        let mut state = world.clients[client].clone();
        let mut in_flight: Option<&Record> = None;
        for (i, record) in log.iter().enumerate() {
            match &record.outcome {
                Ok((code, replied)) => {
                    let before = state.clone();
                    let expected = apply(&mut state, &record.action);
                    tally.answered += 1;
                    if *code != expected {
                        let _ = writeln!(
                            problems,
                            "client {client}, request {i}: `{}` answered {code}, the model says {expected}\n  model before it: {before:?}",
                            record.action
                        );
                        break;
                    }
                    if expected == 0 {
                        match record.action.op {
                            Op::Connect(_) => {
                                marks.insert(
                                    record.action.user.clone(),
                                    Mark::New {
                                        sent: record.sent,
                                        replied: Some(*replied),
                                    },
                                );
                            }
                            Op::Disconnect | Op::Unregister => {
                                marks.remove(&record.action.user);
                            }
                            _ => {}
                        }
                    }
                }
                Err(_) => {
                    assert_eq!(i + 1, log.len(), "a client stops at its first failure");
                    in_flight = Some(record);
                }
            }
        }
        let got = match observed_state(observed, client) {
            Ok(got) => got,
            Err(e) => {
                let _ = writeln!(problems, "client {client}: {e}");
                next.clients.push(state);
                continue;
            }
        };
        let mut with = state.clone();
        let in_flight_code = in_flight.map(|record| apply(&mut with, &record.action));
        if got == state && got == with {
            if in_flight.is_some() {
                tally.in_flight_either += 1;
            }
        } else if got == state {
            tally.in_flight_not_applied += 1;
        } else if got == with {
            tally.in_flight_applied += 1;
            let record = in_flight.expect("differs from `state` only with one");
            if in_flight_code == Some(0) {
                match record.action.op {
                    Op::Connect(_) => {
                        marks.insert(
                            record.action.user.clone(),
                            Mark::New {
                                sent: record.sent,
                                replied: None,
                            },
                        );
                    }
                    Op::Disconnect | Op::Unregister => {
                        marks.remove(&record.action.user);
                    }
                    _ => {}
                }
            }
        } else {
            let flight = match in_flight {
                Some(record) => format!("`{}` ({:?})", record.action, record.outcome),
                None => "none".to_owned(),
            };
            let _ = writeln!(
                problems,
                "client {client}: the directory after the restart matches neither outcome of its request in flight ({flight})\n  observed:               {got:?}\n  answered ops only:      {state:?}\n  with the one in flight: {with:?}\n  its last requests of {}: {}",
                log.len(),
                log[log.len().saturating_sub(40)..]
                    .iter()
                    .map(|r| match &r.outcome {
                        Ok((code, _)) => format!("`{}`={code}", r.action),
                        Err((why, _)) => format!("`{}`=no reply ({why})", r.action),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        next.clients.push(got);
    }
    // Everyone listed must be one of ours; the order is connection order.
    for entry in &observed.connected {
        if !marks.contains_key(&entry.name) {
            let _ = writeln!(
                problems,
                "LIST_USERS lists {entry:?}, whom the model has not connected"
            );
        }
    }
    let listed: Vec<(&str, Mark)> = observed
        .connected
        .iter()
        .filter_map(|e| marks.get(&e.name).map(|m| (e.name.as_str(), *m)))
        .collect();
    for (i, &(a, mark_a)) in listed.iter().enumerate() {
        for &(b, mark_b) in &listed[i + 1..] {
            if must_precede(mark_b, mark_a) {
                let _ = writeln!(
                    problems,
                    "LIST_USERS lists {a} ({mark_a:?}) before {b} ({mark_b:?}), against connection order"
                );
            }
        }
    }
    next.order = observed.connected.iter().map(|e| e.name.clone()).collect();
    if problems.is_empty() {
        Ok(next)
    } else {
        Err(format!(
            "{problems}LIST_USERS after the restart: {:?}",
            observed.connected
        ))
    }
}

fn start_sqlite(port: u16, url: &str) -> Server {
    Server::start_on(port, &["-q", "--store", url])
}

#[test]
fn sqlite_directory_survives_sigkill() {
    let seed = seed();
    let started = Instant::now();
    let dir = temp_dir();
    let url = format!("sqlite:{}", dir.path().join("d.db").display());
    let port = free_port();
    let mut server = start_sqlite(port, &url);
    expect(port, OBSERVER, Op::Register, 0);
    expect(port, OBSERVER, Op::Connect(OBSERVER_PORT), 0);
    let mut world = World {
        clients: vec![ClientState::new(); CLIENTS],
        order: Vec::new(),
    };
    let mut tally = Tally::default();
    let mut rng = Rng::new(seed);
    let mut most_files = 0;
    for cycle in 0..KILL_CYCLES {
        let delay = Duration::from_millis(100 + rng.below(500));
        let give_up = Instant::now() + Duration::from_secs(20);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let state = world.clients[k].clone();
                let client_rng = Rng::new(seed ^ ((cycle as u64) << 32) ^ (k as u64 + 1));
                thread::Builder::new()
                    .name(format!("client {k}"))
                    .spawn(move || run_client(k, port, state, client_rng, give_up))
                    .expect("spawn a client")
            })
            .collect();
        thread::sleep(delay);
        let killed_at = Instant::now();
        server.proc.kill();
        let logs: Vec<Vec<Record>> = clients
            .into_iter()
            .map(|c| c.join().expect("a client does not panic"))
            .collect();
        for (k, log) in logs.iter().enumerate() {
            if let Some(Record {
                action,
                outcome: Err((why, at)),
                ..
            }) = log.last()
            {
                assert!(
                    *at >= killed_at,
                    "seed {seed}, cycle {cycle}: client {k}: `{action}` got no reply while the server was running: {why}"
                );
            }
        }
        server = start_sqlite(port, &url);
        let observed = observe(port);
        world = verify(&world, &logs, &observed, &mut tally).unwrap_or_else(|diff| {
            panic!(
                "seed {seed} (P2P_TEST_SEED={seed} reruns it), cycle {cycle} (killed after {delay:?}):\n{diff}"
            )
        });
        most_files = most_files.max(
            observed
                .content
                .values()
                .flatten()
                .map(Vec::len)
                .sum::<usize>(),
        );
    }
    let out = server.stop();
    assert!(out.status.success(), "SIGTERM: exit 0, got {out:?}");
    assert!(
        tally.answered >= KILL_CYCLES * CLIENTS,
        "seed {seed}: only {} requests were answered in {KILL_CYCLES} cycles: the test tested little",
        tally.answered
    );
    eprintln!(
        "seed {seed}: {KILL_CYCLES} kills in {:?}: {} answered requests; in flight at the kill: {} applied, {} not applied, {} either way; up to {most_files} publications",
        started.elapsed(),
        tally.answered,
        tally.in_flight_applied,
        tally.in_flight_not_applied,
        tally.in_flight_either
    );
}

// ---------------------------------------------------------------------------
// 2. Start-up refusals, the default store and P2P_STORE.
// ---------------------------------------------------------------------------

#[test]
fn a_corrupt_file_is_refused_and_left_alone() {
    let dir = temp_dir();
    let path = dir.path().join("garbage.db");
    let garbage = common::pseudo_random_bytes(8192, 0x5eed);
    std::fs::write(&path, &garbage).unwrap();
    let url = format!("sqlite:{}", path.display());
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(&exited, &url, "file is not a database");
    assert!(
        std::fs::read(&path).unwrap() == garbage,
        "the corrupt file was changed"
    );
    assert_eq!(names_in(dir.path()), ["garbage.db"], "files left behind");
}

#[test]
fn another_programs_sqlite_file_is_refused_and_left_alone() {
    if !python3() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("other.db");
    python_sqlite(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         c.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)')\n\
         c.execute(\"INSERT INTO notes (text) VALUES ('not a directory')\")\n\
         c.commit()\n\
         c.close()\n",
        &path,
    );
    let before = std::fs::read(&path).unwrap();
    let url = format!("sqlite:{}", path.display());
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(&exited, &url, "does not hold a valid directory");
    let after = std::fs::read(&path).unwrap();
    let first_change = before.iter().zip(&after).position(|(a, b)| a != b);
    assert!(
        before == after,
        "another program's SQLite file was changed by a p2p-server that refused it: {} bytes before, {} after, first difference at offset {first_change:?} (before {:?}, after {:?}; offsets 18-19 of the SQLite header are the file format versions, 1 = rollback journal, 2 = WAL)",
        before.len(),
        after.len(),
        first_change.map(|i| before[i]),
        first_change.map(|i| after[i]),
    );
    assert_eq!(names_in(dir.path()), ["other.db"], "files left behind");
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    if !python3() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("d.db");
    let url = format!("sqlite:{}", path.display());
    let server = Server::start(&["--store", &url]);
    expect(server.port, "alice", Op::Register, 0);
    let out = server.stop();
    assert!(out.status.success(), "{out:?}");
    python_sqlite(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         c.execute('PRAGMA user_version = 2')\n\
         c.commit()\n\
         c.close()\n",
        &path,
    );
    let before = std::fs::read(&path).unwrap();
    let names = names_in(dir.path());
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(
        &exited,
        &url,
        "the database's schema is version 2, newer than the 1 this p2p-server knows",
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the newer database was changed"
    );
    assert_eq!(names_in(dir.path()), names, "files left behind");
}

#[test]
fn a_second_server_on_one_sqlite_file_is_refused() {
    let dir = temp_dir();
    let url = format!("sqlite:{}", dir.path().join("d.db").display());
    let first = Server::start(&["--store", &url]);
    expect(first.port, "alice", Op::Register, 0);
    expect(first.port, "alice", Op::Connect(4000), 0);
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(&exited, &url, "is in use by another process");
    // The first one keeps serving, with its state.
    expect(first.port, "alice", Op::Publish("a".into(), "x".into()), 0);
    expect(first.port, "bob", Op::Register, 0);
    assert_eq!(
        list_content(first.port, "alice", "alice"),
        (0, vec!["a".to_owned()])
    );
    let out = first.stop();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn unparsable_store_urls_are_usage_errors() {
    for url in [
        "mysql://x",
        "sqlite:",
        "postgres://u@h:notaport/db",
        "p2p.db",
    ] {
        for through_env in [false, true] {
            let mut command = if through_env {
                server_command(0, &[])
            } else {
                server_command(0, &["--store", url])
            };
            if through_env {
                command.env("P2P_STORE", url);
            }
            let exited = run_to_exit(command);
            let context = format!("store {url:?} (from P2P_STORE: {through_env}): {exited:#?}");
            assert_eq!(exited.status.code(), Some(2), "usage error; {context}");
            assert!(exited.stdout.is_empty(), "nothing on stdout; {context}");
            let errors: Vec<&String> = exited
                .stderr
                .iter()
                .filter(|l| l.starts_with("error:"))
                .collect();
            assert_eq!(errors.len(), 1, "one error line; {context}");
            assert!(
                errors[0].contains(&format!("'{url}'")) && errors[0].contains("--store"),
                "the error names the value and the option; {context}"
            );
            assert!(
                exited
                    .stderr
                    .iter()
                    .all(|l| l.starts_with("error:") || l.is_empty() || l.contains("--help")),
                "only clap's usage text besides; {context}"
            );
        }
    }
}

#[test]
fn a_directory_is_refused() {
    let dir = temp_dir();
    let target = dir.path().join("not-a-file");
    std::fs::create_dir(&target).unwrap();
    let url = format!("sqlite:{}", target.display());
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(&exited, &url, "unable to open");
    assert!(names_in(&target).is_empty(), "the directory was written to");
}

#[test]
fn the_default_store_is_sqlite_in_the_working_directory() {
    let dir = temp_dir();
    let mut command = server_command(0, &[]);
    command.current_dir(dir.path());
    let mut server = Started::start(command);
    let expected_path = dir.path().join("p2p-directory.db");
    let line = server.stderr.next_line();
    assert!(
        line.starts_with("p2p-server: store: SQLite")
            && line.contains(&expected_path.display().to_string()),
        "the store line names SQLite and {}: {line:?}",
        expected_path.display()
    );
    expect(server.port, "alice", Op::Register, 0);
    assert!(
        expected_path.is_file(),
        "no {} after a REGISTER; the directory holds {:?}",
        expected_path.display(),
        names_in(dir.path())
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{status}: {stderr:?}");
    // And it is the store: a new server there knows alice.
    let mut command = server_command(0, &[]);
    command.current_dir(dir.path());
    let server = Started::start(command);
    expect(server.port, "alice", Op::Register, 1);
    server.stop();
}

#[test]
fn p2p_store_memory_is_honoured() {
    let dir = temp_dir();
    let start = || {
        let mut command = server_command(0, &[]);
        command.current_dir(dir.path()).env("P2P_STORE", "memory:");
        Started::start(command)
    };
    let mut server = start();
    let line = server.stderr.next_line();
    assert!(
        line.starts_with("p2p-server: store: ") && line.contains("memory"),
        "the store line says memory: {line:?}"
    );
    expect(server.port, "alice", Op::Register, 0);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{status}: {stderr:?}");
    assert!(
        names_in(dir.path()).is_empty(),
        "a memory store wrote files: {:?}",
        names_in(dir.path())
    );
    let server = start();
    expect(server.port, "alice", Op::Register, 0);
    server.stop();
}

// ---------------------------------------------------------------------------
// 3. A clean restart keeps everything.
// ---------------------------------------------------------------------------

#[test]
fn sqlite_restart_keeps_everything_in_order() {
    let dir = temp_dir();
    let url = format!("sqlite:{}", dir.path().join("d.db").display());
    let server = Server::start(&["--store", &url]);
    let port = server.port;
    for user in ["ann", "bob", "cid", "dan", "eve"] {
        expect(port, user, Op::Register, 0);
    }
    // Connection order differs from registration order.
    for (user, peer_port) in [("dan", 4001), ("bob", 4002), ("eve", 4003), ("ann", 4004)] {
        expect(port, user, Op::Connect(peer_port), 0);
    }
    expect(port, "eve", Op::Disconnect, 0);
    for (user, file, description) in [
        ("dan", "zeta.mp3", "the last letter"),
        ("dan", "alpha.txt", "the first one, with spaces"),
        ("bob", "b.bin", "bytes"),
        ("dan", "mid.ogg", "in between"),
        ("ann", "x", "ann's"),
    ] {
        expect(port, user, Op::Publish(file.into(), description.into()), 0);
    }
    expect(port, "dan", Op::Delete("alpha.txt".into()), 0);
    expect(
        port,
        "dan",
        Op::Publish("alpha.txt".into(), "again".into()),
        0,
    );
    let users_before = list_users(port, "ann");
    assert_eq!(
        users_before,
        (0, entries(&[("dan", 4001), ("bob", 4002)])),
        "before the restart"
    );
    let content = |port| {
        ["ann", "bob", "cid", "dan", "eve"]
            .map(|target| (target, list_content(port, "bob", target)))
    };
    let content_before = content(port);
    assert_eq!(
        content_before[3].1,
        (
            0,
            vec!["zeta.mp3".into(), "mid.ogg".into(), "alpha.txt".into()]
        )
    );
    let out = server.stop();
    assert!(out.status.success(), "{out:?}");

    let server = Server::start(&["--store", &url]);
    let port = server.port;
    assert_eq!(
        list_users(port, "ann"),
        users_before,
        "LIST_USERS after the restart"
    );
    assert_eq!(
        list_users(port, "eve"),
        (2, Vec::new()),
        "eve disconnected before the restart"
    );
    assert_eq!(
        content(port),
        content_before,
        "LIST_CONTENT after the restart"
    );
    // Still connected: PUBLISH works; still registered: REGISTER says in use.
    expect(port, "dan", Op::Publish("new".into(), "after".into()), 0);
    expect(port, "eve", Op::Publish("new".into(), "after".into()), 2);
    expect(port, "ann", Op::Connect(5000), 2);
    for user in ["ann", "bob", "cid", "dan", "eve"] {
        expect(port, user, Op::Register, 1);
    }
    // A connection after the restart goes after the older ones.
    expect(port, "cid", Op::Connect(4005), 0);
    assert_eq!(
        list_users(port, "eve"),
        (2, Vec::new()),
        "eve is still not connected"
    );
    assert_eq!(
        list_users(port, "bob"),
        (0, entries(&[("dan", 4001), ("ann", 4004), ("cid", 4005)]))
    );
    let out = server.stop();
    assert!(out.status.success(), "{out:?}");
}

// ---------------------------------------------------------------------------
// 4. PostgreSQL.
// ---------------------------------------------------------------------------

fn start_pg(url: &str) -> Server {
    Server::start(&["--store", url])
}

#[test]
fn postgres_two_servers_share_one_directory() {
    let Some(cluster) = PgCluster::start("postgres_two_servers_share_one_directory") else {
        return;
    };
    let url = cluster.url();
    let a = start_pg(&url);
    let b = start_pg(&url);
    let ports = [a.port, b.port];
    for round in 0..3 {
        let name = format!("same{round}");
        let barrier = Arc::new(Barrier::new(16));
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let barrier = barrier.clone();
                let name = name.clone();
                let port = ports[i % 2];
                thread::spawn(move || {
                    barrier.wait();
                    (port, change(port, &act(&name, Op::Register)))
                })
            })
            .collect();
        let results: Vec<(u16, u8)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners = results.iter().filter(|(_, code)| *code == 0).count();
        assert_eq!(
            winners, 1,
            "16 concurrent REGISTER {name} over two servers (port, result): {results:?}"
        );
        assert!(
            results.iter().all(|(_, code)| *code <= 1),
            "the others are 1 (in use): {results:?}"
        );
    }
    expect(a.port, "ann", Op::Register, 0);
    expect(b.port, "ann", Op::Connect(4100), 0);
    expect(a.port, "bob", Op::Register, 0);
    expect(a.port, "bob", Op::Connect(4200), 0);
    let mut files = Vec::new();
    for i in 0..10 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let file = format!("file{i}");
        expect(writer.port, "ann", Op::Publish(file.clone(), "d".into()), 0);
        files.push(file);
        assert_eq!(
            list_content(reader.port, "bob", "ann"),
            (0, files.clone()),
            "a PUBLISH answered by port {} is in the next LIST_CONTENT of port {}",
            writer.port,
            reader.port
        );
    }
    assert_eq!(list_users(b.port, "bob"), (0, entries(&[("ann", 4100)])));
    assert_eq!(list_users(a.port, "ann"), (0, entries(&[("bob", 4200)])));
    expect(b.port, "ann", Op::Disconnect, 0);
    expect(a.port, "ann", Op::Publish("late".into(), "d".into()), 2);
    for server in [a, b] {
        let out = server.stop();
        assert!(out.status.success(), "{out:?}");
    }
}

/// A read or a change issued by a client of the PostgreSQL restart test.
#[derive(Clone, Debug)]
enum PgOp {
    Publish(usize),
    Delete(usize),
    ListUsers,
    ListContent,
}

#[derive(Clone, Debug)]
struct PgRecord {
    op: PgOp,
    sent: Instant,
    replied: Instant,
    /// The result byte, or why there was no reply.
    result: Result<u8, String>,
}

/// Client `k` of the PostgreSQL restart test: user `pg{k}` (registered and
/// connected beforehand) publishes new files `f{n}` and deletes some it
/// knows are published, with reads in between, until told to stop.
fn pg_client(k: usize, port: u16, stop: &AtomicBool, seed: u64) -> Vec<PgRecord> {
    let user = format!("pg{k}");
    let mut rng = Rng::new(seed ^ (k as u64 + 1));
    let mut records = Vec::new();
    let mut next_file = 0;
    // Files whose PUBLISH answered 0 and that no DELETE touched yet.
    let mut surely_published: Vec<usize> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let op = match rng.weighted(&[60, 20, 10, 10]) {
            1 if !surely_published.is_empty() => {
                let i = rng.below(surely_published.len() as u64) as usize;
                PgOp::Delete(surely_published.remove(i))
            }
            2 => PgOp::ListUsers,
            3 => PgOp::ListContent,
            _ => {
                next_file += 1;
                PgOp::Publish(next_file - 1)
            }
        };
        let bytes = match &op {
            PgOp::Publish(n) => encode("PUBLISH", &user, &[&format!("f{n}"), "during the restart"]),
            PgOp::Delete(n) => encode("DELETE", &user, &[&format!("f{n}")]),
            PgOp::ListUsers => encode("LIST_USERS", &user, &[]),
            PgOp::ListContent => encode("LIST_CONTENT", &user, &[&user]),
        };
        let sent = Instant::now();
        let result = exchange(port, &bytes, CALL_TIMEOUT);
        let replied = Instant::now();
        let result = result.map(|reply| match op {
            PgOp::ListUsers => parse_list_users(&reply).0,
            PgOp::ListContent => parse_list_content(&reply).0,
            _ => {
                assert_eq!(reply.len(), 1, "{op:?}: one result byte, got {reply:?}");
                reply[0]
            }
        });
        if let (PgOp::Publish(n), Ok(0)) = (&op, &result) {
            surely_published.push(*n);
        }
        records.push(PgRecord {
            op,
            sent,
            replied,
            result,
        });
    }
    records
}

#[test]
fn postgres_restart_under_load() {
    let Some(cluster) = PgCluster::start("postgres_restart_under_load") else {
        return;
    };
    let seed = seed();
    let url = cluster.url();
    let mut server = start_pg(&url);
    let port = server.port;
    const PG_CLIENTS: usize = 4;
    for k in 0..PG_CLIENTS {
        let user = format!("pg{k}");
        expect(port, &user, Op::Register, 0);
        expect(port, &user, Op::Connect(5000 + k as u16), 0);
    }
    expect(port, OBSERVER, Op::Register, 0);
    expect(port, OBSERVER, Op::Connect(OBSERVER_PORT), 0);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..PG_CLIENTS)
        .map(|k| {
            let stop = stop.clone();
            thread::spawn(move || pg_client(k, port, &stop, seed))
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    cluster.stop();
    let down = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let up_called = Instant::now();
    cluster.start_again();
    let up = Instant::now();
    // Once the observer's LIST_USERS works again (bounded), give the clients
    // a moment to succeed too, then stop them.
    let deadline = up + Duration::from_secs(20);
    while Instant::now() < deadline && !server.proc_exited() {
        if list_users(port, OBSERVER).0 == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let logs: Vec<Vec<PgRecord>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        !server.proc_exited(),
        "the server exited while PostgreSQL was down: {:?}",
        server.stderr.poll()
    );
    let mut problems = String::new();
    let mut slowest = Duration::ZERO;
    let mut during_outage = 0;
    let mut recovered_after = Duration::ZERO;
    for (k, log) in logs.iter().enumerate() {
        let mut first_success_after_up = None;
        for record in log {
            let latency = record.replied - record.sent;
            slowest = slowest.max(latency);
            let other = match record.op {
                PgOp::Publish(_) | PgOp::Delete(_) | PgOp::ListContent => 4,
                PgOp::ListUsers => 3,
            };
            match &record.result {
                Err(why) => {
                    let _ = writeln!(problems, "pg{k}: {:?} got no reply: {why}", record.op);
                }
                Ok(code) if *code != 0 && *code != other => {
                    let _ = writeln!(
                        problems,
                        "pg{k}: {:?} answered {code}: neither 0 nor the other-error {other}",
                        record.op
                    );
                }
                Ok(code) => {
                    if record.sent > down && record.replied < up_called {
                        during_outage += 1;
                        if *code != other {
                            let _ = writeln!(
                                problems,
                                "pg{k}: {:?} answered {code} while PostgreSQL was down",
                                record.op
                            );
                        }
                    }
                    if *code == 0 && record.sent > up && first_success_after_up.is_none() {
                        first_success_after_up = Some(record.replied - up);
                    }
                }
            }
            if latency > Duration::from_secs(8) {
                let _ = writeln!(
                    problems,
                    "pg{k}: {:?} took {latency:?} (the store's operation timeout is 5 s)",
                    record.op
                );
            }
        }
        match first_success_after_up {
            Some(after) => recovered_after = recovered_after.max(after),
            None => {
                let _ = writeln!(
                    problems,
                    "pg{k}: no operation succeeded after PostgreSQL came back"
                );
            }
        }
    }
    // The state agrees with every answer: published-0 and not deleted-0 files
    // are there; files are there only if some PUBLISH of them may have been
    // applied (0, or other-error with the commit's fate unknown); in order.
    for (k, log) in logs.iter().enumerate() {
        let user = format!("pg{k}");
        let mut sure = std::collections::BTreeSet::new();
        let mut maybe = std::collections::BTreeSet::new();
        for record in log {
            match (&record.op, &record.result) {
                (PgOp::Publish(n), Ok(0)) => {
                    sure.insert(*n);
                }
                (PgOp::Publish(n), Ok(_)) => {
                    maybe.insert(*n);
                }
                (PgOp::Delete(n), Ok(0)) => {
                    sure.remove(n);
                }
                (PgOp::Delete(n), Ok(_)) => {
                    sure.remove(n);
                    maybe.insert(*n);
                }
                _ => {}
            }
        }
        let (code, files) = list_content(port, OBSERVER, &user);
        assert_eq!(code, 0, "LIST_CONTENT {user} at the end");
        let got: Vec<usize> = files
            .iter()
            .map(|f| f[1..].parse().expect("f{n}"))
            .collect();
        if !got.windows(2).all(|w| w[0] < w[1]) {
            let _ = writeln!(
                problems,
                "{user}: files not in publication order: {files:?}"
            );
        }
        let missing: Vec<_> = sure.iter().filter(|n| !got.contains(n)).collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|n| !sure.contains(n) && !maybe.contains(n))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let _ = writeln!(
                problems,
                "{user}: published (answered 0) and not deleted but missing: {missing:?}; present without any PUBLISH that may have applied: {extra:?}"
            );
        }
    }
    let (code, users) = list_users(port, OBSERVER);
    let expected: Vec<Entry> = entries(
        &(0..PG_CLIENTS)
            .map(|k| (["pg0", "pg1", "pg2", "pg3"][k], 5000 + k as u16))
            .collect::<Vec<_>>(),
    );
    assert_eq!((code, users), (0, expected), "LIST_USERS at the end");
    assert!(
        problems.is_empty(),
        "seed {seed}; PostgreSQL down for {:?}:\n{problems}",
        up - down
    );
    assert!(
        during_outage > 0,
        "no request was answered while PostgreSQL was down: the test tested little"
    );
    let total: usize = logs.iter().map(Vec::len).sum();
    eprintln!(
        "{total} requests, {during_outage} while PostgreSQL was down; slowest reply {slowest:?}; every client succeeded again within {recovered_after:?} of PostgreSQL's return"
    );
    let out = std::mem::replace(&mut server, start_pg(&url)).stop();
    assert!(out.status.success(), "{out:?}");
    // The replacement server sees the same state.
    let (code, users) = list_users(server.port, OBSERVER);
    assert_eq!((code, users.len()), (0, PG_CLIENTS));
    server.stop();
}

impl Server {
    /// Whether the process has exited (reaped then).
    fn proc_exited(&mut self) -> bool {
        try_status(&mut self.proc).is_some()
    }
}

#[test]
fn postgres_newer_schema_is_refused() {
    let Some(cluster) = PgCluster::start("postgres_newer_schema_is_refused") else {
        return;
    };
    let url = cluster.url();
    let server = start_pg(&url);
    expect(server.port, "alice", Op::Register, 0);
    let out = server.stop();
    assert!(out.status.success(), "{out:?}");
    let known = p2p_core::directory::POSTGRES_SCHEMA_VERSION;
    let newer = known + 1;
    assert_eq!(
        cluster.psql("SELECT version FROM p2p_schema"),
        format!("{known}\n")
    );
    cluster.psql(&format!("UPDATE p2p_schema SET version = {newer}"));
    let exited = run_to_exit(server_command(0, &["--store", &url]));
    assert_refused(
        &exited,
        &url,
        &format!(
            "the database's schema is version {newer}, newer than the {known} this p2p-server knows"
        ),
    );
    assert_eq!(
        cluster.psql("SELECT version FROM p2p_schema"),
        format!("{newer}\n")
    );
    assert_eq!(cluster.psql("SELECT name FROM p2p_users"), "alice\n");
}

#[test]
fn postgres_servers_starting_together_migrate_once() {
    let Some(cluster) = PgCluster::start("postgres_servers_starting_together_migrate_once") else {
        return;
    };
    let url = cluster.url();
    let spawned: Vec<_> = (0..4)
        .map(|_| spawn(server_command(0, &["--store", &url])))
        .collect();
    let servers: Vec<Started> = spawned
        .into_iter()
        .map(|(proc, stdout, stderr)| wait_ready(proc, stdout, stderr))
        .collect();
    for (i, server) in servers.iter().enumerate() {
        let user = format!("u{i}");
        expect(server.port, &user, Op::Register, 0);
        expect(server.port, &user, Op::Connect(6000 + i as u16), 0);
    }
    for (i, server) in servers.iter().enumerate() {
        let (code, users) = list_users(server.port, &format!("u{i}"));
        assert_eq!(code, 0);
        let mut names: Vec<String> = users.into_iter().map(|e| e.name).collect();
        names.sort();
        let expected: Vec<String> = (0..4)
            .filter(|&j| j != i)
            .map(|j| format!("u{j}"))
            .collect();
        assert_eq!(names, expected, "server {i} sees the others' users");
    }
    assert_eq!(
        cluster.psql("SELECT version FROM p2p_schema"),
        format!("{}\n", p2p_core::directory::POSTGRES_SCHEMA_VERSION)
    );
    for server in servers {
        let (status, stderr) = server.stop();
        assert!(status.success(), "{status}: {stderr:?}");
    }
}
