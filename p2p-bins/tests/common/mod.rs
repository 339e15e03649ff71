//! Shared harness of the end-to-end tests: starts the real binaries on
//! `127.0.0.1:0`, reads their ready lines, drives peer shells line by line
//! with a timeout on every read, and kills every child on drop.
//!
//! Each test file includes this module (`mod common;`) and uses a part of it.

#![allow(
    dead_code,
    reason = "each test crate uses a different part of the harness"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// How long one expected line may take to arrive. Generous: tests run in
/// parallel on two cores, in debug builds.
pub(crate) const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a process may take to exit once told to.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of one of the workspace's binaries, built by cargo for these tests.
pub(crate) fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2p-server")
}

/// See [`server_bin`].
pub(crate) fn peer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2p-peer")
}

/// See [`server_bin`].
pub(crate) fn datetime_bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2p-datetime")
}

/// See [`server_bin`].
pub(crate) fn log_bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2p-log")
}

/// The lines a child writes on one of its pipes, read by a thread so every
/// read can time out.
#[derive(Debug)]
pub(crate) struct Lines {
    name: String,
    rx: Receiver<String>,
    /// Every line received so far, in order.
    history: Vec<String>,
    eof: bool,
}

impl Lines {
    /// Starts a thread that reads `pipe` line by line (lossy UTF-8, without
    /// the trailing `\n`).
    pub(crate) fn spawn(name: impl Into<String>, pipe: impl Read + Send + 'static) -> Self {
        let name = name.into();
        let (tx, rx) = channel();
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if buf.last() == Some(&b'\n') {
                                buf.pop();
                            }
                            let line = String::from_utf8_lossy(&buf).into_owned();
                            if tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .expect("spawn a reader thread");
        Self {
            name,
            rx,
            history: Vec::new(),
            eof: false,
        }
    }

    /// The next line, `None` at end of output. Panics after `timeout`.
    pub(crate) fn next_within(&mut self, timeout: Duration) -> Option<String> {
        if self.eof {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(line) => {
                self.history.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                None
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no line within {timeout:?}; lines so far: {:#?}",
                self.name, self.history
            ),
        }
    }

    /// The next line; panics at end of output or after [`LINE_TIMEOUT`].
    pub(crate) fn next_line(&mut self) -> String {
        self.next_line_within(LINE_TIMEOUT)
    }

    /// The next line; panics at end of output or after `timeout`.
    pub(crate) fn next_line_within(&mut self, timeout: Duration) -> String {
        match self.next_within(timeout) {
            Some(line) => line,
            None => panic!(
                "{}: output ended while a line was expected; lines so far: {:#?}",
                self.name, self.history
            ),
        }
    }

    /// Reads lines until one satisfies `pred` and returns it. Panics at end
    /// of output or when `timeout` passes first.
    pub(crate) fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line_within(left.max(Duration::from_millis(1)));
            if pred(&line) {
                return line;
            }
        }
    }

    /// Takes in the lines that have already arrived, without waiting.
    pub(crate) fn poll(&mut self) -> &[String] {
        while let Ok(line) = self.rx.try_recv() {
            self.history.push(line);
        }
        &self.history
    }

    /// Reads to the end of output (the child closed the pipe, usually by
    /// exiting) and returns every line. Panics after `timeout`.
    pub(crate) fn read_to_eof(&mut self, timeout: Duration) -> &[String] {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            self.next_within(left.max(Duration::from_millis(1)));
        }
        &self.history
    }

    /// Every line received so far.
    pub(crate) fn history(&self) -> &[String] {
        &self.history
    }
}

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` with piped stdout and stderr (and stdin when asked).
    pub(crate) fn spawn(name: impl Into<String>, command: &mut Command) -> Self {
        let name = name.into();
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name,
            child,
            status: None,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGINT.
    pub(crate) fn interrupt(&self) {
        self.signal("-INT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill {signal} {} ({}) failed",
            self.pid(),
            self.name
        );
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Waits until the process exits; panics (after killing it) when it is
    /// still running after `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    self.kill();
                    panic!("{} did not exit within {timeout:?}", self.name);
                }
                Err(e) => panic!("{}: wait failed: {e}", self.name),
            }
        }
    }

    /// The child's pipes, taken once.
    pub(crate) fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout is piped")
    }

    pub(crate) fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.child.stderr.take().expect("stderr is piped")
    }

    pub(crate) fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin is piped")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A URL where no datetime service answers: a port that was free a moment
