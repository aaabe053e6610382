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

/// The most hyper buffers of a body before handing it over (its default is about 400 KiB,
/// which a large body filled twice a scrape, in buffers the allocator mapped afresh each
/// time); the body is copied out of it frame by frame anyway.
const READ_BUFFER: usize = 64 * 1024;

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
#[derive(Debug)]
pub struct Fetched {
    /// The exposition, unparsed.
    pub body: Bytes,
    /// Evidence of the tailscaled process identity (version, PID, start time, boot).
    pub target: TargetInfo,
    /// The `Content-Type` the server sent, if any (never for a file).
    pub content_type: Option<String>,
    /// The debug endpoint's body (`/debug/metrics`), when one is configured. Its failure does
    /// not fail the scrape: the usermetrics body still counts, with less restart evidence.
    pub debug: Option<Result<Bytes, SourceError>>,
}

/// A configured source of tailscaled metrics.
#[derive(Debug)]
pub struct Source {
    spec: SourceSpec,
    options: SourceOptions,
    reader: Reader,
    /// tailscaled's debug endpoint, scraped with the main one.
    debug: Option<(SourceSpec, http::HttpSource)>,
}

#[derive(Debug)]
enum Reader {
    LocalApi(localapi::LocalApi),
    Http(Box<http::HttpSource>),
    File(PathBuf),
}

impl Source {
    /// Prepares to read `spec`. Nothing is opened until [`Source::fetch`].
    pub fn new(spec: SourceSpec, options: SourceOptions) -> Self {
        let reader = match &spec {
            SourceSpec::LocalApi { socket } => Reader::LocalApi(localapi::LocalApi::new(socket)),
            SourceSpec::Http { url } => Reader::Http(Box::new(http::HttpSource::new(url))),
            SourceSpec::File { path } => Reader::File(path.clone()),
        };
        Source {
            spec,
            options,
            reader,
            debug: None,
        }
    }

    /// Also scrapes tailscaled's debug endpoint (`tailscaled --debug=ADDR:PORT`, path
    /// `/debug/metrics`) on every fetch: its `process_start_unix_time` and
    /// `node_boot_time_seconds` are direct evidence of a restart, and it carries the socket
    /// statistics and other client metrics.
    pub fn with_debug(mut self, url: ::http::Uri) -> Self {
        let client = http::HttpSource::new(&url);
        self.debug = Some((SourceSpec::Http { url }, client));
        self
    }

    /// The debug endpoint, if one is configured.
    pub fn debug_spec(&self) -> Option<&SourceSpec> {
        self.debug.as_ref().map(|(spec, _)| spec)
    }

    /// Where this source reads from.
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Fetches one body, and the debug endpoint's when one is configured. Fails with a
    /// [`SourceError`] that says what to fix.
    ///
    /// The debug endpoint is read before and after the usermetrics body: a restart between
    /// two reads of two endpoints would otherwise pair one process's counters with the other
    /// process's identity (and count a whole process twice). When the two reads disagree the
    /// scrape is refused with [`SourceError::RestartedDuringScrape`].
    pub async fn fetch(&self) -> Result<Fetched, SourceError> {
        let Some((debug_spec, client)) = &self.debug else {
            return self.bounded(&self.spec, self.fetch_main()).await;
        };
        let work = async {
            let before = client.fetch(debug_spec, &self.options).await;
            let main = self.fetch_main().await?;
            let after = client.fetch(debug_spec, &self.options).await;
            Ok((main, before, after))
        };
        let (mut fetched, before, after) = self.bounded(&self.spec, work).await?;
        fetched.debug = Some(match (before, after) {
            (Ok(before), Ok(after)) => {
                let (mut was, mut is) = (TargetInfo::default(), TargetInfo::default());
                was.read_debug(&before.body);
                is.read_debug(&after.body);
                let moved =
                    |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if a != b);
                if moved(was.started, is.started) || moved(was.node_booted, is.node_booted) {
                    return Err(SourceError::RestartedDuringScrape {
                        endpoint: self.spec.describe(),
                        before: was.started.unwrap_or_default(),
                        after: is.started.unwrap_or_default(),
                    });
                }
                fetched.target.started = is.started;
                fetched.target.node_booted = is.node_booted;
                Ok(after.body)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        });
        Ok(fetched)
    }

    /// Runs `work` within the timeout.
    async fn bounded<T>(
        &self,
        spec: &SourceSpec,
        work: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.options.timeout, work).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SourceError::Timeout {
                endpoint: spec.describe(),
                timeout: self.options.timeout,
            }),
        }
    }

    async fn fetch_main(&self) -> Result<Fetched, SourceError> {
        let (spec, options) = (&self.spec, &self.options);
        match &self.reader {
            Reader::LocalApi(local) => local.fetch(spec, options).await,
            Reader::Http(client) => client.fetch(spec, options).await,
            Reader::File(path) => file::fetch(path, spec, options).await,
        }
    }
}
