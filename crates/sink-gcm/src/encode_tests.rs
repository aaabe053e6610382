//! Snapshots of the exact requests, the chunking rules, and the bytes against prost's
//! encoding of the same requests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::monitoring::v3::{CreateTimeSeriesRequest, typed_value};
use gcloud_sdk::prost::Message as _;
use proptest::prelude::*;
use proptest::sample::Index;
use tailship_model::{Dimensions, Series, Timestamp, Unit};
use tailship_sink::{CounterStats, GaugeStats, Point, Value};

use super::*;
use crate::Resource;

const T0: u64 = 1_700_000_000_000;

fn encoder() -> Encoder {
    let resource = Resource {
        kind: "gce_instance".into(),
        labels: BTreeMap::from([
            ("instance_id".into(), "4242".into()),
            ("project_id".into(), "proj-1".into()),
            ("zone".into(), "europe-west1-b".into()),
        ]),
    };
    let descriptions = BTreeMap::from([(
        "tailscale.bytes.sent.total".to_owned(),
        "Cumulative count of bytes transmitted".to_owned(),
    )]);
    Encoder::new(
        "proj-1",
        "workload.googleapis.com/",
        &resource,
        Arc::new(descriptions),
    )
}

fn series(name: &str, dims: &[(&str, &str)], unit: Unit) -> Arc<Series> {
    Arc::new(Series {
        name: name.to_owned().into(),
        dimensions: Dimensions::new(dims.iter().map(|&(k, v)| (k.to_owned(), v))),
        unit,
    })
}

fn counter(s: Arc<Series>, start: u64, end: u64, cumulative: u64) -> Point {
    Point {
        series: s,
        value: Value::Counter(CounterStats {
            start: Timestamp::from_millis(T0 + start),
            bucket: Timestamp::from_millis(T0 + end),
            end: Timestamp::from_millis(T0 + end),
            count: 1,
            sum: 7,
            min: 7,
            max: 7,
            cumulative,
        }),
    }
}

fn gauge(s: Arc<Series>, at: u64, v: f64) -> Point {
    Point {
        series: s,
        value: Value::Gauge(GaugeStats {
            bucket: Timestamp::from_millis(T0 + at),
            at: Timestamp::from_millis(T0 + at),
            count: 1,
            sum: v,
            min: v,
            max: v,
            last: v,
        }),
    }
}

/// A request body as the service reads it.
fn decode(body: &[u8]) -> CreateTimeSeriesRequest {
    CreateTimeSeriesRequest::decode(body).expect("a body decodes")
}

/// Every field of a request, labels sorted (protobuf maps have no order).
fn render(req: &CreateTimeSeriesRequest) -> String {
    let ts = |t: &Option<gcloud_sdk::prost_types::Timestamp>| {
        t.as_ref()
            .map_or("-".to_owned(), |t| format!("{}.{:09}", t.seconds, t.nanos))
    };
    let labels = |m: &std::collections::HashMap<String, String>| {
        let sorted: BTreeMap<_, _> = m.iter().collect();
        sorted
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!("name: {}\n", req.name);
    for t in &req.time_series {
        let metric = t.metric.as_ref().expect("metric");
        let resource = t.resource.as_ref().expect("resource");
        let kind = MetricKind::try_from(t.metric_kind)
            .expect("kind")
            .as_str_name();
        let value_type = ValueType::try_from(t.value_type)
            .expect("type")
            .as_str_name();
        writeln!(out, "time_series:").unwrap();
        writeln!(
            out,
            "  metric: {} {{{}}}",
            metric.r#type,
            labels(&metric.labels)
        )
        .unwrap();
        writeln!(
            out,
            "  resource: {} {{{}}}",
            resource.r#type,
            labels(&resource.labels)
        )
        .unwrap();
        writeln!(out, "  metadata: {:?}", t.metadata).unwrap();
        writeln!(
            out,
            "  metric_kind: {kind}  value_type: {value_type}  unit: {:?}",
            t.unit
        )
        .unwrap();
        writeln!(out, "  description: {:?}", t.description).unwrap();
        for p in &t.points {
            let i = p.interval.as_ref().expect("interval");
            let v = match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(typed_value::Value::Int64Value(n)) => format!("int64 {n}"),
                Some(typed_value::Value::DoubleValue(d)) => format!("double {d:?}"),
                other => format!("{other:?}"),
            };
            writeln!(
                out,
                "  point: start {} end {} {v}",
                ts(&i.start_time),
                ts(&i.end_time)
            )
            .unwrap();
        }
    }
    out
}

/// Compares with `src/snapshots/NAME.txt`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from {}", path.display());
}

