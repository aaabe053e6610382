//! tailship's own metrics: one [`Snapshot`] that the agent loop updates after each event,
//! encoded as OpenMetrics text on each `/metrics` request.
//!
//! The snapshot is the only state. A `prometheus-client` [`Collector`] reads it at encode
//! time and writes `ConstCounter`s and `ConstGauge`s, rather than keeping registered
//! families in step with it: nothing can drift between the two, a sink or an error kind
//! shows up the moment the snapshot has it, and "seconds since the last send" is computed
//! from the clock when it is read, not when the agent last woke up. Counters are monotonic
//! because the snapshot's counts only grow.
//!
//! Label values are sink names (config keys) and fixed kinds/reasons/results, nothing from
//! a credential or an endpoint.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tailship_model::Timestamp;

/// A snapshot of everything tailship reports about itself, updated by the agent loop after
/// each event; encoded on each /metrics request.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Set after the first successful scrape; never tied to a cloud.
    pub ready: bool,
    /// Successful scrapes.
    pub scrapes: u64,
    /// Failed scrapes by kind: `socket_missing`, `timeout`, `empty`, ...
    pub scrape_errors: BTreeMap<&'static str, u64>,
    /// tailscaled restarts detected.
    pub restarts: u64,
    /// Per-series counter resets.
    pub series_resets: u64,
    /// Anomalies by kind: `parse`, `nan`, `negative`, `duplicate`, `series_cap`, ...
    pub anomalies: BTreeMap<&'static str, u64>,
    /// Raw series tracked now.
    pub series: u64,
    pub series_evicted: u64,
    pub last_scrape: Option<SystemTime>,
    pub checkpoint_writes: u64,
    pub checkpoint_errors: u64,
    pub sinks: Vec<SinkSnapshot>,
}

/// One sink's part of a [`Snapshot`].
#[derive(Clone, Debug, Default)]
pub struct SinkSnapshot {
    pub name: String,
    pub stats: tailship_sink::Stats,
    pub pending_series: u64,
    pub pending_points: u64,
}

/// The shared self-metrics registry; `Send + Sync`, shared as `Arc<Telemetry>`.
#[derive(Debug)]
pub struct Telemetry {
    snapshot: Arc<Mutex<Snapshot>>,
    registry: Registry,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let mut registry = Registry::with_prefix("tailship");
        registry.register_collector(Box::new(SnapshotCollector(Arc::clone(&snapshot))));
        Self { snapshot, registry }
    }

    /// Changes the snapshot in place; keep `f` short, `/metrics` waits for it.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut lock(&self.snapshot));
    }

    pub fn is_ready(&self) -> bool {
        lock(&self.snapshot).ready
    }

    /// The Prometheus/OpenMetrics text of the current snapshot, with "seconds since the last
    /// successful send" computed at encode time from `last_success` and the current time.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Only the writer can fail, and writing to a `String` does not.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding into a String cannot fail");
        text
    }
}

