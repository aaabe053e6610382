use serde::ser::{SerializeStruct as _, Serializer};
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

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SeriesState {
    pub series: Series,
    /// Pending buckets, oldest first.
    pub buckets: Vec<Value>,
    /// How many of the first `buckets` were in a request when the state was taken: the
    /// provider may have written them. Restored, they are sent again (a delta may then count
    /// twice: counted in [`Stats::possible_duplicates`](crate::Stats)).
    #[serde(default)]
    pub in_flight: usize,
    #[serde(default)]
    pub last_sent: Option<Timestamp>,
}

impl Serialize for SeriesState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_series(
            serializer,
            &self.series,
            &self.buckets,
            self.in_flight,
            self.last_sent,
        )
    }
}

/// Writes the fields of a [`SeriesState`]. A text format (JSON) leaves out a zero
/// `in_flight` and an unknown `last_sent`; a binary one (the checkpoint's) writes every
/// field, since its fields are known by their place.
pub(crate) fn serialize_series<S: Serializer>(
    serializer: S,
    series: &Series,
    buckets: &impl Serialize,
    in_flight: usize,
    last_sent: Option<Timestamp>,
) -> Result<S::Ok, S::Error> {
    let every_field = !serializer.is_human_readable();
    let mut state = serializer.serialize_struct("SeriesState", 4)?;
    state.serialize_field("series", series)?;
    state.serialize_field("buckets", buckets)?;
    if in_flight != 0 || every_field {
        state.serialize_field("in_flight", &in_flight)?;
    } else {
        state.skip_field("in_flight")?;
    }
    if last_sent.is_some() || every_field {
        state.serialize_field("last_sent", &last_sent)?;
    } else {
        state.skip_field("last_sent")?;
    }
    state.end()
}
