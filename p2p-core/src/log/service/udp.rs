//! UDP: one call per datagram, the datagrams already received served together.

use std::io::{self};
use std::net::SocketAddr;
use std::sync::Arc;

use p2p_proto::Encode;
use tokio::net::UdpSocket;

use super::{batch::*, sink::*};

/// Largest UDP datagram read (the IPv4 UDP payload limit).
pub(super) const MAX_DATAGRAM: usize = 65_536;

/// Datagrams already received that are served together (one write for their lines).
pub(super) const UDP_BATCH: usize = 64;

/// Serves UDP: one call per datagram, one reply datagram; malformed datagrams, and those over
/// `max_record`, are dropped. The datagrams already received when one arrives are served with it (one batch of lines).
pub(super) async fn serve_udp(socket: UdpSocket, sink: Arc<Sink>, max_record: usize) {
    // One byte more than the limit, to tell a datagram over it from one that fills it.
    let mut buf = vec![0; max_record.min(MAX_DATAGRAM) + 1];
    let mut batch = Batch::new("udp");
    let serve = |batch: &mut Batch<SocketAddr>, buf: &[u8], n: usize, peer: SocketAddr| {
        if n > max_record {
            tracing::debug!("UDP call from {peer} over {max_record} bytes: dropped");
            batch.metrics.unlogged(None);
        } else {
            batch.dispatch(&buf[..n], peer, peer.ip(), &sink);
        }
    };
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => serve(&mut batch, &buf, n, peer),
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                tracing::debug!("UDP receive: {e}");
                continue;
            }
        }
        for _ in 1..UDP_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => serve(&mut batch, &buf, n, peer),
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!("UDP receive: {e}");
                    }
                    break;
                }
            }
        }
        batch.commit(&sink, false).await;
        let mut datagram = Vec::new();
        for answer in batch.replies.drain(..) {
            datagram.clear();
            answer.reply.encode(&mut datagram);
            if let Err(e) = socket.send_to(&datagram, answer.to).await {
                tracing::debug!("UDP reply to {}: {e}", answer.to);
            }
        }
    }
}
