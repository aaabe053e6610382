//! The AWS CloudWatch sink: catalog points as `PutMetricData` datums.
//!
//! One datum per series per time bucket of the storage resolution (60 s, or 1 s for high
//! resolution): a counter's increase over the bucket as `Value`, or as `StatisticValues`
//! when several scrapes fell into it (so `Sum` is the increase and `SampleCount` the
//! scrapes); gauges alike. Credentials and region come from `aws-config`'s default chain.
//! The sink states CloudWatch's limits and classifies its errors; the shared driver batches,
//! retries and counts, so the SDK's own retries are off.
//!
//! This crate is not a general CloudWatch client: it knows nothing of Prometheus text,
//! tailscaled, the collector or the other sinks. Only `client.rs` touches the network.

mod client;
mod config;
mod encode;
mod limits;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use tailship_model::Series;
use tailship_sink::{CheckFuture, Limits, Point, Rejection, Report, SendFuture, Sink, Values};

pub use config::{Config, ConfigError, DEFAULT_BREAKDOWNS, NodeDimension, NodeSource};
/// The encoding step of [`CloudWatchSink::send`], for the benchmarks (`benches/encode.rs`).
#[doc(hidden)]
pub use encode::Encoder;
pub use limits::{
    GZIP_FROM_BYTES, MAX_AGE, MAX_DATUMS, MAX_DIMENSIONS, MAX_FUTURE, MAX_REQUEST_BYTES,
};

/// Why the sink could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No region in the configuration or the default chain.
    #[error("[sinks.cloudwatch] region: {0}")]
    Region(String),
    /// The node dimension's value could not be found.
    #[error("[sinks.cloudwatch] {0}")]
    Node(String),
}

/// Publishes points to CloudWatch with `PutMetricData`.
#[derive(Debug)]
pub struct CloudWatchSink {
    config: Config,
    limits: Limits,
    /// Shared with the requests, which build their datums when first polled.
    encoder: Arc<encode::Encoder>,
    client: client::Client,
}

impl CloudWatchSink {
    /// Builds the sink: validates `config`, loads the default chain (region now; credentials
    /// lazily, on the first request) and resolves the node dimension. `env` looks up
    /// environment variables for `node.from = "env:NAME"`. Sends nothing.
    pub async fn connect(
        config: Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let sdk = client::load(&config).await;
        Self::with_sdk_config(config, &sdk, env).await
    }

    /// Like [`CloudWatchSink::connect`], with credentials and region from `sdk` instead of
    /// the default chain (for tests, and programs that configure the SDK themselves).
    pub async fn with_sdk_config(
        config: Config,
        sdk: &aws_config::SdkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let client = client::Client::new(&config, sdk)?;
        let mut extra: Vec<(String, String)> = config
            .dimensions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(node) = &config.node {
            let value = match &node.from {
                NodeSource::Env(name) => env(name).ok_or_else(|| {
                    Error::Node(format!(
                        "node.from = \"env:{name}\": {name} is not set (in Kubernetes, set it \
                         from the pod's spec.nodeName)"
                    ))
                })?,
                NodeSource::Ec2InstanceId => client.ec2_instance_id().await?,
            };
            limits::check_dimension(&node.name, &value).map_err(|p| {
                Error::Node(format!("node.from = \"{}\" gave {value:?}: {p}", node.from))
            })?;
            extra.push((node.name.clone(), value));
        }
        let bucket = Duration::from_secs(u64::from(config.storage_resolution));
        let limits = Limits {
            max_points: limits::MAX_DATUMS,
            max_bytes: limits::MAX_REQUEST_BYTES - encode::REQUEST_FIXED_BYTES,
            many_points_per_series: true,
            bucket: Some(bucket),
            // An hour of 60 s buckets per series before the oldest merge (no bytes lost).
            max_buckets: 60,
            min_spacing: Duration::ZERO,
            max_age: limits::MAX_AGE - bucket - limits::SKEW_MARGIN,
            max_future: limits::MAX_FUTURE - limits::SKEW_MARGIN,
        };
        Ok(Self {
            encoder: Arc::new(encode::Encoder::new(config.storage_resolution, extra)),
            config,
            limits,
            client,
        })
    }
}

impl Sink for CloudWatchSink {
    fn name(&self) -> &str {
        "cloudwatch"
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn values(&self) -> Values {
        Values::Deltas
    }

    /// Every aggregate; breakdowns of the metrics named in `breakdowns`.
    fn selects(&self, series: &Series) -> bool {
        series.dimensions.is_empty() || self.config.breaks_down(&series.name)
    }

    fn admit(&self, series: &Series) -> Result<(), Rejection> {
        self.encoder.admit(series)
    }

    fn encoded_size(&self, point: &Point) -> usize {
        self.encoder.size_bound(point)
    }

    /// The datums are built when the request is first polled, not here: the agent starts
    /// up to `max_in_flight` requests at once, and on its one thread each is polled up to
    /// the network in turn, the SDK serializing (and dropping) its input before the next is
    /// built. A batch's points are 80 bytes each; the SDK's datums, with their strings, take
    /// several times that: built here, four requests' datums were alive together, and a
    /// CloudWatch flush at 10k series peaked 2.4 MiB over the median RSS; built when
    /// polled, under 0.9 MiB and 1.7 MiB in two runs (`bench/rss_trace.py`,
    /// docs/PERFORMANCE.md).
    fn send(&self, points: &[Point]) -> SendFuture {
        let points = points.to_vec();
        let (encoder, client) = (Arc::clone(&self.encoder), self.client.clone());
        Box::pin(async move {
            let (datums, refused) = encoder.encode(&points);
            drop(points);
            let report = Report {
                rejected: refused,
                rejected_unattributed: Vec::new(),
            };
            if datums.is_empty() {
                return Ok(report);
            }
            client.put(datums).await.map(|()| report)
        })
    }

    fn check(&self) -> CheckFuture {
        let client = self.client.clone();
        Box::pin(async move { client.check().await })
    }
}
