//! Points → `CreateTimeSeriesRequest`s, within Cloud Monitoring's limits. Pure: no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::{
    CreateTimeSeriesRequest, Point as GcmPoint, TimeInterval, TimeSeries, TypedValue, typed_value,
};
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::prost_types;
use tailship_model::{Series, Timestamp, Unit};
use tailship_sink::{Point, Rejection, Value};

use crate::Resource;

/// Time series in one `CreateTimeSeries` request, one point each
/// (<https://cloud.google.com/monitoring/quotas#custom_metrics_quotas>).
pub const MAX_SERIES_PER_REQUEST: usize = 200;
/// Least time between the end times of two points of one series, same page.
pub const MIN_SPACING: Duration = Duration::from_secs(10);
/// A point's end time may be at most this old, and at most [`MAX_FUTURE`] ahead
/// (<https://cloud.google.com/monitoring/api/ref_v3/rest/v3/TimeInterval>).
pub const MAX_AGE: Duration = Duration::from_secs(25 * 3600);
pub const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// Labels per metric descriptor of a user-defined (custom, external, workload) metric, and
/// the longest label key and value, same quotas page.
pub const MAX_LABELS: usize = 30;
pub const MAX_LABEL_KEY_LEN: usize = 100;
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// gRPC's default largest message, which tailship keeps requests under: Cloud Monitoring
/// documents no byte limit of its own for `CreateTimeSeries`.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What every request of one sink shares.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// `projects/<id>`.
    pub name: String,
    pub prefix: String,
    pub resource: MonitoredResource,
    /// Catalog name → description, for auto-created metric descriptors.
    pub descriptions: Arc<BTreeMap<String, String>>,
}

/// The requests for one batch, and the points that could not be encoded.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Each request with the batch indexes of its time series, in order.
    pub requests: Vec<(CreateTimeSeriesRequest, Vec<usize>)>,
    pub refused: Vec<(usize, Rejection)>,
}

impl Encoder {
    pub fn new(
        project: &str,
        prefix: &str,
        resource: &Resource,
        descriptions: Arc<BTreeMap<String, String>>,
    ) -> Self {
        Self {
            name: format!("projects/{project}"),
            prefix: prefix.to_owned(),
            resource: MonitoredResource {
                r#type: resource.kind.clone(),
                labels: resource
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            descriptions,
        }
    }

    /// The fewest requests that hold the batch: at most [`MAX_SERIES_PER_REQUEST`] series
    /// each, a series at most once per request (a second point of a series goes into a later
    /// request, so points stay in order).
    pub fn encode(&self, points: &[Point]) -> Encoded {
        let mut out = Encoded::default();
        let mut members: Vec<HashSet<&Series>> = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let ts = match self.time_series(p) {
                Ok(ts) => ts,
                Err(r) => {
                    out.refused.push((i, r));
                    continue;
                }
            };
            let slot = members.iter().enumerate().position(|(r, m)| {
                out.requests[r].1.len() < MAX_SERIES_PER_REQUEST && !m.contains(&*p.series)
            });
            let r = slot.unwrap_or_else(|| {
                members.push(HashSet::new());
                out.requests.push((
                    CreateTimeSeriesRequest {
                        name: self.name.clone(),
                        time_series: Vec::new(),
                    },
                    Vec::new(),
                ));
                members.len() - 1
            });
            members[r].insert(&p.series);
            out.requests[r].0.time_series.push(ts);
            out.requests[r].1.push(i);
        }
        out
    }

    /// One time series with its one point.
    pub fn time_series(&self, p: &Point) -> Result<TimeSeries, Rejection> {
        let (kind, value_type, interval, value) = match &p.value {
            Value::Counter(c) => (
                MetricKind::Cumulative,
                ValueType::Int64,
                TimeInterval {
                    start_time: Some(timestamp(c.start)),
                    end_time: Some(timestamp(c.end)),
                },
                // A running total past i64::MAX (9.2 EB) is not a real case; saturate.
                typed_value::Value::Int64Value(i64::try_from(c.cumulative).unwrap_or(i64::MAX)),
            ),
            Value::Gauge(g) => {
                if !g.last.is_finite() {
                    return Err(Rejection {
                        reason: "not_finite",
                        detail: format!(
                            "{} = {}: Cloud Monitoring takes finite values only",
                            p.series, g.last
                        ),
                    });
                }
                (
                    MetricKind::Gauge,
                    ValueType::Double,
                    TimeInterval {
                        start_time: None,
                        end_time: Some(timestamp(g.at)),
                    },
                    typed_value::Value::DoubleValue(g.last),
                )
            }
        };
        let s = &p.series;
        let description = self.descriptions.get(&*s.name).cloned().unwrap_or_else(|| {
            let (before, after) = DEFAULT_DESCRIPTION;
            format!("{before}{}{after}", s.name)
        });
        Ok(TimeSeries {
            metric: Some(Metric {
                r#type: format!("{}{}", self.prefix, s.name),
                labels: s
                    .dimensions
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<HashMap<_, _>>(),
            }),
            resource: Some(self.resource.clone()),
            metadata: None,
            metric_kind: kind as i32,
            value_type: value_type as i32,
            points: vec![GcmPoint {
                interval: Some(interval),
                value: Some(TypedValue { value: Some(value) }),
            }],
            unit: unit(s.unit).to_owned(),
            description,
        })
    }

