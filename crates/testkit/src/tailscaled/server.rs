//! The fake's server thread: hyper on a unix listener and a TCP listener, answering like
//! tailscaled.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, ORIGIN, REFERER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::{DEBUG_PATH, USERMETRICS_PATH};

/// The `Host` the LocalAPI accepts besides none at all (`apitype.LocalAPIHost`).
const LOCALAPI_HOST: &str = "local-tailscaled.sock";

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) reply: Mutex<Reply>,
    pub(super) requests: AtomicU64,
    /// Requests for `/debug/metrics` (not in `requests`).
    pub(super) debug_requests: AtomicU64,
    pub(super) connections: AtomicU64,
}

#[derive(Clone, Debug)]
pub(super) struct Reply {
    pub(super) body: Bytes,
    pub(super) status: StatusCode,
    pub(super) content_type: Option<String>,
    pub(super) version: Option<String>,
    pub(super) delay: Duration,
    pub(super) chunked: bool,
    /// What `/debug/metrics` answers on the HTTP listener.
    pub(super) debug_body: Bytes,
}

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone, Copy, Debug)]
enum Listener {
    LocalApi,
    Http,
}

/// The server thread: accept on both listeners until told to stop. Dropping the runtime
/// then cancels every connection still open.
pub(super) fn run(
    unix: std::os::unix::net::UnixListener,
    tcp: std::net::TcpListener,
    shared: Arc<Shared>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fake tailscaled's runtime");
    runtime.block_on(async move {
        let unix = tokio::net::UnixListener::from_std(unix).expect("register the unix listener");
        let tcp = tokio::net::TcpListener::from_std(tcp).expect("register the tcp listener");
        let accept_unix = async {
            while let Ok((stream, _)) = unix.accept().await {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&shared),
                    Listener::LocalApi,
                ));
            }
        };
        let accept_tcp = async {
            while let Ok((stream, _)) = tcp.accept().await {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&shared),
                    Listener::Http,
                ));
            }
        };
        tokio::select! {
            _ = stopped => {}
            () = accept_unix => {}
            () = accept_tcp => {}
        }
    });
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>, listener: Listener)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(answer(&shared, listener, request).await) }
    });
    // A client that hangs up early is none of the fake's business.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// What tailscaled would answer (`ipn/localapi.Handler.ServeHTTP` for the socket).
async fn answer(shared: &Shared, listener: Listener, request: Request<Incoming>) -> Response<Body> {
    // Counted while the reply is taken, so that a script that sees the count go up knows
    // this request's body is already decided and may change the next one.
    let debug = matches!(listener, Listener::Http) && request.uri().path() == DEBUG_PATH;
    let reply = {
        let reply = shared.reply.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = if debug {
            &shared.debug_requests
        } else {
            &shared.requests
        };
        counter.fetch_add(1, Ordering::SeqCst);
        reply.clone()
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let headers = request.headers();
    let path = request.uri().path();
    match listener {
        Listener::LocalApi => {
            let host = headers
                .get(HOST)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            let valid_host = host.is_empty() || host == LOCALAPI_HOST.as_bytes();
            if headers.contains_key(ORIGIN) || headers.contains_key(REFERER) || !valid_host {
                return text(StatusCode::FORBIDDEN, "invalid localapi request\n", None);
            }
            if path != USERMETRICS_PATH {
                return text(
                    StatusCode::NOT_FOUND,
                    "404 page not found\n",
                    reply.version.as_deref(),
                );
            }
        }
        // tailscaled's debug mux (`servePrometheusMetrics`): no version header.
        Listener::Http if debug => {
            return Response::builder()
                .header(CONTENT_TYPE, "text/plain")
                .body(Full::new(reply.debug_body).boxed())
                .expect("the test's headers are valid");
        }
        Listener::Http if path != "/metrics" => {
            return text(
                StatusCode::NOT_FOUND,
                "404 page not found\n",
                reply.version.as_deref(),
            );
        }
        Listener::Http => {}
    }
    let mut response = Response::builder().status(reply.status);
    if let Some(content_type) = &reply.content_type {
        response = response.header(CONTENT_TYPE, content_type);
    }
    if let Some(version) = &reply.version {
        response = response.header("Tailscale-Version", version);
    }
    let body = Full::new(reply.body);
    // Without an exact size hint hyper sends `Transfer-Encoding: chunked`.
    let body = if reply.chunked {
        body.map_frame(|frame| frame).boxed()
    } else {
        body.boxed()
    };
    response.body(body).expect("the test's headers are valid")
}

/// An answer like Go's `http.Error`.
fn text(status: StatusCode, body: &'static str, version: Option<&str>) -> Response<Body> {
    let mut response = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff");
    if let Some(version) = version {
        response = response.header("Tailscale-Version", version);
    }
    response
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .expect("static headers are valid")
}
