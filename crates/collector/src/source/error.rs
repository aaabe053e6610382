//! What can go wrong reading tailscaled's metrics, and what the operator should do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::{SourceSpec, hint};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed fetch. Each message names the socket, URL or file, and says what to change.
///
/// [`SourceError::kind`] gives a stable label per variant for self-metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The LocalAPI socket does not exist.
    #[error(
        "tailscaled socket {} does not exist: is tailscaled running? set [source] socket or the \
         --source flag to its socket (tailscaled --socket; containerboot uses TS_SOCKET, \
         default /tmp/tailscaled.sock)",
        socket.display()
    )]
    SocketMissing {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The metrics file does not exist.
    #[error(
        "metrics file {} does not exist: write it with `tailscale metrics write {}` (e.g. from \
         a timer), or read tailscaled's socket instead",
        path.display(),
        path.display()
    )]
    FileMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket, file or network refused us for lack of permission.
    #[error("permission denied opening {endpoint}: {hint}")]
    PermissionDenied {
        endpoint: String,
        hint: String,
        #[source]
        source: io::Error,
    },
    /// HTTP 403.
    #[error("{endpoint} answered 403 forbidden{}: {hint}", excerpt(body))]
    Forbidden {
        endpoint: String,
        body: String,
        hint: &'static str,
    },
    /// HTTP 404.
    #[error("{endpoint} answered 404 not found{}: {hint}", version_note(version.as_deref()))]
    NotFound {
        endpoint: String,
        version: Option<String>,
        hint: &'static str,
    },
    /// Any other status that is not 2xx.
    #[error(
        "{endpoint} answered {status}{}: expected 200 with the metrics; check tailscaled's logs, \
         or the proxy in between",
        excerpt(body)
    )]
    Status {
        endpoint: String,
        status: http::StatusCode,
        body: String,
    },
    /// A `Content-Type` that is not Prometheus or OpenMetrics text.
    #[error(
        "{endpoint} answered with content type {content_type:?}, not Prometheus text (text/plain \
         or application/openmetrics-text): a proxy or login page may be in the way, or this \
         address does not serve tailscaled's metrics"
    )]
    WrongContent {
        endpoint: String,
        content_type: String,
    },
    /// The body exceeds [`SourceOptions::max_body`](super::SourceOptions::max_body).
    #[error(
        "the body from {endpoint} exceeds {limit} bytes, the maximum body size: raise [source] \
         max_body if the node really exposes that much, or check that this is tailscaled's \
         metrics"
    )]
    TooLarge { endpoint: String, limit: usize },
    /// Connect, headers and body took longer than
    /// [`SourceOptions::timeout`](super::SourceOptions::timeout).
    #[error(
        "no complete answer from {endpoint} within {timeout:?}: tailscaled may be hung or \
         overloaded; raise [source] timeout if it is only slow"
    )]
    Timeout { endpoint: String, timeout: Duration },
    /// The connection was refused or the address is unreachable.
    #[error("cannot connect to {endpoint} ({reason}): {hint}")]
    Connect {
        endpoint: String,
        /// What the system said, e.g. `connection refused`.
        reason: String,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    /// The peer did not speak HTTP/1.1 as expected, or closed the connection mid-answer.
    #[error(
        "the HTTP exchange with {endpoint} failed: is tailscaled (and nothing else) answering \
         there?"
    )]
    Protocol {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    /// The debug endpoint gave another process start (or node boot) time after the
    /// usermetrics body than before it: tailscaled restarted during the scrape, so the body
    /// cannot be told apart as the old or the new process's. Nothing is lost by skipping it.
    #[error(
        "tailscaled restarted while {endpoint} was being scraped (its debug endpoint's process \
         start time changed from {before} to {after}); this scrape is skipped and the next one \
         counts everything"
    )]
    RestartedDuringScrape {
        endpoint: String,
        before: u64,
        after: u64,
    },
    /// Any other I/O error.
    #[error("reading {endpoint} failed ({})", source.kind())]
    Io {
        endpoint: String,
        #[source]
        source: io::Error,
    },
}

