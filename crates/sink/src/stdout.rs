use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tailship_model::{Dimensions, Timestamp, Unit};

use crate::{Limits, Point, Report, SendFuture, Sink, SinkError, Value, Values};

/// Sum of the deltas written per series (its display form), for the demo's summary.
pub type Tally = Arc<Mutex<BTreeMap<String, u64>>>;

/// Writes one JSON object per point per line: the demo's sink, and a way to see exactly
/// what a cloud sink would be given.
pub struct StdoutSink {
    out: Mutex<Box<dyn Write + Send>>,
    limits: Limits,
    tally: Option<Tally>,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    name: &'a str,
    dimensions: &'a Dimensions,
    kind: &'static str,
    unit: Unit,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cumulative: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    /// Scrapes merged into this point.
    samples: u64,
}

fn rfc3339(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(t.to_system_time()).to_string()
}

impl StdoutSink {
    /// Writes to `out` (standard output in `tailship run`).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(out),
            limits: Limits::default(),
            tally: None,
        }
    }

    /// Also adds every delta written to `tally`.
    pub fn with_tally(mut self, tally: Tally) -> Self {
        self.tally = Some(tally);
        self
    }

    fn write(&self, points: &[Point]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(points.len() * 200);
        for p in points {
            let s = &p.series;
            let line = match &p.value {
                Value::Counter(c) => Line {
                    name: &s.name,
                    dimensions: &s.dimensions,
                    kind: "counter",
                    unit: s.unit,
                    start: Some(rfc3339(c.start)),
                    end: rfc3339(c.end),
                    delta: Some(c.sum),
                    cumulative: Some(c.cumulative),
                    value: None,
                    samples: c.count,
                },
                Value::Gauge(g) => Line {
                    name: &s.name,
                    dimensions: &s.dimensions,
                    kind: "gauge",
                    unit: s.unit,
                    start: None,
                    end: rfc3339(g.at),
                    delta: None,
                    cumulative: None,
                    value: Some(g.last),
                    samples: g.count,
                },
            };
            serde_json::to_writer(&mut buf, &line)?;
            buf.push(b'\n');
        }
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(&buf)?;
        out.flush()?;
        if let Some(tally) = &self.tally {
            let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
            for p in points {
                if let Value::Counter(c) = &p.value {
                    *tally.entry(p.series.to_string()).or_default() += c.sum;
                }
            }
        }
        Ok(())
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn values(&self) -> Values {
        Values::Deltas
    }

    fn send(&self, points: &[Point]) -> SendFuture {
        let result = self
            .write(points)
            .map(|()| Report::default())
            .map_err(|e| SinkError::Transient(format!("writing to standard output: {e}")));
        Box::pin(std::future::ready(result))
    }
}
