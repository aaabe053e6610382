//! Points → `CreateTimeSeriesRequest`s, within Cloud Monitoring's limits. Pure: no I/O.
//!
//! A request is written straight to protobuf bytes, not built as prost messages and then
//! encoded: a prost `TimeSeries` is about twenty allocations and its encoding about a hundred
//! short copies, and the binary links musl, whose `memcpy` costs tens of nanoseconds a call
//! whatever the length (at 10k series, a million calls per flush; docs/PERFORMANCE.md). What
//! does not change from point to point is encoded once, in [`Encoder::new`]; a time series is
//! then three long copies and short pieces copied a byte at a time. The prost messages stay,
//! in [`Encoder::time_series`], as the reference the tests hold the bytes to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::{
    Point as GcmPoint, TimeInterval, TimeSeries, TypedValue, typed_value,
};
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
    /// The request's `name` field, last in the body: prost writes fields in the order of
    /// their numbers, and `time_series` is 2, `name` 3.
    name_field: Box<[u8]>,
    /// A time series' `resource`, `metric_kind` and `value_type` fields, which follow each
    /// other: for a counter, and for a gauge.
    counter_fields: Box<[u8]>,
    gauge_fields: Box<[u8]>,
    /// Per catalog name in `descriptions`, the fields that depend on the name alone.
    named: HashMap<String, Named, Hasher>,
}

/// The encoder's maps and sets, looked up per point: foldhash (std's SipHash was a fiftieth
/// of the agent's instructions at 10k series), seeded per process.
type Hasher = foldhash::fast::RandomState;

/// The encoded fields of a described catalog name. A name the catalog does not describe
/// (a derived one) has its fields written from their parts at each point.
#[derive(Clone, Debug)]
struct Named {
    /// `Metric.type`: the prefix and the name; last in the metric message (its labels are 2).
    metric_type: Box<[u8]>,
    /// `TimeSeries.description`.
    description: Box<[u8]>,
}

/// The requests for one batch, and the points that could not be encoded.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Each request's body (an encoded `CreateTimeSeriesRequest`) with the batch indexes of
    /// its time series, in order.
    pub requests: Vec<(Vec<u8>, Vec<usize>)>,
    pub refused: Vec<(usize, Rejection)>,
}

/// The lengths of a time series' nested messages, which the wire puts before each of them.
#[derive(Debug)]
struct Layout<'a> {
    named: Option<&'a Named>,
    metric: usize,
    interval: usize,
    value: usize,
    point: usize,
    series: usize,
}

impl Encoder {
    pub fn new(
        project: &str,
        prefix: &str,
        resource: &Resource,
        descriptions: Arc<BTreeMap<String, String>>,
    ) -> Self {
        let name = format!("projects/{project}");
        let resource = MonitoredResource {
            r#type: resource.kind.clone(),
            labels: resource
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut name_field = Vec::new();
        put_string(&mut name_field, 3, &[&name]);
        // Field numbers: `resource` 2, `metric_kind` 3, `value_type` 4; enums as varints.
        let fields = |kind: MetricKind, value_type: ValueType| {
            let mut out = Vec::new();
            gcloud_sdk::prost::encoding::message::encode(2, &resource, &mut out);
            out.push(key(3, VARINT));
            put_varint(&mut out, kind as u64);
            out.push(key(4, VARINT));
            put_varint(&mut out, value_type as u64);
            out.into_boxed_slice()
        };
        let counter_fields = fields(MetricKind::Cumulative, ValueType::Int64);
        let gauge_fields = fields(MetricKind::Gauge, ValueType::Double);
        let named = descriptions
            .iter()
            .map(|(series, description)| {
                let (mut metric_type, mut text) = (Vec::new(), Vec::new());
                put_string(&mut metric_type, 3, &[prefix, series]);
                put_string(&mut text, 9, &[description]);
                let named = Named {
                    metric_type: metric_type.into_boxed_slice(),
                    description: text.into_boxed_slice(),
                };
                (series.clone(), named)
            })
            .collect();
        Self {
            name,
            prefix: prefix.to_owned(),
            resource,
            descriptions,
            name_field: name_field.into_boxed_slice(),
            counter_fields,
            gauge_fields,
            named,
        }
    }

    /// The fewest requests that hold the batch: at most [`MAX_SERIES_PER_REQUEST`] series
    /// each, a series at most once per request (a second point of a series goes into a later
    /// request, so points stay in order).
    pub fn encode(&self, points: &[Point]) -> Encoded {
        let mut out = Encoded::default();
        // First each point's request and lengths, then the bodies: each is allocated once,
        // at its final size, and written in one pass.
        let mut members: Vec<HashSet<&Series, Hasher>> = Vec::new();
        let mut indexes: Vec<Vec<usize>> = Vec::new();
        let mut lens: Vec<usize> = Vec::new();
        let mut plan = Vec::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            let layout = match self.layout(p) {
                Ok(l) => l,
                Err(v) => {
                    out.refused.push((i, not_finite(p, v)));
                    continue;
                }
            };
            let slot = members
                .iter()
                .zip(&indexes)
                .position(|(m, ix)| ix.len() < MAX_SERIES_PER_REQUEST && !m.contains(&*p.series));
            let r = slot.unwrap_or_else(|| {
                let most = MAX_SERIES_PER_REQUEST.min(points.len() - i);
                members.push(HashSet::with_capacity_and_hasher(most, Hasher::default()));
                indexes.push(Vec::with_capacity(most));
                lens.push(self.name_field.len());
                members.len() - 1
            });
            members[r].insert(&p.series);
            indexes[r].push(i);
            lens[r] += message(layout.series);
            plan.push((r, p, layout));
        }
        let mut bodies: Vec<Vec<u8>> = lens.iter().map(|&n| Vec::with_capacity(n)).collect();
        for (r, p, layout) in &plan {
            self.write(&mut bodies[*r], p, layout);
        }
        for (body, len) in bodies.iter_mut().zip(lens) {
            body.extend_from_slice(&self.name_field);
            debug_assert_eq!(body.len(), len, "the lengths counted are the bytes written");
        }
        out.requests = bodies.into_iter().zip(indexes).collect();
        out
    }

