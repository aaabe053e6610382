//! Decoding a PutMetricData body and judging it by CloudWatch's documented rules
//! (API_PutMetricData, API_MetricDatum, API_Dimension, API_StatisticSet).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciborium::Value;

use super::diagnostic::diagnostic;
use super::request::{Datum, StatisticSet};

const MAX_DATUMS: usize = 1000;
const MAX_BODY: usize = 1_000_000;
const MAX_DIMENSIONS: usize = 30;
const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
const MAX_FUTURE: Duration = Duration::from_secs(2 * 3600);
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Why a request is refused, as CloudWatch would say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    /// The awsQuery error code (`x-amzn-query-error`), e.g. `InvalidParameterValue`.
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        code: "InvalidParameterValue",
        message: message.into(),
    }
}

fn missing(name: &str) -> Refusal {
    Refusal {
        status: 400,
        code: "MissingParameter",
        message: format!("The parameter {name} is required."),
    }
}

fn combination(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        code: "InvalidParameterCombination",
        message: message.into(),
    }
}

fn malformed(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        code: "SerializationException",
        message: message.into(),
    }
}

fn field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn text(v: Option<&Value>, name: &str) -> Result<Option<String>, Refusal> {
    match v {
        None => Ok(None),
        Some(Value::Text(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("{name} must be a string"))),
    }
}

fn number(v: &Value, name: &str) -> Result<f64, Refusal> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Integer(i) => Ok(i128::from(*i) as f64),
        _ => Err(malformed(format!("{name} must be a number"))),
    }
}

fn numbers(v: Option<&Value>, name: &str) -> Result<Option<Vec<f64>>, Refusal> {
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| number(x, name))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(malformed(format!("{name} must be a list"))),
    }
}

/// Decodes and judges one body (already gunzipped), at the instant `now`.
pub(crate) fn judge(body: &[u8], now: SystemTime) -> Result<(String, Vec<Datum>, String), Refusal> {
    if body.len() > MAX_BODY {
        return Err(Refusal {
            status: 413,
            code: "RequestEntityTooLarge",
            message: format!("Request size {} exceeded {MAX_BODY} bytes", body.len()),
        });
    }
    let root: Value =
        ciborium::from_reader(body).map_err(|e| malformed(format!("not CBOR: {e}")))?;
    let diagnostic = diagnostic(&root);
    let Value::Map(root) = root else {
        return Err(malformed("the body must be a map"));
    };
    let namespace =
        text(field(&root, "Namespace"), "Namespace")?.ok_or_else(|| missing("Namespace"))?;
    if namespace.is_empty()
        || namespace.len() > 255
        || namespace.starts_with(':')
        || namespace.starts_with("AWS/")
    {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid."
        )));
    }
    let items = match field(&root, "MetricData") {
        None => return Err(missing("MetricData")),
        Some(Value::Array(items)) if items.is_empty() => return Err(missing("MetricData")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(malformed("MetricData must be a list")),
    };
    if items.len() > MAX_DATUMS {
        return Err(invalid(format!(
            "The collection MetricData must not have a size greater than {MAX_DATUMS}."
        )));
    }
    let mut datums = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Map(m) = item else {
            return Err(malformed("a MetricDatum must be a map"));
        };
        datums.push(datum(m, i + 1, now)?);
    }
    Ok((namespace, datums, diagnostic))
}

