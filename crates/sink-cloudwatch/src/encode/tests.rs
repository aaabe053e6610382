use std::sync::Arc;

use tailship_model::{Dimensions, Series, Timestamp, Unit};
use tailship_sink::{CounterStats, GaugeStats, Point, Value};

use super::*;

const T: u64 = 1_700_000_040_000;

fn series(name: &str, dims: &[(&str, &str)], unit: Unit) -> Arc<Series> {
    Arc::new(Series {
        name: name.to_owned().into(),
        dimensions: Dimensions::new(dims.iter().map(|&(k, v)| (k.to_owned(), v))),
        unit,
    })
}

fn counter(s: Arc<Series>, deltas: &[u64]) -> Point {
    let sum: u64 = deltas.iter().sum();
    Point {
        series: s,
        value: Value::Counter(CounterStats {
            start: Timestamp::from_millis(T - 600_000),
            bucket: Timestamp::from_millis(T),
            end: Timestamp::from_millis(T + 59_000),
            count: deltas.len() as u64,
            sum,
            min: deltas.iter().copied().min().unwrap_or(0),
            max: deltas.iter().copied().max().unwrap_or(0),
            cumulative: 10 * sum,
        }),
    }
}

fn gauge(s: Arc<Series>, values: &[f64]) -> Point {
    Point {
        series: s,
        value: Value::Gauge(GaugeStats {
            bucket: Timestamp::from_millis(T),
            at: Timestamp::from_millis(T + 30_000),
            count: values.len() as u64,
            sum: values.iter().sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            last: values.last().copied().unwrap_or(0.0),
        }),
    }
}

/// A datum in one line: name, dimensions, timestamp, value or statistics, unit, resolution.
fn render(d: &MetricDatum) -> String {
    let dims: Vec<String> = d
        .dimensions()
        .iter()
        .map(|x| format!("{}={}", x.name().unwrap_or("?"), x.value().unwrap_or("?")))
        .collect();
    let value = match (d.value(), d.statistic_values()) {
        (Some(v), None) => format!("value={v}"),
        (None, Some(s)) => format!(
            "stats(n={} sum={} min={} max={})",
            s.sample_count().unwrap_or(-1.0),
            s.sum().unwrap_or(-1.0),
            s.minimum().unwrap_or(-1.0),
            s.maximum().unwrap_or(-1.0)
        ),
        other => format!("INVALID {other:?}"),
    };
    format!(
        "{} [{}] t={} {} {} res={}",
        d.metric_name().unwrap_or("?"),
        dims.join(","),
        d.timestamp().map_or(-1, |t| t.to_millis().unwrap_or(-1)),
        value,
        d.unit().map_or("?", |u| u.as_str()),
        d.storage_resolution().unwrap_or(-1)
    )
}

fn check(encoder: &Encoder, point: Point, expected: &str) {
    let got = match encoder.datum(&point) {
        Ok(d) => render(&d),
        Err(r) => format!("refused {r}"),
    };
    assert_eq!(got, expected);
}

