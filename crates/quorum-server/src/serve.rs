//! Serving the router over HTTP/1.1 with the limits a server facing the public needs: a
//! client must send its request head within `header_timeout` (slowloris connections are
//! closed), every chunk of its body within `body_timeout` of the last, and the server must
//! start its reply within `request_timeout` (else 408). On shutdown the listener closes at
//! once and open connections get `drain_timeout` to finish before they are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::ApiError;

/// The HTTP server's timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the connection's first byte (or the end of the last reply) to the end of the
    /// request head.
    pub header: Duration,
    /// The longest pause between two chunks of a request body.
    pub body: Duration,
    /// From the request head to the start of the reply (a streamed reply may go on longer).
    pub request: Duration,
    /// How long open connections may go on once shutdown starts.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            request: Duration::from_secs(300),
            drain: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections for
/// at most `timeouts.drain`. Handlers can read the client's address as `ConnectInfo`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(router.clone(), request, remote, timeouts)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = timeouts.drain.as_secs(),
            "connections still open after the drain timeout were closed"
        );
    }
    Ok(())
}

async fn handle(
    router: Router,
    request: Request<Incoming>,
    remote: SocketAddr,
    timeouts: Timeouts,
) -> Result<Response<Body>, Infallible> {
    let mut request = request.map(|body| Body::new(TimeoutBody::new(timeouts.body, body)));
    request.extensions_mut().insert(ConnectInfo(remote));
    match tokio::time::timeout(timeouts.request, router.oneshot(request)).await {
        Ok(response) => response,
        Err(_) => Ok(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than {} s",
                timeouts.request.as_secs()
            ),
        )
        .into_response()),
    }
}
