//! A private PostgreSQL server for one test ([`PgCluster`]): `initdb` into a temporary
//! directory, listening on a free port of 127.0.0.1 only (its Unix socket inside that
//! directory too), trust authentication, stopped and removed when dropped. Each cluster is fully
//! private, so tests that use one may run in parallel; no other PostgreSQL instance, fixed port or
//! non-loopback address is ever touched.
//!
//! Include it with `#[path = "support/postgres.rs"] mod postgres;`. Depends only on `std` and
//! `tempfile`.
//!
//! When PostgreSQL's binaries are missing, [`PgCluster::start`] prints a loud note and returns
//! `None` (the test then returns early: a visible skip), unless `P2P_REQUIRE_POSTGRES=1` is set:
//! then it panics. As root (PostgreSQL refuses to run as root), the tools run as user `postgres`
//! through `runuser`, and the temporary directory is handed to that user.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test crate that includes this module uses a different part of it"
)]

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that turns "PostgreSQL missing" from a skip into a failure.
const REQUIRE_VAR: &str = "P2P_REQUIRE_POSTGRES";
/// The account PostgreSQL's tools run as when the test runs as root.
const PG_USER: &str = "postgres";
/// How many free ports [`PgCluster::start`] tries when another process takes the chosen one.
const PORT_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How much of the server log a panic message quotes.
const LOG_TAIL_BYTES: u64 = 4000;

/// PostgreSQL's tools, by absolute path.
#[derive(Debug, Clone)]
struct Tools {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
    /// `runuser`, when the tools must run as [`PG_USER`] (the test runs as root).
    runuser: Option<PathBuf>,
}

/// A private PostgreSQL server for one test: initdb into a temp dir, listening on a free port on
/// 127.0.0.1 only, trust auth, stopped and removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    tools: Tools,
    port: u16,
    /// Holds `data/` (the cluster), `s/` (the Unix socket) and `server.log`; removed on drop.
    dir: tempfile::TempDir,
    test_name: String,
    /// Whether the server may be up (false after [`stop`](Self::stop)): Drop stops it then.
    running: AtomicBool,
}

