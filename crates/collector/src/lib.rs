//! The collector: reads tailscaled's client metrics and turns its cumulative counters into
//! exact deltas.
//!
//! It parses Prometheus text (hand-written, zero-copy), fetches it from tailscaled's LocalAPI
//! unix socket, an HTTP endpoint or a file, maps tailscaled families onto the published
//! catalog, and tracks every counter series across resets and tailscaled restarts.
//!
//! The collector knows nothing about clouds, sinks or configuration files.

mod parse;
mod source;
mod target;

pub use parse::{Event, Labels, LineError, MetricType, Parser, Sample, parse};
pub use target::TargetInfo;
