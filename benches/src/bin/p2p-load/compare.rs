//! Subcommand: compare (directory vs baseline).

use super::*;

pub(crate) fn compare(args: &CompareArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let (log, log_addr) = if args.spawn_opts.no_log {
        (None, None)
    } else {
        let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
        (Some(child), Some(addr))
    };
    // Ours: one server, or several on one shared store (each with its own work directory and
    // console file; they share the log service).
    let mut servers = Vec::new();
    let mut ours = Vec::new();
    let shared_store = store_url(&args.spawn_opts, &work);
    for n in 0..args.servers.max(1) {
        let dir = if n == 0 {
            work.clone()
        } else {
            let dir = work.join(format!("server-{n}"));
            fs::create_dir_all(&dir)?;
            dir
        };
        let (server, addr) = spawn_directory_on(&args.spawn_opts, &dir, log_addr, &shared_store)?;
        servers.push(server);
        ours.push(addr);
    }
    // The other side: the minimal baseline, or p2p-server on another store (set up and checked
    // like ours, in a work directory of its own).
    let (baseline_children, base, other) = match &args.against_store {
        None => {
            let (child, addr) = spawn_baseline(&args.spawn_opts, &work)?;
            (vec![child], addr, "baseline".to_owned())
        }
        Some(store) => {
            let sub = work.join("against");
            fs::create_dir_all(&sub)?;
            let mut opts = args.spawn_opts.clone();
            opts.store = store.clone();
            let mut children = Vec::new();
            let log = if opts.no_log {
                None
            } else {
                let (child, addr) = spawn_log_service(&opts, &sub)?;
                children.push(child);
                Some(addr)
            };
            let url = store_url(&opts, &sub);
            let (child, addr) = spawn_directory_on(&opts, &sub, log, &url)?;
            children.push(child);
            (children, addr, format!("p2p-server --store {url}"))
        }
    };
    let against_server = args.against_store.is_some();
    println!(
        "ours: {} p2p-server(s) on --store {}; other side: {other}",
        ours.len(),
        store_url_shown(&args.spawn_opts)
    );
    println!(
        "ours: p2p-server {ours:?} (console {}, log service {}); other: {base}; {} server \
         thread(s) each; work dir {}",
        if args.spawn_opts.quiet {
            "off".to_owned()
        } else {
            "to a file".to_owned()
        },
        log_addr.map_or("off".to_owned(), |a| a.to_string()),
        args.spawn_opts.server_threads,
        work.display()
    );
    let duration = Duration::from_secs_f64(args.seconds);
    let mix = Mix {
        files: args.files,
        search: args.with_search,
    };
    let mut handled = 0usize;
    let mut rows = Vec::new();
    let mut run_id = 0;
    for &clients in &args.clients {
        let mut pairs = Vec::new();
        for run in 0..args.runs {
            run_id += 1;
            let prefix = run_prefix(&format!("r{run_id}"));
            let mut b = RunResult::default();
            let mut o = RunResult::default();
            for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
                if side == 0 && against_server {
                    let prefix = run_prefix(&format!("a{run_id}"));
                    b = rt.block_on(drive_directory(
                        &[base],
                        clients,
                        duration,
                        mix,
                        &prefix,
                        false,
                    ));
                } else if side == 0 {
                    b = rt.block_on(drive_directory(
                        &[base],
                        clients,
                        duration,
                        Mix::BASELINE,
                        "b",
                        true,
                    ));
                } else {
                    o = rt.block_on(drive_directory(
                        &ours, clients, duration, mix, &prefix, false,
                    ));
                    handled += o.handled;
                }
                // Let TIME_WAIT and queued console/log output settle between sides.
                std::thread::sleep(Duration::from_millis(500));
            }
            println!("[{clients} clients, run {}]", run + 1);
            println!("  {}", b.line("baseline"));
            println!("  {}", o.line("ours"));
            println!("  ratio ours/baseline {:.3}", o.rate() / b.rate());
            pairs.push((b, o));
        }
        rows.push((clients, pairs));
    }

    // Shut down: the server flushes its log shipper before exiting.
    let server_dirs: Vec<PathBuf> = (0..servers.len())
        .map(|n| {
            if n == 0 {
                work.clone()
            } else {
                work.join(format!("server-{n}"))
            }
        })
        .collect();
    let mut status = None;
    for server in servers {
        let exit = server.interrupt(Duration::from_secs(20))?;
        if status.is_none_or(|s: std::process::ExitStatus| s.success()) {
            status = Some(exit);
        }
    }
    let status = status.ok_or("no server ran")?;
    let server_err: String = server_dirs
        .iter()
        .map(|dir| fs::read_to_string(dir.join("server.err")).unwrap_or_default())
        .collect();
    let log_lines = match log {
        Some(log) => {
            std::thread::sleep(Duration::from_millis(300));
            log.interrupt(Duration::from_secs(10))?;
            Some(count_lines(&work.join("log.out"))?)
        }
        None => None,
    };
    for child in baseline_children.into_iter().rev() {
        child.interrupt(Duration::from_secs(20))?;
    }
    let console_lines = if args.spawn_opts.quiet {
        None
    } else {
        // The first line of each is `s> init server`.
        let mut n = 0;
        for dir in &server_dirs {
            n += count_lines(&dir.join("console.out"))?.saturating_sub(1);
        }
        Some(n)
    };

    print_ratio_table(&rows, args.runs, &other, "ops/s", 2);
    println!();
    println!("p2p-server exit: {status}; requests answered: {handled}");
    if let Some(n) = console_lines {
        println!("console lines: {n} (missing {})", handled.saturating_sub(n));
    }
    if let Some(n) = log_lines {
        println!(
            "log service lines: {n} (missing {})",
            handled.saturating_sub(n)
        );
    }
    // Only what matters: the shutdown report ("N log records sent, M dropped"), warnings, errors.
    let notable: Vec<&str> = server_err
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("dropped") || l.contains("warn") || l.contains("error")
        })
        .collect();
    println!(
        "p2p-server stderr: {} lines, {} notable (full text in {})",
        server_err.lines().count(),
        notable.len(),
        work.join("server.err").display()
    );
    for line in notable.iter().take(10) {
        println!("  {line}");
    }
    let mut problems = run_problems(&rows, &other);
    if !status.success() {
        problems.push(format!("p2p-server exited with {status}"));
    }
    for (what, lines) in [("console", console_lines), ("log service", log_lines)] {
        if let Some(n) = lines.filter(|&n| n != handled) {
            problems.push(format!(
                "{what} has {n} lines for {handled} requests answered"
            ));
        }
    }
    if !notable.is_empty() {
        problems.push(format!(
            "{} notable lines on p2p-server's stderr",
            notable.len()
        ));
    }
    verdict(problems)
}