/// A panic in some `update` closure must not take `/metrics` and `/readyz` down with it:
/// the snapshot is plain counters, still meaningful after a half-done update.
fn lock(snapshot: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    snapshot.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Mutex<Snapshot>>);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        // Copy out so the agent loop never waits on the encoding.
        let s = lock(&self.0).clone();
        let now = Timestamp::now();
        let e = &mut enc;

        counter(
            e,
            "scrapes",
            "Successful scrapes of tailscaled's metrics",
            s.scrapes,
        )?;
        counter_family(
            e,
            "scrape_errors",
            "Failed scrapes of tailscaled's metrics, by kind",
            s.scrape_errors
                .iter()
                .map(|(kind, &n)| ([("kind", *kind)], n)),
        )?;
        counter(
            e,
            "tailscaled_restarts",
            "tailscaled restarts detected",
            s.restarts,
        )?;
        counter(
            e,
            "series_resets",
            "Counter resets detected on single series",
            s.series_resets,
        )?;
        counter_family(
            e,
            "anomalies",
            "Scraped lines or series tailship could not use, by kind",
            s.anomalies.iter().map(|(kind, &n)| ([("kind", *kind)], n)),
        )?;
        gauge(e, "series", "Raw series tracked now", None, Some(s.series))?;
        counter(
            e,
            "series_evicted",
            "Series dropped from tracking",
            s.series_evicted,
        )?;
        gauge(
            e,
            "last_scrape_timestamp",
            "Unix time of the last successful scrape; absent until the first one",
            Some(&Unit::Seconds),
            s.last_scrape.map(unix_seconds),
        )?;
        counter(
            e,
            "checkpoint_writes",
            "Checkpoints written",
            s.checkpoint_writes,
        )?;
        counter(
            e,
            "checkpoint_errors",
            "Checkpoint writes that failed",
            s.checkpoint_errors,
        )?;

        let sinks = &s.sinks;
        let per_sink = |f: fn(&SinkSnapshot) -> u64| {
            sinks
                .iter()
                .map(move |k| ([("sink", k.name.as_str())], f(k)))
        };
        counter_family(
            e,
            "points_sent",
            "Points the provider acknowledged, per sink",
            per_sink(|k| k.stats.points_sent),
        )?;
        counter_family(
            e,
            "points_retried",
            "Points put back after a failed request to be sent again, per sink",
            per_sink(|k| k.stats.points_retried),
        )?;
        counter_family(
            e,
            "possible_duplicates",
            "Delta points sent again that the provider may already have written (a request without an answer, or in flight when tailship stopped), per sink",
            per_sink(|k| k.stats.possible_duplicates),
        )?;
        counter_family(
            e,
            "points_dropped",
            "Points dropped, per sink and reason",
            sinks.iter().flat_map(|k| {
                let sink = k.name.as_str();
                k.stats
                    .points_dropped
                    .iter()
                    .map(move |(reason, &n)| ([("sink", sink), ("reason", *reason)], n))
            }),
        )?;
        counter_family(
            e,
            "requests",
            "Requests to the provider, per sink and result",
            sinks.iter().flat_map(|k| {
                let sink = k.name.as_str();
                k.stats
                    .requests
                    .iter()
                    .map(move |(result, &n)| ([("sink", sink), ("result", *result)], n))
            }),
        )?;
        counter_family(
            e,
            "buckets_merged",
            "Pending time buckets merged because a series had too many, per sink",
            per_sink(|k| k.stats.merged),
        )?;
        gauge_family(
            e,
            "pending_series",
            "Series with points not yet acknowledged, per sink",
            per_sink(|k| k.pending_series),
        )?;
        gauge_family(
            e,
            "pending_points",
            "Points not yet acknowledged, per sink",
            per_sink(|k| k.pending_points),
        )?;
        gauge_family(
            e,
            "seconds_since_last_send",
            "Seconds since the sink's last successful request; absent until its first one",
            sinks.iter().filter_map(|k| {
                let last = k.stats.last_success?;
                Some(([("sink", k.name.as_str())], now.since(last).as_secs_f64()))
            }),
        )?;
        gauge(
            e,
            "ready",
            "1 once tailscaled has been scraped successfully, else 0",
            None,
            Some(u64::from(s.ready)),
        )?;
        Ok(())
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    // A clock before 1970 reads as 0, as `Timestamp` does.
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `tailship_{name}_total`, without labels.
fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// `tailship_{name}_total{labels}`: one sample per item, and the HELP/TYPE lines even when
/// there is none yet.
fn counter_family<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `tailship_{name}[_{unit}]`, without labels; only the HELP/TYPE lines while `value` is
/// `None`.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<V>,
) -> fmt::Result {
    let metric = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    match value {
        Some(v) => ConstGauge::new(v).encode(metric),
        None => Ok(()),
    }
}

