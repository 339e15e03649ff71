//! Subcommand: scale (100k users, 1M publications: fill, SEARCH, restart).

use super::*;

/// Runs `jobs` one-shot directory operations with `clients` concurrent tasks; `make(j)` builds
/// job `j`. Returns (errors, unexpected, first problem).
async fn fill(
    addr: SocketAddr,
    clients: usize,
    jobs: usize,
    make: Arc<dyn Fn(usize) -> Request + Send + Sync>,
) -> (usize, usize, Option<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut buf = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return t;
                }
                let (op, wire) = encode(&make(j));
                match directory_op(addr, op, &wire, &mut buf).await {
                    Outcome::Ok => t.ops += 1,
                    Outcome::Unexpected(r) => {
                        t.unexpected += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!("{op}: result {}", r.code()));
                        }
                    }
                    Outcome::Error(e) => t.error(e),
                }
            }
        }));
    }
    let mut errors = 0;
    let mut unexpected = 0;
    let mut first = None;
    for task in tasks {
        if let Ok(t) = task.await {
            errors += t.errors;
            unexpected += t.unexpected;
            first = first.or(t.first_error);
        }
    }
    (errors, unexpected, first)
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn scale(args: &ScaleArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let store = store_url(&args.spawn_opts, &work);
    let (child, addr, pid) = match &args.server {
        Some(s) => (None, resolve(s)?, args.server_pid),
        None => {
            let (child, addr) = spawn_directory_on(&args.spawn_opts, &work, None, &store)?;
            let pid = child.pid();
            (Some(child), addr, Some(pid))
        }
    };
    let rss_now = || pid.and_then(|p| rss(Some(p)));
    let connected = args.connected.min(args.users).max(2);
    let big = args.big_user_files.min(args.publications);
    // Publications other than the big user's go round-robin to connected users 1..connected.
    let spread = connected - 1;
    let name = |i: usize| format!("scale_user_{i:06}");
    println!(
        "scale: {} users, {connected} connected, {} publications ({big} by {}), server {addr}",
        args.users,
        args.publications,
        name(0)
    );
    let r0 = rss_now();
    let mut problems = Vec::new();
    let mut step = |what: &str, started: Instant, (e, u, first): (usize, usize, Option<String>)| {
        println!(
            "  {what}: {:.1} s, errors {e}, unexpected {u}{}",
            started.elapsed().as_secs_f64(),
            first.map(|f| format!(" (first: {f})")).unwrap_or_default()
        );
        if e > 0 || u > 0 {
            problems.push(format!("{what}: {e} errors, {u} unexpected"));
        }
    };

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        args.users,
        Arc::new(move |j| sample::request(&name(j), RequestBody::Register)),
    ));
    step("REGISTER", t, r);
    let r1 = rss_now();

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        connected,
        Arc::new(move |j| sample::request(&name(j), RequestBody::Connect { port: port_for(j) })),
    ));
    step("CONNECT", t, r);
    let r2 = rss_now();

    let t = Instant::now();
    let r = rt.block_on(fill(
        addr,
        args.clients,
        args.publications,
        Arc::new(move |j| {
            let (user, k) = if j < big {
                (name(0), j)
            } else {
                let r = j - big;
                (name(1 + r % spread), r / spread)
            };
            let file = shared_file(&user, k);
            sample::request(
                &user,
                RequestBody::Publish {
                    file,
                    description: description(),
                },
            )
        }),
    ));
    step("PUBLISH", t, r);
    let r3 = rss_now();

    // The listings, end to end (connect, request, whole reply read and decoded).
    let list_users = encode(&sample::request(&name(1), RequestBody::ListUsers));
    let list_content = encode(&sample::request(
        &name(1),
        RequestBody::ListContent {
            target: sample::user(&name(0)),
        },
    ));
    let list_content_wire = list_content.clone();
    let mut timings = Vec::new();
    for (label, (op, wire)) in [("LIST_USERS", list_users), ("LIST_CONTENT", list_content)] {
        let mut lat = Latencies::default();
        let mut bytes = 0;
        let mut entries = 0;
        let mut bad = 0;
        for _ in 0..args.samples {
            let mut buf = Vec::new();
            let started = Instant::now();
            let outcome = rt.block_on(directory_op(addr, op, &wire, &mut buf));
            let took = started.elapsed();
            match outcome {
                Outcome::Ok => {
                    lat.record(took);
                    bytes = buf.len();
                    entries = match Reply::decode_with(op, &buf) {
                        Ok(Some((
                            Reply::ListUsers(p2p_proto::directory::ListUsersReply::Ok(v)),
                            _,
                        ))) => v.len(),
                        Ok(Some((
                            Reply::ListContent(p2p_proto::directory::ListContentReply::Ok(v)),
                            _,
                        ))) => v.len(),
                        _ => 0,
                    };
                }
                _ => bad += 1,
            }
        }
        let s = lat.summary();
        println!(
            "  {label}: {entries} entries, {bytes} bytes, {} samples: {s}, failures {bad}",
            s.count
        );
        if bad > 0 {
            problems.push(format!("{label}: {bad} failed samples"));
        }
        timings.push((label, entries, bytes, s));
    }
    // SEARCH (PROTOCOL.md §6.2) under 16 concurrent clients: one term that
    // matches every publication, one that matches one track number per user,
    // and three terms.
    for query in ["track", "000042", "track 00004 concert"] {
        let wire = encode(&sample::request(
            &name(1),
            RequestBody::Search {
                query: query.parse().map_err(|e| format!("query {query:?}: {e}"))?,
            },
        ));
        let (mut lat, bad, results) =
            rt.block_on(search_sampling(addr, wire, 16, args.samples.max(50)));
        let s = lat.summary();
        println!(
            "  SEARCH {query:?}: {results} results, 16 clients, {} samples: {s}, failures {bad}",
            s.count
        );
        if bad > 0 {
            problems.push(format!("SEARCH {query:?}: {bad} failed samples"));
        }
    }
    let r4 = rss_now();

    if let (Some(r0), Some(r1), Some(r2), Some(r3), Some(r4)) = (r0, r1, r2, r3, r4) {
        let per_user =
            (r1.current_kib.saturating_sub(r0.current_kib)) as f64 * 1024.0 / args.users as f64;
        let per_conn =
            (r2.current_kib.saturating_sub(r1.current_kib)) as f64 * 1024.0 / connected as f64;
        let per_pub = (r3.current_kib.saturating_sub(r2.current_kib)) as f64 * 1024.0
            / args.publications.max(1) as f64;
        println!(
            "  RSS: empty {:.1} MiB, +users {:.1} MiB, +connected {:.1} MiB, +publications {:.1} MiB, after listings {:.1} MiB (peak {:.1} MiB)",
            mib(r0.current_kib),
            mib(r1.current_kib),
            mib(r2.current_kib),
            mib(r3.current_kib),
            mib(r4.current_kib),
            mib(r4.peak_kib)
        );
        println!(
            "  RSS per registered user {per_user:.0} B, per connection {per_conn:.0} B, per publication {per_pub:.0} B"
        );
    } else {
        println!("  (no RSS: pass --server-pid for a server that was not spawned)");
    }
    if let Some(child) = child {
        child.interrupt(Duration::from_secs(20))?;
        if args.spawn_opts.store != "memory" {
            // The same store again: how long until the whole directory is served.
            let started = Instant::now();
            let (child, addr) = spawn_directory_on(&args.spawn_opts, &work, None, &store)?;
            let ready = started.elapsed();
            let mut buf = Vec::new();
            let (op, wire) = &list_content_wire;
            let outcome = rt.block_on(directory_op(addr, *op, wire, &mut buf));
            let entries = match (outcome, Reply::decode_with(*op, &buf)) {
                (
                    Outcome::Ok,
                    Ok(Some((
                        Reply::ListContent(p2p_proto::directory::ListContentReply::Ok(v)),
                        _,
                    ))),
                ) => v.len(),
                _ => 0,
            };
            let after = rss(Some(child.pid()));
            println!(
                "  restart on {store}: serving after {:.2} s; LIST_CONTENT then lists {entries} entries{}",
                ready.as_secs_f64(),
                match (after, r0) {
                    (Some(a), Some(r0)) => format!(
                        "; RSS {:.1} MiB, {:.0} B per publication over the empty server",
                        mib(a.current_kib),
                        (a.current_kib.saturating_sub(r0.current_kib)) as f64 * 1024.0
                            / args.publications.max(1) as f64
                    ),
                    _ => String::new(),
                }
            );
            if entries != big {
                problems.push(format!(
                    "after the restart LIST_CONTENT listed {entries} entries, not {big}"
                ));
            }
            child.interrupt(Duration::from_secs(20))?;
        }
    }
    verdict(problems)
}