/// ago (bound, then released). The peer falls back to its own clock at once
/// (connection refused).
pub(crate) fn dead_datetime_url() -> String {
    format!("http://127.0.0.1:{}/datetime", free_port())
}

/// A TCP port on 127.0.0.1 that was free when this returned.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A running `p2p-server` on 127.0.0.1 and a free port.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) proc: Proc,
    /// The port it listens on, from its `s> init server IP:PORT` line.
    pub(crate) port: u16,
    pub(crate) stdout: Lines,
    pub(crate) stderr: Lines,
    /// Holds the server's SQLite database unless the test chose a store.
    store_dir: Option<tempfile::TempDir>,
}

/// What a server printed, collected after it exited.
#[derive(Debug)]
pub(crate) struct ServerOutput {
    pub(crate) status: ExitStatus,
    /// The stdout lines after the init line.
    pub(crate) lines: Vec<String>,
    pub(crate) stderr: Vec<String>,
}

impl Server {
    /// Starts `p2p-server -p 0 --bind 127.0.0.1 EXTRA...` and waits for its
    /// init line. Unless EXTRA has `--store`, the server keeps its state in an
    /// SQLite database of its own in a temporary directory.
    pub(crate) fn start(extra: &[&str]) -> Self {
        Self::start_on(0, extra)
    }

    /// [`Self::start`] on `port` (0: a free one).
    pub(crate) fn start_on(port: u16, extra: &[&str]) -> Self {
        let mut command = Command::new(server_bin());
        command
            .args(["-p", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            // Hermetic: no log service unless the test passes --log-rpc, and
            // never the default database in the working directory.
            .env_remove("LOG_RPC_IP")
            .env_remove("P2P_STORE")
            .stdin(Stdio::null());
        let store_dir = if extra.iter().any(|a| a.starts_with("--store")) {
            None
        } else {
            let dir = temp_dir();
            command.arg("--store").arg(format!(
                "sqlite:{}",
                dir.path().join("directory.db").display()
            ));
            Some(dir)
        };
        let mut proc = Proc::spawn("p2p-server", &mut command);
        let mut stdout = Lines::spawn("p2p-server stdout", proc.take_stdout());
        let stderr = Lines::spawn("p2p-server stderr", proc.take_stderr());
        let init = stdout.next_line();
        let addr = init
            .strip_prefix("s> init server 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first server line {init:?}"));
        let got: u16 = addr
            .parse()
            .unwrap_or_else(|_| panic!("bad port in {init:?}"));
        assert_ne!(
            got, 0,
            "the server must print the port it got, not 0: {init:?}"
        );
        if port != 0 {
            assert_eq!(got, port, "the server listens where it was told");
        }
        let port = got;
        Self {
            proc,
            port,
            stdout,
            stderr,
            store_dir,
        }
    }

    /// Stops the server with SIGTERM and returns what it printed; the exit
    /// status is part of the result (the contract says 0).
    pub(crate) fn stop(mut self) -> ServerOutput {
        self.proc.terminate();
        let lines = self.stdout.read_to_eof(EXIT_TIMEOUT).to_vec();
        let status = self.proc.wait_exit(EXIT_TIMEOUT);
        let stderr = self.stderr.read_to_eof(EXIT_TIMEOUT).to_vec();
        ServerOutput {
            status,
            lines: lines[1..].to_vec(),
            stderr,
        }
    }
}

/// A running `p2p-peer` shell driven through its stdin and stdout.
#[derive(Debug)]
pub(crate) struct Peer {
    /// A name for messages (usually the user it acts as).
    pub(crate) name: String,
    pub(crate) proc: Proc,
    stdin: Option<ChildStdin>,
    pub(crate) stdout: Lines,
    pub(crate) stderr: Lines,
    /// The peer's current directory: relative PUBLISH and GET_FILE names
    /// resolve here.
    pub(crate) dir: PathBuf,
    /// Its `--state-dir`.
    pub(crate) state_dir: PathBuf,
    /// Owns `state_dir` when the harness made it.
    _state: Option<tempfile::TempDir>,
}

/// A command that prints one line and sends nothing: `HELP HELP` (a syntax
/// error would mark the session as failed, and piped mode then exits 1).
/// Sent after a listing to mark its end.
const SENTINEL: &str = "HELP HELP";

/// How the line [`SENTINEL`] prints starts.
const SENTINEL_LINE: &str = "HELP [<command>]: ";

impl Peer {
    /// Starts `p2p-peer -s 127.0.0.1 -p PORT --datetime-url URL
    /// --listen-addr 127.0.0.1 --listen-port 0` in `dir`.
    /// Its state directory is a fresh temporary one.
    pub(crate) fn start(name: &str, server_port: u16, datetime_url: &str, dir: &Path) -> Self {
        Self::start_args(name, server_port, datetime_url, dir, &[])
    }