    /// Bytes one point adds to a request: its time series and the field's tag and length.
    /// Counted from the lengths of its parts, as prost encodes them, without building the
    /// message: the driver sizes every point it batches (building each time series twice,
    /// once to size and once to send, was a twentieth of the agent's time at 10k series).
    /// `encoded_size_is_exact` holds it to the encoded message.
    pub fn encoded_size(&self, p: &Point) -> usize {
        let s = &p.series;
        let labels: usize = s
            .dimensions
            .iter()
            .map(|(k, v)| message(string(k.len()) + string(v.len())))
            .sum();
        let metric = string(self.prefix.len() + s.name.len()) + labels;
        let (interval, value) = match &p.value {
            Value::Counter(c) => {
                let total = i64::try_from(c.cumulative).unwrap_or(i64::MAX);
                (
                    message(time(c.start)) + message(time(c.end)),
                    // A oneof is encoded even when 0.
                    1 + varint(total as u64),
                )
            }
            Value::Gauge(g) if g.last.is_finite() => (message(time(g.at)), 1 + 8),
            // Refused by `encode`: it adds nothing.
            Value::Gauge(_) => return 0,
        };
        let point = message(interval) + message(value);
        let description = match self.descriptions.get(&*s.name) {
            Some(d) => d.len(),
            None => DEFAULT_DESCRIPTION.0.len() + s.name.len() + DEFAULT_DESCRIPTION.1.len(),
        };
        // metric, resource, metric_kind and value_type (enums, never 0: 2 bytes each),
        // the point, unit, description.
        let series = message(metric)
            + message(self.resource.encoded_len())
            + 2
            + 2
            + message(point)
            + string(unit(s.unit).len())
            + string(description);
        message(series)
    }
}

/// The description of a metric the catalog does not describe: before and after its name.
const DEFAULT_DESCRIPTION: (&str, &str) = ("tailscaled metric ", " published by tailship");

/// An embedded message field (tag below 16) of `len` bytes: tag, length, body.
fn message(len: usize) -> usize {
    1 + gcloud_sdk::prost::length_delimiter_len(len) + len
}

/// A string field (tag below 16) of `len` bytes; proto3 leaves an empty one out.
fn string(len: usize) -> usize {
    if len == 0 { 0 } else { message(len) }
}

fn varint(v: u64) -> usize {
    gcloud_sdk::prost::encoding::encoded_len_varint(v)
}

/// A `google.protobuf.Timestamp`: seconds and nanos, each left out when 0.
fn time(t: Timestamp) -> usize {
    let ts = timestamp(t);
    let seconds = if ts.seconds == 0 {
        0
    } else {
        1 + varint(ts.seconds as u64)
    };
    let nanos = if ts.nanos == 0 {
        0
    } else {
        1 + varint(i64::from(ts.nanos) as u64)
    };
    seconds + nanos
}

/// The UCUM unit of auto-created descriptors.
pub(crate) fn unit(u: Unit) -> &'static str {
    match u {
        Unit::Bytes => "By",
        Unit::Count | Unit::None => "1",
    }
}

pub(crate) fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9.
        nanos: i32::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
    }
}

/// A label key Cloud Monitoring accepts: a letter, then letters, digits and underscores.
pub(crate) fn valid_label_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether a series can be written at all (labels within the quotas).
pub(crate) fn admit(series: &Series) -> Result<(), Rejection> {
    let refuse = |detail: String| {
        Err(Rejection {
            reason: "invalid_labels",
            detail,
        })
    };
    if series.dimensions.len() > MAX_LABELS {
        return refuse(format!(
            "{series}: {} labels, Cloud Monitoring takes at most {MAX_LABELS}",
            series.dimensions.len()
        ));
    }
    for (k, v) in series.dimensions.iter() {
        if !valid_label_key(k) || k.len() > MAX_LABEL_KEY_LEN {
            return refuse(format!(
                "{series}: label key {k:?} must be a letter then letters, digits or '_', at most {MAX_LABEL_KEY_LEN} long"
            ));
        }
        if v.chars().count() > MAX_LABEL_VALUE_LEN {
            return refuse(format!(
                "{series}: the value of {k:?} is longer than {MAX_LABEL_VALUE_LEN} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
