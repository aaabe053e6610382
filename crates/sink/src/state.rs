use serde::{Deserialize, Serialize};
use tailship_model::{Series, Timestamp};

use crate::Value;

/// What a sink's driver must remember across a restart: every point not yet acknowledged
/// (in flight included: the provider may not have written it) and when each series was
/// last written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverState {
    pub series: Vec<SeriesState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub series: Series,
    /// Pending buckets, oldest first.
    pub buckets: Vec<Value>,
    /// How many of the first `buckets` were in a request when the state was taken: the
    /// provider may have written them. Restored, they are sent again (a delta may then count
    /// twice: counted in [`Stats::possible_duplicates`](crate::Stats)).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_flight: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<Timestamp>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
