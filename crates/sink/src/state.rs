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

/// A [`DriverState`] as a checkpoint of format 3 writes it ([`Driver::state_view_named`](crate::Driver::state_view_named)):
/// each series the tracker also holds is its number among the tracker's published series,
/// not its name and labels once more. [`NamedDriverState::resolve`] makes it a
/// [`DriverState`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NamedDriverState {
    pub series: Vec<NamedSeriesState>,
}

/// A [`SeriesState`] whose series may be a number; its fields in the same places.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NamedSeriesState {
    pub series: SeriesName,
    pub buckets: Vec<Value>,
    pub in_flight: usize,
    pub last_sent: Option<Timestamp>,
}

/// A series in a [`NamedDriverState`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub enum SeriesName {
    /// Number `n` of the tracker's published series.
    Id(u32),
    /// A series the tracker did not hold (forgotten while points of it waited), in full.
    Series(Series),
}

/// The same, borrowed, for writing: the variants in the same order, so that one reads the
/// other.
#[derive(Serialize)]
pub(crate) enum SeriesNameRef<'a> {
    Id(u32),
    Series(&'a Series),
}

impl NamedDriverState {
    /// The state with every number replaced by the series `series` gives for it; the first
    /// number it has no series for is the error.
    pub fn resolve(self, series: impl Fn(u32) -> Option<Series>) -> Result<DriverState, u32> {
        let series = self
            .series
            .into_iter()
            .map(|s| {
                let name = match s.series {
                    SeriesName::Id(id) => series(id).ok_or(id)?,
                    SeriesName::Series(own) => own,
                };
                Ok(SeriesState {
                    series: name,
                    buckets: s.buckets,
                    in_flight: s.in_flight,
                    last_sent: s.last_sent,
                })
            })
            .collect::<Result<_, u32>>()?;
        Ok(DriverState { series })
    }
}

/// Writes the fields of a [`SeriesState`]. A text format (JSON) leaves out a zero
/// `in_flight` and an unknown `last_sent`; a binary one (the checkpoint's) writes every
/// field, since its fields are known by their place.
pub(crate) fn serialize_series<S: Serializer>(
    serializer: S,
    series: &(impl Serialize + ?Sized),
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