#[test]
fn one_datum_per_point() {
    let plain = Encoder::new(60, Vec::new());
    let bytes = series("tailscale.bytes.sent.total", &[], Unit::Bytes);
    let derp = series(
        "tailscale.bytes.sent.total",
        &[("path", "derp")],
        Unit::Bytes,
    );
    check(
        &plain,
        counter(bytes.clone(), &[1200]),
        "tailscale.bytes.sent.total [] t=1700000040000 value=1200 Bytes res=60",
    );
    check(
        &plain,
        counter(derp.clone(), &[100, 0, 50]),
        "tailscale.bytes.sent.total [path=derp] t=1700000040000 stats(n=3 sum=150 min=0 max=100) Bytes res=60",
    );
    check(
        &plain,
        counter(
            series("tailscale.packets.sent.total", &[], Unit::Count),
            &[0],
        ),
        "tailscale.packets.sent.total [] t=1700000040000 value=0 Count res=60",
    );
    check(
        &plain,
        gauge(
            series("tailscale.derp.home_region", &[], Unit::None),
            &[7.0],
        ),
        "tailscale.derp.home_region [] t=1700000040000 value=7 None res=60",
    );
    check(
        &plain,
        gauge(
            series("tailscale.health.messages", &[], Unit::Count),
            &[1.0, 3.0, 2.0],
        ),
        "tailscale.health.messages [] t=1700000040000 stats(n=3 sum=6 min=1 max=3) Count res=60",
    );
    let extra = Encoder::new(
        1,
        vec![
            ("cluster".into(), "prod".into()),
            ("Node".into(), "i-0abc".into()),
        ],
    );
    check(
        &extra,
        counter(derp, &[5]),
        "tailscale.bytes.sent.total [Node=i-0abc,cluster=prod,path=derp] t=1700000040000 value=5 Bytes res=1",
    );
    check(
        &plain,
        gauge(series("tailscale.x", &[], Unit::None), &[f64::NAN]),
        "refused invalid_value: NaN is not a value CloudWatch takes (finite, within ±2^360)",
    );
    check(
        &plain,
        gauge(series("tailscale.x", &[], Unit::None), &[1e200]),
        "refused invalid_value: 1e200 is not a value CloudWatch takes (finite, within ±2^360)",
    );
}

#[test]
fn admission_follows_the_label_rules() {
    let extra = Encoder::new(60, vec![("cluster".into(), "prod".into())]);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<(), &'a str>);
    let cases: &[Case<'_>] = &[
        ("tailscale.bytes.sent.total", &[("path", "derp")], Ok(())),
        (
            "tailscale.serve.bytes.sent.total",
            &[("service", "svc:web")],
            Ok(()),
        ),
        ("", &[], Err("invalid_name")),
        ("tailscale.x", &[("cluster", "dev")], Err("dimension_clash")),
        ("tailscale.x", &[("reason", "")], Err("invalid_dimension")),
        (
            "tailscale.x",
            &[("reason", "ünï")],
            Err("invalid_dimension"),
        ),
    ];
    for (name, dims, expected) in cases {
        let got = extra
            .admit(&series(name, dims, Unit::Count))
            .map_err(|r| r.reason);
        assert_eq!(got, expected.map_err(|r| r), "{name} {dims:?}");
    }
    let long = "n".repeat(MAX_METRIC_NAME_LEN + 1);
    assert_eq!(
        extra
            .admit(&series(&long, &[], Unit::Count))
            .map_err(|r| r.reason),
        Err("invalid_name")
    );
    let many: Vec<(String, String)> = (0..30).map(|i| (format!("d{i:02}"), "v".into())).collect();
    let full = Encoder::new(60, many);
    assert!(full.admit(&series("tailscale.x", &[], Unit::Count)).is_ok());
    assert_eq!(
        full.admit(&series("tailscale.x", &[("path", "derp")], Unit::Count))
            .map_err(|r| r.reason),
        Err("too_many_dimensions")
    );
}

#[test]
fn a_batch_keeps_what_it_can_and_names_what_it_cannot() {
    let e = Encoder::new(60, Vec::new());
    let ok = counter(series("tailscale.a", &[], Unit::Count), &[1]);
    let nan = gauge(series("tailscale.b", &[], Unit::None), &[f64::INFINITY]);
    let (datums, refused) = e.encode(&[ok.clone(), nan, ok]);
    assert_eq!(datums.len(), 2);
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].0, refused[0].1.reason), (1, "invalid_value"));
}

#[test]
fn the_size_bound_grows_with_names_and_dimensions() {
    let e = Encoder::new(60, vec![("cluster".into(), "prod".into())]);
    let small = counter(series("tailscale.a", &[], Unit::Count), &[1]);
    let big = counter(
        series("tailscale.a", &[("path", &"x".repeat(1000))], Unit::Count),
        &[1],
    );
    let (s, b) = (e.size_bound(&small), e.size_bound(&big));
    assert_eq!(s, DATUM_FIXED_BYTES + 11 + DIMENSION_FIXED_BYTES + 11);
    assert_eq!(b, s + DIMENSION_FIXED_BYTES + 4 + 1000);
}
