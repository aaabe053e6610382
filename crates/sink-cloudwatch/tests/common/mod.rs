//! Shared helpers: points, series, and a sink pointed at the contract fake with static
//! test credentials (no environment, no instance metadata).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::credential_fn::provide_credentials_fn;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use tailship_model::{Dimensions, Series, Timestamp, Unit};
use tailship_sink::{CounterStats, GaugeStats, Point, Value};
use tailship_sink_cloudwatch::{CloudWatchSink, Config};
use tailship_testkit::FakeCloudWatch;

/// A bucket start, on a minute.
pub const T: u64 = 1_700_000_040_000;

pub fn series(name: &str, dims: &[(&str, &str)], unit: Unit) -> Arc<Series> {
    Arc::new(Series {
        name: name.to_owned().into(),
        dimensions: Dimensions::new(dims.iter().map(|&(k, v)| (k.to_owned(), v))),
        unit,
    })
}

/// A counter point in the bucket at `T` made of `deltas`.
pub fn counter(s: Arc<Series>, deltas: &[u64]) -> Point {
    counter_at(s, T, deltas)
}

pub fn counter_at(s: Arc<Series>, bucket: u64, deltas: &[u64]) -> Point {
    let sum: u64 = deltas.iter().sum();
    Point {
        series: s,
        value: Value::Counter(CounterStats {
            start: Timestamp::from_millis(bucket - 600_000),
            bucket: Timestamp::from_millis(bucket),
            end: Timestamp::from_millis(bucket + 30_000),
            count: deltas.len() as u64,
            sum,
            min: deltas.iter().copied().min().unwrap_or(0),
            max: deltas.iter().copied().max().unwrap_or(0),
            cumulative: sum,
        }),
    }
}

pub fn gauge(s: Arc<Series>, values: &[f64]) -> Point {
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

fn sdk(credentials: SharedCredentialsProvider) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .build()
}

fn static_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDTESTKEY1",
        "secret",
        None,
        None,
        "test",
    ))
}

/// A sink for `endpoint`, region us-east-1, a 2 s timeout, then `edit`.
pub async fn sink_at(endpoint: String, edit: impl FnOnce(&mut Config)) -> CloudWatchSink {
    let mut config = Config {
        endpoint: Some(endpoint),
        timeout: Duration::from_secs(2),
        ..Config::default()
    };
    edit(&mut config);
    CloudWatchSink::with_sdk_config(config, &sdk(static_credentials()), |_| None)
        .await
        .unwrap()
}

pub async fn sink(fake: &FakeCloudWatch, edit: impl FnOnce(&mut Config)) -> CloudWatchSink {
    sink_at(fake.endpoint(), edit).await
}

/// A sink whose credentials provider finds nothing, as the default chain off AWS.
pub async fn sink_without_credentials(fake: &FakeCloudWatch) -> CloudWatchSink {
    let none = SharedCredentialsProvider::new(provide_credentials_fn(|| async {
        Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        ))
    }));
    let config = Config {
        endpoint: Some(fake.endpoint()),
        ..Config::default()
    };
    CloudWatchSink::with_sdk_config(config, &sdk(none), |_| None)
        .await
        .unwrap()
}

/// A contract fake whose clock reads a minute after `T`, the bucket of the points above.
pub fn fake_at_t() -> FakeCloudWatch {
    let fake = FakeCloudWatch::start();
    fake.set_now(Some(
        std::time::UNIX_EPOCH + Duration::from_millis(T + 60_000),
    ));
    fake
}