fn datum(m: &[(Value, Value)], n: usize, now: SystemTime) -> Result<Datum, Refusal> {
    let at = |field: &str| format!("MetricData.member.{n}.{field}");
    let metric_name =
        text(field(m, "MetricName"), "MetricName")?.ok_or_else(|| missing(&at("MetricName")))?;
    if metric_name.is_empty() || metric_name.len() > 255 {
        return Err(invalid(format!(
            "The parameter {} must be 1 to 255 characters.",
            at("MetricName")
        )));
    }
    let mut dimensions = Vec::new();
    if let Some(v) = field(m, "Dimensions") {
        let Value::Array(dims) = v else {
            return Err(malformed("Dimensions must be a list"));
        };
        if dims.len() > MAX_DIMENSIONS {
            return Err(invalid(format!(
                "The collection {} must not have a size greater than {MAX_DIMENSIONS}.",
                at("Dimensions")
            )));
        }
        let mut names = BTreeSet::new();
        for d in dims {
            let Value::Map(d) = d else {
                return Err(malformed("a Dimension must be a map"));
            };
            let name =
                text(field(d, "Name"), "Name")?.ok_or_else(|| missing(&at("Dimensions.Name")))?;
            let value = text(field(d, "Value"), "Value")?
                .ok_or_else(|| missing(&at("Dimensions.Value")))?;
            let printable =
                |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b)) && !s.trim().is_empty();
            if name.len() > 255 || !printable(&name) || name.starts_with(':') {
                return Err(invalid(format!("The dimension name {name:?} is invalid.")));
            }
            if value.len() > 1024 || !printable(&value) {
                return Err(invalid(format!(
                    "The value {value:?} for dimension {name} is invalid."
                )));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(format!(
                    "The dimension {name} is given more than once."
                )));
            }
            dimensions.push((name, value));
        }
    }
    let timestamp = match field(m, "Timestamp") {
        None => None,
        Some(Value::Tag(1, inner)) => Some(number(inner, "Timestamp")?),
        Some(_) => return Err(malformed("Timestamp must be tag 1 (epoch seconds)")),
    };
    if let Some(t) = timestamp {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        if t < now - MAX_AGE.as_secs_f64() || t > now + MAX_FUTURE.as_secs_f64() {
            return Err(invalid(format!(
                "The parameter {} must specify a time no more than two weeks in the past and two hours in the future.",
                at("Timestamp")
            )));
        }
    }
    let value = field(m, "Value").map(|v| number(v, "Value")).transpose()?;
    let statistic_values = match field(m, "StatisticValues") {
        None => None,
        Some(Value::Map(s)) => {
            let get = |k: &str| {
                field(s, k)
                    .ok_or_else(|| missing(&at(&format!("StatisticValues.{k}"))))
                    .and_then(|v| number(v, k))
            };
            Some(StatisticSet {
                sample_count: get("SampleCount")?,
                sum: get("Sum")?,
                minimum: get("Minimum")?,
                maximum: get("Maximum")?,
            })
        }
        Some(_) => return Err(malformed("StatisticValues must be a map")),
    };
    let values = numbers(field(m, "Values"), "Values")?;
    let counts = numbers(field(m, "Counts"), "Counts")?;
    let given = [
        value.is_some(),
        statistic_values.is_some(),
        values.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => return Err(missing(&at("Value"))),
        1 => {}
        _ => {
            return Err(combination(format!(
                "The parameters {0}, {1} and {2} are mutually exclusive.",
                at("Value"),
                at("StatisticValues"),
                at("Values")
            )));
        }
    }
    if counts.is_some() && values.as_ref().map(Vec::len) != counts.as_ref().map(Vec::len) {
        return Err(combination("Values and Counts must have the same length."));
    }
    let mut all: Vec<f64> = value
        .into_iter()
        .chain(values.iter().flatten().copied())
        .collect();
    if let Some(s) = &statistic_values {
        all.extend([s.sample_count, s.sum, s.minimum, s.maximum]);
        if s.sample_count <= 0.0 || s.minimum > s.maximum {
            return Err(invalid(format!(
                "The parameter {} is invalid: SampleCount must be positive and Minimum at most Maximum.",
                at("StatisticValues")
            )));
        }
    }
    if let Some(v) = all
        .iter()
        .find(|v| !v.is_finite() || v.abs() > 2f64.powi(360))
    {
        return Err(invalid(format!(
            "The value {v} for parameter {} is invalid.",
            at("Value")
        )));
    }
    let unit = text(field(m, "Unit"), "Unit")?;
    if let Some(u) = &unit
        && !UNITS.contains(&u.as_str())
    {
        return Err(invalid(format!(
            "The value {u} for parameter {} is invalid.",
            at("Unit")
        )));
    }
    let storage_resolution = match field(m, "StorageResolution") {
        None => None,
        Some(Value::Integer(i)) => Some(i128::from(*i)),
        Some(_) => return Err(malformed("StorageResolution must be an integer")),
    };
    if storage_resolution.is_some_and(|r| r != 1 && r != 60) {
        return Err(invalid(format!(
            "The parameter {} must be 1 or 60.",
            at("StorageResolution")
        )));
    }
    Ok(Datum {
        metric_name,
        dimensions,
        timestamp,
        value,
        statistic_values,
        values,
        counts,
        unit,
        storage_resolution,
    })
}
