//! The four programs' command lines: `--help` opens with the program's own description,
//! `--version` prints `NAME VERSION`, bad values are usage errors (exit 2, clap's message naming
//! the flag) refused before anything starts, and the generator writes a man page and completions
//! for each program.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The description of the `p2p-bins` crate, which no program may present as its own.
const CRATE_DESCRIPTION: &str = env!("CARGO_PKG_DESCRIPTION");

/// How long a program may take to print its help or refuse its arguments.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Each program: its name, its binary, and how its `--help` opens.
const PROGRAMS: [(&str, &str, &str); 4] = [
    (
        "p2p-server",
        env!("CARGO_BIN_EXE_p2p-server"),
        "The directory server: peers register, connect, publish and list here",
    ),
    (
        "p2p-peer",
        env!("CARGO_BIN_EXE_p2p-peer"),
        "A peer: registers with the directory, publishes files, serves them to other",
    ),
    (
        "p2p-datetime",
        env!("CARGO_BIN_EXE_p2p-datetime"),
        "The datetime service: GET /datetime answers the local time",
    ),
    (
        "p2p-log",
        env!("CARGO_BIN_EXE_p2p-log"),
        "The log service of the P2P system: prints one line per operation",
    ),
];

/// Environment variables the programs read as flag defaults: removed so the caller's
/// environment cannot change a test's outcome.
const FLAG_ENV: [&str; 4] = ["P2P_STORE", "LOG_RPC_IP", "DATETIME_URL", "RUST_LOG"];

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn bin(program: &str) -> &'static str {
    PROGRAMS
        .iter()
        .find(|(name, _, _)| *name == program)
        .map(|(_, bin, _)| *bin)
        .unwrap_or_else(|| panic!("no program {program}"))
}

/// Runs `program args` with `env` set; kills it and fails the test if it has not exited within
/// [`EXIT_TIMEOUT`] (a value that should have been refused started the program).
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(bin(program));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in FLAG_ENV {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} {env:?} still running after {EXIT_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

#[test]
fn help_opens_with_the_programs_own_description() {
    for (program, _, about) in PROGRAMS {
        for flag in ["--help", "-h"] {
            let out = run(program, &[flag], &[]);
            assert_eq!(out.code, Some(0), "{program} {flag}: {}", out.stderr);
            let first = out.stdout.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(about),
                "{program} {flag} opens with {first:?}, not {about:?}"
            );
            assert!(
                !out.stdout.contains(CRATE_DESCRIPTION),
                "{program} {flag} shows the crate's description:\n{}",
                out.stdout
            );
            assert!(out.stdout.contains(&format!("Usage: {program}")));
        }
    }
}

#[test]
fn version_is_the_programs_name_and_the_package_version() {
    for (program, _, _) in PROGRAMS {
        for flag in ["--version", "-V"] {
            let out = run(program, &[flag], &[]);
            assert_eq!(out.code, Some(0), "{program} {flag}: {}", out.stderr);
            assert_eq!(
                out.stdout,
                format!("{program} {}\n", env!("CARGO_PKG_VERSION")),
                "{program} {flag}"
            );
        }
    }
}

/// A bad-value case: program, arguments, environment, and the flag clap's message must name.
type BadValue = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Everything else on each command line is valid, so only the named value can be refused.
const BAD_VALUES: &[BadValue] = &[
    (
        "p2p-server",
        &["-p", "0", "--max-connections", "0"],
        &[],
        "--max-connections",
    ),
    (
        "p2p-server",
        &["-p", "0", "--max-connections=-1"],
        &[],
        "--max-connections",
    ),
    (
        "p2p-server",
        &["-p", "0", "--read-timeout", "0"],
        &[],
        "--read-timeout",
    ),
    (
        "p2p-server",
        &["-p", "0", "--read-timeout", "1e3"],
        &[],
        "--read-timeout",
    ),
    (
        "p2p-server",
        &["-p", "0", "--read-timeout", "999999999999"],
        &[],
        "--read-timeout",
    ),
    (
        "p2p-server",
        &["-p", "0", "--threads", "0"],
        &[],
        "--threads",
    ),
    ("p2p-server", &["-p", "65536"], &[], "--port"),
    ("p2p-server", &[], &[], "--port"),
    (
        "p2p-server",
        &["-p", "0", "--bind", "localhost"],
        &[],
        "--bind",
    ),
    (
        "p2p-server",
        &["-p", "0", "--store", "nosuch:thing"],
        &[],
        "--store",
    ),
    (
        "p2p-server",
        &["-p", "0"],
        &[("P2P_STORE", "nosuch:thing")],
        "--store",
    ),
    (
        "p2p-server",
        &["-p", "0", "--log-rpc", "127.0.0.1:notaport"],
        &[],
        "--log-rpc",
    ),
    ("p2p-peer", &["-s", "127.0.0.1", "-p", "0"], &[], "--port"),
    ("p2p-peer", &["-s", "", "-p", "8000"], &[], "--server"),
    (
        "p2p-peer",
        &["-s", "h", "-p", "8000", "--congestion", "b b r"],
        &[],
        "--congestion",
    ),
    ("p2p-peer", &["-s", "127.0.0.1"], &[], "--port"),
    (
        "p2p-peer",
        &["-s", "127.0.0.1", "-p", "8000", "--datetime-url", "notaurl"],
        &[],
        "--datetime-url",
    ),
    (
        "p2p-peer",
        &[
            "-s",
            "127.0.0.1",
            "-p",
            "8000",
            "--datetime-url",
            "https://127.0.0.1/datetime",
        ],
        &[],
        "--datetime-url",
    ),
    (
        "p2p-peer",
        &["-s", "127.0.0.1", "-p", "8000"],
        &[("DATETIME_URL", "127.0.0.1:5000/datetime")],
        "--datetime-url",
    ),
    (
        "p2p-peer",
        &["-s", "127.0.0.1", "-p", "8000", "--listen-addr", "any"],
        &[],
        "--listen-addr",
    ),
    (
        "p2p-peer",
        &["-s", "127.0.0.1", "-p", "8000", "--listen-port", "x"],
        &[],
        "--listen-port",
    ),
    ("p2p-datetime", &["--bind", "127.0.0.1"], &[], "--bind"),
    (
        "p2p-datetime",
        &["--bind", "127.0.0.1:65536"],
        &[],
        "--bind",
    ),
    ("p2p-datetime", &["--bind", ":5000"], &[], "--bind"),
    ("p2p-datetime", &["--port=-1"], &[], "--port"),
    (
        "p2p-datetime",
        &["--bind", "127.0.0.1:0", "--port", "0"],
        &[],
        "--port",
    ),
    (
        "p2p-log",
        &["--max-connections", "0"],
        &[],
        "--max-connections",
    ),
    ("p2p-log", &["--idle-timeout", "0"], &[], "--idle-timeout"),
    ("p2p-log", &["--write-timeout", "0"], &[], "--write-timeout"),
    (
        "p2p-log",
        &["--write-timeout", "ten"],
        &[],
        "--write-timeout",
    ),
    ("p2p-log", &["--busy-poll=-1"], &[], "--busy-poll"),
    ("p2p-log", &["--bind", "localhost"], &[], "--bind"),
    ("p2p-log", &["--port", "65536"], &[], "--port"),
];

