//! The log shipper against the log service, on 127.0.0.1 with explicit ports (no rpcbind).

mod support;

use support::{LogHarness, WAIT};

use std::net::SocketAddr;
use std::time::Duration;

use p2p_core::log::{LogServiceConfig, LogShipper, LogShipperConfig, LogStats, LogTarget};
use p2p_proto::rpc::log::LogEntry;

fn record(i: usize) -> LogEntry {
    let file = if i.is_multiple_of(3) {
        format!("file{i}.txt")
    } else {
        String::new()
    };
    LogEntry::new(&format!("user{i}"), "PUBLISH", "24/11/2026 19:40:12", &file).unwrap()
}

fn config(port: u16) -> LogShipperConfig {
    let mut config = LogShipperConfig::new(LogTarget {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
    });
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(100);
    config.flush_timeout = WAIT;
    config
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_order() {
    const N: usize = 2000;
    let mut service = LogHarness::start_on(
        "127.0.0.1:0".parse().unwrap(),
        LogServiceConfig::default().max_record,
    )
    .await;
    let shipper = LogShipper::spawn(config(service.tcp.port()));
    for i in 0..N {
        shipper.log(record(i));
    }
    for i in 0..N {
        assert_eq!(service.line().await, record(i).to_string());
    }
    let stats = shipper.shutdown().await;
    assert_eq!(
        stats,
        LogStats {
            sent: N as u64,
            dropped: 0,
            ..LogStats::default()
        }
    );
    service.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_down_then_started() {
    let port = free_port();
    let shipper = LogShipper::spawn(config(port));
    for i in 0..10 {
        shipper.log(record(i));
    }
    // Nothing could be delivered yet, nothing is lost either: the records wait in the queue.
    assert_eq!(shipper.stats(), LogStats::default());
    let mut service = LogHarness::start_on(
        SocketAddr::from(([127, 0, 0, 1], port)),
        LogServiceConfig::default().max_record,
    )
    .await;
    for i in 10..20 {
        shipper.log(record(i));
    }
    for i in 0..20 {
        assert_eq!(service.line().await, record(i).to_string());
    }
    let stats = shipper.shutdown().await;
    assert_eq!(
        stats,
        LogStats {
            sent: 20,
            dropped: 0,
            ..LogStats::default()
        }
    );
    service.finish().await;
}

#[tokio::test]
async fn service_never_up_counts_drops() {
    let mut config = config(free_port());
    config.flush_timeout = Duration::from_millis(300);
    config.queue_capacity = 4;
    let shipper = LogShipper::spawn(config);
    for i in 0..10 {
        shipper.log(record(i));
    }
    // The task holds at most one record outside the queue: at least 5 of 10 did not fit.
    assert!(shipper.stats().dropped >= 5, "{:?}", shipper.stats());
    let stats = shipper.shutdown().await;
    // Dropped: what did not fit in the queue; the rest is undelivered at the end.
    assert_eq!(stats.sent, 0);
    assert!(stats.dropped >= 5, "{stats:?}");
    assert_eq!(stats.dropped + stats.undelivered, 10, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_restarts() {
    let mut service = LogHarness::start_on(
        "127.0.0.1:0".parse().unwrap(),
        LogServiceConfig::default().max_record,
    )
    .await;
    let addr = service.tcp;
    let shipper = LogShipper::spawn(config(addr.port()));
    for i in 0..5 {
        shipper.log(record(i));
    }
    for i in 0..5 {
        assert_eq!(service.line().await, record(i).to_string());
    }
    service.finish().await;
    let mut service = LogHarness::start_on(addr, LogServiceConfig::default().max_record).await;
    // Records sent before the shipper sees that the old connection is gone are sent again on
    // the new one: nothing is lost, everything arrives once, in order.
    for i in 5..10 {
        shipper.log(record(i));
    }
    for i in 10..15 {
        shipper.log(record(i));
    }
    for i in 5..15 {
        assert_eq!(service.line().await, record(i).to_string());
    }
    let stats = shipper.shutdown().await;
    assert_eq!(
        (stats.sent, stats.dropped, stats.undelivered),
        (15, 0, 0),
        "{stats:?}"
    );
    service.finish().await;
}

#[tokio::test]
async fn log_never_blocks_without_runtime_progress() {
    // `log` is synchronous: called in a tight loop on a current-thread runtime, where the
    // shipper's task cannot run, it must return at once (queueing or dropping).
    let mut config = config(free_port());
    config.queue_capacity = 100;
    config.flush_timeout = Duration::from_millis(100);
    let shipper = LogShipper::spawn(config);
    for i in 0..1000 {
        shipper.log(record(i));
    }
    assert_eq!(shipper.stats().dropped, 900);
    let stats = shipper.shutdown().await;
    assert_eq!(stats.dropped, 900);
    assert_eq!(stats.sent + stats.dropped + stats.undelivered, 1000);
    assert_eq!(stats.sent, 0);
}

/// After a write, records wait for the pause to end, so that they go out together; a quarter
/// of the window queued ends the pause early, and so does shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_gather_between_writes() {
    let mut service = LogHarness::start_on(
        "127.0.0.1:0".parse().unwrap(),
        LogServiceConfig::default().max_record,
    )
    .await;
    let mut config = config(service.tcp.port());
    config.coalesce = Duration::from_secs(3600);
    config.max_in_flight = 8;
    let shipper = LogShipper::spawn(config);
    // Nothing was written lately: the first record goes out at once.
    shipper.log(record(0));
    assert_eq!(service.line().await, record(0).to_string());
    // Now the pause runs: one record queued is not enough to end it.
    shipper.log(record(1));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), service.line())
            .await
            .is_err(),
        "a record went out during the pause"
    );
    // Two queued, a quarter of the window of 8: out now, in order.
    shipper.log(record(2));
    assert_eq!(service.line().await, record(1).to_string());
    assert_eq!(service.line().await, record(2).to_string());
    // Another pause began with that write; shutdown does not wait for it to end.
    shipper.log(record(3));
    let stats = tokio::time::timeout(WAIT, shipper.shutdown())
        .await
        .expect("shutdown waited for the pause");
    assert_eq!(
        stats,
        LogStats {
            sent: 4,
            dropped: 0,
            ..LogStats::default()
        }
    );
    assert_eq!(service.line().await, record(3).to_string());
    service.finish().await;
}