    /// [`Self::start`] with more arguments; a fresh temporary state directory.
    pub(crate) fn start_args(
        name: &str,
        server_port: u16,
        datetime_url: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Self {
        let state = temp_dir();
        let mut peer = Self::start_with(
            name,
            server_port,
            datetime_url,
            dir,
            state.path(),
            &[],
            extra,
        );
        peer._state = Some(state);
        peer
    }

    /// [`Self::start`] with `--state-dir STATE`, extra environment variables
    /// and extra arguments.
    pub(crate) fn start_with(
        name: &str,
        server_port: u16,
        datetime_url: &str,
        dir: &Path,
        state: &Path,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        let mut command = Command::new(peer_bin());
        command
            .args(["-s", "127.0.0.1", "-p", &server_port.to_string()])
            .args(["--datetime-url", datetime_url])
            .args(["--listen-addr", "127.0.0.1", "--listen-port", "0"])
            .arg("--state-dir")
            .arg(state)
            .envs(env.iter().copied())
            .args(extra)
            .current_dir(dir)
            .env_remove("DATETIME_URL")
            .env_remove("P2P_STATE_DIR")
            .stdin(Stdio::piped());
        let mut proc = Proc::spawn(format!("p2p-peer ({name})"), &mut command);
        let stdin = Some(proc.take_stdin());
        let stdout = Lines::spawn(format!("p2p-peer ({name}) stdout"), proc.take_stdout());
        let stderr = Lines::spawn(format!("p2p-peer ({name}) stderr"), proc.take_stderr());
        Self {
            name: name.to_owned(),
            proc,
            stdin,
            stdout,
            stderr,
            dir: dir.to_path_buf(),
            state_dir: state.to_path_buf(),
            _state: None,
        }
    }

    /// Writes one command line.
    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write {line:?}: {e}", self.name));
    }

    /// Writes raw bytes (a line that need not be UTF-8, with its newline).
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write {bytes:?}: {e}", self.name));
    }

    /// Reads one result line (`c> TEXT`) within `timeout` and returns it whole.
    pub(crate) fn result_within(&mut self, command: &str, timeout: Duration) -> String {
        let line = self.stdout.next_line_within(timeout);
        assert!(
            line.starts_with("c> "),
            "{}: `{command}` printed {line:?}, expected a `c> ` result line",
            self.name
        );
        line
    }

    /// Runs one command and returns its result line.
    pub(crate) fn cmd(&mut self, line: &str) -> String {
        self.cmd_within(line, LINE_TIMEOUT)
    }

    /// Runs one command and returns its result line, waiting up to `timeout`.
    pub(crate) fn cmd_within(&mut self, line: &str, timeout: Duration) -> String {
        self.send(line);
        self.result_within(line, timeout)
    }

    /// Runs one command and asserts its exact result line.
    #[track_caller]
    pub(crate) fn expect(&mut self, line: &str, expected: &str) {
        let got = self.cmd(line);
        assert_eq!(got, expected, "{}: `{line}`", self.name);
    }

    /// Runs one command whose output may be a listing: returns the result
    /// line and the entries that follow it (without their tab). The end of
    /// the listing is found by sending a syntax error right after it, whose
    /// one usage line follows the entries.
    pub(crate) fn listing(&mut self, line: &str) -> (String, Vec<String>) {
        self.send(line);
        self.send(SENTINEL);
        let result = self.result_within(line, LINE_TIMEOUT);
        let mut entries = Vec::new();
        loop {
            let next = self.stdout.next_line();
            if let Some(entry) = next.strip_prefix('\t') {
                entries.push(entry.to_owned());
            } else {
                assert!(
                    next.starts_with(SENTINEL_LINE),
                    "{}: `{line}` printed {next:?} in its listing; entries must start with a tab",
                    self.name
                );
                break;
            }
        }
        (result, entries)
    }

