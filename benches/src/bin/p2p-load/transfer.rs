//! Subcommand: transfer (GET_FILE and GET_FILE_FROM against plain copies; RSS, resume, hashing).

use super::*;

fn parse_size(s: &str) -> Res<u64> {
    let s = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    Ok(num.trim().parse::<u64>()? * mult)
}

/// A serving child: prints `listening ADDR`, serves until its stdin closes, then prints
/// `vmhwm_kib N`.
struct ServingChild {
    pub(crate) child: std::process::Child,
    pub(crate) stdout: BufReader<std::process::ChildStdout>,
    pub(crate) addr: SocketAddr,
}

impl ServingChild {
    pub(crate) fn start(args: &[String]) -> Res<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?
            .parse()?;
        Ok(Self {
            child,
            stdout,
            addr,
        })
    }

    /// Closes stdin and returns the server's peak RSS in KiB.
    pub(crate) fn finish(mut self) -> Res<u64> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest)?;
        self.child.wait()?;
        field(&rest, "vmhwm_kib")
            .map(|v| v as u64)
            .ok_or_else(|| format!("server printed no vmhwm_kib: {rest:?}").into())
    }
}

pub(crate) fn field(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

/// Runs a fetching child and returns (seconds, peak RSS KiB).
fn fetch_child(args: &[String]) -> Res<(f64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("fetch failed ({}): {text}", out.status).into());
    }
    let secs = field(&text, "secs").ok_or("no secs")?;
    let hwm = field(&text, "vmhwm_kib").ok_or("no vmhwm_kib")? as u64;
    Ok((secs, hwm))
}

#[derive(Debug, Default, Clone, Copy)]
struct TransferRun {
    pub(crate) secs: f64,
    pub(crate) server_hwm: u64,
    pub(crate) client_hwm: u64,
}