/// `clients` tasks each send `per_client` copies of one SEARCH; latencies of the whole
/// exchange, failures, and the result count of the last reply.
async fn search_sampling(
    addr: SocketAddr,
    (op, wire): (OpCode, Vec<u8>),
    clients: usize,
    per_client: usize,
) -> (Latencies, usize, usize) {
    let wire = Arc::new(wire);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::with_capacity(per_client);
            let (mut bad, mut results) = (0, 0);
            let mut buf = Vec::new();
            for _ in 0..per_client {
                buf.clear();
                let started = Instant::now();
                match directory_op(addr, op, &wire, &mut buf).await {
                    Outcome::Ok => {
                        lat.record(started.elapsed());
                        if let Ok(Some((
                            Reply::Search(p2p_proto::directory::SearchReply::Ok(hits)),
                            _,
                        ))) = Reply::decode_with(op, &buf)
                        {
                            results = hits.len();
                        }
                    }
                    _ => bad += 1,
                }
            }
            (lat, bad, results)
        }));
    }
    let mut all = Latencies::with_capacity(clients * per_client);
    let (mut bad, mut results) = (0, 0);
    for task in tasks {
        if let Ok((lat, b, r)) = task.await {
            all.merge(lat);
            bad += b;
            results = r;
        } else {
            bad += per_client;
        }
    }
    (all, bad, results)
}
