//! One body read in full, for showing rather than tracking (`tailship once`).

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
}
