//! Log client: SENDLOG calls one at a time or pipelined, as rpcgen clients and our shipper send them.

use super::*;

/// Sequential SENDLOG calls on one TCP connection per client.
/// Sequential SENDLOG calls on one TCP connection per client; with `window` > 1, up to `window`
/// calls in flight per connection (pipelined, as the directory's log shipper sends them).
pub(crate) async fn drive_log(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    window: usize,
) -> RunResult {
    let window = window.max(1);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                latencies: Latencies::with_capacity(64 * 1024),
                ..Tally::default()
            };
            let connected = TcpStream::connect(addr).await.and_then(|s| {
                s.set_nodelay(true)?;
                Ok(s)
            });
            barrier.wait().await;
            let mut stream = match connected {
                Ok(s) => s,
                Err(e) => {
                    t.error(format!("connect: {e}"));
                    barrier.wait().await;
                    return t;
                }
            };
            let entry = LogEntry::new(
                &format!("user_{i}"),
                "PUBLISH",
                sample::TIMESTAMP,
                "/home/alice/music/track-0001.ogg",
            )
            .unwrap_or_else(|_| sample::log_entry());
            // One framed call, its xid patched in place (after the 4-byte record mark).
            let mut framed = Vec::new();
            Record(sendlog_call(0, &entry)).encode(&mut framed);
            let mut decoder = RecordDecoder::new(64 * 1024);
            let mut inbuf = BytesMut::with_capacity(4096);
            let end = tokio::time::Instant::now() + duration;
            let mut xid = (i as u32) << 24;
            if window > 1 {
                pipelined(&mut stream, &mut framed, xid, window, end, &mut t).await;
                barrier.wait().await;
                return t;
            }
            while tokio::time::Instant::now() < end {
                xid = xid.wrapping_add(1);
                framed[4..8].copy_from_slice(&xid.to_be_bytes());
                let started = Instant::now();
                match tokio::time::timeout(
                    OP_TIMEOUT,
                    log_call(&mut stream, &framed, &mut decoder, &mut inbuf),
                )
                .await
                {
                    Ok(Ok(reply)) => match decode_sendlog_reply(&reply) {
                        Ok(Some((got, Ok(0)))) if got == xid => {
                            t.latencies.record(started.elapsed());
                            t.ops += 1;
                        }
                        Ok(Some(_)) => t.unexpected += 1,
                        Ok(None) => t.error("truncated reply"),
                        Err(e) => t.error(e),
                    },
                    Ok(Err(e)) => {
                        t.error(e);
                        break;
                    }
                    Err(_) => {
                        t.error("timeout");
                        break;
                    }
                }
            }
            barrier.wait().await;
            t
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    barrier.wait().await;
    let elapsed = started.elapsed();
    let mut tallies = Vec::new();
    for task in tasks {
        if let Ok(t) = task.await {
            tallies.push(t);
        }
    }
    Tally::merge_into(tallies, elapsed)
}

/// Keeps `window` calls in flight until `end`, then collects the outstanding replies.
async fn pipelined(
    stream: &mut TcpStream,
    framed: &mut [u8],
    first_xid: u32,
    window: usize,
    end: tokio::time::Instant,
    t: &mut Tally,
) {
    let (mut rd, mut wr) = stream.split();
    let mut decoder = RecordDecoder::new(64 * 1024);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight = std::collections::VecDeque::with_capacity(window);
    let mut next = first_xid;
    let mut out = Vec::with_capacity(framed.len() * window);
    loop {
        // Top the window up in one write.
        let open = tokio::time::Instant::now() < end;
        out.clear();
        while open && in_flight.len() < window {
            next = next.wrapping_add(1);
            framed[4..8].copy_from_slice(&next.to_be_bytes());
            out.extend_from_slice(framed);
            in_flight.push_back((next, Instant::now()));
        }
        if !out.is_empty()
            && let Err(e) = wr.write_all(&out).await
        {
            t.error(e);
            return;
        }
        if in_flight.is_empty() {
            return;
        }
        // At least one reply, then every reply already received.
        let mut got_one = false;
        loop {
            match decoder.decode(&mut inbuf) {
                Ok(Some(reply)) => {
                    got_one = true;
                    let Some((xid, sent)) = in_flight.pop_front() else {
                        t.error("reply without a call");
                        return;
                    };
                    match decode_sendlog_reply(&reply) {
                        Ok(Some((got, Ok(0)))) if got == xid => {
                            t.latencies.record(sent.elapsed());
                            t.ops += 1;
                        }
                        Ok(Some(_)) => t.unexpected += 1,
                        Ok(None) => t.error("truncated reply"),
                        Err(e) => t.error(e),
                    }
                    continue;
                }
                Ok(None) if got_one => break,
                Ok(None) => {}
                Err(e) => {
                    t.error(e);
                    return;
                }
            }
            inbuf.reserve(16 * 1024);
            match tokio::time::timeout(OP_TIMEOUT, rd.read_buf(&mut inbuf)).await {
                Ok(Ok(0)) => {
                    t.error("connection closed");
                    return;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    t.error(e);
                    return;
                }
                Err(_) => {
                    t.error("timeout");
                    return;
                }
            }
        }
    }
}

async fn log_call(
    stream: &mut TcpStream,
    framed: &[u8],
    decoder: &mut RecordDecoder,
    inbuf: &mut BytesMut,
) -> io::Result<BytesMut> {
    stream.write_all(framed).await?;
    loop {
        if let Some(record) = decoder
            .decode(inbuf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            return Ok(record);
        }
        inbuf.reserve(4096);
        if stream.read_buf(inbuf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}
