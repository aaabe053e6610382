//! Where the metrics come from, as an operator writes it: `unix:/path`, `http://…` or a file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// tailscaled's LocalAPI socket on Linux (`tailscaled --socket` overrides it).
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";

/// The metrics endpoint tailscaled serves to its own node through the Tailscale service IP.
pub const DEFAULT_URL: &str = "http://100.100.100.100/metrics";

/// Where to read tailscaled's usermetrics from.
///
/// Written as a string (config value or `--source` flag): `unix:/path/to/tailscaled.sock`
/// (also `unix:///path`), an `http://` URL, or a file path (`file:` prefix optional) as
/// written by `tailscale metrics write`. [`Display`](fmt::Display) writes the same form back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceSpec {
    /// `GET /localapi/v0/usermetrics` over tailscaled's LocalAPI unix socket.
    LocalApi { socket: PathBuf },
    /// A plain HTTP endpoint serving the same body (`100.100.100.100`, `:9002` in containers).
    Http { url: http::Uri },
    /// A file written by `tailscale metrics write <path>`.
    File { path: PathBuf },
}

/// Why a source string could not be understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceSpecError {
    /// Nothing was given.
    #[error(
        "empty source: give tailscaled's socket (unix:{DEFAULT_SOCKET}), an http:// URL \
         (e.g. {DEFAULT_URL}) or the path of a file written by `tailscale metrics write`"
    )]
    Empty,
    /// `unix:` with no path after it.
    #[error("source {input:?} names no socket: write it as unix:{DEFAULT_SOCKET}")]
    EmptySocket { input: String },
    /// An `https://` URL.
    #[error(
        "source {input:?} is an https URL, but tailscaled serves its metrics over plain HTTP \
         (on 100.100.100.100, loopback or :9002 in containers): use http://"
    )]
    Https { input: String },
    /// An `http://` URL that does not parse.
    #[error("source {input:?} is not a valid http URL")]
    InvalidUrl {
        input: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    /// An `http://` URL without a host.
    #[error("source {input:?} has no host: write it as http://host[:port]/metrics")]
    MissingHost { input: String },
    /// Some other `scheme://`.
    #[error(
        "source {input:?} has an unsupported scheme: use unix:/path/to/tailscaled.sock, \
         http://host[:port]/metrics or a file path"
    )]
    UnsupportedScheme { input: String },
}

impl SourceSpec {
    /// How errors name this source: the socket, the URL or the file.
    pub(crate) fn describe(&self) -> String {
        match self {
            SourceSpec::LocalApi { socket } => format!("tailscaled socket {}", socket.display()),
            SourceSpec::Http { url } => url.to_string(),
            SourceSpec::File { path } => format!("metrics file {}", path.display()),
        }
    }
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec::LocalApi {
            socket: PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

/// `s` without `prefix`, compared ASCII case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = || s.to_owned();
        if s.is_empty() {
            return Err(SourceSpecError::Empty);
        }
        if let Some(rest) = strip_prefix_ci(s, "unix:") {
            // `unix:///var/run/x.sock` is the URL-like spelling of `unix:/var/run/x.sock`.
            let path = rest
                .strip_prefix("//")
                .filter(|p| p.starts_with('/'))
                .unwrap_or(rest);
            if path.is_empty() {
                return Err(SourceSpecError::EmptySocket { input: input() });
            }
            return Ok(SourceSpec::LocalApi {
                socket: PathBuf::from(path),
            });
        }
        if strip_prefix_ci(s, "https://").is_some() {
            return Err(SourceSpecError::Https { input: input() });
        }
        if strip_prefix_ci(s, "http://").is_some() {
            let url = http::Uri::from_str(s).map_err(|source| SourceSpecError::InvalidUrl {
                input: input(),
                source,
            })?;
            if url.host().is_none_or(str::is_empty) {
                return Err(SourceSpecError::MissingHost { input: input() });
            }
            return Ok(SourceSpec::Http { url });
        }
        if let Some(path) = strip_prefix_ci(s, "file:") {
            if path.is_empty() {
                return Err(SourceSpecError::Empty);
            }
            return Ok(SourceSpec::File {
                path: PathBuf::from(path),
            });
        }
        if s.contains("://") {
            return Err(SourceSpecError::UnsupportedScheme { input: input() });
        }
        Ok(SourceSpec::File {
            path: PathBuf::from(s),
        })
    }
}

