//! The collector: reads tailscaled's client metrics and turns its cumulative counters into
//! exact deltas.
//!
//! It parses Prometheus text (hand-written, zero-copy), fetches it from tailscaled's LocalAPI
//! unix socket, an HTTP endpoint or a file, maps tailscaled families onto the published
//! catalog, and tracks every counter series across resets and tailscaled restarts.
//!
//! The collector knows nothing about clouds, sinks or configuration files.

mod anomaly;
mod catalog;
mod key;
mod parse;
mod reading;
mod source;
mod target;
mod tracker;

pub use anomaly::{Anomalies, Anomaly, MAX_SERIES_KEY, ValueProblem, counter_value, gauge_value};
pub use catalog::{
    Breakdown, CATALOG, Class, Entry, FAMILY_PREFIX, Kind, PREFIXED, Published, Resets, classify,
    client_metric_name, derived_name, derived_unit, lookup, published,
};
pub use parse::{Event, Labels, LineError, MetricType, Parser, Sample, parse};
pub use reading::{ReadSample, Reading, published_totals, read};
pub use source::{
    DEFAULT_SOCKET, DEFAULT_URL, Fetched, Source, SourceError, SourceOptions, SourceSpec,
    SourceSpecError,
};
pub use target::TargetInfo;
pub use tracker::{
    EmptyScrape, Observation, PublishedIds, Restart, StateError, Tracker, TrackerConfig,
    TrackerState,
};
