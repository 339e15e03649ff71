//! Compatibility with the classic Python peer: `scripts/classic_client.py`
//! speaks the directory protocol the way it does (one connection per
//! operation, each field its own send, one result byte) and runs a whole
//! session against a fresh `p2p-server`, with and without the DATETIME field.
//! The script checks every result byte; this test checks its verdict and the
//! server's console lines.
//!
//! Needs `python3`. Without it each test writes a loud SKIPPED note to stderr and passes, unless
//! `P2P_REQUIRE_PYTHON=1` (CI): then it fails.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::{EXIT_TIMEOUT, Lines, Proc, Server, parse_operation_line, python3_or_skip};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/classic_client.py");

/// Runs the script's scenario against a fresh server with `datetime_args`,
/// then checks the script passed and the server printed one line per request
/// with `AT {datetime}` (or no ` AT ` when `datetime` is `None`).
fn run_scenario(datetime_args: &[&str], datetime: Option<&str>) {
    let server = Server::start(&[]);
    let mut command = Command::new("python3");
    command
        .arg(SCRIPT)
        .args(["--host", "127.0.0.1", "--port", &server.port.to_string()])
        .args(datetime_args)
        .arg("scenario")
        .stdin(Stdio::null());
    let mut script = Proc::spawn("classic_client.py", &mut command);
    let mut stdout = Lines::spawn("classic_client.py stdout", script.take_stdout());
    let mut stderr = Lines::spawn("classic_client.py stderr", script.take_stderr());
    let report = stdout.read_to_eof(EXIT_TIMEOUT * 2).to_vec();
    let status = script.wait_exit(EXIT_TIMEOUT);
    let errors = stderr.read_to_eof(EXIT_TIMEOUT).to_vec();
    assert!(
        status.success(),
        "classic_client.py {datetime_args:?} failed ({status}):\n{}\n{}",
        report.join("\n"),
        errors.join("\n")
    );

    // The script's report: one STEP line per request, then PASS.
    let (last, steps) = report.split_last().expect("the script printed nothing");
    let mut sent = Vec::new();
    let mut refused = BTreeSet::new();
    for line in steps {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["STEP", _, op, user, "->", _, "ok"] => sent.push((op.to_string(), user.to_string())),
            ["STEP", _, op, user, "->", _, "ok", "refused"] => {
                refused.insert((op.to_string(), user.to_string()));
            }
            _ => panic!("unexpected script line {line:?}"),
        }
    }
    assert_eq!(
        *last,
        format!("PASS {} steps", steps.len()),
        "the script's verdict"
    );

    // The server: one line per handled request, in order. A malformed request
    // (bad PORT, unknown OP) may or may not get a line.
    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {} on SIGTERM",
        out.status
    );
    let mut printed = Vec::new();
    for line in &out.lines {
        let parsed = parse_operation_line(line);
        assert_eq!(parsed.datetime.as_deref(), datetime, "DATETIME of {line:?}");
        if datetime.is_none() {
            assert!(!line.contains(" AT "), "{line:?}");
        }
        let key = (parsed.op, parsed.user);
        if !refused.contains(&key) {
            printed.push(key);
        }
    }
    assert_eq!(printed, sent, "server lines for the script's requests");
}

#[test]
fn classic_client_with_datetime() {
    if python3_or_skip("classic_client_with_datetime") {
        let datetime = "24/11/2026 20:42:35";
        run_scenario(&["--datetime", datetime], Some(datetime));
    }
}

#[test]
fn classic_client_without_datetime() {
    if python3_or_skip("classic_client_without_datetime") {
        run_scenario(&["--no-datetime"], None);
    }
}

/// Classic clients send `00/00/0000 00:00:00` when their datetime service is
/// down: accepted as DATETIME and printed as received.
#[test]
fn classic_client_with_placeholder_datetime() {
    if python3_or_skip("classic_client_with_placeholder_datetime") {
        let datetime = "00/00/0000 00:00:00";
        run_scenario(&["--datetime", datetime], Some(datetime));
    }
}