/// Whether a file path must be written with `file:` to parse back as a file.
fn needs_file_prefix(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.is_empty()
        || s.contains("://")
        || ["unix:", "file:"]
            .iter()
            .any(|p| strip_prefix_ci(&s, p).is_some())
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::LocalApi { socket } => write!(f, "unix:{}", socket.display()),
            SourceSpec::Http { url } => write!(f, "{url}"),
            SourceSpec::File { path } if needs_file_prefix(path) => {
                write!(f, "file:{}", path.display())
            }
            SourceSpec::File { path } => write!(f, "{}", path.display()),
        }
    }
}

impl serde::Serialize for SourceSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input`; on success checks the result and that Display gives `canonical` back
    /// and re-parses to the same value; on failure checks the error message contains `expected`.
    fn check(input: &str, expected: Result<SourceSpec, &str>, canonical: &str) {
        match (input.parse::<SourceSpec>(), expected) {
            (Ok(spec), Ok(want)) => {
                assert_eq!(spec, want, "{input}");
                assert_eq!(spec.to_string(), canonical, "{input}");
                assert_eq!(canonical.parse::<SourceSpec>().ok(), Some(spec), "{input}");
            }
            (Err(err), Err(fragment)) => {
                let msg = err.to_string();
                assert!(msg.contains(fragment), "{input}: {msg}");
                assert!(!msg.ends_with('.'), "{msg}");
            }
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    fn sock(p: &str) -> Result<SourceSpec, &'static str> {
        Ok(SourceSpec::LocalApi { socket: p.into() })
    }
    fn url(u: &str) -> Result<SourceSpec, &'static str> {
        Ok(SourceSpec::Http {
            url: u.parse().expect("test url"),
        })
    }
    fn file(p: &str) -> Result<SourceSpec, &'static str> {
        Ok(SourceSpec::File { path: p.into() })
    }

    #[test]
    fn parse_and_round_trip() {
        let cases: &[(&str, Result<SourceSpec, &str>, &str)] = &[
            (
                "unix:/var/run/tailscale/tailscaled.sock",
                sock(DEFAULT_SOCKET),
                "unix:/var/run/tailscale/tailscaled.sock",
            ),
            (
                "unix:///tmp/tailscaled.sock",
                sock("/tmp/tailscaled.sock"),
                "unix:/tmp/tailscaled.sock",
            ),
            ("UNIX:/tmp/t.sock", sock("/tmp/t.sock"), "unix:/tmp/t.sock"),
            (
                "unix:relative.sock",
                sock("relative.sock"),
                "unix:relative.sock",
            ),
            (
                "http://100.100.100.100/metrics",
                url(DEFAULT_URL),
                DEFAULT_URL,
            ),
            (
                "http://[::1]:9002/metrics",
                url("http://[::1]:9002/metrics"),
                "http://[::1]:9002/metrics",
            ),
            (
                "HTTP://localhost:9002/metrics?x=1",
                url("http://localhost:9002/metrics?x=1"),
                "http://localhost:9002/metrics?x=1",
            ),
            (
                "/var/lib/tailship/metrics.prom",
                file("/var/lib/tailship/metrics.prom"),
                "/var/lib/tailship/metrics.prom",
            ),
            ("metrics.prom", file("metrics.prom"), "metrics.prom"),
            ("file:/tmp/m.prom", file("/tmp/m.prom"), "/tmp/m.prom"),
            ("file:unix:odd", file("unix:odd"), "file:unix:odd"),
            ("file:x://y", file("x://y"), "file:x://y"),
            ("", Err("empty source"), ""),
            ("unix:", Err("names no socket"), ""),
            ("https://100.100.100.100/metrics", Err("plain HTTP"), ""),
            ("HTTPS://x/metrics", Err("use http://"), ""),
            ("http:///metrics", Err("source \"http:///metrics\""), ""),
            ("http://exa mple/metrics", Err("not a valid http URL"), ""),
            ("tcp://127.0.0.1:9002", Err("unsupported scheme"), ""),
        ];
        for (input, expected, canonical) in cases {
            check(input, expected.clone(), canonical);
        }
    }

    #[test]
    fn default_is_the_linux_socket() {
        assert_eq!(
            SourceSpec::default().to_string(),
            format!("unix:{DEFAULT_SOCKET}")
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let spec: SourceSpec = serde_json::from_str("\"unix:/tmp/t.sock\"").expect("parse");
        assert_eq!(
            spec,
            SourceSpec::LocalApi {
                socket: "/tmp/t.sock".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&spec).expect("json"),
            "\"unix:/tmp/t.sock\""
        );
        let err = serde_json::from_str::<SourceSpec>("\"https://x/metrics\"").expect_err("https");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
    }
}
