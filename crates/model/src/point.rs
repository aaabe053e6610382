use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Series, Timestamp};

/// The increase of one counter series over `(previous end, end]`.
///
/// `cumulative` is the running total of every delta of this series since `start`, the
/// instant tailship began counting it; it survives tailship restarts through the checkpoint.
/// Deltas are never negative: they are whole, non-negative counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterPoint {
    pub series: Arc<Series>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub delta: u64,
    pub cumulative: u64,
}

/// The latest value of one gauge series at `at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaugePoint {
    pub series: Arc<Series>,
    pub at: Timestamp,
    pub value: f64,
}

/// A [`CounterPoint`] that borrows its series: what a scrape hands the sinks, read from the
/// tracker's state without touching the series' reference count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterRef<'a> {
    pub series: &'a Arc<Series>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub delta: u64,
    pub cumulative: u64,
}

/// A [`GaugePoint`] that borrows its series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaugeRef<'a> {
    pub series: &'a Arc<Series>,
    pub at: Timestamp,
    pub value: f64,
}

impl CounterRef<'_> {
    pub fn to_point(&self) -> CounterPoint {
        CounterPoint {
            series: Arc::clone(self.series),
            start: self.start,
            end: self.end,
            delta: self.delta,
            cumulative: self.cumulative,
        }
    }
}

impl GaugeRef<'_> {
    pub fn to_point(&self) -> GaugePoint {
        GaugePoint {
            series: Arc::clone(self.series),
            at: self.at,
            value: self.value,
        }
    }
}

impl<'a> From<&'a CounterPoint> for CounterRef<'a> {
    fn from(p: &'a CounterPoint) -> Self {
        Self {
            series: &p.series,
            start: p.start,
            end: p.end,
            delta: p.delta,
            cumulative: p.cumulative,
        }
    }
}

impl<'a> From<&'a GaugePoint> for GaugeRef<'a> {
    fn from(p: &'a GaugePoint) -> Self {
        Self {
            series: &p.series,
            at: p.at,
            value: p.value,
        }
    }
}
