//! A plain HTTP metrics endpoint: `http://100.100.100.100/metrics` on the node, or
//! `http://<pod>:9002/metrics` next to a container with `TS_ENABLE_METRICS=true`.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::USER_AGENT;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::BoxError;
use super::{Fetched, SourceError, SourceOptions, SourceSpec, USER_AGENT_VALUE, hint, response};
use crate::TargetInfo;

/// How long a connection may sit idle in the pool between scrapes.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Reads one HTTP endpoint, keeping its connection open between scrapes.
#[derive(Debug)]
pub(super) struct HttpSource {
    url: http::Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpSource {
    pub(super) fn new(url: &http::Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(1)
            .http1_max_buf_size(super::READ_BUFFER)
            .build(connector);
        HttpSource {
            url: url.clone(),
            client,
        }
    }

    pub(super) async fn fetch(
        &self,
        spec: &SourceSpec,
        options: &SourceOptions,
    ) -> Result<Fetched, SourceError> {
        let request = Request::get(self.url.clone())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(Empty::<Bytes>::new())
            .expect("a parsed URI makes a valid request");
        let answer = self
            .client
            .request(request)
            .await
            .map_err(|e| client_error(spec, e))?;
        response::read(spec, options, answer, TargetInfo::default()).await
    }
}

/// Connect failures carry an `io::Error` somewhere in their chain: map it like any other
/// error on opening the source, or, when it is not a refusal (a name that does not resolve),
/// report it as a connect failure in its own words. Anything later is a protocol failure.
fn client_error(spec: &SourceSpec, error: hyper_util::client::legacy::Error) -> SourceError {
    let Some((kind, reason)) = error.is_connect().then(|| innermost_io(&error)).flatten() else {
        let endpoint = spec.describe();
        return SourceError::Protocol {
            endpoint,
            source: BoxError::from(error),
        };
    };
    match SourceError::from_io(spec, io::Error::new(kind, error)) {
        SourceError::Io { endpoint, source } => SourceError::Connect {
            endpoint,
            reason,
            hint: hint::connect(spec),
            source,
        },
        mapped => mapped,
    }
}

/// The kind and message of the first `io::Error` in `error`'s chain.
fn innermost_io(error: &(dyn std::error::Error + 'static)) -> Option<(io::ErrorKind, String)> {
    let mut next = error.source();
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some((io.kind(), io.to_string()));
        }
        next = cause.source();
    }
    None
}
