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
