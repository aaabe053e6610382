use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tailship_model::Series;

use crate::Point;

/// A boxed future returned by [`Sink::send`]: it owns its request and may outlive the call.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<Report, SinkError>> + Send + 'static>>;

/// A boxed future returned by [`Sink::check`]: a one-line description of what was verified.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<String, SinkError>> + Send + 'static>>;

/// What a sink wants for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// The increase per time bucket (CloudWatch `Sum`): buckets stay apart.
    Deltas,
    /// The running total since the series' start (Cloud Monitoring `CUMULATIVE`): only the
    /// newest total matters, so a series never has more than one pending point.
    Totals,
}

/// The provider's limits, stated by the sink and enforced by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Points in one request.
    pub max_points: usize,
    /// Encoded bytes in one request, as measured by [`Sink::encoded_size`].
    pub max_bytes: usize,
    /// Whether one request may hold several points (time buckets) of one series.
    pub many_points_per_series: bool,
    /// Width of a time bucket: several scrapes in one bucket become one point, sent once the
    /// bucket has closed. `None` sends every point as soon as it may.
    pub bucket: Option<Duration>,
    /// Pending buckets kept per series; beyond, the oldest two merge (nothing is lost).
    pub max_buckets: usize,
    /// Least time between the ends of two points of one series (Cloud Monitoring: 10 s).
    pub min_spacing: Duration,
    /// Points older than this when sent are refused by the provider: dropped and counted.
    pub max_age: Duration,
    /// Points further in the future than this are refused by the provider.
    pub max_future: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_points: 1000,
            max_bytes: usize::MAX,
            many_points_per_series: true,
            bucket: None,
            max_buckets: 60,
            min_spacing: Duration::ZERO,
            max_age: Duration::MAX,
            max_future: Duration::MAX,
        }
    }
}

/// A backend that publishes points: encode and transport, nothing else. Batching, retries,
/// pending state and outcome counting belong to the [`Driver`](crate::Driver).
pub trait Sink {
    /// A short name for logs and self-metrics, e.g. `cloudwatch`.
    fn name(&self) -> &str;

    fn limits(&self) -> &Limits;

    fn values(&self) -> Values;

    /// Whether the configuration publishes this series at all (e.g. which breakdowns). A
    /// series not selected is skipped quietly: that is configuration, not loss.
    fn selects(&self, series: &Series) -> bool {
        let _ = series;
        true
    }

    /// Whether a series can be published at all (dimension count, name and value lengths,
    /// characters). Asked once per series; a refused series is dropped and counted.
    fn admit(&self, series: &Series) -> Result<(), Rejection> {
        let _ = series;
        Ok(())
    }

    /// The size of one point in a request, for [`Limits::max_bytes`]: never an underestimate.
    fn encoded_size(&self, point: &Point) -> usize {
        let _ = point;
        0
    }

    /// Encodes one request-sized batch now and returns the future that sends it.
    fn send(&self, points: &[Point]) -> SendFuture;

    /// Verifies what can be verified without writing data (credentials, region, project),
    /// for `tailship check`.
    fn check(&self) -> CheckFuture {
        Box::pin(std::future::ready(Ok("nothing to verify".to_owned())))
    }
}

/// Why the provider (or the sink, before sending) refused a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// A short stable label for self-metrics, e.g. `invalid_parameter`.
    pub reason: &'static str,
    /// What the provider said, for the log.
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// A request that was written, possibly in part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Points of the batch (by index) that the provider refused while writing the rest.
    pub rejected: Vec<(usize, Rejection)>,
    /// Points refused without saying which (Cloud Monitoring's `CreateTimeSeriesSummary`
    /// gives counts per error): how many, and why. The rest of the batch was written.
    pub rejected_unattributed: Vec<(usize, Rejection)>,
}

/// A request that was not written, classified so that the driver knows what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The provider asks us to slow down: retried after backoff, or after `retry_after`.
    #[error("throttled: {detail}")]
    Throttled {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// A connection refused, a 5xx: nothing was written; retried with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The request went out but no answer came back (a timeout, a connection lost after
    /// sending): the provider may have written it. Retried with backoff like `Transient`; the
    /// driver counts the points of a delta sink as possible duplicates, and holds a running
    /// total sink's next point back by the spacing, as if this one had been written.
    #[error("outcome unknown, the provider may have written it: {0}")]
    Uncertain(String),
    /// The provider refused the whole request for its content: dropped and counted.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// Credentials missing, expired or not allowed: kept pending and retried with backoff,
    /// since credentials can appear (a token is refreshed, a role is attached).
    #[error("not authorized: {0}")]
    Auth(String),
    /// The sink is configured wrong (region, project, endpoint): kept pending and retried.
    #[error("misconfigured: {0}")]
    Config(String),
}

impl SinkError {
    /// A short stable label for self-metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::Throttled { .. } => "throttled",
            SinkError::Transient(_) => "transient",
            SinkError::Uncertain(_) => "uncertain",
            SinkError::Rejected(_) => "rejected",
            SinkError::Auth(_) => "auth",
            SinkError::Config(_) => "config",
        }
    }
}