#[test]
fn bad_values_are_usage_errors_naming_the_flag() {
    for &(program, args, env, flag) in BAD_VALUES {
        let out = run(program, args, env);
        let case = format!("{program} {args:?} {env:?}");
        assert_eq!(
            out.code,
            Some(2),
            "{case}: exit code; stderr:\n{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{case}: stdout {:?}", out.stdout);
        assert!(
            out.stderr.starts_with("error: "),
            "{case}: not clap's usage error:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(flag),
            "{case}: the message does not name {flag}:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--help"),
            "{case}: no pointer to --help:\n{}",
            out.stderr
        );
    }
}

#[test]
fn runtime_errors_are_prefixed_with_the_program_name() {
    // An address that cannot be bound here (TEST-NET-1, RFC 5737): a runtime error, exit 1.
    let cases: [(&str, &[&str]); 3] = [
        (
            "p2p-server",
            &["-p", "0", "--bind", "192.0.2.1", "--store", "memory:"],
        ),
        ("p2p-datetime", &["--bind", "192.0.2.1:0"]),
        ("p2p-log", &["--bind", "192.0.2.1", "--no-rpcbind"]),
    ];
    for (program, args) in cases {
        let out = run(program, args, &[]);
        assert_eq!(out.code, Some(1), "{program} {args:?}: {}", out.stderr);
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("{program}: ")) && last.contains("192.0.2.1"),
            "{program} {args:?}: last stderr line {last:?}"
        );
    }
}

#[test]
fn generator_writes_a_man_page_and_completions_for_every_program() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = p2p_bins::cli::write_docs(dir.path()).expect("write the docs");
    let commands = p2p_bins::cli::commands();
    assert_eq!(commands.len(), PROGRAMS.len());
    for command in commands {
        let program = command.get_name();
        assert!(
            PROGRAMS.iter().any(|(name, _, _)| *name == program),
            "{program}"
        );
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("--{long}"))
            .collect();
        assert!(!flags.is_empty(), "{program} has long flags");

        let man_path = dir.path().join("man").join(format!("{program}.1"));
        let man = std::fs::read_to_string(&man_path)
            .unwrap_or_else(|e| panic!("{}: {e}", man_path.display()));
        assert!(
            written.contains(&man_path),
            "{program}: man page not reported"
        );
        assert!(man.contains(&format!(".TH {program} 1")), "{man}");
        // roff escapes every '-' of the text.
        for flag in &flags {
            assert!(
                man.contains(&flag.replace('-', "\\-")),
                "{program}.1 lacks {flag}"
            );
        }

        let completions = dir.path().join("completions");
        for file in [
            format!("{program}.bash"),
            format!("_{program}"),
            format!("{program}.fish"),
            format!("{program}.elv"),
            format!("_{program}.ps1"),
        ] {
            let path = completions.join(&file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(written.contains(&path), "{file} not reported");
            assert!(text.contains(program), "{file} does not name {program}");
            // Fish names a flag `-l LONG`, the others `--LONG`.
            for flag in &flags {
                let long = flag.trim_start_matches('-');
                assert!(text.contains(long), "{file} lacks {flag}");
            }
        }
    }
}
