//! One full `PutMetricData` request of 1,000 datums (CloudWatch's cap) as `CloudWatchSink::send`
//! makes it, in three steps: the sink's `Encoder` (points → `MetricDatum`s), then the SDK's own
//! PutMetricData serializer (Smithy RPC v2 CBOR: the request body), then the SDK's gzip of that
//! body (the client compresses bodies from 10 KiB on). Each step is the code `send` runs; the
//! serializer and the gzip step are called here as the SDK's orchestrator calls them.
//!
//! `cargo bench -p tailship-sink-cloudwatch --bench encode`; the figures are in
//! docs/PERFORMANCE.md. Under `cargo test` each benchmark runs once, at 100 points: the test
//! build is not optimised, and gzip is slow there.

use std::sync::Arc;

use aws_sdk_cloudwatch::config::{ConfigBag, RuntimePlugin as _};
use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricData, PutMetricDataInput};
use aws_smithy_compression::body::compress::CompressedBody;
use aws_smithy_compression::{CompressionAlgorithm, CompressionOptions};
use aws_smithy_runtime_api::client::interceptors::context::Input;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::ser_de::{SerializeRequest as _, SharedRequestSerializer};
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use tailship_model::{Dimensions, Series, Timestamp, Unit};
use tailship_sink::{CounterStats, Point, Value};
use tailship_sink_cloudwatch::{Encoder, MAX_DATUMS, MAX_REQUEST_BYTES};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// Points per request: CloudWatch's cap under `cargo bench` (which passes `--bench`).
fn points() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        &[MAX_DATUMS]
    } else {
        &[100]
    }
}

/// Scrapes per bucket: 1 gives a datum with `Value` (the default 60 s interval in 60 s
/// buckets), 6 one with `StatisticValues` (a 10 s interval).
const SCRAPES: [u64; 2] = [1, 6];

const T: u64 = 1_700_000_040_000;

fn main() {
    divan::main();
}

/// The sink's encoder as `CloudWatchSink` builds it: 60 s resolution, a static dimension
/// and the node's.
fn encoder() -> Encoder {
    Encoder::new(
        60,
        vec![
            ("Cluster".to_owned(), "prod-eu-west-1".to_owned()),
            (
                "Node".to_owned(),
                "ip-10-0-12-34.eu-west-1.compute.internal".to_owned(),
            ),
        ],
    )
}

/// A flush of `n` series, one bucket each: the Serve byte counters by Service, in and out
/// (the way one node reaches thousands of series), `scrapes` deltas per bucket.
fn batch(n: usize, scrapes: u64) -> Vec<Point> {
    (0..n)
        .map(|i| {
            let (name, service) = if i % 2 == 0 {
                ("tailscale.serve.bytes.received.total", i / 2)
            } else {
                ("tailscale.serve.bytes.sent.total", i / 2)
            };
            let step = 1_000 + i as u64 * 37;
            Point {
                series: Arc::new(Series {
                    name: name.to_owned().into(),
                    dimensions: Dimensions::new([("service", format!("svc:app-{service}"))]),
                    unit: Unit::Bytes,
                }),
                value: Value::Counter(CounterStats {
                    start: Timestamp::from_millis(T - 86_400_000),
                    bucket: Timestamp::from_millis(T),
                    end: Timestamp::from_millis(T + 59_000),
                    count: scrapes,
                    sum: step * scrapes,
                    min: step,
                    max: step,
                    cumulative: 1_234_567_890 + i as u64,
                }),
            }
        })
        .collect()
}

/// The SDK's serializer for PutMetricData, from the operation's runtime plugin, where the
/// orchestrator finds it.
fn serializer() -> (SharedRequestSerializer, ConfigBag) {
    let layer = PutMetricData::new()
        .config()
        .expect("the operation has a config layer");
    let mut cfg = ConfigBag::base();
    cfg.push_shared_layer(layer);
    let serializer = cfg.load::<SharedRequestSerializer>().cloned();
    (
        serializer.expect("the operation stores its serializer"),
        cfg,
    )
}

/// Points → the HTTP request with its body, as `send` makes it: the sink's datums, the input
/// the client builds (namespace and datums), the SDK's serializer.
fn request(
    encoder: &Encoder,
    points: &[Point],
    serializer: &SharedRequestSerializer,
    cfg: &mut ConfigBag,
) -> HttpRequest {
    let (datums, refused) = encoder.encode(points);
    debug_assert!(refused.is_empty());
    let input = PutMetricDataInput::builder()
        .namespace("Tailscale")
        .set_metric_data(Some(datums))
        .build()
        .expect("a namespace is set");
    serializer
        .serialize_input(Input::erase(input), cfg)
        .expect("the request serializes")
}

/// The sink's step alone: points → `MetricDatum`s.
#[divan::bench(consts = SCRAPES, args = points())]
fn datums<const S: u64>(bencher: Bencher<'_, '_>, n: usize) {
    let encoder = encoder();
    let points = batch(n, S);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| encoder.encode(black_box(&points)));
}

/// Points → the CBOR request body: datums, input, the SDK's serializer.
#[divan::bench(consts = SCRAPES, args = points())]
fn cbor<const S: u64>(bencher: Bencher<'_, '_>, n: usize) {
    let encoder = encoder();
    let points = batch(n, S);
    let (serializer, mut cfg) = serializer();
    let len = request(&encoder, &points, &serializer, &mut cfg)
        .body()
        .content_length();
    assert!(len.is_some_and(|len| len > n as u64 * 100 && len < MAX_REQUEST_BYTES as u64));
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| request(&encoder, black_box(&points), &serializer, &mut cfg));
}

/// The SDK's gzip of the CBOR body (level 6, its default, which the client keeps), as its
/// request-compression interceptor runs it. The bytes counted are the CBOR body's.
#[divan::bench(consts = SCRAPES, args = points())]
fn gzip<const S: u64>(bencher: Bencher<'_, '_>, n: usize) {
    let (serializer, mut cfg) = serializer();
    let body = request(&encoder(), &batch(n, S), &serializer, &mut cfg).into_body();
    let len = body.bytes().expect("the body is in memory").len();
    let gzip = CompressionAlgorithm::Gzip.into_impl_http_body_1_x(&CompressionOptions::default());
    bencher
        .counter(ItemsCount::new(n))
        .counter(BytesCount::new(len))
        .with_inputs(|| (body.try_clone().expect("in memory"), gzip.clone()))
        .bench_local_values(|(body, gzip)| {
            CompressedBody::new(body, gzip)
                .into_compressed_sdk_body()
                .expect("the body compresses")
        });
}
