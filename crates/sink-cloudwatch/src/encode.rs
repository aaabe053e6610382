//! Points → `MetricDatum`s: one datum per series per time bucket. Pure: no I/O, no clock.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use tailship_model::{Series, Unit};
use tailship_sink::{Point, Rejection, Value};

use crate::limits::{self, MAX_ABS_VALUE, MAX_DIMENSIONS, MAX_METRIC_NAME_LEN};

/// What every datum of one sink shares: the resolution and the dimensions added to every
/// series (static ones and the node's).
#[derive(Clone, Debug)]
pub struct Encoder {
    resolution: i32,
    /// Sorted by name, names unique (validated with the config).
    extra: Vec<(String, String)>,
}

/// CBOR bytes of a datum besides its name and dimensions, at most: the map, the keys
/// `MetricName`, `Dimensions`, `Timestamp`, `StatisticValues` (four doubles), `Unit`,
/// `StorageResolution`, every string header taken at its widest (9 bytes).
const DATUM_FIXED_BYTES: usize = 2 + 11 + 9 + 11 + 9 + 10 + 10 + 86 + 19 + 27;
/// CBOR bytes of one dimension besides its name and value, at most.
const DIMENSION_FIXED_BYTES: usize = 2 + 5 + 9 + 6 + 9;
/// CBOR bytes of a request besides its datums, at most (namespace ≤ 255 bytes).
pub(crate) const REQUEST_FIXED_BYTES: usize = 2 + 10 + 9 + limits::MAX_NAMESPACE_LEN + 11 + 9;

fn rejection(reason: &'static str, detail: String) -> Rejection {
    Rejection { reason, detail }
}

impl Encoder {
    /// `extra`: the dimensions added to every datum (the configured ones and the node's),
    /// already validated, as [`crate::CloudWatchSink`] passes them.
    pub fn new(resolution: u32, extra: Vec<(String, String)>) -> Self {
        let mut extra = extra;
        extra.sort();
        Self {
            resolution: i32::try_from(resolution).unwrap_or(60),
            extra,
        }
    }

    /// The series' own dimensions and the added ones, sorted by name.
    fn dimensions<'a>(&'a self, series: &'a Series) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&str, &str)> = series
            .dimensions
            .iter()
            .chain(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        all.sort_unstable();
        all
    }

    /// Whether CloudWatch can take this series at all.
    pub(crate) fn admit(&self, series: &Series) -> Result<(), Rejection> {
        if series.name.is_empty() || series.name.len() > MAX_METRIC_NAME_LEN {
            return Err(rejection(
                "invalid_name",
                format!("metric names must be 1 to {MAX_METRIC_NAME_LEN} characters"),
            ));
        }
        let dims = self.dimensions(series);
        if dims.len() > MAX_DIMENSIONS {
            return Err(rejection(
                "too_many_dimensions",
                format!(
                    "{} dimensions, CloudWatch takes {MAX_DIMENSIONS}",
                    dims.len()
                ),
            ));
        }
        if let Some(w) = dims.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(rejection(
                "dimension_clash",
                format!(
                    "the series' dimension {:?} is also configured in [sinks.cloudwatch]",
                    w[0].0
                ),
            ));
        }
        for (name, value) in series.dimensions.iter() {
            limits::check_dimension(name, value)
                .map_err(|p| rejection("invalid_dimension", format!("{name}={value:?}: {p}")))?;
        }
        Ok(())
    }

    /// The size of a point's datum in the request, never an underestimate.
    pub(crate) fn size_bound(&self, point: &Point) -> usize {
        let s = &point.series;
        DATUM_FIXED_BYTES
            + s.name.len()
            + self
                .dimensions(s)
                .iter()
                .map(|(k, v)| DIMENSION_FIXED_BYTES + k.len() + v.len())
                .sum::<usize>()
    }

    /// One datum: `Value` for a single sample, `StatisticValues` for several, so that `Sum`
    /// is the increase and `SampleCount` the scrapes. Timestamped at the bucket's start.
    pub(crate) fn datum(&self, point: &Point) -> Result<MetricDatum, Rejection> {
        let (bucket, count, sum, min, max, single) = match &point.value {
            Value::Counter(c) => (
                c.bucket,
                c.count,
                c.sum as f64,
                c.min as f64,
                c.max as f64,
                c.sum as f64,
            ),
            Value::Gauge(g) => (g.bucket, g.count, g.sum, g.min, g.max, g.last),
        };
        let values = [sum, min, max, single];
        if let Some(v) = values
            .iter()
            .find(|v| !v.is_finite() || v.abs() > MAX_ABS_VALUE)
        {
            return Err(rejection(
                "invalid_value",
                format!("{v:e} is not a value CloudWatch takes (finite, within ±2^360)"),
            ));
        }
        let dimensions = self
            .dimensions(&point.series)
            .into_iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        let millis = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX);
        let datum = MetricDatum::builder()
            .metric_name(&*point.series.name)
            .set_dimensions(Some(dimensions))
            .timestamp(DateTime::from_millis(millis))
            .unit(unit(point.series.unit))
            .storage_resolution(self.resolution);
        let datum = if count > 1 {
            datum.statistic_values(
                StatisticSet::builder()
                    .sample_count(count as f64)
                    .sum(sum)
                    .minimum(min)
                    .maximum(max)
                    .build(),
            )
        } else {
            datum.value(single)
        };
        Ok(datum.build())
    }

    /// Datums for a batch, and the points that cannot be sent (by index).
    pub fn encode(&self, points: &[Point]) -> (Vec<MetricDatum>, Vec<(usize, Rejection)>) {
        let mut datums = Vec::with_capacity(points.len());
        let mut refused = Vec::new();
        for (i, p) in points.iter().enumerate() {
            match self.datum(p) {
                Ok(d) => datums.push(d),
                Err(r) => refused.push((i, r)),
            }
        }
        (datums, refused)
    }
}

fn unit(unit: Unit) -> StandardUnit {
    match unit {
        Unit::Bytes => StandardUnit::Bytes,
        Unit::Count => StandardUnit::Count,
        Unit::None => StandardUnit::None,
    }
}

#[cfg(test)]
mod tests;