impl SourceError {
    /// A short, stable snake_case label for self-metrics (`scrape_errors_total{kind=…}`).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::SocketMissing { .. } => "socket_missing",
            SourceError::FileMissing { .. } => "file_missing",
            SourceError::PermissionDenied { .. } => "permission_denied",
            SourceError::Forbidden { .. } => "forbidden",
            SourceError::NotFound { .. } => "not_found",
            SourceError::Status { .. } => "status",
            SourceError::WrongContent { .. } => "wrong_content",
            SourceError::TooLarge { .. } => "too_large",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Connect { .. } => "connect",
            SourceError::Protocol { .. } => "protocol",
            SourceError::RestartedDuringScrape { .. } => "restarted_during_scrape",
            SourceError::Io { .. } => "io",
        }
    }

    /// Maps an error from opening or connecting to `spec` onto what the operator must fix.
    pub(crate) fn from_io(spec: &SourceSpec, source: io::Error) -> Self {
        use io::ErrorKind as K;
        let endpoint = spec.describe();
        match (source.kind(), spec) {
            (K::NotFound, SourceSpec::LocalApi { socket }) => SourceError::SocketMissing {
                socket: socket.clone(),
                source,
            },
            (K::NotFound, SourceSpec::File { path }) => SourceError::FileMissing {
                path: path.clone(),
                source,
            },
            (K::PermissionDenied, _) => SourceError::PermissionDenied {
                hint: hint::permission(spec),
                endpoint,
                source,
            },
            (
                K::ConnectionRefused
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::AddrNotAvailable
                | K::NetworkDown,
                SourceSpec::LocalApi { .. } | SourceSpec::Http { .. },
            ) => SourceError::Connect {
                reason: source.kind().to_string(),
                hint: hint::connect(spec),
                endpoint,
                source,
            },
            _ => SourceError::Io { endpoint, source },
        }
    }
}

/// ` ("…")` with the start of an error body, or nothing when there is none.
fn excerpt(body: &str) -> impl fmt::Display + '_ {
    struct Excerpt<'a>(&'a str);
    impl fmt::Display for Excerpt<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                "" => Ok(()),
                body => write!(f, " ({body:?})"),
            }
        }
    }
    Excerpt(body)
}

fn version_note(version: Option<&str>) -> String {
    version
        .map(|v| format!(" (tailscaled {v})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, kind: io::ErrorKind, expected_kind: &str, fragments: &[&str]) {
        let spec: SourceSpec = spec.parse().expect("spec");
        let err = SourceError::from_io(&spec, io::Error::new(kind, "test"));
        let msg = err.to_string();
        assert_eq!(err.kind(), expected_kind, "{msg}");
        for fragment in fragments {
            assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
        }
        assert!(
            !msg.ends_with('.') && msg.starts_with(char::is_lowercase),
            "{msg}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "{msg}: source kept"
        );
    }

    /// Permission denied cannot be provoked for real in CI, which runs as root (root opens
    /// any socket or file): this checks the mapping from a constructed error instead.
    #[test]
    fn io_errors_map_to_what_the_operator_must_fix() {
        use io::ErrorKind as K;
        let dir = std::env::temp_dir();
        let here = format!("unix:{}", dir.display());
        let cases: &[(&str, K, &str, &[&str])] = &[
            (
                "unix:/nonexistent/ts.sock",
                K::NotFound,
                "socket_missing",
                &["/nonexistent/ts.sock", "is tailscaled running", "TS_SOCKET"],
            ),
            (
                "unix:/nonexistent/ts.sock",
                K::PermissionDenied,
                "permission_denied",
                &["/nonexistent/ts.sock", "searchable"],
            ),
            (
                &here,
                K::PermissionDenied,
                "permission_denied",
                &["uid ", "gid ", "mode ", "runAsUser"],
            ),
            (
                "unix:/run/ts.sock",
                K::ConnectionRefused,
                "connect",
                &["connection refused", "stale socket"],
            ),
            (
                "/nonexistent/m.prom",
                K::NotFound,
                "file_missing",
                &["tailscale metrics write /nonexistent/m.prom"],
            ),
            (
                "/nonexistent/m.prom",
                K::PermissionDenied,
                "permission_denied",
                &["metrics file /nonexistent/m.prom"],
            ),
            (
                "http://127.0.0.1:9/metrics",
                K::ConnectionRefused,
                "connect",
                &["http://127.0.0.1:9/metrics", "TS_ENABLE_METRICS"],
            ),
            (
                "http://127.0.0.1:9/metrics",
                K::PermissionDenied,
                "permission_denied",
                &["firewall"],
            ),
            (
                "http://127.0.0.1:9/metrics",
                K::ConnectionReset,
                "io",
                &["connection reset"],
            ),
        ];
        for (spec, kind, expected_kind, fragments) in cases {
            check(spec, *kind, expected_kind, fragments);
        }
    }
}