    /// Runs a listing command and asserts its exact result line and entries.
    #[track_caller]
    pub(crate) fn expect_listing(&mut self, line: &str, expected: &str, entries: &[&str]) {
        let (got, got_entries) = self.listing(line);
        assert_eq!(got, expected, "{}: `{line}`", self.name);
        assert_eq!(got_entries, entries, "{}: entries of `{line}`", self.name);
    }

    /// Closes stdin without a QUIT (end of input acts like QUIT).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `QUIT`, waits for the process to exit and returns its status and
    /// any stdout lines it printed after the last result read.
    pub(crate) fn quit(&mut self) -> (ExitStatus, Vec<String>) {
        let before = self.stdout.history().len();
        self.send("QUIT");
        self.close_stdin();
        let rest = self.stdout.read_to_eof(EXIT_TIMEOUT)[before..].to_vec();
        let status = self.proc.wait_exit(EXIT_TIMEOUT);
        self.stderr.read_to_eof(EXIT_TIMEOUT);
        (status, rest)
    }
}

/// A running `p2p-datetime` on 127.0.0.1 and a free port.
#[derive(Debug)]
pub(crate) struct Datetime {
    pub(crate) proc: Proc,
    /// `http://127.0.0.1:PORT/datetime`, as the service printed it.
    pub(crate) url: String,
    pub(crate) port: u16,
    pub(crate) stderr: Lines,
}

impl Datetime {
    /// Starts `p2p-datetime --bind 127.0.0.1:0` and waits for the line that
    /// says where it listens.
    pub(crate) fn start() -> Self {
        let mut command = Command::new(datetime_bin());
        command
            .args(["--bind", "127.0.0.1:0"])
            // Each request is a debug event: tests count them on stderr.
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null());
        let mut proc = Proc::spawn("p2p-datetime", &mut command);
        let _stdout = Lines::spawn("p2p-datetime stdout", proc.take_stdout());
        let mut stderr = Lines::spawn("p2p-datetime stderr", proc.take_stderr());
        let line = stderr.wait_for(LINE_TIMEOUT, |l| l.contains("http://"));
        let start = line.find("http://").expect("found above");
        let url: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no 127.0.0.1 port in {line:?}"));
        Self {
            proc,
            url,
            port,
            stderr,
        }
    }
}

/// A running `p2p-log` on 127.0.0.1 and a free port, without rpcbind,
/// appending its lines to a file.
#[derive(Debug)]
pub(crate) struct LogService {
    pub(crate) proc: Proc,
    pub(crate) port: u16,
    pub(crate) output: PathBuf,
    pub(crate) stdout: Lines,
    pub(crate) stderr: Lines,
}

impl LogService {
    /// Starts `p2p-log --port 0 --bind 127.0.0.1 --no-rpcbind --output FILE`
    /// and waits for the stderr line that says where it listens.
    pub(crate) fn start(output: &Path) -> Self {
        Self::start_on(output, 0)
    }

    /// The same on `port` (0: any free one); a nonzero port must be the one
    /// it listens on (e.g. a restart on the port of a killed instance).
    pub(crate) fn start_on(output: &Path, port: u16) -> Self {
        Self::start_with(output, port, &[])
    }

