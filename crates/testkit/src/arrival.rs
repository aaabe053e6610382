//! What a cloud fake saw arrive, for measuring a client from the outside (the footprint
//! harness, `bench/footprint.py`): when each write came, how many points it carried, and
//! which flush it belongs to.

use std::time::SystemTime;

/// One write request (`PutMetricData`, `CreateTimeSeries`) as it arrived at a fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When the request reached the fake: CloudWatch's before its body is read, Cloud
    /// Monitoring's once gRPC has decoded it; in either case before it is judged.
    pub at: SystemTime,
    /// Points it carried (CloudWatch datums, Cloud Monitoring time series); 0 when it was
    /// refused before they were read.
    pub points: usize,
    /// Whether every point was written.
    pub accepted: bool,
    /// Its newest point's time, which names the flush it belongs to: CloudWatch's datum
    /// `Timestamp` (the start of the time bucket), Cloud Monitoring's end time (the scrape).
    /// `None` when no point was read.
    pub newest: Option<SystemTime>,
}