pub(crate) fn transfer(args: &TransferArgs) -> Res<()> {
    let size = parse_size(&args.size)?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("p2p-load.").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let src = dir.join("src.bin");
    let dest = dir.join("dest.bin");
    let t = Instant::now();
    baseline::make_file(&src, size)?;
    println!(
        "transfer: {} bytes in {} (created in {:.1} s)",
        size,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let src_s = src.display().to_string();
    let dest_s = dest.display().to_string();
    let name = "/shared/big.bin".to_owned();
    let (digest, _, _) = DigestCache::in_memory().digest_of(&src)?;

    let plain = |zero_copy: bool| -> Res<TransferRun> {
        let mut serve = vec!["serve-plain".into(), "--file".into(), src_s.clone()];
        let mut fetch = vec![
            "fetch-plain".to_owned(),
            "--from".into(),
            String::new(),
            "--dest".into(),
            dest_s.clone(),
        ];
        if zero_copy {
            serve.push("--zero-copy".into());
            fetch.push("--zero-copy".into());
        }
        let server = ServingChild::start(&serve)?;
        fetch[2] = server.addr.to_string();
        let (secs, client_hwm) = fetch_child(&fetch)?;
        let server_hwm = server.finish()?;
        check_size(&dest, size)?;
        Ok(TransferRun {
            secs,
            server_hwm,
            client_hwm,
        })
    };
    let ours = |mode: &str, resume_at: Option<(u64, bool)>| -> Res<TransferRun> {
        let server = ServingChild::start(&[
            "serve-file".into(),
            "--file".into(),
            src_s.clone(),
            "--name".into(),
            name.clone(),
        ])?;
        if let Some((at, with_leaves)) = resume_at {
            // What an interrupted GET_FILE leaves: the first `at` bytes and their description,
            // with the chaining value of each whole MiB (or without: a part from elsewhere).
            let part = dir.join(".dest.bin.part");
            let mut from = File::open(&src)?;
            io::copy(&mut (&mut from).take(at), &mut File::create(&part)?)?;
            let mut meta = format!(
                "# p2p-peer part v1\n{}\n{name}\n{size}\n{digest}\n",
                server.addr
            );
            if with_leaves {
                use blake3::hazmat::HasherExt;
                let prefix = fs::read(&part)?;
                for (i, block) in prefix.chunks(1 << 20).enumerate() {
                    if block.len() == 1 << 20 {
                        let mut hasher = blake3::Hasher::new();
                        hasher.set_input_offset(i as u64 * (1 << 20));
                        hasher.update(block);
                        for b in hasher.finalize_non_root() {
                            let _ = write!(meta, "{b:02x}");
                        }
                        meta.push('\n');
                    }
                }
            }
            fs::write(dir.join(".dest.bin.part.meta"), meta)?;
        }
        let (secs, client_hwm) = fetch_child(&[
            "fetch".into(),
            "--from".into(),
            server.addr.to_string(),
            "--name".into(),
            name.clone(),
            "--dest".into(),
            dest_s.clone(),
            "--mode".into(),
            mode.into(),
        ])?;
        let server_hwm = server.finish()?;
        check_size(&dest, size)?;
        Ok(TransferRun {
            secs,
            server_hwm,
            client_hwm,
        })
    };

    let gbps = |secs: f64| size as f64 / secs / 1e9;
    const LABELS: [&str; 8] = [
        "plain 1 MiB read/write",
        "plain sendfile + splice",
        "ours GET_FILE (no digest: the path before §6.4)",
        "ours GET_FILE_FROM, read + hash + write as it arrives",
        "ours GET_FILE_FROM, splice + hash following the writes (default)",
        "ours GET_FILE_FROM, splice then hash",
        "ours GET_FILE_FROM resumed at 90 % (leaves recorded, as a broken transfer leaves it)",
        "ours GET_FILE_FROM resumed at 90 % (no leaves: the prefix is hashed again)",
    ];
    const RESUME: usize = 6;
    let resume_at = size / 10 * 9;
    let mut rows: Vec<[TransferRun; 8]> = Vec::new();
    let mut hash_secs = Vec::new();
    for run in 0..args.runs {
        // Hashing at PUBLISH: what the serving peer does once per file.
        let t = Instant::now();
        let (hashed, _, _) = DigestCache::in_memory().digest_of(&src)?;
        hash_secs.push(t.elapsed().as_secs_f64());
        if hashed != digest {
            return Err("the digest changed between runs".into());
        }
        let mut r = [TransferRun::default(); 8];
        let order: &[usize] = if run % 2 == 0 {
            &[0, 1, 2, 3, 4, 5, 6, 7]
        } else {
            &[7, 6, 5, 4, 3, 2, 1, 0]
        };
        for &side in order {
            let _ = fs::remove_file(&dest);
            r[side] = match side {
                0 => plain(false)?,
                1 => plain(true)?,
                2 => ours("classic", None)?,
                3 => ours("as-it-arrives", None)?,
                4 => ours("follow", None)?,
                5 => ours("after", None)?,
                6 => ours("follow", Some((resume_at, true)))?,
                _ => ours("follow", Some((resume_at, false)))?,
            };
        }
        let _ = fs::remove_file(&dest);
        println!(
            "[run {}] GB/s: read/write {:.2} | sendfile+splice {:.2} | GET_FILE {:.2} | as-it-arrives {:.2} | follow {:.2} | after {:.2} | resume 90 % {:.3} s | hash {:.2} GB/s | follow/GET_FILE {:.3} | resume/whole {:.3}",
            run + 1,
            gbps(r[0].secs),
            gbps(r[1].secs),
            gbps(r[2].secs),
            gbps(r[3].secs),
            gbps(r[4].secs),
            gbps(r[5].secs),
            r[RESUME].secs,
            gbps(hash_secs[run]),
            r[2].secs / r[4].secs,
            r[RESUME].secs / r[4].secs,
        );
        rows.push(r);
    }
    let med =
        |f: &dyn Fn(&[TransferRun; 8]) -> f64| median(&rows.iter().map(f).collect::<Vec<_>>());
    let max = |f: &dyn Fn(&[TransferRun; 8]) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    println!();
    println!(
        "| {} bytes, loopback | GB/s (median of {}) | GET_FILE time / its time (median of per-run ratios) | peak RSS sender (max) | peak RSS receiver (max) |",
        size, args.runs
    );
    println!("|---|---|---|---|---|");
    for (i, label) in LABELS.iter().enumerate() {
        let rate = if i >= RESUME {
            format!("{:.3} s", med(&|r| r[i].secs))
        } else {
            format!("{:.2}", med(&|r| gbps(r[i].secs)))
        };
        println!(
            "| {label} | {rate} | {:.3} | {:.1} MiB | {:.1} MiB |",
            med(&|r| r[2].secs / r[i].secs),
            max(&|r| mib(r[i].server_hwm)),
            max(&|r| mib(r[i].client_hwm)),
        );
    }
    println!();
    println!(
        "verified / GET_FILE throughput: {:.3} (as it arrives), {:.3} (following the splice), {:.3} (splice then hash); resumed 10 % / whole verified transfer: {:.3} (leaves recorded), {:.3} (no leaves)",
        med(&|r| r[2].secs / r[3].secs),
        med(&|r| r[2].secs / r[4].secs),
        med(&|r| r[2].secs / r[5].secs),
        med(&|r| r[RESUME].secs / r[4].secs),
        med(&|r| r[RESUME + 1].secs / r[4].secs),
    );
    println!(
        "hashing at PUBLISH: {:.2} GB/s, {:.3} s for this file (median of {})",
        size as f64 / median(&hash_secs) / 1e9,
        median(&hash_secs),
        hash_secs.len()
    );
    let _ = fs::remove_file(&src);
    Ok(())
}

fn check_size(path: &Path, size: u64) -> Res<()> {
    let got = fs::metadata(path)?.len();
    if got == size {
        Ok(())
    } else {
        Err(format!("{} has {got} bytes, expected {size}", path.display()).into())
    }
}

fn wait_stdin_closed() {
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
}

fn print_hwm() {
    let hwm = rss(None).map_or(0, |r| r.peak_kib);
    println!("vmhwm_kib {hwm}");
    let _ = io::stdout().flush();
}

pub(crate) fn serve_file(file: &Path, name: &str) -> Res<()> {
    let rt = runtime()?;
    let library = Library::new();
    let path = fs::canonicalize(file)?;
    // As PUBLISH does: the digest is known before the first request.
    library.digests().digest_of(&path)?;
    library.insert(FileName::new(name)?, path);
    let server = rt.block_on(async {
        let mut config = FileServerConfig::default();
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        FileServer::start(config, library).await
    })?;
    println!("listening {}", server.local_addr());
    io::stdout().flush()?;
    wait_stdin_closed();
    rt.block_on(server.stop());
    print_hwm();
    Ok(())
}

pub(crate) fn serve_plain(file: &Path, zero_copy: bool) -> Res<()> {
    let listener = StdListener::bind(("127.0.0.1", 0))?;
    println!("listening {}", listener.local_addr()?);
    io::stdout().flush()?;
    let file = file.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(mut sock) => {
                    let sent = if zero_copy {
                        baseline::send_file_zero_copy(&file, &mut sock)
                    } else {
                        baseline::send_file_plain(&file, &mut sock)
                    };
                    if let Err(e) = sent {
                        eprintln!("serve-plain: {e}");
                    }
                }
                Err(e) => eprintln!("serve-plain: accept: {e}"),
            }
        }
    });
    wait_stdin_closed();
    print_hwm();
    Ok(())
}

