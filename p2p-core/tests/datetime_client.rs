//! The datetime client against the real service, a closed port and
//! misbehaving servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use p2p_core::datetime::{self, DatetimeClient, DatetimeClientConfig, DatetimeError};
use p2p_proto::timestamp::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How far an answer may be from this test's clock.
const TOLERANCE: TimeDelta = TimeDelta::seconds(5);

fn assert_close_to_local_now(ts: Timestamp) {
    let text = ts.as_str();
    let when = NaiveDateTime::parse_from_str(text, "%d/%m/%Y %H:%M:%S")
        .unwrap_or_else(|e| panic!("{text:?} is not a date: {e}"));
    let now = chrono::Local::now().naive_local();
    let diff = (now - when).abs();
    assert!(
        diff <= TOLERANCE,
        "{text} is {diff} away from local now {now}"
    );
}

/// The real service on an ephemeral port; it runs until the test ends.
async fn spawn_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(datetime::serve(listener, std::future::pending()));
    addr
}

/// A server that answers every connection with `response` (raw HTTP bytes)
/// once it has read the request head, then closes. `None` never answers.
async fn spawn_canned(response: Option<String>) -> SocketAddr {
    let response: Option<Arc<str>> = response.map(Arc::from);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match response {
                    Some(response) => {
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    // Hold the connection open without a word.
                    None => {
                        let _ = stream.read(&mut buf).await;
                    }
                }
            });
        }
    });
    addr
}

fn plain_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/datetime")
}

/// A port on which nothing listens (bound, then released).
async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    drop(listener);
    url(addr)
}

#[tokio::test]
async fn client_gets_the_service_time() {
    let addr = spawn_service().await;
    let client = DatetimeClient::new(url(addr));
    assert_eq!(client.url(), url(addr));

    let fetched = client.fetch().await.expect("service answers");
    assert_close_to_local_now(fetched);
    assert_close_to_local_now(client.now().await);
    // A clone shares the connection pool and works the same.
    assert_close_to_local_now(client.clone().fetch().await.expect("clone answers"));
}

#[tokio::test]
async fn closed_port_falls_back_to_the_local_clock_every_time() {
    let client = DatetimeClient::new(closed_port_url().await);
    assert!(
        matches!(client.fetch().await, Err(DatetimeError::Connect { .. })),
        "fetch reports the refused connection"
    );
    assert_close_to_local_now(client.now().await);
    assert_close_to_local_now(client.now().await);
}

#[tokio::test]
async fn garbage_answer_falls_back() {
    let addr = spawn_canned(Some(plain_ok("hello"))).await;
    let client = DatetimeClient::new(url(addr));
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::BadBody {
            body: "hello".to_owned()
        })
    );
    assert_close_to_local_now(client.now().await);
    assert_close_to_local_now(client.now().await);
}

#[tokio::test]
async fn trailing_newline_is_tolerated() {
    let response = plain_ok("24/11/2026 09:05:03\r\n");
    let addr = spawn_canned(Some(response)).await;
    let client = DatetimeClient::new(url(addr));
    let fetched = client.fetch().await.map(|ts| ts.as_str().to_owned());
    assert_eq!(fetched.as_deref(), Ok("24/11/2026 09:05:03"));
    assert_eq!(client.now().await.as_str(), "24/11/2026 09:05:03");
}

#[tokio::test]
async fn non_200_status_is_an_error_and_falls_back() {
    let addr = spawn_canned(Some(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 19\r\nConnection: close\r\n\r\n24/11/2026 09:05:03"
            .to_owned(),
    ))
    .await;
    let client = DatetimeClient::new(url(addr));
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::Status { status: 500 })
    );
    assert_close_to_local_now(client.now().await);
}

#[tokio::test]
async fn not_found_is_an_error() {
    let addr = spawn_service().await;
    let client = DatetimeClient::new(format!("http://{addr}/other"));
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::Status { status: 404 })
    );
}

#[tokio::test]
async fn oversized_answer_is_refused() {
    let body = "24/11/2026 09:05:03".repeat(10);
    let addr = spawn_canned(Some(plain_ok(&body))).await;
    let client = DatetimeClient::new(url(addr));
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::BodyTooLong {
            max: DatetimeClientConfig::MAX_BODY_LEN
        })
    );
}

#[tokio::test]
async fn oversized_chunked_answer_is_refused() {
    let chunk = "24/11/2026 09:05:03".repeat(10);
    let response = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let addr = spawn_canned(Some(response)).await;
    let client = DatetimeClient::new(url(addr));
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::BodyTooLong {
            max: DatetimeClientConfig::MAX_BODY_LEN
        })
    );
}

#[tokio::test]
async fn silent_server_times_out_and_falls_back() {
    let addr = spawn_canned(None).await;
    let mut config = DatetimeClientConfig::with_url(url(addr));
    config.timeout = Duration::from_millis(200);
    let client = DatetimeClient::with_config(config);
    assert_eq!(
        client.fetch().await.map(|ts| ts.as_str().to_owned()),
        Err(DatetimeError::Timeout {
            after: Duration::from_millis(200)
        })
    );
    assert_close_to_local_now(client.now().await);
}

/// Three fallbacks from one client and its clone give one warning; a
/// second client warns again.
#[tokio::test]
async fn fallback_warns_once_per_client() {
    let url = closed_port_url().await;
    let client = DatetimeClient::new(url.clone());
    let mut warnings = Vec::new();
    for c in [
        client.clone(),
        client.clone(),
        client.clone(),
        DatetimeClient::new(url),
    ] {
        let (timestamp, warning) = c.now_or_warn().await;
        assert_close_to_local_now(timestamp);
        warnings.extend(warning);
    }
    assert_eq!(
        warnings.len(),
        2,
        "one warning per client, got: {warnings:?}"
    );
    for line in &warnings {
        assert!(
            line.starts_with("warning: datetime service at ")
                && line.contains("unreachable (cannot connect: ")
                && line.ends_with("); using the local clock"),
            "warning line: {line}"
        );
    }
}
