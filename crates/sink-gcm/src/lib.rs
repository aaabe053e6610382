//! The Google Cloud Monitoring sink: publishes tailship's catalog series with
//! `CreateTimeSeries` — counters as `CUMULATIVE` INT64 running totals since the series'
//! start, gauges as `GAUGE` DOUBLE — against a detected (or configured) monitored resource.
//!
//! It encodes, sends and classifies; batching, spacing, retries and outcomes belong to
//! [`tailship_sink::Driver`]. It never sees Prometheus text or tailscaled names, and it
//! depends on neither the collector nor any other sink. Only `client.rs` touches the
//! network (the API and the metadata servers); the environment is read by the caller.

mod client;
mod config;
mod encode;
mod resource;
mod retry;
mod sink;

pub use config::{
    Config, ConfigError, DEFAULT_BREAKDOWNS, DEFAULT_ENDPOINT, DEFAULT_METRIC_PREFIX,
    ResourceConfig,
};
/// The encoding step of `GcmSink::send`, for the benchmarks (`benches/encode.rs`).
#[doc(hidden)]
pub use encode::{Encoded, Encoder};
pub use encode::{
    MAX_AGE, MAX_FUTURE, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_LABELS, MAX_REQUEST_BYTES,
    MAX_SERIES_PER_REQUEST, MIN_SPACING,
};
pub use resource::{DEFAULT_CONTAINER, Resource};
pub use retry::ROLE;
pub use sink::{Error, GcmSink};
