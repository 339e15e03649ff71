//! Directory and baseline clients: the scripted operations and the loop that drives them.

use super::*;

pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// One operation: connect, send, read until the server closes. `buf` receives the reply.
///
/// No `TCP_NODELAY`, as classic clients do: Nagle never holds the first segment back, and the
/// option would cost every operation a syscall.
async fn exchange(addr: SocketAddr, request: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    buf.clear();
    stream.read_to_end(buf).await?;
    Ok(())
}

/// The outcome of one directory operation as the load generator judges it.
pub(crate) enum Outcome {
    Ok,
    Unexpected(Reply),
    Error(String),
}

pub(crate) async fn directory_op(
    addr: SocketAddr,
    op: OpCode,
    wire: &[u8],
    buf: &mut Vec<u8>,
) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, exchange(addr, wire, buf)).await {
        Err(_) => Outcome::Error(format!("{op}: timeout")),
        Ok(Err(e)) => Outcome::Error(format!("{op}: {e}")),
        Ok(Ok(())) => match Reply::decode_with(op, buf) {
            Ok(Some((reply, _))) if reply.is_ok() => Outcome::Ok,
            Ok(Some((reply, _))) => Outcome::Unexpected(reply),
            Ok(None) if buf.is_empty() => Outcome::Error(format!("{op}: no reply")),
            Ok(None) => Outcome::Error(format!("{op}: truncated reply")),
            Err(e) => Outcome::Error(format!("{op}: {e}")),
        },
    }
}

async fn baseline_op(addr: SocketAddr, wire: &[u8], buf: &mut Vec<u8>) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, exchange(addr, wire, buf)).await {
        Err(_) => Outcome::Error("timeout".into()),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Ok(Ok(())) if buf.as_slice() == [0] => Outcome::Ok,
        Ok(Ok(())) => Outcome::Error(format!("baseline replied {} bytes", buf.len())),
    }
}

pub(crate) fn encode(request: &Request) -> (OpCode, Vec<u8>) {
    let mut wire = Vec::with_capacity(request.encoded_len());
    request.encode(&mut wire);
    (request.op(), wire)
}

fn user_name(prefix: &str, i: usize) -> String {
    format!("{prefix}_{i}")
}

pub(crate) fn port_for(i: usize) -> NonZeroU16 {
    NonZeroU16::new(20_000 + (i % 40_000) as u16).unwrap_or(NonZeroU16::MIN)
}

pub(crate) fn shared_file(user: &str, k: usize) -> FileName {
    sample::file(&format!("/home/{user}/share/track-{k:06}.ogg"))
}

pub(crate) fn description() -> Description {
    Description::new("a recording of the Thursday concert").unwrap_or_default()
}

/// The requests of client `i`: setup, the repeated mix, cleanup.
struct Script {
    pub(crate) setup: Vec<(OpCode, Vec<u8>)>,
    pub(crate) mix: Vec<(OpCode, Vec<u8>)>,
    pub(crate) cleanup: Vec<(OpCode, Vec<u8>)>,
}

/// What each client does beyond the fixed mix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// Files each client publishes during setup.
    pub(crate) files: usize,
    /// One of the four LIST_CONTENTs becomes a SEARCH (10 % of the mix).
    pub(crate) search: bool,
}

impl Mix {
    pub(crate) const BASELINE: Self = Self {
        files: 0,
        search: false,
    };
}

fn script(prefix: &str, i: usize, clients: usize, mix: Mix) -> Script {
    let files = mix.files;
    let me = user_name(prefix, i);
    let req = |body| sample::request(&me, body);
    let other = |k: usize| sample::user(&user_name(prefix, (i + k) % clients));
    let mut setup = vec![
        encode(&req(RequestBody::Register)),
        encode(&req(RequestBody::Connect { port: port_for(i) })),
    ];
    for k in 0..files {
        setup.push(encode(&req(RequestBody::Publish {
            file: shared_file(&me, k),
            description: description(),
        })));
    }
    let temp = sample::file(&format!("/home/{me}/share/new-upload.ogg"));
    // 10 operations: 2 LIST_USERS, 4 LIST_CONTENT, PUBLISH + DELETE, DISCONNECT + CONNECT.
    let mix = vec![
        encode(&req(RequestBody::ListUsers)),
        encode(&req(RequestBody::ListContent { target: other(1) })),
        encode(&req(RequestBody::Publish {
            file: temp.clone(),
            description: description(),
        })),
        encode(&req(RequestBody::ListContent { target: other(2) })),
        encode(&req(RequestBody::Delete { file: temp })),
        encode(&req(RequestBody::ListUsers)),
        encode(&req(RequestBody::ListContent { target: other(3) })),
        encode(&req(RequestBody::Disconnect)),
        encode(&req(RequestBody::Connect { port: port_for(i) })),
        if mix.search {
            // Words of the clients' files: one file of every other client matches.
            encode(&req(RequestBody::Search {
                query: sample::query(&format!("track {:06}", i % files.max(1))),
            }))
        } else {
            encode(&req(RequestBody::ListContent { target: other(4) }))
        },
    ];
    let cleanup = vec![
        encode(&req(RequestBody::Disconnect)),
        encode(&req(RequestBody::Unregister)),
    ];
    Script {
        setup,
        mix,
        cleanup,
    }
}