#[test]
fn counters_are_cumulative_int64_and_gauges_double() {
    let sent = series("tailscale.bytes.sent.total", &[], Unit::Bytes);
    let derp = series(
        "tailscale.bytes.sent.total",
        &[("path", "derp")],
        Unit::Bytes,
    );
    let routes = series("tailscale.routes.advertised", &[], Unit::Count);
    let region = series("tailscale.derp.home_region", &[], Unit::None);
    let points = [
        counter(sent, 0, 10_250, 24_000),
        counter(derp, 0, 10_250, 1_200),
        gauge(routes, 10_250, 2.0),
        gauge(region, 10_250, 17.0),
    ];
    let encoded = encoder().encode(&points);
    assert!(encoded.refused.is_empty());
    assert_eq!(encoded.requests.len(), 1);
    assert_eq!(encoded.requests[0].1, vec![0, 1, 2, 3]);
    snapshot(
        "counters_and_gauges",
        &render(&decode(&encoded.requests[0].0)),
    );
}

/// The fewest requests: ceil(series / 200), in order, each series once per request.
#[test]
fn batches_split_into_the_fewest_requests() {
    let e = encoder();
    for (n, expected) in [
        (1, vec![1]),
        (200, vec![200]),
        (201, vec![200, 1]),
        (450, vec![200, 200, 50]),
    ] {
        let points: Vec<Point> = (0..n)
            .map(|i| {
                counter(
                    series("tailscale.x.total", &[("k", &i.to_string())], Unit::Count),
                    0,
                    10_000,
                    i,
                )
            })
            .collect();
        let encoded = e.encode(&points);
        let sizes: Vec<usize> = encoded
            .requests
            .iter()
            .map(|(r, ix)| {
                assert_eq!(decode(r).time_series.len(), ix.len());
                ix.len()
            })
            .collect();
        assert_eq!(sizes, expected, "{n} series");
        let order: Vec<usize> = encoded
            .requests
            .iter()
            .flat_map(|(_, ix)| ix.clone())
            .collect();
        assert_eq!(order, (0..n as usize).collect::<Vec<_>>());
    }
}

/// Two points of one series never share a request; the older goes first.
#[test]
fn a_series_is_in_a_request_at_most_once() {
    let s = series("tailscale.bytes.sent.total", &[], Unit::Bytes);
    let other = series("tailscale.bytes.received.total", &[], Unit::Bytes);
    let points = [
        counter(Arc::clone(&s), 0, 10_000, 5),
        counter(other, 0, 10_000, 9),
        counter(s, 0, 20_000, 8),
    ];
    let encoded = encoder().encode(&points);
    let ix: Vec<Vec<usize>> = encoded.requests.iter().map(|(_, ix)| ix.clone()).collect();
    assert_eq!(ix, vec![vec![0, 1], vec![2]]);
}

#[test]
fn a_non_finite_gauge_is_refused_not_sent() {
    let g = series("tailscale.routes.advertised", &[], Unit::Count);
    let points = [gauge(Arc::clone(&g), 1_000, f64::NAN), gauge(g, 1_000, 1.0)];
    let encoded = encoder().encode(&points);
    assert_eq!(encoded.refused.len(), 1);
    assert_eq!(encoded.refused[0].0, 0);
    assert_eq!(encoded.refused[0].1.reason, "not_finite");
    assert_eq!(encoded.requests[0].1, vec![1]);
}

/// `encoded_size` is exactly what a point adds to a request.
#[test]
fn encoded_size_is_exact() {
    let e = encoder();
    let points = [
        counter(
            series(
                "tailscale.bytes.sent.total",
                &[("path", "direct_ipv4")],
                Unit::Bytes,
            ),
            0,
            10_000,
            1 << 40,
        ),
        gauge(
            series(
                "tailscale.health.messages",
                &[("type", "warning")],
                Unit::Count,
            ),
            10_000,
            3.0,
        ),
    ];
    let encoded = e.encode(&points);
    let body = &encoded.requests[0].0;
    let request = decode(body);
    let empty = CreateTimeSeriesRequest {
        name: request.name.clone(),
        time_series: Vec::new(),
    };
    let sizes: usize = points.iter().map(|p| e.encoded_size(p)).sum();
    assert_eq!(request.encoded_len(), empty.encoded_len() + sizes);
    assert_eq!(body.len(), empty.encoded_len() + sizes);
}