/// The service closes connections left idle; the shipper notices and reconnects for the next
/// records, losing none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_for_idleness_is_replaced() {
    let mut service_config = LogServiceConfig::with_bind("127.0.0.1:0".parse().unwrap());
    service_config.idle_timeout = Duration::from_millis(100);
    let mut service = LogHarness::start_with(service_config).await;
    let shipper = LogShipper::spawn(config(service.tcp.port()));
    for round in 0..3 {
        shipper.log(record(round));
        assert_eq!(service.line().await, record(round).to_string());
        // Two idle periods and more: the service has closed the connection.
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    let stats = shipper.shutdown().await;
    assert_eq!(
        stats,
        LogStats {
            sent: 3,
            dropped: 0,
            ..LogStats::default()
        }
    );
    service.finish().await;
}

/// `directory::run_service` owns the handler's shipper: after the last request it shuts the
/// shipper down (its records delivered) and returns its counts; nothing is left to the caller.
#[tokio::test]
async fn the_directory_service_shuts_its_shipper_down_and_reports_it() {
    use p2p_core::directory::{self, Handler, LineWriter, MemoryStore, ServerConfig};
    use p2p_core::peer::DirectoryClient;
    use p2p_proto::directory::RequestBody;
    use std::sync::Arc;

    let mut log = LogHarness::start(1 << 16).await;
    let shipper = LogShipper::spawn(config(log.tcp.port()));
    let handler = Handler::new(
        Arc::new(MemoryStore::new()),
        LineWriter::disabled(),
        Some(shipper),
    );
    let listener = directory::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(directory::run_service(
        listener,
        handler,
        ServerConfig::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = DirectoryClient::new("127.0.0.1", addr.port()).with_timeout(WAIT);
    client
        .call(&support::request("alice", RequestBody::Register, false))
        .await
        .unwrap();
    stop.send(()).unwrap();
    let stats = tokio::time::timeout(WAIT, service)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap()
        .expect("the shipper's counts");
    assert_eq!(stats.sent, 1, "{stats:?}");
    assert_eq!(
        stats.undelivered + stats.dropped + stats.refused,
        0,
        "{stats:?}"
    );
    assert!(log.line().await.starts_with("alice REGISTER "));
}
