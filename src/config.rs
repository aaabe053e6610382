//! The TOML configuration, its defaults, environment overrides and validation.
//!
//! Only the binary reads configuration; the library crates take plain values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Deserializer};
use tailship_collector::{
    DEFAULT_SOCKET, DEFAULT_URL, Source, SourceOptions, SourceSpec, TrackerConfig,
};
use tailship_sink::DriverConfig;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub state: StateConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub delivery: DeliveryConfig,
    pub sinks: SinksConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Localapi,
    Http,
    File,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub socket: PathBuf,
    pub url: String,
    pub path: Option<PathBuf>,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub max_body: usize,
    #[serde(deserialize_with = "duration")]
    pub series_ttl: Duration,
    pub max_series: usize,
    /// tailscaled's debug endpoint (`--debug=ADDR:PORT`), scraped with the main source.
    pub debug_url: Option<String>,
    /// Client metrics of the debug endpoint to publish by name (internal, unstable).
    pub client_metrics: Vec<String>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        let tracker = TrackerConfig::default();
        let options = SourceOptions::default();
        Self {
            kind: SourceKind::Localapi,
            socket: DEFAULT_SOCKET.into(),
            url: DEFAULT_URL.into(),
            path: None,
            interval: Duration::from_secs(60),
            timeout: options.timeout,
            max_body: options.max_body,
            series_ttl: tracker.series_ttl,
            max_series: tracker.max_series,
            debug_url: None,
            client_metrics: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The checkpoint file.
    pub path: PathBuf,
    /// The least time between two checkpoints written for scrapes and acknowledgements
    /// alone; `0s` writes one after every scrape. The write-ahead checkpoint before a send
    /// and the last one at shutdown are always written.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            path: "/var/lib/tailship/state.json".into(),
            interval: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` listen; localhost unless set.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `tailship_sink=debug,info`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long SIGTERM may spend flushing pending points before the final checkpoint.
    #[serde(deserialize_with = "duration")]
    pub flush_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            flush_timeout: Duration::from_secs(10),
        }
    }
}

/// How every sink's driver paces its requests and retries.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The first retry delay after a failed request; it doubles, with jitter.
    #[serde(deserialize_with = "duration")]
    pub backoff_min: Duration,
    /// The longest retry delay.
    #[serde(deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// Requests in flight at once per sink (each series is in at most one).
    pub max_in_flight: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let d = DriverConfig::default();
        Self {
            backoff_min: d.backoff_min,
            backoff_max: d.backoff_max,
            max_in_flight: d.max_in_flight,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    pub stdout: Option<StdoutConfig>,
    pub cloudwatch: Option<tailship_sink_cloudwatch::Config>,
    pub gcm: Option<tailship_sink_gcm::Config>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_BODY: usize = 1 << 30;
const MAX_SERIES: usize = 10_000_000;
const MAX_SERIES_TTL: Duration = Duration::from_secs(30 * 86_400);
const MAX_FLUSH_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
const MAX_IN_FLIGHT: usize = 64;

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{e}: write a duration such as \"60s\" or \"250ms\""
        ))
    })
}

impl Config {
    /// Reads, overrides from the environment and validates a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        Self::parse(&text, |k| std::env::var(k).ok())
            .with_context(|| format!("in the configuration file {}", path.display()))
    }

    /// Parses TOML, then applies overrides from `env` and validates.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = env("TAILSHIP_SOURCE") {
            let spec: SourceSpec = v
                .parse()
                .map_err(|e| anyhow::anyhow!("TAILSHIP_SOURCE={v:?}: {e}"))?;
            match spec {
                SourceSpec::LocalApi { socket } => {
                    self.source.kind = SourceKind::Localapi;
                    self.source.socket = socket;
                }
                SourceSpec::Http { url } => {
                    self.source.kind = SourceKind::Http;
                    self.source.url = url.to_string();
                }
                SourceSpec::File { path } => {
                    self.source.kind = SourceKind::File;
                    self.source.path = Some(path);
                }
            }
        }
        if let Some(v) = env("TAILSHIP_DEBUG_URL") {
            self.source.debug_url = Some(v);
        }
        if let Some(v) = env("TAILSHIP_INTERVAL") {
            self.source.interval = humantime::parse_duration(&v)
                .map_err(|e| anyhow::anyhow!("TAILSHIP_INTERVAL={v:?}: {e}"))?;
        }
        if let Some(v) = env("TAILSHIP_STATE_PATH") {
            self.state.path = v.into();
        }
        if let Some(v) = env("TAILSHIP_HTTP_LISTEN") {
            self.http.listen = v.parse().map_err(|e| {
                anyhow::anyhow!("TAILSHIP_HTTP_LISTEN={v:?}: {e} (write e.g. 127.0.0.1:9464)")
            })?;
        }
        if let Some(v) = env("TAILSHIP_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some(v) = env("TAILSHIP_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => bail!("TAILSHIP_LOG_FORMAT={v:?}: must be human or json"),
            };
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        let s = &self.source;
        if s.interval < Duration::from_millis(100) {
            bail!(
                "[source] interval = {:?}: must be at least 100ms",
                s.interval
            );
        }
        if s.timeout.is_zero() || s.timeout > s.interval.max(Duration::from_secs(1)) * 10 {
            bail!(
                "[source] timeout = {:?}: must be above 0 and at most ten intervals",
                s.timeout
            );
        }
        // Upper bounds too: a typo (an extra zero or two) must not let one scrape hold
        // gigabytes, a shutdown hang for days or memory grow without end.
        if s.interval > MAX_INTERVAL {
            bail!("[source] interval = {:?}: must be at most 1h", s.interval);
        }
        if !(1024..=MAX_BODY).contains(&s.max_body) {
            bail!(
                "[source] max_body = {}: must be between 1024 and {MAX_BODY} (1 GiB)",
                s.max_body
            );
        }
        if !(1..=MAX_SERIES).contains(&s.max_series) {
            bail!(
                "[source] max_series = {}: must be between 1 and {MAX_SERIES}",
                s.max_series
            );
        }
        if s.series_ttl > MAX_SERIES_TTL {
            bail!(
                "[source] series_ttl = {:?}: must be at most 30 days",
                s.series_ttl
            );
        }
        if self.state.interval > MAX_INTERVAL {
            bail!(
                "[state] interval = {:?}: must be at most 1h",
                self.state.interval
            );
        }
        if self.shutdown.flush_timeout > MAX_FLUSH_TIMEOUT {
            bail!(
                "[shutdown] flush_timeout = {:?}: must be at most 10m (a supervisor kills a process that takes longer)",
                self.shutdown.flush_timeout
            );
        }
        if s.series_ttl < s.interval {
            bail!(
                "[source] series_ttl = {:?}: must be at least the interval",
                s.series_ttl
            );
        }
        match s.kind {
            SourceKind::File if s.path.is_none() => {
                bail!(
                    "[source] path: required when kind = \"file\" (the file `tailscale metrics write` writes)"
                )
            }
            SourceKind::Http if !s.url.starts_with("http://") => {
                bail!("[source] url = {:?}: must be an http:// URL", s.url)
            }
            _ => {}
        }
        let d = &self.delivery;
        if d.backoff_min.is_zero() || d.backoff_max < d.backoff_min {
            bail!("[delivery] backoff_min and backoff_max: need 0 < backoff_min <= backoff_max");
        }
        if d.backoff_max > MAX_BACKOFF {
            bail!(
                "[delivery] backoff_max = {:?}: must be at most 1h",
                d.backoff_max
            );
        }
        if !(1..=MAX_IN_FLIGHT).contains(&d.max_in_flight) {
            bail!(
                "[delivery] max_in_flight = {}: must be between 1 and {MAX_IN_FLIGHT}",
                d.max_in_flight
            );
        }
        self.source_spec()?;
        self.debug_url()?;
        if let Some(bad) = s.client_metrics.iter().find(|n| !is_metric_name(n)) {
            bail!("[source] client_metrics: {bad:?} is not a metric name");
        }
        crate::logs::parse(&self.log.level)
            .map_err(|e| anyhow::anyhow!("[log] level = {:?}: {e}", self.log.level))?;
        if let Some(cloudwatch) = &self.sinks.cloudwatch {
            cloudwatch.validate()?;
        }
        if let Some(gcm) = &self.sinks.gcm {
            gcm.validate()?;
        }
        if self.sinks.stdout.is_none()
            && self.sinks.cloudwatch.is_none()
            && self.sinks.gcm.is_none()
        {
            bail!(
                "[sinks]: no sink configured; add [sinks.cloudwatch], [sinks.gcm] or [sinks.stdout]"
            );
        }
        Ok(())
    }

    /// Where to scrape.
    pub fn source_spec(&self) -> anyhow::Result<SourceSpec> {
        let s = &self.source;
        Ok(match s.kind {
            SourceKind::Localapi => SourceSpec::LocalApi {
                socket: s.socket.clone(),
            },
            SourceKind::Http => SourceSpec::Http {
                url: s
                    .url
                    .parse()
                    .map_err(|e| anyhow::anyhow!("[source] url = {:?}: {e}", s.url))?,
            },
            SourceKind::File => SourceSpec::File {
                path: s.path.clone().unwrap_or_default(),
            },
        })
    }

    /// The debug endpoint's URL, if configured.
    pub fn debug_url(&self) -> anyhow::Result<Option<::http::Uri>> {
        let Some(url) = &self.source.debug_url else {
            return Ok(None);
        };
        if !url.starts_with("http://") {
            bail!(
                "[source] debug_url = {url:?}: must be an http:// URL such as http://127.0.0.1:9001/debug/metrics"
            );
        }
        let uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("[source] debug_url = {url:?}: {e}"))?;
        Ok(Some(uri))
    }

    /// The configured source, with its debug endpoint.
    pub fn source(&self) -> anyhow::Result<Source> {
        let source = Source::new(self.source_spec()?, self.source_options());
        Ok(match self.debug_url()? {
            Some(url) => source.with_debug(url),
            None => source,
        })
    }

    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            timeout: self.source.timeout,
            max_body: self.source.max_body,
        }
    }

    pub fn driver(&self) -> DriverConfig {
        DriverConfig {
            max_in_flight: self.delivery.max_in_flight,
            backoff_min: self.delivery.backoff_min,
            backoff_max: self.delivery.backoff_max,
        }
    }

    pub fn tracker(&self) -> TrackerConfig {
        TrackerConfig {
            series_ttl: self.source.series_ttl,
            max_series: self.source.max_series,
            client_metrics: self.source.client_metrics.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        Config::parse(text, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .map_err(|e| format!("{e:#}"))
    }

    /// Every TOML example in the README is a valid configuration, as written.
    #[test]
    fn the_readme_examples_parse() {
        let readme = include_str!("../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| &b[..b.find("```").unwrap()])
            .collect();
        assert!(!blocks.is_empty());
        for block in blocks {
            parse(block, &[]).unwrap_or_else(|e| panic!("{e}\n{block}"));
        }
    }

    #[test]
    fn defaults_and_durations() {
        let c = parse(
            "[sinks.stdout]\n[source]\ninterval = \"250ms\"\ntimeout = \"2s\"\nseries_ttl = \"1h\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.source.interval, Duration::from_millis(250));
        assert_eq!(c.source.kind, SourceKind::Localapi);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(
            c.source_spec().unwrap().to_string(),
            format!("unix:{DEFAULT_SOCKET}")
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = parse(
            "[sinks.stdout]",
            &[
                ("TAILSHIP_SOURCE", "http://10.1.2.3:9002/metrics"),
                ("TAILSHIP_STATE_PATH", "/state/x.json"),
                ("TAILSHIP_HTTP_LISTEN", "0.0.0.0:9464"),
                ("TAILSHIP_LOG_FORMAT", "json"),
                ("TAILSHIP_INTERVAL", "15s"),
            ],
        )
        .unwrap();
        assert_eq!(c.source.kind, SourceKind::Http);
        assert_eq!(
            c.source_spec().unwrap().to_string(),
            "http://10.1.2.3:9002/metrics"
        );
        assert_eq!(c.state.path, PathBuf::from("/state/x.json"));
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:9464");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.source.interval, Duration::from_secs(15));
    }

    /// Every bad value is refused with a message that names what to fix.
    #[test]
    fn bad_input_names_the_key() {
        type Env<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Env<'_>, &str)] = &[
            (
                "[source]\nintervall = \"1s\"\n[sinks.stdout]",
                &[],
                "unknown field `intervall`",
            ),
            (
                "[source]\ninterval = \"soon\"\n[sinks.stdout]",
                &[],
                "interval",
            ),
            (
                "[source]\ninterval = \"10ms\"\n[sinks.stdout]",
                &[],
                "[source] interval",
            ),
            (
                "[source]\nkind = \"ftp\"\n[sinks.stdout]",
                &[],
                "unknown variant `ftp`",
            ),
            (
                "[source]\nkind = \"file\"\n[sinks.stdout]",
                &[],
                "[source] path: required",
            ),
            (
                "[source]\nkind = \"http\"\nurl = \"https://x\"\n[sinks.stdout]",
                &[],
                "[source] url",
            ),
            (
                "[source]\nmax_series = 0\n[sinks.stdout]",
                &[],
                "[source] max_series",
            ),
            (
                "[delivery]\nbackoff_min = \"10s\"\nbackoff_max = \"1s\"\n[sinks.stdout]",
                &[],
                "[delivery] backoff_min",
            ),
            (
                "[source]\ndebug_url = \"https://x\"\n[sinks.stdout]",
                &[],
                "[source] debug_url",
            ),
            (
                "[source]\nclient_metrics = [\"a b\"]\n[sinks.stdout]",
                &[],
                "[source] client_metrics",
            ),
            (
                "[http]\nlisten = \"localhost\"\n[sinks.stdout]",
                &[],
                "listen",
            ),
            (
                "[log]\nlevel = \"a=b=c\"\n[sinks.stdout]",
                &[],
                "[log] level",
            ),
            ("[sinks.stdout]\nfoo = 1", &[], "unknown field `foo`"),
            (
                "[sinks.cloudwatch]\nstorage_resolution = 30",
                &[],
                "[sinks.cloudwatch] storage_resolution = 30",
            ),
            (
                "[sinks.cloudwatch]\nnamespace = \"AWS/Tailscale\"",
                &[],
                "[sinks.cloudwatch] namespace",
            ),
            (
                "[sinks.cloudwatch]\nregions = \"x\"",
                &[],
                "unknown field `regions`",
            ),
            (
                "[sinks.gcm]\nendpoint = \"monitoring.googleapis.com\"",
                &[],
                "[sinks.gcm] endpoint",
            ),
            (
                "[sinks.gcm]\nproject = \"p\"",
                &[],
                "unknown field `project`",
            ),
            ("", &[], "no sink configured"),
            // Hostile values: too big to be meant.
            (
                "[source]\nmax_body = 18446744073709551615\n[sinks.stdout]",
                &[],
                "[source] max_body",
            ),
            ("[source]\nmax_body = -1\n[sinks.stdout]", &[], "max_body"),
            (
                "[source]\nmax_series = 1000000000000\n[sinks.stdout]",
                &[],
                "[source] max_series",
            ),
            (
                "[source]\ninterval = \"300000000000s\"\nseries_ttl = \"999999999999s\"\n[sinks.stdout]",
                &[],
                "[source] interval",
            ),
            (
                "[source]\nseries_ttl = \"999999999999s\"\n[sinks.stdout]",
                &[],
                "[source] series_ttl",
            ),
            (
                "[source]\ninterval = \"99999999999999999999999s\"\n[sinks.stdout]",
                &[],
                "interval",
            ),
            (
                "[state]\ninterval = \"2h\"\n[sinks.stdout]",
                &[],
                "[state] interval",
            ),
            (
                "[state]\ninterval = \"soon\"\n[sinks.stdout]",
                &[],
                "interval = \"soon\"",
            ),
            (
                "[shutdown]\nflush_timeout = \"999999999s\"\n[sinks.stdout]",
                &[],
                "[shutdown] flush_timeout",
            ),
            (
                "[delivery]\nbackoff_max = \"99999999s\"\n[sinks.stdout]",
                &[],
                "[delivery] backoff_max",
            ),
            (
                "[delivery]\nmax_in_flight = 18446744073709551615\n[sinks.stdout]",
                &[],
                "[delivery] max_in_flight",
            ),
            (
                "[sinks.stdout]",
                &[("TAILSHIP_INTERVAL", "1e9999s")],
                "TAILSHIP_INTERVAL",
            ),
            (
                "[sinks.stdout]",
                &[("TAILSHIP_SOURCE", "https://x")],
                "TAILSHIP_SOURCE",
            ),
            (
                "[sinks.stdout]",
                &[("TAILSHIP_LOG_FORMAT", "xml")],
                "TAILSHIP_LOG_FORMAT",
            ),
            (
                "[sinks.stdout]",
                &[("TAILSHIP_HTTP_LISTEN", "nope")],
                "TAILSHIP_HTTP_LISTEN",
            ),
        ];
        for (text, env, expected) in cases {
            let err = parse(text, env).expect_err(text);
            assert!(
                err.contains(expected),
                "{text:?}: {err:?} lacks {expected:?}"
            );
        }
    }
}