/// `encoded_size` counts without building the message: it agrees with the message's own
/// length for every shape a point can take (no dimensions or many, empty and long values,
/// multi-byte text, whole seconds, time 0, totals of every varint length and past
/// `i64::MAX`, gauges of any value, a name the catalog does not describe).
#[test]
fn encoded_size_agrees_with_the_message_for_every_shape() {
    let e = encoder();
    let long = "v".repeat(1024);
    let dims: [&[(&str, &str)]; 5] = [
        &[],
        &[("path", "direct_ipv4")],
        &[("path", ""), ("reason", "too_short")],
        &[("ünï", "cödé ✓"), ("b", long.as_str())],
        &[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", "5"),
            ("f", "6"),
        ],
    ];
    let names = [
        "tailscale.bytes.sent.total",
        "tailscale.derived.some.family.nobody.describes",
    ];
    let mut checked = 0;
    for name in names {
        for d in dims {
            for unit in [Unit::Bytes, Unit::Count, Unit::None] {
                let s = series(name, d, unit);
                let mut points = Vec::new();
                for total in [0, 1, 127, 128, 1 << 40, u64::MAX] {
                    for (start, end) in [(0, 10_000), (0, 10_001), (999, 1_000_000)] {
                        points.push(counter(Arc::clone(&s), start, end, total));
                    }
                }
                let mut zero = counter(Arc::clone(&s), 0, 0, 5);
                if let Value::Counter(c) = &mut zero.value {
                    c.start = Timestamp::from_millis(0);
                    c.end = Timestamp::from_millis(0);
                }
                points.push(zero);
                for v in [0.0, -1.5, 3.0, f64::MAX] {
                    points.push(gauge(Arc::clone(&s), 10_000, v));
                    points.push(gauge(Arc::clone(&s), 10_123, v));
                }
                for p in &points {
                    let ts = e.time_series(p).unwrap();
                    let n = ts.encoded_len();
                    let want = n + 1 + gcloud_sdk::prost::length_delimiter_len(n);
                    assert_eq!(e.encoded_size(p), want, "{p:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 5 * 3 * (6 * 3 + 1 + 8));
    // A point `encode` refuses adds nothing.
    let nan = gauge(series("tailscale.x", &[], Unit::None), 10_000, f64::NAN);
    assert_eq!(e.encoded_size(&nan), 0);
}

#[test]
fn label_rules() {
    let check = |dims: Vec<(String, String)>, ok: bool| {
        let s = Series {
            name: "tailscale.foo.total".into(),
            dimensions: Dimensions::new(dims),
            unit: Unit::Count,
        };
        let r = admit(&s);
        assert_eq!(r.is_ok(), ok, "{s}: {r:?}");
        if let Err(r) = r {
            assert_eq!(r.reason, "invalid_labels");
        }
    };
    let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    check(vec![kv("path", "derp")], true);
    check(vec![kv("_private", "x")], false);
    check(vec![kv("9lives", "x")], false);
    check(vec![kv("has-dash", "x")], false);
    check(vec![kv(&"k".repeat(100), "x")], true);
    check(vec![kv(&"k".repeat(101), "x")], false);
    check(vec![kv("k", &"é".repeat(1024))], true);
    check(vec![kv("k", &"v".repeat(1025))], false);
    check((0..30).map(|i| kv(&format!("k{i}"), "v")).collect(), true);
    check((0..31).map(|i| kv(&format!("k{i}"), "v")).collect(), false);
}

#[test]
fn timestamps_keep_milliseconds() {
    let t = timestamp(Timestamp::from_millis(1_700_000_000_250));
    assert_eq!((t.seconds, t.nanos), (1_700_000_000, 250_000_000));
}

/// Any text: short pieces of a small alphabet (so that series repeat and labels are often
/// empty), any characters at all, and runs longer than a one-byte length.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a_é✓.]{0,4}",
        2 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => "[a-z]{100,200}",
    ]
}

/// Two names the catalog describes, one it does not, and any other text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("tailscale.bytes.sent.total".to_owned()),
        Just("tailscale.routes.advertised".to_owned()),
        Just("tailscale.derived.some.family".to_owned()),
        text(),
    ]
}

/// Any project, prefix (empty too), resource (no labels to a few), and descriptions of some
/// names (empty ones too).
fn encoders() -> impl Strategy<Value = Encoder> {
    let prefix = prop::sample::select(vec![
        "",
        "workload.googleapis.com/",
        "custom.googleapis.com/a/",
    ]);
    (
        text(),
        prefix,
        text(),
        prop::collection::btree_map(text(), text(), 0..3),
        prop::collection::btree_map(name(), text(), 0..4),
    )
        .prop_map(|(project, prefix, kind, labels, descriptions)| {
            Encoder::new(
                &project,
                prefix,
                &Resource { kind, labels },
                Arc::new(descriptions),
            )
        })
}

/// Times in milliseconds: 0, within second 0, whole seconds, today's, and any.
fn millis() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        0..3_000u64,
        (0..2_000_000_000u64).prop_map(|s| s * 1000),
        1_600_000_000_000..1_800_000_000_000u64,
        any::<u64>(),
    ]
}

