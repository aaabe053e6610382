//! Cloud Monitoring's write rules, as documented
//! (<https://cloud.google.com/monitoring/quotas>,
//! <https://cloud.google.com/monitoring/api/ref_v3/rest/v3/TimeInterval>), applied to one
//! `CreateTimeSeries` request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::monitoring::v3::{CreateTimeSeriesRequest, TimeSeries, typed_value};

use super::{GcmPoint, GcmRejection, GcmSeries, GcmValue, State};

pub(super) const MAX_SERIES: usize = 200;
pub(super) const SPACING: Duration = Duration::from_secs(10);
const MAX_AGE: Duration = Duration::from_secs(25 * 3600);
const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);

pub(super) const ORDER: &str = "Points must be written in order. One or more of the points specified had an older start time than the most recent point.";
pub(super) const TOO_FREQUENT: &str = "One or more points were written more frequently than the maximum sampling period configured for the metric.";

/// The outcome of a request: points written, and the refused ones by message.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub written: usize,
    pub refused: Vec<(usize, String)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(t: &Option<gcloud_sdk::prost_types::Timestamp>) -> Option<u64> {
    let t = t.as_ref()?;
    let s = u64::try_from(t.seconds).ok()?;
    let n = u64::try_from(t.nanos).ok()?;
    Some(s * 1000 + n / 1_000_000)
}

pub(super) fn key(ts: &TimeSeries) -> GcmSeries {
    let sorted =
        |m: &HashMap<String, String>| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let (metric, resource) = (
        ts.metric.clone().unwrap_or_default(),
        ts.resource.clone().unwrap_or_default(),
    );
    GcmSeries {
        metric_type: metric.r#type,
        labels: sorted(&metric.labels),
        resource_type: resource.r#type,
        resource_labels: sorted(&resource.labels),
    }
}

/// A whole-request problem: nothing is written.
pub(super) fn check_request(req: &CreateTimeSeriesRequest) -> Result<(), String> {
    let project = req.name.strip_prefix("projects/").unwrap_or_default();
    if project.is_empty() || project.contains('/') {
        return Err(format!(
            "Field name had an invalid value of {:?}: must be projects/[PROJECT_ID_OR_NUMBER]",
            req.name
        ));
    }
    if req.time_series.len() > MAX_SERIES {
        return Err(format!(
            "Field timeSeries had an invalid value: the request holds {} TimeSeries, at most {MAX_SERIES} are allowed",
            req.time_series.len()
        ));
    }
    Ok(())
}

/// Checks every time series against the stored state, writes the valid ones.
pub(super) fn apply(
    state: &mut State,
    req: &CreateTimeSeriesRequest,
    refuse_first: usize,
    injected: &str,
) -> Outcome {
    let now = now_ms();
    let mut out = Outcome::default();
    let mut seen = BTreeSet::new();
    let mut accepted = Vec::new();
    for (i, ts) in req.time_series.iter().enumerate() {
        let series = key(ts);
        let verdict = if i < refuse_first {
            Err(injected.to_owned())
        } else if !seen.insert(series.clone()) {
            Err(format!(
                "Field timeSeries[{i}] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."
            ))
        } else {
            check(state, ts, &series, now)
        };
        match verdict {
            Ok(point) => accepted.push((ts, series, point)),
            Err(message) => {
                state.rejections.push(GcmRejection {
                    series: series.to_string(),
                    message: message.clone(),
                });
                out.refused.push((i, message));
            }
        }
    }
    for (ts, series, point) in accepted {
        let metric_type = series.metric_type.clone();
        state.descriptors.entry(metric_type).or_insert_with(|| {
            let kind = if ts.metric_kind == 0 {
                MetricKind::Gauge as i32
            } else {
                ts.metric_kind
            };
            (kind, value_type(&point.value) as i32, ts.unit.clone())
        });
        let points = state.series.entry(series).or_default();
        if state.last_only {
            points.clear();
        }
        points.push(point);
        out.written += 1;
    }
    out
}

fn value_type(v: &GcmValue) -> ValueType {
    match v {
        GcmValue::Int64(_) => ValueType::Int64,
        GcmValue::Double(_) => ValueType::Double,
    }
}