impl PgCluster {
    /// Starts one. Returns `None`, after printing a visible note on stderr, when PostgreSQL's
    /// binaries are missing and `P2P_REQUIRE_POSTGRES` is unset; panics when
    /// `P2P_REQUIRE_POSTGRES=1` is set and they are missing, or when the server does not start
    /// (with the tail of its log).
    pub fn start(test_name: &str) -> Option<Self> {
        let tools = match find_tools() {
            Ok(tools) => tools,
            Err(missing) => {
                skip_or_panic(test_name, &missing);
                return None;
            }
        };
        let dir = make_dir(tools.runuser.is_some(), test_name);
        let mut cluster = Self {
            tools,
            port: 0,
            dir,
            test_name: test_name.to_owned(),
            running: AtomicBool::new(false),
        };
        cluster.initdb();
        // From here on the server may be up (even after a failed start that timed out), so
        // Drop stops it.
        cluster.running.store(true, Ordering::SeqCst);
        for attempt in 1..=PORT_ATTEMPTS {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return Some(cluster),
                Err(log) if attempt < PORT_ATTEMPTS && port_taken(&log) => {}
                Err(log) => cluster.fail_start(&log),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (`pg_ctl stop -m fast`, waiting until it is down). The data stays, so
    /// [`start_again`](Self::start_again) brings the same database back on the same port.
    pub fn stop(&self) {
        let output = self.pg_ctl_stop("fast");
        if !output.status.success() {
            panic!(
                "{}: pg_ctl stop failed ({}): {}\n--- server log (tail) ---\n{}",
                self.test_name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log_tail()
            );
        }
        self.running.store(false, Ordering::SeqCst);
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port with the same data;
    /// returns once it accepts connections.
    pub fn start_again(&self) {
        self.running.store(true, Ordering::SeqCst);
        if let Err(log) = self.pg_ctl_start() {
            self.fail_start(&log);
        }
    }

    /// Runs SQL with `psql` (over TCP, as user `postgres`, database `postgres`) and returns its
    /// stdout: unaligned, tuples only, no command tags, e.g. `"1|a\n2|b\n"`. Several statements
    /// may be given; the first error stops it. Panics on psql failure, with its stderr.
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let mut cmd = self.command(&self.tools.psql);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(&port)
        .args(["-U", PG_USER, "-d", "postgres", "-f", "-"])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot run {cmd:?}: {e}", self.test_name));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let sql = sql.to_owned();
        // From a thread: psql may fill its stdout pipe before it has read all of its input.
        let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{}: cannot wait for psql: {e}", self.test_name));
        let written = writer.join().expect("the stdin writer does not panic");
        if !output.status.success() {
            panic!(
                "{}: psql failed ({}): {}",
                self.test_name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        written.unwrap_or_else(|e| panic!("{}: cannot write SQL to psql: {e}", self.test_name));
        String::from_utf8(output.stdout)
            .unwrap_or_else(|e| panic!("{}: psql's output is not UTF-8: {e}", self.test_name))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command running `program` as the right user, in the cluster's directory, without any
    /// `PG*` variable of the caller's environment that could point it elsewhere.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match &self.tools.runuser {
            Some(runuser) => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", PG_USER, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                cmd.env_remove(name);
            }
        }
        cmd.current_dir(self.dir.path()).env("LC_ALL", "C");
        cmd
    }

    fn initdb(&self) {
        let mut cmd = self.command(&self.tools.initdb);
        cmd.arg("-D").arg(self.data_dir()).args([
            "-U",
            PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let output = run(&mut cmd, &self.test_name);
        if !output.status.success() {
            panic!(
                "{}: initdb failed ({}):\n{}{}",
                self.test_name,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// `pg_ctl start -w` on `self.port`; on failure, the server log written by this attempt.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let log_file = self.log_file();
        let log_start = std::fs::metadata(&log_file).map_or(0, |m| m.len());
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            shell_quote(&self.socket_dir())
        );
        let mut cmd = self.command(&self.tools.pg_ctl);
        cmd.args(["start", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log_file)
            .arg("-o")
            .arg(options)
            // The server inherits nothing of ours: it logs to the file.
            .stdin(Stdio::null());
        let output = run(&mut cmd, &self.test_name);
        if output.status.success() {
            return Ok(());
        }
        let mut log = String::new();
        if let Ok(mut file) = std::fs::File::open(&log_file) {
            let _ = file.seek(SeekFrom::Start(log_start));
            let _ = file.read_to_string(&mut log);
        }
        Err(format!(
            "pg_ctl start on port {} failed ({}): {}{}\n--- server log (tail) ---\n{}",
            self.port,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            tail(&log, LOG_TAIL_BYTES as usize)
        ))
    }

    fn pg_ctl_stop(&self, mode: &str) -> Output {
        let mut cmd = self.command(&self.tools.pg_ctl);
        cmd.args(["stop", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-m", mode, "-D"])
            .arg(self.data_dir());
        run(&mut cmd, &self.test_name)
    }

    fn fail_start(&self, failure: &str) -> ! {
        panic!(
            "{}: the PostgreSQL server did not start: {failure}",
            self.test_name
        )
    }

    fn log_tail(&self) -> String {
        let mut log = String::new();
        if let Ok(mut file) = std::fs::File::open(self.log_file()) {
            let len = file.metadata().map_or(0, |m| m.len());
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            log = String::from_utf8_lossy(&bytes).into_owned();
        }
        log
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Errors ignored: the server may be down already (a failed start).
        if self.running.load(Ordering::SeqCst) {
            let _ = self.pg_ctl_stop("immediate");
        }
        // `self.dir` (a TempDir) is removed after this.
    }
}

/// Prints the loud skip note, or panics when `P2P_REQUIRE_POSTGRES=1`.
fn skip_or_panic(test_name: &str, missing: &str) {
    let how = "apt-get install postgresql";
    assert!(
        std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
        "{test_name}: {REQUIRE_VAR}=1 but {missing}; {how}"
    );
    // Written to the stderr handle, not with eprintln!: the test harness captures the macros'
    // output and would hide the note of a passing test.
    let note = format!(
        "note: {missing}; skipping {test_name}. To run it: {how}; set {REQUIRE_VAR}=1 to make \
         this a failure.\n"
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
}

/// Finds initdb, pg_ctl and psql: in `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`, else on PATH; and `runuser` plus the `postgres` account when
/// running as root. `Err` says what is missing.
fn find_tools() -> Result<Tools, String> {
    const NAMES: [&str; 3] = ["initdb", "pg_ctl", "psql"];
    let from_dir = |dir: &Path| NAMES.iter().all(|name| is_executable(&dir.join(name)));
    let bin_dir = pg_config_bindir()
        .filter(|dir| from_dir(dir))
        .or_else(|| newest_debian_bindir().filter(|dir| from_dir(dir)));
    let find = |name: &str| match &bin_dir {
        Some(dir) => Ok(dir.join(name)),
        None => on_path(name).ok_or_else(|| format!("PostgreSQL not installed ({name} not found)")),
    };
    let (initdb, pg_ctl, psql) = (find("initdb")?, find("pg_ctl")?, find("psql")?);
    let runuser = if effective_uid_is_root() {
        let runuser = on_path("runuser")
            .or_else(|| {
                ["/usr/sbin/runuser", "/sbin/runuser"]
                    .map(PathBuf::from)
                    .into_iter()
                    .find(|p| is_executable(p))
            })
            .ok_or(
                "running as root, and runuser (util-linux) not found to run PostgreSQL as \
                    user postgres",
            )?;
        if !user_exists(PG_USER) {
            return Err(format!(
                "running as root, and user {PG_USER} (to run PostgreSQL as) does not exist"
            ));
        }
        Some(runuser)
    } else {
        None
    };
    Ok(Tools {
        initdb,
        pg_ctl,
        psql,
        runuser,
    })
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The `bin` directory of the highest version under `/usr/lib/postgresql` (Debian's layout).
fn newest_debian_bindir() -> Option<PathBuf> {
    let version = |name: &OsStr| -> Option<Vec<u32>> {
        name.to_str()?
            .split('.')
            .map(|part| part.parse().ok())
            .collect()
    };
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| Some((version(&entry.file_name())?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.is_dir())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn on_path(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the effective uid is 0: from `/proc/self/status` (`Uid: real effective saved fs`),
/// else from `id -u`.
fn effective_uid_is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|line| line.starts_with("Uid:"))
        && let Some(euid) = line.split_whitespace().nth(2)
    {
        return euid == "0";
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The cluster's temporary directory, with its socket directory `s/`; handed to user
/// `postgres` when the tools run as that user. Under the system's temporary directory, or
/// `/tmp` when that one does not suit (not traversable by others, or so long a path that the
/// socket's would pass the 107-byte limit of Unix socket paths).
fn make_dir(as_postgres: bool, test_name: &str) -> tempfile::TempDir {
    let suits = |base: &Path| {
        base.as_os_str().len() <= 60
            && (!as_postgres
                || base.ancestors().all(|dir| {
                    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
                }))
    };
    let system = std::env::temp_dir();
    let base = if suits(&system) {
        system
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix("p2p-pg-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| {
            panic!(
                "{test_name}: cannot create a temporary directory in {}: {e}",
                base.display()
            )
        });
    std::fs::create_dir(dir.path().join("s"))
        .unwrap_or_else(|e| panic!("{test_name}: cannot create the socket directory: {e}"));
    if as_postgres {
        let mut cmd = Command::new("chown");
        cmd.arg("-R").arg(format!("{PG_USER}:")).arg(dir.path());
        let output = run(&mut cmd, test_name);
        assert!(
            output.status.success(),
            "{test_name}: {cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    dir
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"));
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Whether a failed start's log says that the port was taken.
fn port_taken(log: &str) -> bool {
    log.contains("Address already in use")
        || log.contains("could not bind")
        || log.contains("is another postmaster already running on port")
}

fn run(cmd: &mut Command, test_name: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{test_name}: cannot run {cmd:?}: {e}"))
}

/// `path` in single quotes for the shell that `pg_ctl` starts the server with.
fn shell_quote(path: &Path) -> String {
    let path = path.to_str().expect("temporary paths are UTF-8");
    format!("'{}'", path.replace('\'', r"'\''"))
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