fn gauge_family<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Parses OpenMetrics text strictly enough for these tests: every sample belongs to a
    /// family declared by `# TYPE` before it, values are numbers, the text ends with `# EOF`.
    /// Returns `name{labels}` → value.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let body = text.strip_suffix("# EOF\n").expect("text ends with # EOF");
        let mut families: Vec<(String, String)> = Vec::new();
        let mut samples = BTreeMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                families.push((name.to_owned(), kind.to_owned()));
            } else if !line.starts_with("# HELP ") && !line.starts_with("# UNIT ") {
                assert!(!line.starts_with('#'), "unexpected comment {line:?}");
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let name = series.split('{').next().unwrap_or_default();
                let (family, kind) = families.last().expect("a sample after a # TYPE");
                let expected = if kind == "counter" {
                    format!("{family}_total")
                } else {
                    family.clone()
                };
                assert_eq!(name, expected, "sample {line:?} outside its family");
                let value: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("value in {line:?}"));
                assert!(
                    samples.insert(series.to_owned(), value).is_none(),
                    "duplicate {line:?}"
                );
            }
        }
        samples
    }

    /// Encodes `snapshot`, checks that the text parses and holds each expected line exactly.
    fn check(snapshot: Snapshot, expected_lines: &[&str]) -> BTreeMap<String, f64> {
        let telemetry = Telemetry::new();
        telemetry.update(|s| *s = snapshot);
        let text = telemetry.encode();
        let samples = parse(&text);
        for line in expected_lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing line {line:?} in\n{text}"
            );
        }
        samples
    }

    fn sink(name: &str, sent: u64, last_success: Option<Timestamp>) -> SinkSnapshot {
        SinkSnapshot {
            name: name.to_owned(),
            stats: tailship_sink::Stats {
                points_sent: sent,
                points_retried: 3,
                points_dropped: BTreeMap::from([("too_old", 2)]),
                requests: BTreeMap::from([("ok", 10), ("throttled", 1)]),
                possible_duplicates: 5,
                merged: 0,
                last_success,
            },
            pending_series: 4,
            pending_points: 9,
        }
    }

    #[test]
    fn empty_snapshot_declares_every_family() {
        let samples = check(
            Snapshot::default(),
            &[
                "# HELP tailship_scrapes Successful scrapes of tailscaled's metrics",
                "# TYPE tailship_scrapes counter",
                "tailship_scrapes_total 0",
                "# TYPE tailship_scrape_errors counter",
                "# TYPE tailship_last_scrape_timestamp_seconds gauge",
                "# UNIT tailship_last_scrape_timestamp_seconds seconds",
                "# TYPE tailship_seconds_since_last_send gauge",
                "tailship_ready 0",
            ],
        );
        // Absent until there is something to say.
        assert!(
            !samples
                .keys()
                .any(|k| k.starts_with("tailship_last_scrape"))
        );
        assert!(!samples.keys().any(|k| k.contains("sink=")));
    }

    #[test]
    fn filled_snapshot() {
        let thirty_s_ago = Timestamp::now().as_millis() - 30_000;
        let snapshot = Snapshot {
            ready: true,
            scrapes: 42,
            scrape_errors: BTreeMap::from([("socket_missing", 1), ("timeout", 2)]),
            restarts: 1,
            series_resets: 5,
            anomalies: BTreeMap::from([("nan", 7)]),
            series: 120,
            series_evicted: 6,
            last_scrape: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)),
            checkpoint_writes: 43,
            checkpoint_errors: 0,
            sinks: vec![
                sink(
                    "cloudwatch",
                    1000,
                    Some(Timestamp::from_millis(thirty_s_ago)),
                ),
                sink("stdout", 50, None),
            ],
        };
        let samples = check(
            snapshot,
            &[
                "tailship_scrapes_total 42",
                r#"tailship_scrape_errors_total{kind="socket_missing"} 1"#,
                r#"tailship_scrape_errors_total{kind="timeout"} 2"#,
                "tailship_tailscaled_restarts_total 1",
                "tailship_series_resets_total 5",
                r#"tailship_anomalies_total{kind="nan"} 7"#,
                "tailship_series 120",
                "tailship_series_evicted_total 6",
                "tailship_last_scrape_timestamp_seconds 1700000000.5",
                "tailship_checkpoint_writes_total 43",
                "tailship_checkpoint_errors_total 0",
                r#"tailship_points_sent_total{sink="cloudwatch"} 1000"#,
                r#"tailship_points_sent_total{sink="stdout"} 50"#,
                r#"tailship_points_retried_total{sink="cloudwatch"} 3"#,
                r#"tailship_possible_duplicates_total{sink="cloudwatch"} 5"#,
                r#"tailship_points_dropped_total{sink="cloudwatch",reason="too_old"} 2"#,
                r#"tailship_requests_total{sink="stdout",result="throttled"} 1"#,
                r#"tailship_buckets_merged_total{sink="stdout"} 0"#,
                r#"tailship_pending_series{sink="cloudwatch"} 4"#,
                r#"tailship_pending_points{sink="stdout"} 9"#,
                "tailship_ready 1",
            ],
        );
        let since = samples[r#"tailship_seconds_since_last_send{sink="cloudwatch"}"#];
        assert!(
            (28.0..=32.0).contains(&since),
            "seconds since last send: {since}"
        );
        assert!(
            !samples.contains_key(r#"tailship_seconds_since_last_send{sink="stdout"}"#),
            "no success yet, no age"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let samples = check(
            Snapshot {
                sinks: vec![sink("a\"b", 1, None)],
                ..Snapshot::default()
            },
            &[r#"tailship_points_sent_total{sink="a\"b"} 1"#],
        );
        assert_eq!(samples[r#"tailship_pending_points{sink="a\"b"}"#], 9.0);
    }

    #[test]
    fn poisoned_lock_still_encodes() {
        let telemetry = Arc::new(Telemetry::new());
        let t = Arc::clone(&telemetry);
        let _ = std::thread::spawn(move || {
            t.update(|s| {
                s.scrapes = 1;
                panic!("an update that panics");
            })
        })
        .join();
        assert!(telemetry.encode().contains("\ntailship_scrapes_total 1\n"));
    }
}