    /// The same with `extra` arguments (limits, for instance).
    pub(crate) fn start_with(output: &Path, port: u16, extra: &[&str]) -> Self {
        let mut command = Command::new(log_bin());
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--no-rpcbind",
                "--output",
            ])
            .arg(output)
            .args(extra)
            .stdin(Stdio::null());
        let mut proc = Proc::spawn("p2p-log", &mut command);
        let stdout = Lines::spawn("p2p-log stdout", proc.take_stdout());
        let mut stderr = Lines::spawn("p2p-log stderr", proc.take_stderr());
        let line = stderr.wait_for(LINE_TIMEOUT, |l| l.contains("127.0.0.1:"));
        let listening = line
            .split("127.0.0.1:")
            .skip(1)
            .find_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok().filter(|&p| p != 0)
            })
            .unwrap_or_else(|| panic!("no 127.0.0.1 port in {line:?}"));
        assert!(
            port == 0 || listening == port,
            "p2p-log did not listen on port {port}: {line:?}"
        );
        let port = listening;
        Self {
            proc,
            port,
            output: output.to_path_buf(),
            stdout,
            stderr,
        }
    }

    /// The lines of the output file so far (none when it does not exist yet).
    pub(crate) fn lines(&self) -> Vec<String> {
        match std::fs::read_to_string(&self.output) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.output.display()),
        }
    }

    /// Waits until the output file holds at least `count` lines and returns
    /// them; panics with what it has after `timeout`.
    pub(crate) fn wait_lines(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the log service wrote {} lines within {timeout:?}, expected {count}: {lines:#?}",
                lines.len()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A temporary directory, removed on drop.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// The names in a directory.
pub(crate) fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// `len` pseudo-random bytes from a xorshift64* generator seeded with `seed`.
pub(crate) fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether `s` is `DD/MM/YYYY HH:MM:SS` (digits and separators in place).
pub(crate) fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            2 | 5 => c == b'/',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// One `s> OPERATION OP FROM USER[ AT DATETIME]` line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperationLine {
    pub(crate) op: String,
    pub(crate) user: String,
    pub(crate) datetime: Option<String>,
}

/// Splits a server operation line; panics on any other shape.
pub(crate) fn parse_operation_line(line: &str) -> OperationLine {
    let fail = || -> OperationLine {
        panic!("not an `s> OPERATION OP FROM USER[ AT DATETIME]` line: {line:?}")
    };
    let Some(rest) = line.strip_prefix("s> OPERATION ") else {
        return fail();
    };
    let Some((op, rest)) = rest.split_once(" FROM ") else {
        return fail();
    };
    let (user, datetime) = match rest.split_once(' ') {
        None => (rest, None),
        Some((user, tail)) => match tail.strip_prefix("AT ") {
            Some(datetime) => (user, Some(datetime.to_owned())),
            None => return fail(),
        },
    };
    if op.is_empty() || op.contains(' ') || user.is_empty() {
        return fail();
    }
    OperationLine {
        op: op.to_owned(),
        user: user.to_owned(),
        datetime,
    }
}

/// Sends `GET_FILE\0FILE\0` to a peer's transfer listener and returns the
/// result byte and, after a 0, the announced size and the bytes received.
pub(crate) fn raw_get_file(port: u16, file: &str) -> (u8, Option<(u64, Vec<u8>)>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot connect to the transfer listener on {port}: {e}"));
    stream
        .set_read_timeout(Some(LINE_TIMEOUT))
        .expect("set a read timeout");
    stream
        .write_all(format!("GET_FILE\0{file}\0").as_bytes())
        .expect("send GET_FILE");
    let mut result = [0u8; 1];
    stream
        .read_exact(&mut result)
        .expect("read the result byte");
    if result[0] != 0 {
        return (result[0], None);
    }
    let mut size = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).expect("read the size");
        if byte[0] == 0 {
            break;
        }
        size.push(byte[0]);
    }
    let size: u64 = std::str::from_utf8(&size)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad size field {size:?}"));
    let mut data = Vec::new();
    stream.read_to_end(&mut data).expect("read the file");
    (0, Some((size, data)))
}

/// Whether `python3` runs here, for a test that needs it (`test` names the test). When it does
/// not: with `P2P_REQUIRE_PYTHON=1` (as in CI) the test fails; otherwise a loud note goes to the
/// stderr handle (not through `eprintln!`, which the test harness captures and hides for a
/// passing test) and the caller skips.
pub(crate) fn python3_or_skip(test: &str) -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        std::env::var("P2P_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "{test}: P2P_REQUIRE_PYTHON=1 but python3 does not run here; install python3"
    );
    let bang = "!".repeat(78);
    let note = format!(
        "\n{bang}\n!! SKIPPED {test}: python3 is not on PATH;\n!! install python3, or set \
         P2P_REQUIRE_PYTHON=1 to make this a failure.\n{bang}\n"
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
    false
}
