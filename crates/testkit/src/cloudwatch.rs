//! A CloudWatch contract fake: `PutMetricData` over Smithy RPC v2 CBOR on `127.0.0.1`,
//! enforcing the documented limits, answering like CloudWatch, with injectable faults.

mod diagnostic;
mod request;
mod rules;
mod server;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use crate::Arrival;
pub use request::{Datum, PutRequest, StatisticSet};

/// The path of the operation, as the SDK sends it.
pub const PUT_METRIC_DATA_PATH: &str =
    "/service/GraniteServiceVersion20100801/operation/PutMetricData";

/// What the fake can be told to answer instead of accepting a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `Throttling`, as CloudWatch throttles.
    Throttling,
    /// HTTP 500 `InternalServiceError`.
    InternalError,
    /// No answer for a minute (the client's timeout fires first).
    Hang,
    /// HTTP 400 `InvalidParameterValue`, as if a datum were bad.
    InvalidParameterValue,
    /// HTTP 403 `AccessDenied`: the caller may not put metric data.
    AccessDenied,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Faults for the next requests, in order.
    next: VecDeque<Fault>,
    /// A fault for every request until cleared.
    outage: Option<Fault>,
    /// The fake's clock for timestamp limits; the real one if unset.
    now: Option<SystemTime>,
    /// How long to wait before answering a request it accepted.
    answer_delay: Duration,
    accepted: Vec<PutRequest>,
    /// Whether accepted requests are left out of `accepted` (a long run at many series).
    forget_accepted: bool,
    /// Every PutMetricData judged, in order.
    arrivals: Vec<Arrival>,
    /// Every refusal: (HTTP status, error code, message).
    refused: Vec<(u16, String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// PutMetricData requests received, whatever became of them.
    pub(crate) requests: AtomicU64,
    /// TCP connections accepted.
    pub(crate) connections: AtomicU64,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake CloudWatch. It runs on its own thread and runtime, so that in-process async
/// tests and a tailship binary started as a child process can both use it. Dropping it stops
/// the server. Controls take `&self` and apply from the next request on.
#[derive(Debug)]
pub struct FakeCloudWatch {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCloudWatch {
    /// Starts serving on an ephemeral loopback port; accepts connections on return.
    pub fn start() -> Self {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake's port");
        let addr = tcp.local_addr().expect("the fake's address");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-cloudwatch".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || server::run(tcp, shared, stopped)
            })
            .expect("spawn the fake CloudWatch thread");
        Self {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The endpoint to configure, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `n` requests with `fault`, after any already queued.
    pub fn fail_next(&self, fault: Fault, n: usize) {
        self.shared
            .state()
            .next
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Answers every request with `fault` until called with `None`.
    pub fn set_outage(&self, fault: Option<Fault>) {
        self.shared.state().outage = fault;
    }

    /// Waits `delay` after writing an accepted request's datums before answering: a slow
    /// CloudWatch, or (past the client's timeout) one that wrote what the client will send
    /// again.
    pub fn set_answer_delay(&self, delay: Duration) {
        self.shared.state().answer_delay = delay;
    }

    /// The clock the timestamp limits are judged by (`None`: the real one).
    pub fn set_now(&self, now: Option<SystemTime>) {
        self.shared.state().now = now;
    }

    /// PutMetricData requests received so far, accepted or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far: a client that keeps its connections alive opens
    /// few, whatever the number of requests.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every PutMetricData judged so far, accepted or refused, oldest first: when it came,
    /// its datums and their newest timestamp. Kept whatever
    /// [`FakeCloudWatch::set_keep_accepted`] says (a few words per request).
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.state().arrivals.clone()
    }

    /// Whether accepted requests are kept for [`FakeCloudWatch::accepted`],
    /// [`FakeCloudWatch::datums`] and [`FakeCloudWatch::sums`] (the default). Off, they are
    /// judged and answered as before but not kept, so that a long run at many series does
    /// not grow the fake's memory with every datum; [`FakeCloudWatch::arrivals`] still
    /// records each request.
    pub fn set_keep_accepted(&self, keep: bool) {
        self.shared.state().forget_accepted = !keep;
    }

    /// Every accepted request, oldest first.
    pub fn accepted(&self) -> Vec<PutRequest> {
        self.shared.state().accepted.clone()
    }

    /// Every refused request: HTTP status, error code, message.
    pub fn refused(&self) -> Vec<(u16, String, String)> {
        self.shared.state().refused.clone()
    }

    /// Every accepted datum, in order.
    pub fn datums(&self) -> Vec<Datum> {
        self.accepted().into_iter().flat_map(|r| r.datums).collect()
    }

    /// The sum of the accepted datums per series (`name{k=v,…}`), as CloudWatch's `Sum`.
    pub fn sums(&self) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for d in self.datums() {
            *sums.entry(d.key()).or_default() += d.sum();
        }
        sums
    }

    /// How long a hanging request waits before it gives up.
    pub const HANG: Duration = Duration::from_secs(60);
}

impl Drop for FakeCloudWatch {
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