/// One time series: the point it adds, or Cloud Monitoring's complaint.
fn check(state: &State, ts: &TimeSeries, series: &GcmSeries, now: u64) -> Result<GcmPoint, String> {
    if series.metric_type.is_empty() || series.resource_type.is_empty() {
        return Err("Field timeSeries[].metric.type and resource.type are required".into());
    }
    if series.labels.len() > 30
        || series.labels.iter().any(|(k, v)| {
            !k.starts_with(|c: char| c.is_ascii_alphabetic())
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || k.len() > 100
                || v.chars().count() > 1024
        })
    {
        return Err(format!(
            "Field timeSeries[].metric.labels had an invalid value for {series}"
        ));
    }
    let [point] = ts.points.as_slice() else {
        return Err(format!(
            "Field timeSeries[].points had an invalid value: {} points given. Only one point can be written per TimeSeries per request.",
            ts.points.len()
        ));
    };
    let value = match point.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(typed_value::Value::Int64Value(n)) => GcmValue::Int64(*n),
        Some(typed_value::Value::DoubleValue(d)) if d.is_finite() => GcmValue::Double(*d),
        other => {
            return Err(format!(
                "Field timeSeries[].points[0].value had an invalid value: {other:?}"
            ));
        }
    };
    let interval = point.interval.unwrap_or_default();
    let end = ms(&interval.end_time)
        .ok_or("Field timeSeries[].points[0].interval.end_time is required")?;
    let start = ms(&interval.start_time);
    if end + MAX_AGE.as_millis() as u64 <= now {
        return Err(format!(
            "Field timeSeries[].points[0].interval.end_time had an invalid value of {end}: Data points cannot be written more than 25h in the past."
        ));
    }
    if end > now + MAX_FUTURE.as_millis() as u64 {
        return Err(format!(
            "Field timeSeries[].points[0].interval.end_time had an invalid value of {end}: Data points cannot be written more than 5m in the future."
        ));
    }
    let kind = if ts.metric_kind == 0 {
        MetricKind::Gauge as i32
    } else {
        ts.metric_kind
    };
    if ts.value_type != 0 && ts.value_type != value_type(&value) as i32 {
        return Err(format!(
            "Value type for metric {} must be {}, but is {}.",
            series.metric_type,
            name_of_type(ts.value_type),
            name_of_type(value_type(&value) as i32)
        ));
    }
    match state.descriptors.get(&series.metric_type) {
        Some((k, _, _)) if *k != kind => {
            return Err(format!(
                "The metric kind of the point ({}) does not match the metric kind of {} ({}).",
                name_of_kind(kind),
                series.metric_type,
                name_of_kind(*k)
            ));
        }
        Some((_, t, _)) if *t != value_type(&value) as i32 => {
            return Err(format!(
                "Value type for metric {} must be {}, but is {}.",
                series.metric_type,
                name_of_type(*t),
                name_of_type(value_type(&value) as i32)
            ));
        }
        None if kind != MetricKind::Gauge as i32 && kind != MetricKind::Cumulative as i32 => {
            return Err(format!(
                "The metric kind of an auto-created descriptor must be GAUGE or CUMULATIVE, not {}",
                name_of_kind(kind)
            ));
        }
        _ => {}
    }
    if kind == MetricKind::Gauge as i32 {
        if start.is_some_and(|s| s != end) {
            return Err("The start time must equal the end time for the gauge metric".into());
        }
    } else if start.is_none_or(|s| s >= end) {
        return Err(format!(
            "The start time must be before the end time ({start:?}, {end}) for the non-gauge metric {}.",
            series.metric_type
        ));
    }
    if let Some(last) = state.series.get(series).and_then(|p| p.last()) {
        if end <= last.end {
            return Err(ORDER.into());
        }
        if end < last.end + state.spacing.as_millis() as u64 {
            return Err(TOO_FREQUENT.into());
        }
        if let (Some(s), Some(last_start)) = (start, last.start) {
            if s < last_start {
                return Err(ORDER.into());
            }
            if s == last_start
                && matches!((value, last.value), (GcmValue::Int64(v), GcmValue::Int64(l)) if v < l)
            {
                return Err("The cumulative value of a point went down while its start time stayed the same.".into());
            }
            if s > last_start && s <= last.end {
                return Err(format!(
                    "The new start time {s} must be after the end time {} of the previous point.",
                    last.end
                ));
            }
        }
    }
    Ok(GcmPoint { start, end, value })
}

fn name_of_kind(k: i32) -> &'static str {
    MetricKind::try_from(k).map_or("UNKNOWN", |k| k.as_str_name())
}

fn name_of_type(t: i32) -> &'static str {
    ValueType::try_from(t).map_or("UNKNOWN", |t| t.as_str_name())
}

pub(super) fn descriptor_names(
    d: &BTreeMap<String, (i32, i32, String)>,
) -> BTreeMap<String, (String, String, String)> {
    d.iter()
        .map(|(name, (k, t, u))| {
            (
                name.clone(),
                (
                    name_of_kind(*k).to_owned(),
                    name_of_type(*t).to_owned(),
                    u.clone(),
                ),
            )
        })
        .collect()
}

/// Cumulative series as Cloud Monitoring reads them: consecutive differences within one
/// start time, and the whole first value of each new start.
pub(super) fn increase(series: &BTreeMap<GcmSeries, Vec<GcmPoint>>) -> BTreeMap<GcmSeries, u64> {
    let mut out = BTreeMap::new();
    for (s, points) in series {
        let mut total = 0u64;
        let mut prev: Option<&GcmPoint> = None;
        for p in points {
            let (Some(start), GcmValue::Int64(v)) = (p.start, p.value) else {
                continue;
            };
            let v = u64::try_from(v).unwrap_or(0);
            total += match prev {
                Some(GcmPoint {
                    start: Some(ps),
                    value: GcmValue::Int64(pv),
                    ..
                }) if *ps == start => v.saturating_sub(u64::try_from(*pv).unwrap_or(0)),
                _ => v,
            };
            prev = Some(p);
        }
        if prev.is_some() {
            out.insert(s.clone(), total);
        }
    }
    out
}
