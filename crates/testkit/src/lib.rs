//! Test doubles for tailship: a fake tailscaled and a scripted model of a node's usermetrics.
//!
//! [`FakeTailscaled`] serves usermetrics the way tailscaled does, over a real unix socket
//! (LocalAPI) and over HTTP, on its own thread so that both in-process async tests and a
//! tailship binary running as a child process can scrape it. [`SimNode`] produces the bodies:
//! scripted traffic, restarts and relay resets, with the true increase of every series kept
//! alongside for history tests.
//!
//! This is test code: setup failures (a port that cannot be bound, a poisoned lock) panic
//! with a message instead of returning errors.

#[cfg(any(feature = "cloudwatch", feature = "gcm"))]
mod arrival;
pub mod bodies;
#[cfg(feature = "cloudwatch")]
mod cloudwatch;
#[cfg(feature = "gcm")]
mod gcm;
mod sim;
mod tailscaled;

#[cfg(any(feature = "cloudwatch", feature = "gcm"))]
pub use arrival::Arrival;
#[cfg(feature = "cloudwatch")]
pub use cloudwatch::{
    Datum, FakeCloudWatch, Fault, PUT_METRIC_DATA_PATH, PutRequest, StatisticSet,
};
#[cfg(feature = "gcm")]
pub use gcm::{
    Code as GcmCode, Ec2Identity, FakeInstanceMetadata, FakeMetricService, GceIdentity, GcmFault,
    GcmPoint, GcmRejection, GcmRequest, GcmSeries, GcmValue,
};
pub use sim::{DEFAULT_VERSION, PATHS, SimNode, TRANSPORTS};
pub use tailscaled::{DEBUG_PATH, DEFAULT_CONTENT_TYPE, FakeTailscaled, USERMETRICS_PATH};