pub(crate) fn fetch(from: SocketAddr, name: &str, dest: &Path, mode: FetchMode) -> Res<()> {
    let rt = runtime()?;
    let name = FileName::new(name)?;
    let mut options = DownloadOptions::default();
    options.progress = None;
    options.max_attempts = 1;
    match mode {
        FetchMode::Classic => options.protocol = TransferProtocol::Classic,
        FetchMode::AsItArrives => options.hashing = BodyHashing::AsItArrives,
        FetchMode::Follow => options.hashing = BodyHashing::FollowSplice,
        FetchMode::After => options.hashing = BodyHashing::AfterReceiving,
    }
    let started = Instant::now();
    let got = rt.block_on(download(from, &name, dest, &options))?;
    let secs = started.elapsed().as_secs_f64();
    println!("bytes {got} secs {secs:.6}");
    print_hwm();
    Ok(())
}

pub(crate) fn fetch_plain(from: SocketAddr, dest: &Path, zero_copy: bool) -> Res<()> {
    let started = Instant::now();
    let mut sock = StdStream::connect(from)?;
    let got = if zero_copy {
        baseline::receive_file_zero_copy(&mut sock, dest)?
    } else {
        baseline::receive_file_plain(&mut sock, dest)?
    };
    let secs = started.elapsed().as_secs_f64();
    println!("bytes {got} secs {secs:.6}");
    print_hwm();
    Ok(())
}

pub(crate) fn serve_baseline(port: u16, threads: usize) -> Res<()> {
    let server = MinimalServer::start(SocketAddr::from(([127, 0, 0, 1], port)), threads)?;
    eprintln!("baseline server on {}", server.addr);
    loop {
        std::thread::park();
    }
}
