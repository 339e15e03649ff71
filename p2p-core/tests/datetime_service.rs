//! The datetime service over real sockets (PROTOCOL.md §3).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use p2p_core::datetime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How far the service's answer may be from this test's clock.
const TOLERANCE: TimeDelta = TimeDelta::seconds(5);

struct Service {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(app: axum::Router) -> Service {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(datetime::serve_router(listener, app, shutdown));
    Service { addr, stop, task }
}

async fn start_default() -> Service {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(datetime::serve(listener, shutdown));
    Service { addr, stop, task }
}

impl Service {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("service stops after shutdown")
            .expect("service task did not panic");
        result.expect("service returned Ok");
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// `DD/MM/YYYY HH:MM:SS` exactly: digits where digits go, the separators
/// elsewhere, nothing else.
fn assert_datetime_pattern(body: &str) {
    const PATTERN: &[u8; 19] = b"dd/dd/dddd dd:dd:dd";
    assert_eq!(body.len(), 19, "body {body:?} is not 19 bytes");
    for (i, (&got, &want)) in body.as_bytes().iter().zip(PATTERN).enumerate() {
        let ok = if want == b'd' {
            got.is_ascii_digit()
        } else {
            got == want
        };
        assert!(ok, "body {body:?}: byte {i} is {:?}", got as char);
    }
}

fn parse_body(body: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(body, "%d/%m/%Y %H:%M:%S")
        .unwrap_or_else(|e| panic!("body {body:?} is not a date: {e}"))
}

fn assert_close_to_local_now(when: NaiveDateTime) {
    let now = chrono::Local::now().naive_local();
    let diff = (now - when).abs();
    assert!(
        diff <= TOLERANCE,
        "{when} is {diff} away from local now {now}"
    );
}

#[tokio::test]
async fn get_datetime_answers_the_local_time_as_plain_text() {
    let service = start_default().await;
    let response = http()
        .get(service.url("/datetime"))
        .send()
        .await
        .expect("GET /datetime");

    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let body = response.text().await.expect("body");
    assert_datetime_pattern(&body);
    assert_close_to_local_now(parse_body(&body));

    service.stop().await;
}

#[tokio::test]
async fn body_is_the_clock_formatted_exactly() {
    fn fixed() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 24)
            .and_then(|d| d.and_hms_opt(9, 5, 3))
            .expect("valid date")
    }
    let service = start(datetime::router_with_clock(fixed)).await;
    let response = http()
        .get(service.url("/datetime"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body = response.bytes().await.expect("body");
    assert_eq!(&body[..], b"24/11/2026 09:05:03");

    service.stop().await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let service = start_default().await;
    let client = http();
    for path in ["/other", "/", "/datetime/", "/datetime/x", "/DATETIME"] {
        let response = client.get(service.url(path)).send().await.expect("GET");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::NOT_FOUND,
            "GET {path}"
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn other_methods_on_datetime_are_not_allowed() {
    let service = start_default().await;
    let client = http();
    let response = client
        .post(service.url("/datetime"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    let response = client
        .delete(service.url("/datetime"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    service.stop().await;
}

#[tokio::test]
async fn shutdown_with_an_idle_keep_alive_connection_returns() {
    let service = start_default().await;
    // Leaves a pooled keep-alive connection open to the service.
    let client = http();
    let response = client
        .get(service.url("/datetime"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let _ = response.bytes().await.expect("body");

    let addr = service.addr;
    service.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}
