//! Subcommand: log-compare (our log service vs the rpcgen server).

use super::*;

pub(crate) fn log_compare(args: &LogCompareArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let (ours_child, ours) = spawn_log_service(&args.spawn_opts, &work)?;
    let mut other_child = None;
    let other = match (&args.rpcgen_server, &args.other) {
        (Some(program), _) => {
            let port = free_port()?;
            let child = spawn(
                "rpcgen server",
                program,
                &[port.to_string()],
                Some(&work.join("rpcgen.out")),
                &work.join("rpcgen.err"),
            )?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_ready(addr, "rpcgen server")?;
            other_child = Some(child);
            addr
        }
        (None, Some(other)) => resolve(other)?,
        (None, None) => return Err("--rpcgen-server PROGRAM or --other HOST:PORT".into()),
    };
    println!(
        "ours: p2p-log {ours}; other: {other}; work dir {}",
        work.display()
    );
    let duration = Duration::from_secs_f64(args.seconds);
    let mut rows = Vec::new();
    for &clients in &args.clients {
        let mut pairs = Vec::new();
        for run in 0..args.runs {
            let mut b = RunResult::default();
            let mut o = RunResult::default();
            for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
                let addr = if side == 0 { other } else { ours };
                let result = match &args.c_client {
                    Some(program) => drive_log_c(program, addr, clients, args.seconds)?,
                    None => rt.block_on(drive_log(addr, clients, duration, args.window)),
                };
                if side == 0 {
                    b = result;
                } else {
                    o = result;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            println!("[{clients} clients, run {}]", run + 1);
            println!("  {}", b.line("rpcgen"));
            println!("  {}", o.line("ours"));
            println!("  ratio ours/rpcgen {:.3}", o.rate() / b.rate());
            pairs.push((b, o));
        }
        rows.push((clients, pairs));
    }
    ours_child.interrupt(Duration::from_secs(10))?;
    if let Some(child) = other_child {
        child.interrupt(Duration::from_secs(5))?;
    }
    print_ratio_table(&rows, args.runs, "rpcgen", "calls/s", 3);
    verdict(run_problems(&rows, "rpcgen"))
}

/// What makes a comparison's runs unfit to report: errors or unexpected replies on either side.
pub(crate) fn run_problems(
    rows: &[(usize, Vec<(RunResult, RunResult)>)],
    other: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (clients, pairs) in rows {
        for (run, pair) in pairs.iter().enumerate() {
            for (side, r) in [(other, &pair.0), ("ours", &pair.1)] {
                if let Some(problem) = r.problem() {
                    problems.push(format!(
                        "{side}, {clients} clients, run {}: {problem}",
                        run + 1
                    ));
                }
            }
        }
    }
    problems
}

/// Ends a subcommand: `Ok` when nothing made the measurement invalid, else an error listing what
/// did (after everything was printed), so that a script or CI sees a failed run.
pub(crate) fn verdict(problems: Vec<String>) -> Res<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("not a valid measurement: {}", problems.join("; ")).into())
    }
}

/// Prints the Markdown table of a side-by-side comparison: per client count, the medians of
/// `runs` (other, ours) pairs, the ratio's median and range, the p99 latencies (with `p99_digits`
/// decimals, in ms) and our errors.
pub(crate) fn print_ratio_table(
    rows: &[(usize, Vec<(RunResult, RunResult)>)],
    runs: usize,
    other: &str,
    unit: &str,
    p99_digits: usize,
) {
    println!();
    println!(
        "| clients | {other} {unit} | ours {unit} | ratio (median of {runs}) | ratio range | ours p99 | {other} p99 | ours errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (clients, pairs) in rows {
        let b: Vec<f64> = pairs.iter().map(|(b, _)| b.rate()).collect();
        let o: Vec<f64> = pairs.iter().map(|(_, o)| o.rate()).collect();
        let ratios: Vec<f64> = pairs.iter().map(|(b, o)| o.rate() / b.rate()).collect();
        let p99 = |r: &RunResult| r.latency.p99.as_secs_f64() * 1e3;
        let p99o: Vec<f64> = pairs.iter().map(|(_, o)| p99(o)).collect();
        let p99b: Vec<f64> = pairs.iter().map(|(b, _)| p99(b)).collect();
        let errors: usize = pairs.iter().map(|(_, o)| o.errors + o.unexpected).sum();
        println!(
            "| {clients} | {:.0} | {:.0} | {:.3} | {:.2}–{:.2} | {:.p99_digits$} ms | {:.p99_digits$} ms | {errors} |",
            median(&b),
            median(&o),
            median(&ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
            median(&p99o),
            median(&p99b)
        );
    }
}

/// Runs `clients` processes of the C client against `addr` at once; their calls add up, over
/// the longest of their measured times.
fn drive_log_c(program: &Path, addr: SocketAddr, clients: usize, seconds: f64) -> Res<RunResult> {
    let children = (0..clients)
        .map(|_| {
            Command::new(program)
                .args([
                    addr.ip().to_string(),
                    addr.port().to_string(),
                    seconds.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", program.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut result = RunResult::default();
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match (
            out.status.success(),
            field(&text, "calls"),
            field(&text, "secs"),
        ) {
            (true, Some(calls), Some(secs)) => {
                result.ops += calls as usize;
                result.elapsed = result.elapsed.max(Duration::from_secs_f64(secs));
            }
            _ => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| {
                    format!(
                        "C client {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                });
            }
        }
    }
    Ok(result)
}
