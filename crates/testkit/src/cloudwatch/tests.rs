use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciborium::Value;

use super::rules::judge;

const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn ts(secs: f64) -> Value {
    Value::Tag(1, Box::new(Value::Float(secs)))
}

fn dim(name: &str, value: &str) -> Value {
    map(vec![("Name", name.into()), ("Value", value.into())])
}

/// A valid datum, with `edit` applied to its entries.
fn datum(edit: impl FnOnce(&mut Vec<(&'static str, Value)>)) -> Value {
    let mut entries = vec![
        ("MetricName", "tailscale.bytes.sent.total".into()),
        ("Dimensions", Value::Array(vec![dim("path", "derp")])),
        ("Timestamp", ts(NOW as f64 - 60.0)),
        ("Value", Value::Float(1200.0)),
        ("Unit", "Bytes".into()),
        ("StorageResolution", 60.into()),
    ];
    edit(&mut entries);
    map(entries)
}

fn set(entries: &mut Vec<(&'static str, Value)>, key: &'static str, v: Option<Value>) {
    entries.retain(|(k, _)| *k != key);
    if let Some(v) = v {
        entries.push((key, v));
    }
}

/// The error code the fake answers for a request (`ok` when it accepts it).
fn check(namespace: &str, data: Vec<Value>, expected: &str) {
    let body = map(vec![
        ("Namespace", namespace.into()),
        ("MetricData", Value::Array(data)),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&body, &mut bytes).unwrap();
    let got = match judge(&bytes, now()) {
        Ok(_) => "ok".to_owned(),
        Err(r) => r.code.to_owned(),
    };
    assert_eq!(got, expected, "{}", super::diagnostic::diagnostic(&body));
}

#[test]
fn the_documented_limits() {
    check("Tailscale", vec![datum(|_| {})], "ok");
    check("Tailscale", vec![datum(|_| {}); 1000], "ok");
    check(
        "Tailscale",
        vec![datum(|_| {}); 1001],
        "InvalidParameterValue",
    );
    check("Tailscale", vec![], "MissingParameter");
    check("AWS/EC2", vec![datum(|_| {})], "InvalidParameterValue");
    let stats = map(vec![
        ("SampleCount", Value::Float(2.0)),
        ("Sum", Value::Float(3.0)),
        ("Minimum", Value::Float(1.0)),
        ("Maximum", Value::Float(2.0)),
    ]);
    let cases: Vec<(Value, &str)> = vec![
        (
            datum(|e| set(e, "Value", Some(Value::Float(f64::NAN)))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "Value", Some(Value::Float(1e109)))),
            "InvalidParameterValue",
        ),
        (datum(|e| set(e, "Value", None)), "MissingParameter"),
        (
            datum(|e| set(e, "StatisticValues", Some(stats.clone()))),
            "InvalidParameterCombination",
        ),
        (
            datum(|e| {
                set(e, "Value", None);
                set(e, "StatisticValues", Some(stats.clone()));
            }),
            "ok",
        ),
        (
            datum(|e| set(e, "Timestamp", Some(ts(NOW as f64 - 15.0 * 86400.0)))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "Timestamp", Some(ts(NOW as f64 + 3.0 * 3600.0)))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "Timestamp", Some(ts(NOW as f64 + 3600.0)))),
            "ok",
        ),
        (
            datum(|e| set(e, "Unit", Some("Furlongs".into()))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "StorageResolution", Some(30.into()))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "MetricName", Some("n".repeat(256).into()))),
            "InvalidParameterValue",
        ),
        (datum(|e| set(e, "MetricName", None)), "MissingParameter"),
        (
            datum(|e| {
                let dims = (0..31).map(|i| dim(&format!("d{i}"), "v")).collect();
                set(e, "Dimensions", Some(Value::Array(dims)));
            }),
            "InvalidParameterValue",
        ),
        (
            datum(|e| {
                set(
                    e,
                    "Dimensions",
                    Some(Value::Array(vec![dim("a", "1"), dim("a", "2")])),
                )
            }),
            "InvalidParameterValue",
        ),
        (
            datum(|e| set(e, "Dimensions", Some(Value::Array(vec![dim("path", "")])))),
            "InvalidParameterValue",
        ),
        (
            datum(|e| {
                set(
                    e,
                    "Dimensions",
                    Some(Value::Array(vec![dim("path", &"v".repeat(1025))])),
                )
            }),
            "InvalidParameterValue",
        ),
        (
            datum(|e| {
                set(
                    e,
                    "Dimensions",
                    Some(Value::Array(vec![dim("path", &"v".repeat(1024))])),
                )
            }),
            "ok",
        ),
    ];
    for (d, expected) in cases {
        check("Tailscale", vec![d], expected);
    }
}

#[test]
fn the_size_limit_is_on_the_decompressed_body() {
    let big = datum(|e| {
        set(
            e,
            "Dimensions",
            Some(Value::Array(vec![dim("path", &"v".repeat(1024))])),
        )
    });
    // About 1.1 kB each: 1000 of them pass 1 MB.
    let body = map(vec![
        ("Namespace", "Tailscale".into()),
        ("MetricData", Value::Array(vec![big; 1000])),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&body, &mut bytes).unwrap();
    assert!(bytes.len() > 1_000_000);
    assert_eq!(
        judge(&bytes, now()).map(|_| ()).map_err(|r| r.status),
        Err(413)
    );
}
