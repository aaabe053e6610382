//! Sources: fetch one usermetrics body from tailscaled's LocalAPI socket, an HTTP endpoint or
//! a file, and learn what can be known about the tailscaled process that produced it.
//!
//! A [`Source`] is built once and fetched on every scrape. Every fetch is bounded in time
//! ([`SourceOptions::timeout`], covering connect, headers and body) and in size
//! ([`SourceOptions::max_body`]). Fetching needs a tokio runtime with the time driver enabled;
//! the current-thread flavour is enough.

mod error;
mod file;
mod hint;
mod http;
mod localapi;
mod response;
mod spec;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use crate::TargetInfo;
pub use error::SourceError;
pub use spec::{DEFAULT_SOCKET, DEFAULT_URL, SourceSpec, SourceSpecError};

/// What tailship says it is to tailscaled and proxies.
const USER_AGENT_VALUE: &str = concat!("tailship/", env!("CARGO_PKG_VERSION"));

/// Limits on one fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    /// The whole fetch: connect, response headers and body. Default 10 s.
    pub timeout: Duration,
    /// The largest body accepted, in bytes. Default 16 MiB: a busy node's usermetrics are a
    /// few KiB.
    pub max_body: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            timeout: Duration::from_secs(10),
            max_body: 16 << 20,
        }
    }
}

/// One fetched body and what is known about who served it.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The exposition, unparsed.
    pub body: Bytes,
    /// Evidence of the tailscaled process identity (version, PID, start time, boot).
    pub target: TargetInfo,
    /// The `Content-Type` the server sent, if any (never for a file).
    pub content_type: Option<String>,
}

/// A configured source of tailscaled metrics.
#[derive(Debug)]
pub struct Source {
    spec: SourceSpec,
    options: SourceOptions,
    reader: Reader,
}

#[derive(Debug)]
enum Reader {
    LocalApi(localapi::LocalApi),
    Http(http::HttpSource),
    File(PathBuf),
}

impl Source {
    /// Prepares to read `spec`. Nothing is opened until [`Source::fetch`].
    pub fn new(spec: SourceSpec, options: SourceOptions) -> Self {
        let reader = match &spec {
            SourceSpec::LocalApi { socket } => Reader::LocalApi(localapi::LocalApi::new(socket)),
            SourceSpec::Http { url } => Reader::Http(http::HttpSource::new(url)),
            SourceSpec::File { path } => Reader::File(path.clone()),
        };
        Source {
            spec,
            options,
            reader,
        }
    }

    /// Where this source reads from.
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Fetches one body. Fails with a [`SourceError`] that says what to fix.
    pub async fn fetch(&self) -> Result<Fetched, SourceError> {
        let (spec, options) = (&self.spec, &self.options);
        let work = async {
            match &self.reader {
                Reader::LocalApi(local) => local.fetch(spec, options).await,
                Reader::Http(client) => client.fetch(spec, options).await,
                Reader::File(path) => file::fetch(path, spec, options).await,
            }
        };
        match tokio::time::timeout(options.timeout, work).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SourceError::Timeout {
                endpoint: spec.describe(),
                timeout: options.timeout,
            }),
        }
    }
}
