//! A fake Cloud Monitoring: `google.monitoring.v3.MetricService` over gRPC (tonic, with
//! gcloud-sdk's own messages) on `127.0.0.1`, enforcing the documented write rules, keeping
//! what it accepted, and failing on request. Plus a fake of the GCE and EC2 metadata servers
//! for resource detection.

mod metadata;
mod rules;
mod server;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use gcloud_sdk::tonic::Code;
use tokio::sync::oneshot;

use crate::Arrival;

pub use metadata::{Ec2Identity, FakeInstanceMetadata, GceIdentity};

/// One time series: metric type and labels, monitored resource type and labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GcmSeries {
    pub metric_type: String,
    pub labels: BTreeMap<String, String>,
    pub resource_type: String,
    pub resource_labels: BTreeMap<String, String>,
}

impl fmt::Display for GcmSeries {
    /// `workload.googleapis.com/tailscale.bytes.sent.total{path=derp}` (resource left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric_type)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "{{{}}}", labels.join(","))?;
        }
        Ok(())
    }
}

/// A stored point: interval in Unix milliseconds and value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GcmPoint {
    /// `None` for gauges.
    pub start: Option<u64>,
    pub end: u64,
    pub value: GcmValue,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GcmValue {
    Int64(i64),
    Double(f64),
}

/// What happened to one `CreateTimeSeries` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcmRequest {
    /// Time series in the request.
    pub series: usize,
    /// Points written.
    pub written: usize,
    pub code: Code,
}

/// A point the fake refused, and why (Cloud Monitoring's wording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcmRejection {
    pub series: String,
    pub message: String,
}

/// A failure to inject into the next call (of any method).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcmFault {
    /// Answer with this code and nothing written (`RESOURCE_EXHAUSTED` carries a
    /// `RetryInfo` of one second).
    Status(Code),
    /// Refuse the first `refuse` time series of the next `CreateTimeSeries` with `message`
    /// and write the rest: `INVALID_ARGUMENT` with a `CreateTimeSeriesSummary`.
    Partial { refuse: usize, message: String },
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub spacing: Duration,
    pub series: BTreeMap<GcmSeries, Vec<GcmPoint>>,
    /// Metric type → (metric kind, value type, unit), from the first write.
    pub descriptors: BTreeMap<String, (i32, i32, String)>,
    pub requests: Vec<GcmRequest>,
    pub rejections: Vec<GcmRejection>,
    pub faults: VecDeque<GcmFault>,
    /// A status for every call until cleared.
    pub outage: Option<Code>,
    /// How long to wait before answering a `CreateTimeSeries` (after writing its points).
    pub answer_delay: Duration,
    /// Whether only the newest point of each series is kept (what the rules need).
    pub last_only: bool,
    /// Every `CreateTimeSeries` call, in order, as it arrived.
    pub arrivals: Vec<Arrival>,
    /// TCP connections accepted.
    pub connections: u64,
}

/// The fake `MetricService`. Runs on its own thread and runtime, so it serves in-process
/// tests and a tailship binary in a child process alike; dropping it stops it.
#[derive(Debug)]
pub struct FakeMetricService {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeMetricService {
    /// Starts with Cloud Monitoring's spacing of 10 s per series.
    pub fn start() -> Self {
        Self::with_spacing(rules::SPACING)
    }

    /// Starts with another least spacing between two points of a series (a test knob: the
    /// client under test must then be given the same value).
    pub fn with_spacing(spacing: Duration) -> Self {
        let state = Arc::new(Mutex::new(State {
            spacing,
            ..State::default()
        }));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake MetricService");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener
            .local_addr()
            .expect("the fake MetricService's address");
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-gcm".to_owned())
            .spawn({
                let state = Arc::clone(&state);
                move || server::run(listener, state, stopped)
            })
            .expect("spawn the fake MetricService thread");
        Self {
            state,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `[sinks.gcm] endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails the next call as `fault` says; several queue up.
    pub fn inject(&self, fault: GcmFault) {
        self.state().faults.push_back(fault);
    }

    /// Answers every call with `code` (nothing written) until called with `None`: an outage.
    pub fn set_outage(&self, code: Option<Code>) {
        self.state().outage = code;
    }

    /// Waits `delay` after writing a `CreateTimeSeries`' points before answering: a slow
    /// Cloud Monitoring, or (past the client's deadline) one that wrote what the client
    /// believes may not have been written.
    pub fn set_answer_delay(&self, delay: Duration) {
        self.state().answer_delay = delay;
    }

    /// Every `CreateTimeSeries` call so far, in order.
    pub fn requests(&self) -> Vec<GcmRequest> {
        self.state().requests.clone()
    }

    /// Every `CreateTimeSeries` call so far, oldest first: when it came, its time series,
    /// whether all were written, and the newest end time among them.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state().arrivals.clone()
    }

    /// TCP connections accepted so far (gRPC keeps one alive for every call).
    pub fn connections(&self) -> u64 {
        self.state().connections
    }

    /// Whether every accepted point is kept for [`FakeMetricService::stored`] and
    /// [`FakeMetricService::increase`] (the default), or only the newest of each series,
    /// which is all the write rules need: a long run at many series then costs the fake
    /// memory per series, not per point.
    pub fn set_keep_history(&self, keep: bool) {
        self.state().last_only = !keep;
    }

    /// Every point refused for breaking a rule (injected partial failures included).
    pub fn rejections(&self) -> Vec<GcmRejection> {
        self.state().rejections.clone()
    }

    /// Every accepted point, per series, oldest first.
    pub fn stored(&self) -> BTreeMap<GcmSeries, Vec<GcmPoint>> {
        self.state().series.clone()
    }

    /// The metric kind, value type and unit of each auto-created descriptor, by name
    /// (`CUMULATIVE`, `INT64`, `By`).
    pub fn descriptors(&self) -> BTreeMap<String, (String, String, String)> {
        rules::descriptor_names(&self.state().descriptors)
    }

    /// The stored cumulative series read as Cloud Monitoring reads them: the increase
    /// between consecutive points, and at each new start time the first point's whole value
    /// (it counts from 0 at its start). Per series, summed over the points.
    pub fn increase(&self) -> BTreeMap<GcmSeries, u64> {
        rules::increase(&self.state().series)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeMetricService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
