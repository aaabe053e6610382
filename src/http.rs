//! tailship's own HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! HTTP/1 only, read-only, small: meant for a kubelet's probes and a Prometheus scraper on
//! the pod's network, not for the internet. Slow or idle clients are bounded by a header
//! read timeout (which also closes idle keep-alive connections) and a cap on open
//! connections, so they cannot pile up.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::telemetry::Telemetry;

/// How long a client may take to send a request's headers, and how long an idle keep-alive
/// connection stays open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long shutdown waits for requests in flight before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The pause after a failed accept (out of file descriptors, ...), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Serves /healthz (200 "ok" while the process runs), /readyz (200 once Snapshot.ready, else
/// 503 with a one-line reason), /metrics (the encoded registry with the right content type),
/// 404 otherwise, 405 for non-GET/HEAD. Stops when `shutdown` resolves.
///
/// On shutdown it stops accepting, lets requests in flight finish for up to
/// [`SHUTDOWN_GRACE`], and returns `Ok(())`. Failed accepts and connections are logged, never
/// fatal: the endpoints are worth keeping up while the agent runs.
pub async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let telemetry = Arc::clone(&telemetry);
        let service = service_fn(move |req| {
            let response = respond(&req, &telemetry);
            async move { Ok::<_, Infallible>(response) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open after the shutdown grace; dropping them");
    }
    Ok(())
}

fn respond(req: &Request<Incoming>, telemetry: &Telemetry) -> Response<Full<Bytes>> {
    enum Route {
        Health,
        Ready,
        Metrics,
    }
    let route = match req.uri().path() {
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        "/metrics" => Route::Metrics,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found; try /healthz, /readyz or /metrics\n",
            );
        }
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Ready if telemetry.is_ready() => text(StatusCode::OK, "ready\n"),
        Route::Ready => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful scrape of tailscaled yet\n",
        ),
        Route::Metrics => response(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            telemetry.encode().into(),
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        TEXT_CONTENT_TYPE,
        Bytes::from_static(body.as_bytes()),
    )
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use tokio::sync::oneshot;

    use super::*;

    struct Reply {
        status: StatusCode,
        content_type: Option<String>,
        allow: Option<String>,
        body: String,
    }

    struct Server {
        base: String,
        client: Client<HttpConnector, Full<Bytes>>,
        telemetry: Arc<Telemetry>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let telemetry = Arc::new(Telemetry::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::clone(&telemetry), async move {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Server {
            base,
            client,
            telemetry,
            stop,
            task,
        }
    }

    impl Server {
        async fn request(&self, method: Method, path: &str) -> Reply {
            let req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .body(Full::default())
                .expect("a valid request");
            let res = self.client.request(req).await.expect("a response");
            let header = |name| {
                res.headers()
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().expect("ascii").to_owned())
            };
            let (status, content_type, allow) = (
                res.status(),
                header(header::CONTENT_TYPE),
                header(header::ALLOW),
            );
            let body = res.into_body().collect().await.expect("a body").to_bytes();
            let body = String::from_utf8(body.to_vec()).expect("utf-8 body");
            Reply {
                status,
                content_type,
                allow,
                body,
            }
        }

        /// One request, checked: status, content type (when given) and the body's first line.
        async fn check(&self, method: Method, path: &str, status: StatusCode, first_line: &str) {
            let reply = self.request(method.clone(), path).await;
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
            assert_eq!(
                reply.body.lines().next().unwrap_or(""),
                first_line,
                "{method} {path}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn endpoints() {
        let server = start().await;

        server
            .check(Method::GET, "/healthz", StatusCode::OK, "ok")
            .await;
        server
            .check(
                Method::GET,
                "/readyz",
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no successful scrape of tailscaled yet",
            )
            .await;
        server.telemetry.update(|s| {
            s.ready = true;
            s.scrapes = 3;
        });
        server
            .check(Method::GET, "/readyz", StatusCode::OK, "ready")
            .await;
        server
            .check(Method::GET, "/readyz?verbose", StatusCode::OK, "ready")
            .await;

        let metrics = server.request(Method::GET, "/metrics").await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert_eq!(metrics.content_type.as_deref(), Some(METRICS_CONTENT_TYPE));
        assert!(
            metrics
                .body
                .lines()
                .any(|l| l == "tailship_scrapes_total 3"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.ends_with("# EOF\n"));

        let head = server.request(Method::HEAD, "/metrics").await;
        assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));

        server
            .check(
                Method::GET,
                "/nope",
                StatusCode::NOT_FOUND,
                "not found; try /healthz, /readyz or /metrics",
            )
            .await;
        server
            .check(
                Method::POST,
                "/nope",
                StatusCode::NOT_FOUND,
                "not found; try /healthz, /readyz or /metrics",
            )
            .await;
        let post = server.request(Method::POST, "/metrics").await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.allow.as_deref(), Some("GET, HEAD"));

        // The client keeps its connection open: shutdown must still end `serve`.
        server.stop.send(()).expect("serve is running");
        server
            .task
            .await
            .expect("serve did not panic")
            .expect("serve ends with Ok");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_before_any_request() {
        let server = start().await;
        server.stop.send(()).expect("serve is running");
        server
            .task
            .await
            .expect("serve did not panic")
            .expect("serve ends with Ok");
    }
}
