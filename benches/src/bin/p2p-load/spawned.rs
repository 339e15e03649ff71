//! Spawned servers: p2p-server, p2p-log and the baseline as child processes.

use super::*;

/// A child process that is interrupted (SIGINT) or killed when dropped.
pub(crate) struct Spawned {
    pub(crate) name: &'static str,
    pub(crate) child: std::process::Child,
}

impl Spawned {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT (through kill(1): no unsafe here), then waits up to `grace` before killing.
    pub(crate) fn interrupt(mut self, grace: Duration) -> io::Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                eprintln!("{}: did not stop within {grace:?}, killing", self.name);
                self.child.kill()?;
                return self.child.wait();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn free_port() -> io::Result<u16> {
    Ok(StdListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

pub(crate) fn wait_ready(addr: SocketAddr, what: &str) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start listening on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn bin_dir(opts: &SpawnOpts) -> Res<PathBuf> {
    if let Some(dir) = &opts.bin_dir {
        return Ok(dir.clone());
    }
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .ok_or("cannot locate this program's directory")?
        .to_path_buf())
}

fn find_bin(opts: &SpawnOpts, name: &str) -> Res<PathBuf> {
    let path = bin_dir(opts)?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release -p p2p-bins) or pass --bin-dir",
            path.display()
        )
        .into())
    }
}

/// The work directory, and the tempdir guard keeping it alive when it is temporary.
pub(crate) fn work_dir(opts: &SpawnOpts) -> Res<(PathBuf, Option<tempfile::TempDir>)> {
    match &opts.work_dir {
        Some(dir) => {
            fs::create_dir_all(dir)?;
            Ok((dir.clone(), None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("p2p-load.").tempdir()?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

pub(crate) fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    stdout: Option<&Path>,
    stderr: &Path,
) -> Res<Spawned> {
    let out = match stdout {
        Some(p) => Stdio::from(File::create(p)?),
        None => Stdio::null(),
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(File::create(stderr)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    Ok(Spawned { name, child })
}

/// p2p-log on a free port, lines to `work/log.out`.
pub(crate) fn spawn_log_service(opts: &SpawnOpts, work: &Path) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let log = spawn(
        "p2p-log",
        &find_bin(opts, "p2p-log")?,
        &[
            "--no-rpcbind".into(),
            "-b".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-o".into(),
            work.join("log.out").display().to_string(),
        ],
        None,
        &work.join("log.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "p2p-log")?;
    Ok((log, addr))
}

/// p2p-server on a free port, console lines to `work/console.out` (unless quiet), shipping to
/// `log` when given.
pub(crate) fn spawn_directory(
    opts: &SpawnOpts,
    work: &Path,
    log: Option<SocketAddr>,
) -> Res<(Spawned, SocketAddr)> {
    spawn_directory_on(opts, work, log, &store_url(opts, work))
}

/// The `--store` URL for a new server: with `--store sqlite`, a database file of its own in
/// `work`, so that runs never see each other's users.
pub(crate) fn store_url(opts: &SpawnOpts, work: &Path) -> String {
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match opts.store.as_str() {
        "sqlite" => {
            let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!(
                "sqlite:{}",
                work.join(format!("directory-{n}.db")).display()
            )
        }
        "memory" => "memory:".into(),
        url => url.into(),
    }
}

/// What `--store` means for spawned servers, for the report.
pub(crate) fn store_url_shown(opts: &SpawnOpts) -> &str {
    match opts.store.as_str() {
        "sqlite" => "sqlite (a new file per server)",
        other => other,
    }
}

/// [`spawn_directory`] on the store `store`.
pub(crate) fn spawn_directory_on(
    opts: &SpawnOpts,
    work: &Path,
    log: Option<SocketAddr>,
    store: &str,
) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let mut args = vec![
        "-p".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--threads".into(),
        opts.server_threads.to_string(),
    ];
    if opts.quiet {
        args.push("--quiet".into());
    }
    args.push("--store".into());
    args.push(store.into());
    if let Some(log) = log {
        args.push("--log-rpc".into());
        args.push(log.to_string());
    }
    let server = spawn(
        "p2p-server",
        &find_bin(opts, "p2p-server")?,
        &args,
        Some(&work.join("console.out")),
        &work.join("server.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "p2p-server")?;
    Ok((server, addr))
}

pub(crate) fn spawn_baseline(opts: &SpawnOpts, work: &Path) -> Res<(Spawned, SocketAddr)> {
    let port = free_port()?;
    let child = spawn(
        "baseline",
        &std::env::current_exe()?,
        &[
            "serve-baseline".into(),
            "--port".into(),
            port.to_string(),
            "--threads".into(),
            opts.server_threads.to_string(),
        ],
        None,
        &work.join("baseline.err"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "baseline server")?;
    Ok((child, addr))
}

pub(crate) fn count_lines(path: &Path) -> io::Result<usize> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count();
    }
}

pub(crate) fn run_prefix(tag: &str) -> String {
    format!("load{}{tag}", std::process::id())
}
