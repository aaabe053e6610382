//! One full `CreateTimeSeries` request of 200 time series (Cloud Monitoring's cap) as
//! `GcmSink::send` makes it: the sink's `Encoder`, points → the request's protobuf bytes,
//! which tonic then sends as they are. Beside it, for comparison, the way it was made before:
//! the prost messages (`Encoder::time_series`, the tests' reference) and `Message::encode`,
//! which is what tonic's prost codec runs on them.
//!
//! `cargo bench -p tailship-sink-gcm --bench encode`; the figures are in docs/PERFORMANCE.md.
//! Under `cargo test` each benchmark runs once.

use std::collections::BTreeMap;
use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use gcloud_sdk::google::monitoring::v3::CreateTimeSeriesRequest;
use gcloud_sdk::prost::Message as _;
use tailship_model::{Dimensions, Series, Timestamp, Unit};
use tailship_sink::{CounterStats, Point, Value};
use tailship_sink_gcm::{
    DEFAULT_METRIC_PREFIX, Encoded, Encoder, MAX_REQUEST_BYTES, MAX_SERIES_PER_REQUEST, Resource,
};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

const T: u64 = 1_700_000_040_000;

const SERIES: &[(&str, &str)] = &[
    (
        "tailscale.serve.bytes.received.total",
        "Cumulative count of bytes received on Serve connections for Tailscale Services, by service",
    ),
    (
        "tailscale.serve.bytes.sent.total",
        "Cumulative count of bytes sent on Serve connections for Tailscale Services, by service",
    ),
];

fn main() {
    divan::main();
}

/// The sink's encoder as `GcmSink` builds it on GKE: the default prefix, a `k8s_container`
/// resource, the catalog's descriptions.
fn encoder() -> Encoder {
    let resource = Resource {
        kind: "k8s_container".to_owned(),
        labels: BTreeMap::from(
            [
                ("cluster_name", "prod"),
                ("container_name", "tailship"),
                ("location", "europe-west1"),
                ("namespace_name", "tailscale"),
                ("pod_name", "ts-router-0"),
                ("project_id", "my-project-123456"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        ),
    };
    let descriptions = SERIES
        .iter()
        .map(|&(name, text)| (name.to_owned(), text.to_owned()))
        .collect();
    Encoder::new(
        "my-project-123456",
        DEFAULT_METRIC_PREFIX,
        &resource,
        Arc::new(descriptions),
    )
}

/// A flush of 200 series, one point each: the Serve byte counters by Service, in and out
/// (the way one node reaches thousands of series), as running totals.
fn batch(n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| {
            let step = 1_000 + i as u64 * 37;
            Point {
                series: Arc::new(Series {
                    name: SERIES[i % 2].0.into(),
                    dimensions: Dimensions::new([("service", format!("svc:app-{}", i / 2))]),
                    unit: Unit::Bytes,
                }),
                value: Value::Counter(CounterStats {
                    start: Timestamp::from_millis(T - 86_400_000),
                    bucket: Timestamp::from_millis(T),
                    end: Timestamp::from_millis(T + 59_000),
                    count: 1,
                    sum: step,
                    min: step,
                    max: step,
                    cumulative: 1_234_567_890 + i as u64,
                }),
            }
        })
        .collect()
}

/// Points → the request's bytes, as `send` makes them.
fn body(encoder: &Encoder, points: &[Point]) -> Vec<u8> {
    let Encoded { requests, refused } = encoder.encode(points);
    debug_assert!(refused.is_empty() && requests.len() == 1);
    requests
        .into_iter()
        .next()
        .map(|(body, _)| body)
        .unwrap_or_default()
}

/// Points → prost messages → bytes: the request built before `Encoder::encode` wrote bytes.
fn prost_body(encoder: &Encoder, points: &[Point]) -> Vec<u8> {
    CreateTimeSeriesRequest {
        name: encoder.name.clone(),
        time_series: points
            .iter()
            .filter_map(|p| encoder.time_series(p).ok())
            .collect(),
    }
    .encode_to_vec()
}

/// The sink's step: points → the request's protobuf bytes (`Encoder::encode`).
#[divan::bench]
fn request(bencher: Bencher<'_, '_>) {
    let (encoder, points) = (encoder(), batch(MAX_SERIES_PER_REQUEST));
    let len = body(&encoder, &points).len();
    assert!(len > points.len() * 100 && len < MAX_REQUEST_BYTES);
    assert_eq!(
        CreateTimeSeriesRequest::decode(&*body(&encoder, &points)),
        CreateTimeSeriesRequest::decode(&*prost_body(&encoder, &points)),
        "the bytes are the prost request's"
    );
    bencher
        .counter(ItemsCount::new(points.len()))
        .bench_local(|| body(&encoder, black_box(&points)));
}

/// The same bytes through prost, for comparison: `TimeSeries` messages, then
/// `Message::encode`.
#[divan::bench]
fn prost(bencher: Bencher<'_, '_>) {
    let (encoder, points) = (encoder(), batch(MAX_SERIES_PER_REQUEST));
    assert_eq!(
        prost_body(&encoder, &points).len(),
        body(&encoder, &points).len()
    );
    bencher
        .counter(ItemsCount::new(points.len()))
        .bench_local(|| prost_body(&encoder, black_box(&points)));
}
