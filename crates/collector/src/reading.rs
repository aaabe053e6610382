//! One body read in full, for showing rather than tracking (`tailship once`).

use std::collections::BTreeMap;

use serde::Serialize;
use tailship_model::{Dimensions, Unit};

use crate::anomaly::{Anomalies, Anomaly, counter_value, gauge_value};
use crate::catalog::{self, Kind};
use crate::key::write_key;
use crate::{Event, parse};

/// What one body holds, in the order written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub samples: Vec<ReadSample>,
    pub anomalies: Anomalies,
    /// Samples of families that are not published.
    pub ignored: usize,
}

/// One published sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadSample {
    /// The tailscaled series, e.g. `tailscaled_outbound_bytes_total{path="derp"}`.
    pub series: String,
    /// The catalog name it is published under.
    pub name: String,
    /// Its breakdown dimensions.
    pub dimensions: Dimensions,
    pub kind: Kind,
    pub unit: Unit,
    /// Whether it also adds to its family's dimensionless aggregate.
    pub aggregate: bool,
    pub value: f64,
}

/// Reads every sample of a body; bad lines and values become anomalies.
pub fn read(body: &[u8]) -> Reading {
    let mut out = Reading::default();
    for event in parse(body) {
        let sample = match event {
            Ok(Event::Sample(s)) => s,
            Ok(_) => continue,
            Err(e) => {
                out.anomalies.push(Anomaly::Parse(e));
                continue;
            }
        };
        let class = catalog::classify(sample.family, sample.family_type, sample.name);
        let Some(p) = catalog::published(class, &sample) else {
            out.ignored += 1;
            continue;
        };
        let mut series = String::new();
        write_key(&mut series, &sample);
        let value = match p.kind {
            Kind::Counter => counter_value(sample.value_text, sample.value).map(|v| v as f64),
            Kind::Gauge => gauge_value(sample.value),
        };
        match value {
            Ok(value) => out.samples.push(ReadSample {
                aggregate: p.aggregate || p.dimensions.is_empty(),
                series,
                name: p.name.into_owned(),
                dimensions: p.dimensions,
                kind: p.kind,
                unit: p.unit,
                value,
            }),
            Err(problem) => out.anomalies.push(Anomaly::Value {
                series,
                problem,
                text: sample.value_text.to_owned(),
            }),
        }
    }
    out
}

/// What raw counter totals add up to once published: `raw` maps tailscaled series
/// (`tailscaled_outbound_bytes_total{path="derp"}`) to amounts; the result maps every
/// published counter series (`tailscale.bytes.sent.total{path=derp}` and its aggregate
/// `tailscale.bytes.sent.total`) to the sum it must ship. Used to check shipped bytes against
/// a simulated node's truth.
pub fn published_totals<'a>(
    raw: impl IntoIterator<Item = (&'a str, u64)>,
) -> BTreeMap<String, u64> {
    let body: String = raw
        .into_iter()
        .map(|(series, n)| format!("{series} {n}\n"))
        .collect();
    let mut totals = BTreeMap::new();
    for s in read(body.as_bytes()).samples {
        if s.kind != Kind::Counter {
            continue;
        }
        let n = s.value as u64;
        if s.aggregate {
            *totals.entry(s.name.clone()).or_default() += n;
        }
        if !s.dimensions.is_empty() {
            *totals
                .entry(format!("{}{{{}}}", s.name, s.dimensions))
                .or_default() += n;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_anomalies_and_ignored() {
        let body = b"# TYPE tailscaled_outbound_bytes_total counter\n\
            tailscaled_outbound_bytes_total{path=\"derp\"} 5684\n\
            tailscaled_outbound_bytes_total{path=\"direct_ipv4\"} -3\n\
            go_goroutines 12\n\
            not a line\n";
        let r = read(body);
        assert_eq!(r.samples.len(), 1);
        let s = &r.samples[0];
        assert_eq!(s.series, r#"tailscaled_outbound_bytes_total{path="derp"}"#);
        assert_eq!(
            (s.name.as_str(), s.dimensions.to_string()),
            ("tailscale.bytes.sent.total", "path=derp".into())
        );
        assert_eq!(
            (s.kind, s.unit, s.value),
            (Kind::Counter, Unit::Bytes, 5684.0)
        );
        assert_eq!(r.ignored, 1);
        let kinds: Vec<_> = r.anomalies.counts().collect();
        assert_eq!(kinds, [("negative", 1), ("parse", 1)]);
    }

    #[test]
    fn published_totals_add_breakdowns_into_aggregates() {
        let raw = [
            (r#"tailscaled_outbound_bytes_total{path="derp"}"#, 5),
            (r#"tailscaled_outbound_bytes_total{path="direct_ipv4"}"#, 7),
            ("sockstats_tx_bytes_DERPHTTPClient", 3),
        ];
        let t = published_totals(raw);
        assert_eq!(t["tailscale.bytes.sent.total"], 12);
        assert_eq!(t["tailscale.bytes.sent.total{path=derp}"], 5);
        assert_eq!(
            t["tailscale.sockstats.bytes.sent.total{label=DERPHTTPClient}"],
            3
        );
        assert_eq!(t.len(), 5);
    }
}