    /// One time series with its one point, as a prost message: what the bytes of
    /// [`Encoder::encode`] must decode to.
    pub fn time_series(&self, p: &Point) -> Result<TimeSeries, Rejection> {
        let (kind, value_type, interval, value) = match &p.value {
            Value::Counter(c) => (
                MetricKind::Cumulative,
                ValueType::Int64,
                TimeInterval {
                    start_time: Some(timestamp(c.start)),
                    end_time: Some(timestamp(c.end)),
                },
                typed_value::Value::Int64Value(total(c.cumulative)),
            ),
            Value::Gauge(g) if !g.last.is_finite() => return Err(not_finite(p, g.last)),
            Value::Gauge(g) => (
                MetricKind::Gauge,
                ValueType::Double,
                TimeInterval {
                    start_time: None,
                    end_time: Some(timestamp(g.at)),
                },
                typed_value::Value::DoubleValue(g.last),
            ),
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
    /// Counted from the lengths of its parts, as prost encodes them, without writing them:
    /// the driver sizes every point it batches (building each time series twice, once to
    /// size and once to send, was a twentieth of the agent's time at 10k series). `encode`
    /// writes exactly this many bytes (debug builds assert it); `encoded_size_is_exact` and
    /// `bodies_are_the_prost_requests` hold it to prost's encoding.
    pub fn encoded_size(&self, p: &Point) -> usize {
        // Refused by `encode`: it adds nothing.
        self.layout(p).map_or(0, |l| message(l.series))
    }

    /// The lengths of a point's time series, as prost encodes it; or the value Cloud
    /// Monitoring cannot take (not finite), without building the rejection `encoded_size`
    /// would drop.
    fn layout(&self, p: &Point) -> Result<Layout<'_>, f64> {
        let s = &p.series;
        let named = self.named.get(&*s.name);
        let labels: usize = s
            .dimensions
            .iter()
            .map(|(k, v)| message(string(k.len()) + string(v.len())))
            .sum();
        let metric_type = named.map_or_else(
            || string(self.prefix.len() + s.name.len()),
            |n| n.metric_type.len(),
        );
        let (interval, value, fields) = match &p.value {
            Value::Counter(c) => (
                message(time(c.start)) + message(time(c.end)),
                // A oneof is encoded even when 0.
                1 + varint(total(c.cumulative) as u64),
                self.counter_fields.len(),
            ),
            Value::Gauge(g) if !g.last.is_finite() => return Err(g.last),
            Value::Gauge(g) => (message(time(g.at)), 1 + 8, self.gauge_fields.len()),
        };
        let metric = labels + metric_type;
        let point = message(interval) + message(value);
        let description = named.map_or_else(
            || {
                let (before, after) = DEFAULT_DESCRIPTION;
                string(before.len() + s.name.len() + after.len())
            },
            |n| n.description.len(),
        );
        let series =
            message(metric) + fields + message(point) + string(unit(s.unit).len()) + description;
        Ok(Layout {
            named,
            metric,
            interval,
            value,
            point,
            series,
        })
    }

    /// Appends a point's `time_series` field, its fields in the order prost writes them
    /// (by field number), so that the bytes are prost's but for the order of map entries.
    fn write(&self, out: &mut Vec<u8>, p: &Point, l: &Layout<'_>) {
        let s = &p.series;
        // CreateTimeSeriesRequest.time_series = 2 and TimeSeries.metric = 1.
        put_len(out, 2, l.series);
        put_len(out, 1, l.metric);
        // Metric.labels = 2: map entries, each a message of key = 1 and value = 2, either
        // left out when empty. Metric.type = 3.
        for (k, v) in s.dimensions.iter() {
            put_len(out, 2, string(k.len()) + string(v.len()));
            put_string(out, 1, &[k]);
            put_string(out, 2, &[v]);
        }
        match l.named {
            Some(n) => out.extend_from_slice(&n.metric_type),
            None => put_string(out, 3, &[&self.prefix, &s.name]),
        }
        // TimeSeries.resource, metric_kind, value_type; then points = 5, one Point of
        // interval = 1 (TimeInterval: start_time = 1, absent for a gauge, end_time = 2)
        // and value = 2 (TypedValue: int64_value = 2, double_value = 3).
        let (fields, start, end) = match &p.value {
            Value::Counter(c) => (&self.counter_fields, Some(c.start), c.end),
            Value::Gauge(g) => (&self.gauge_fields, None, g.at),
        };
        out.extend_from_slice(fields);
        put_len(out, 5, l.point);
        put_len(out, 1, l.interval);
        if let Some(start) = start {
            put_time(out, 1, start);
        }
        put_time(out, 2, end);
        put_len(out, 2, l.value);
        match &p.value {
            Value::Counter(c) => {
                out.push(key(2, VARINT));
                put_varint(out, total(c.cumulative) as u64);
            }
            Value::Gauge(g) => {
                out.push(key(3, I64));
                put(out, &g.last.to_le_bytes());
            }
        }
        // TimeSeries.unit = 8, description = 9 (`metadata`, 7, is left out).
        put_string(out, 8, &[unit(s.unit)]);
        match l.named {
            Some(n) => out.extend_from_slice(&n.description),
            None => {
                let (before, after) = DEFAULT_DESCRIPTION;
                put_string(out, 9, &[before, &s.name, after]);
            }
        }
    }
}

fn not_finite(p: &Point, v: f64) -> Rejection {
    Rejection {
        reason: "not_finite",
        detail: format!(
            "{} = {v}: Cloud Monitoring takes finite values only",
            p.series
        ),
    }
}

/// A running total as an INT64: past i64::MAX (9.2 EB) is not a real case; saturate.
fn total(cumulative: u64) -> i64 {
    i64::try_from(cumulative).unwrap_or(i64::MAX)
}

/// Protobuf wire types of the fields written.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;

/// Pieces up to this long are copied a byte at a time, longer ones with one `memcpy` (as
/// `src/checkpoint.rs` does): musl's `memcpy` costs tens of nanoseconds a call whatever
/// the length.
const SHORT: usize = 16;

/// A field's key: every field written has a number below 16, so its key is one byte.
const fn key(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= SHORT {
        for &b in bytes {
            out.push(b);
        }
    } else {
        out.extend_from_slice(bytes);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The key and length of a length-delimited field (a message, a string) of `len` bytes,
/// which the caller writes next.
fn put_len(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push(key(field, LEN));
    put_varint(out, len as u64);
}

/// A string field, the concatenation of `parts`; proto3 leaves an empty one out.
fn put_string(out: &mut Vec<u8>, field: u8, parts: &[&str]) {
    let len = parts.iter().map(|p| p.len()).sum();
    if len == 0 {
        return;
    }
    put_len(out, field, len);
    for p in parts {
        put(out, p.as_bytes());
    }
}

/// A `google.protobuf.Timestamp` field: seconds = 1 and nanos = 2, each left out when 0.
fn put_time(out: &mut Vec<u8>, field: u8, t: Timestamp) {
    put_len(out, field, time(t));
    let ts = timestamp(t);
    if ts.seconds != 0 {
        out.push(key(1, VARINT));
        put_varint(out, ts.seconds as u64);
    }
    if ts.nanos != 0 {
        out.push(key(2, VARINT));
        put_varint(out, i64::from(ts.nanos) as u64);
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