/// Drives a directory server (or, with `baseline`, the minimal server with the same requests and
/// no setup) with `clients` tasks for `duration`.
pub(crate) async fn drive_directory(
    addrs: &[SocketAddr],
    clients: usize,
    duration: Duration,
    mix: Mix,
    prefix: &str,
    baseline: bool,
) -> RunResult {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        // Clients spread over the servers (several servers on one store).
        let addr = addrs[i % addrs.len()];
        let script = script(prefix, i, clients, mix);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                latencies: Latencies::with_capacity(16 * 1024),
                ..Tally::default()
            };
            let mut buf = Vec::with_capacity(8 * 1024);
            if !baseline {
                for (op, wire) in &script.setup {
                    match directory_op(addr, *op, wire, &mut buf).await {
                        Outcome::Ok => t.handled += 1,
                        Outcome::Unexpected(r) => {
                            t.handled += 1;
                            t.error(format!("setup {op}: result {}", r.code()));
                        }
                        Outcome::Error(e) => t.error(format!("setup {e}")),
                    }
                }
            }
            // Everyone starts the measured phase together; the leader starts the clock.
            barrier.wait().await;
            let end = tokio::time::Instant::now() + duration;
            // Stagger the clients across the mix, never starting between PUBLISH and DELETE
            // (indexes 3, 4) or on CONNECT (index 8): those need the steps before them.
            const STARTS: [usize; 7] = [0, 1, 2, 5, 6, 7, 9];
            let mut k = STARTS[i % STARTS.len()];
            while tokio::time::Instant::now() < end {
                let (op, wire) = &script.mix[k % script.mix.len()];
                k += 1;
                let started = Instant::now();
                let outcome = if baseline {
                    baseline_op(addr, wire, &mut buf).await
                } else {
                    directory_op(addr, *op, wire, &mut buf).await
                };
                match outcome {
                    Outcome::Ok => {
                        t.latencies.record(started.elapsed());
                        t.ops += 1;
                        t.handled += 1;
                    }
                    Outcome::Unexpected(r) => {
                        t.unexpected += 1;
                        t.handled += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!("{op}: result {}", r.code()));
                        }
                    }
                    Outcome::Error(e) => t.error(e),
                }
            }
            // Leave the mix on a consistent step (CONNECT after DISCONNECT) before cleanup.
            barrier.wait().await;
            if !baseline {
                for (op, wire) in &script.cleanup {
                    match directory_op(addr, *op, wire, &mut buf).await {
                        Outcome::Ok | Outcome::Unexpected(_) => t.handled += 1,
                        Outcome::Error(e) => t.error(format!("cleanup {e}")),
                    }
                }
            }
            t
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let segments_before = tcp_segments_sent();
    barrier.wait().await;
    let elapsed = started.elapsed();
    let segments = tcp_segments_sent()
        .zip(segments_before)
        .map(|(after, before)| after.saturating_sub(before));
    let mut tallies = Vec::with_capacity(clients);
    for task in tasks {
        match task.await {
            Ok(t) => tallies.push(t),
            Err(e) => {
                let mut t = Tally::default();
                t.error(format!("client task failed: {e}"));
                tallies.push(t);
            }
        }
    }
    let mut result = Tally::merge_into(tallies, elapsed);
    result.segments = segments;
    result
}

/// TCP segments sent by this host so far (`OutSegs` of `/proc/net/snmp`), where Linux reports it.
/// Loopback traffic counts once per segment whichever end sent it.
fn tcp_segments_sent() -> Option<u64> {
    let snmp = fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "OutSegs")?;
    values.split_whitespace().nth(at)?.parse().ok()
}
