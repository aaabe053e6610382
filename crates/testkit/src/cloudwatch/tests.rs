use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciborium::Value;

use super::rules::judge;
use super::{FakeCloudWatch, PUT_METRIC_DATA_PATH};

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

/// One PutMetricData over `stream` (HTTP/1.1, kept alive), signed as the SDK signs; the
/// answer's status.
fn post(stream: &mut std::net::TcpStream, body: &[u8]) -> u16 {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let head = format!(
        "POST {PUT_METRIC_DATA_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nsmithy-protocol: rpc-v2-cbor\r\n\
         Content-Type: application/cbor\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(body).expect("write the body");
    let mut reader = BufReader::new(stream);
    let (mut status, mut length) = (0, 0);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the answer");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            status = rest[..3].parse().expect("a status");
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("read the body");
    status
}

#[test]
fn arrivals_and_connections_are_counted_and_accepted_requests_may_be_let_go() {
    let fake = FakeCloudWatch::start();
    fake.set_now(Some(now()));
    let body = map(vec![
        ("Namespace", "Tailscale".into()),
        (
            "MetricData",
            Value::Array(vec![
                datum(|d| set(d, "Timestamp", Some(ts(NOW as f64 - 120.0)))),
                datum(|_| {}),
            ]),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&body, &mut bytes).unwrap();
    let addr = fake.endpoint().trim_start_matches("http://").to_owned();
    let mut first = std::net::TcpStream::connect(&addr).unwrap();
    assert_eq!(post(&mut first, &bytes), 200);
    assert_eq!(
        post(&mut first, &bytes),
        200,
        "the same connection, kept alive"
    );
    fake.set_keep_accepted(false);
    let mut second = std::net::TcpStream::connect(&addr).unwrap();
    assert_eq!(post(&mut second, &bytes), 200);
    assert_eq!(post(&mut second, b"not CBOR"), 400);

    assert_eq!(fake.connections(), 2);
    assert_eq!(fake.requests(), 4);
    assert_eq!(fake.accepted().len(), 2, "the third was judged, not kept");
    let arrivals = fake.arrivals();
    let seen: Vec<(usize, bool, Option<SystemTime>)> = arrivals
        .iter()
        .map(|a| (a.points, a.accepted, a.newest))
        .collect();
    let bucket = Some(UNIX_EPOCH + Duration::from_secs(NOW - 60));
    assert_eq!(
        seen,
        [
            (2, true, bucket),
            (2, true, bucket),
            (2, true, bucket),
            (0, false, None)
        ]
    );
    assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
}
