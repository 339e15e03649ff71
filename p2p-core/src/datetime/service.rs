//! The HTTP side: one route, request logging, graceful shutdown.

use std::future::{Future, IntoFuture};
use std::io;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{CONTENT_TYPE, DATETIME_PATH, body, local_clock};

/// How long [`serve`] waits, once shutdown is asked for, for open connections
/// to finish before it returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The service's routes: `GET /datetime` answers the local time; any other
/// path is `404 Not Found`, another method on `/datetime` is
/// `405 Method Not Allowed`. Every request is logged (tracing, `debug`) with
/// its method, path and status.
pub fn router() -> Router {
    router_with_clock(local_clock)
}

/// [`router`] with the clock given: `clock` is called once per request and
/// its value sent as `DD/MM/YYYY HH:MM:SS`. Tests pass a fixed clock.
pub fn router_with_clock(clock: fn() -> NaiveDateTime) -> Router {
    Router::new()
        .route(DATETIME_PATH, get(datetime))
        .fallback(not_found)
        .with_state(clock)
        .layer(middleware::from_fn(log_request))
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting, lets open requests finish (at most [`SHUTDOWN_GRACE`]) and
/// returns.
///
/// # Errors
/// The I/O error that stopped the server; accept errors on single
/// connections are retried, not returned.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_router(listener, router(), shutdown).await
}

/// [`serve`] with any router, e.g. one from [`router_with_clock`].
///
/// # Errors
/// As [`serve`].
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("datetime service shutting down");
        // Nobody listening only means the server already returned.
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    // A connection that never finishes its request must not keep the process
    // alive forever after a shutdown request.
    let grace = async move {
        if stopping_rx.wait_for(|&stopping| stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result,
        () = grace => {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "connections still open after the shutdown grace period; closing them"
            );
            Ok(())
        }
    }
}

async fn datetime(State(clock): State<fn() -> NaiveDateTime>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body(clock())).into_response()
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}
