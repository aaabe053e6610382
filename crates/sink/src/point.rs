use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tailship_model::{CounterRef, GaugeRef, Series, Timestamp};

/// One point of a batch: a series and what happened to it in one time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub series: Arc<Series>,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    Counter(CounterStats),
    Gauge(GaugeStats),
}

/// The deltas of one counter series that fell into one bucket, and its running total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterStats {
    /// When the series began counting; `cumulative` is since then.
    pub start: Timestamp,
    /// The start of the time bucket (the end of the first scrape in it without buckets).
    pub bucket: Timestamp,
    /// The end of the newest delta in the bucket.
    pub end: Timestamp,
    /// Deltas merged in: CloudWatch's `SampleCount`.
    pub count: u64,
    /// Their sum: the increase over the bucket.
    pub sum: u64,
    pub min: u64,
    pub max: u64,
    /// The running total at `end`.
    pub cumulative: u64,
}

/// The values one gauge series took within one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaugeStats {
    pub bucket: Timestamp,
    /// When the newest value was read.
    pub at: Timestamp,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The newest value.
    pub last: f64,
}

impl Value {
    pub(crate) fn from_counter(p: &CounterRef<'_>, bucket: Timestamp) -> Self {
        Value::Counter(CounterStats {
            start: p.start,
            bucket,
            end: p.end,
            count: 1,
            sum: p.delta,
            min: p.delta,
            max: p.delta,
            cumulative: p.cumulative,
        })
    }

    pub(crate) fn from_gauge(p: &GaugeRef<'_>, bucket: Timestamp) -> Self {
        Value::Gauge(GaugeStats {
            bucket,
            at: p.at,
            count: 1,
            sum: p.value,
            min: p.value,
            max: p.value,
            last: p.value,
        })
    }

    pub fn bucket(&self) -> Timestamp {
        match self {
            Value::Counter(c) => c.bucket,
            Value::Gauge(g) => g.bucket,
        }
    }

    /// The newest instant in the bucket.
    pub fn end(&self) -> Timestamp {
        match self {
            Value::Counter(c) => c.end,
            Value::Gauge(g) => g.at,
        }
    }

    /// Moves a running total's end to `at` (a later instant at which it is still the
    /// total); `false` for gauges, whose reading belongs to its time.
    pub(crate) fn restamp(&mut self, at: Timestamp) -> bool {
        match self {
            Value::Counter(c) if at > c.end => {
                c.end = at;
                true
            }
            _ => false,
        }
    }

    /// Folds a newer value of the same series into this one: sums add up, the newest total,
    /// start and end win, and the bucket becomes the newer one's (so a merged bucket does not
    /// age out before its newest bytes). Returns `false` (and changes nothing) when the kinds
    /// differ.
    pub(crate) fn absorb(&mut self, newer: &Value) -> bool {
        match (self, newer) {
            (Value::Counter(a), Value::Counter(b)) => {
                a.count += b.count;
                a.sum = a.sum.saturating_add(b.sum);
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
                a.start = b.start;
                a.bucket = a.bucket.max(b.bucket);
                a.end = a.end.max(b.end);
                a.cumulative = b.cumulative;
                true
            }
            (Value::Gauge(a), Value::Gauge(b)) => {
                a.count += b.count;
                a.sum += b.sum;
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
                a.bucket = a.bucket.max(b.bucket);
                if b.at >= a.at {
                    a.at = b.at;
                    a.last = b.last;
                }
                true
            }
            _ => false,
        }
    }
}

/// The start of the bucket of width `width` that holds `t`.
pub(crate) fn bucket_of(t: Timestamp, width: Option<Duration>) -> Timestamp {
    match width.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)) {
        Some(w) if w > 0 => Timestamp::from_millis(t.as_millis() / w * w),
        _ => t,
    }
}
