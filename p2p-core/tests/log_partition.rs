//! The log stream through a partition: the test proxy black-holes the link
//! between the shipper and the log service for a while (long enough for
//! calls to go unanswered past the call timeout, so that the shipper gives
//! its connection up and tries new ones into the hole), then heals; or the
//! shipper is shut down during the outage; or only the replies are lost (the
//! service wrote the records: its duplicate-request cache keeps them from
//! being written twice). Every record is written exactly once, in order, and
//! the counts are exact.

mod support;

use std::time::Duration;

use p2p_core::log::{LogShipper, LogShipperConfig, LogStats, LogTarget};
use p2p_proto::rpc::log::LogEntry;
use support::proxy::{Mode, Proxy};
use support::{LogHarness, WAIT};

fn record(i: usize) -> LogEntry {
    LogEntry::new(
        &format!("user{i}"),
        "PUBLISH",
        "24/11/2026 19:40:12",
        "f.txt",
    )
    .unwrap()
}

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| record(i).to_string()).collect()
}

/// A shipper to `port` that gives a call up after 1 s.
fn shipper(port: u16, flush_timeout: Duration) -> LogShipper {
    let mut config = LogShipperConfig::new(LogTarget {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
    });
    config.call_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(200);
    config.flush_timeout = flush_timeout;
    LogShipper::spawn(config)
}

/// Waits until the shipper has given up a connection with calls unanswered
/// (the partition has been felt, not just begun).
async fn until_resent(shipper: &LogShipper, at_least: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while shipper.stats().resent < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no call was sent again: {:?}",
            shipper.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_once_and_in_order_across_a_partition_and_a_cut() {
    let service = LogHarness::start(64 * 1024).await;
    let proxy = Proxy::start(service.tcp).await;
    let shipper = shipper(proxy.addr.port(), WAIT);
    for i in 0..100 {
        shipper.log(record(i));
    }
    assert_eq!(service.wait_lines(100).await, lines(0..100));

    // The partition: records keep coming; calls go unanswered, the shipper
    // gives its connection up (twice: it reconnects into the hole too).
    proxy.set_mode(Mode::BlackHole);
    for i in 100..300 {
        shipper.log(record(i));
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    until_resent(&shipper, 2 * 200).await;
    for i in 300..350 {
        shipper.log(record(i));
    }
    proxy.set_mode(Mode::Pass);
    assert_eq!(service.wait_lines(350).await, lines(0..350));

    // Replies lost: the service wrote the records, the shipper sends them
    // again; its duplicate-request cache answers without writing them twice.
    proxy.set_mode(Mode::DropReplies);
    let before = shipper.stats().resent;
    for i in 350..400 {
        shipper.log(record(i));
    }
    until_resent(&shipper, before + 50).await;
    assert_eq!(service.wait_lines(400).await, lines(0..400));
    proxy.set_mode(Mode::Pass);

    // A cut in the middle of the stream.
    for i in 400..450 {
        shipper.log(record(i));
    }
    proxy.cut();
    for i in 450..500 {
        shipper.log(record(i));
    }
    let stats = tokio::time::timeout(WAIT, shipper.shutdown())
        .await
        .unwrap();
    assert_eq!(service.wait_lines(500).await, lines(0..500));
    assert_eq!(
        (stats.sent, stats.dropped, stats.refused, stats.undelivered),
        (500, 0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.resent >= 450, "{stats:?}");
    let written = service.stop().await;
    assert!(
        written == lines(0..500),
        "{} lines, not records 0..500 once each in order",
        written.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_an_outage_counts_exactly_and_nothing_arrives_later() {
    let service = LogHarness::start(64 * 1024).await;
    let proxy = Proxy::start(service.tcp).await;
    let shipper = shipper(proxy.addr.port(), Duration::from_secs(2));
    for i in 0..50 {
        shipper.log(record(i));
    }
    assert_eq!(service.wait_lines(50).await, lines(0..50));
    proxy.set_mode(Mode::BlackHole);
    for i in 50..80 {
        shipper.log(record(i));
    }
    until_resent(&shipper, 30).await;
    // The server stops (SIGTERM) while the log service is unreachable.
    let stats = tokio::time::timeout(WAIT, shipper.shutdown())
        .await
        .unwrap();
    assert_eq!(
        stats,
        LogStats {
            sent: 50,
            resent: stats.resent,
            dropped: 0,
            refused: 0,
            undelivered: 30,
        }
    );
    // The network heals: what the shipper had in flight must not arrive now.
    // A record through a new shipper marks the moment everything held has
    // had its chance.
    proxy.set_mode(Mode::Pass);
    let marker = shipper_marker(proxy.addr.port()).await;
    let written = service.wait_lines(51).await;
    assert_eq!(written[..50], lines(0..50)[..]);
    assert_eq!(written[50], marker.to_string());
    assert_eq!(
        service.stop().await.len(),
        51,
        "a record arrived after the shutdown"
    );
}

async fn shipper_marker(port: u16) -> LogEntry {
    let marker = LogEntry::new("marker", "PING", "24/11/2026 19:40:12", "").unwrap();
    let shipper = shipper(port, WAIT);
    shipper.log(marker.clone());
    let stats = shipper.shutdown().await;
    assert_eq!(stats.sent, 1, "{stats:?}");
    marker
}