/// Counters of any total (0, past `i64::MAX`), gauges of any value (not finite ones too).
fn values() -> impl Strategy<Value = Value> {
    let total = prop_oneof![Just(0), 0..300u64, any::<u64>(), i64::MAX as u64..];
    let last = prop_oneof![
        any::<f64>(),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ];
    prop_oneof![
        (millis(), millis(), total).prop_map(|(start, end, cumulative)| {
            Value::Counter(CounterStats {
                start: Timestamp::from_millis(start),
                bucket: Timestamp::from_millis(end),
                end: Timestamp::from_millis(end),
                count: 1,
                sum: 1,
                min: 1,
                max: 1,
                cumulative,
            })
        }),
        (millis(), last).prop_map(|(at, last)| {
            Value::Gauge(GaugeStats {
                bucket: Timestamp::from_millis(at),
                at: Timestamp::from_millis(at),
                count: 1,
                sum: last,
                min: last,
                max: last,
                last,
            })
        }),
    ]
}

/// Points of a few series, repeated (a series' second point goes to a second request);
/// sometimes after hundreds of distinct series, more than one request holds.
fn batches() -> impl Strategy<Value = Vec<Point>> {
    let unit = prop::sample::select(vec![Unit::Bytes, Unit::Count, Unit::None]);
    let any_series = (
        name(),
        prop::collection::btree_map(text(), text(), 0..=4),
        unit,
    )
        .prop_map(|(name, dims, unit)| {
            Arc::new(Series {
                name: name.into(),
                dimensions: Dimensions::new(dims),
                unit,
            })
        });
    let wide = prop_oneof![5 => Just(0), 1 => 150..450usize];
    (
        wide,
        prop::collection::vec(any_series, 1..6),
        prop::collection::vec((any::<Index>(), values()), 0..40),
    )
        .prop_map(|(wide, pool, picks)| {
            let many = (0..wide).map(|i| {
                counter(
                    series(
                        "tailscale.wide.total",
                        &[("i", &i.to_string())],
                        Unit::Count,
                    ),
                    0,
                    10_000,
                    i as u64,
                )
            });
            let few = picks.into_iter().map(|(ix, value)| Point {
                series: Arc::clone(ix.get(&pool)),
                value,
            });
            many.chain(few).collect()
        })
}

proptest! {
    /// Each body decodes to exactly the request prost builds from the same points, is as
    /// long as the request's name and the points' `encoded_size`, and is prost's very bytes
    /// when no map has two entries to order; the chunking rules hold.
    #[test]
    fn bodies_are_the_prost_requests(e in encoders(), points in batches()) {
        let encoded = e.encode(&points);
        let not_finite: Vec<usize> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(&p.value, Value::Gauge(g) if !g.last.is_finite()))
            .map(|(i, _)| i)
            .collect();
        let mut refused = Vec::new();
        for (i, r) in &encoded.refused {
            prop_assert_eq!(r.reason, "not_finite");
            prop_assert_eq!(e.encoded_size(&points[*i]), 0);
            refused.push(*i);
        }
        prop_assert_eq!(&refused, &not_finite);

        let name = CreateTimeSeriesRequest {
            name: e.name.clone(),
            time_series: Vec::new(),
        }
        .encoded_len();
        let mut request_of: Vec<Option<usize>> = vec![None; points.len()];
        for (r, (body, ix)) in encoded.requests.iter().enumerate() {
            prop_assert!(!ix.is_empty() && ix.len() <= MAX_SERIES_PER_REQUEST);
            prop_assert!(ix.windows(2).all(|w| w[0] < w[1]));
            let distinct: HashSet<&Series> = ix.iter().map(|&i| &*points[i].series).collect();
            prop_assert_eq!(distinct.len(), ix.len(), "a series twice in one request");
            for &i in ix {
                prop_assert_eq!(request_of[i].replace(r), None);
            }

            let want = CreateTimeSeriesRequest {
                name: e.name.clone(),
                time_series: ix.iter().map(|&i| e.time_series(&points[i]).unwrap()).collect(),
            };
            prop_assert_eq!(&decode(body), &want);
            let sizes: usize = ix.iter().map(|&i| e.encoded_size(&points[i])).sum();
            prop_assert_eq!(body.len(), name + sizes);
            let ordered = e.resource.labels.len() <= 1
                && ix.iter().all(|&i| points[i].series.dimensions.len() <= 1);
            if ordered {
                prop_assert_eq!(body, &want.encode_to_vec());
            }
        }

        // Every point not refused is sent once, a series' later points in later requests.
        let mut last: HashMap<&Series, usize> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            prop_assert_eq!(request_of[i].is_none(), not_finite.contains(&i));
            if let Some(r) = request_of[i]
                && let Some(earlier) = last.insert(&p.series, r)
            {
                prop_assert!(earlier < r);
            }
        }
    }
}
