//! The `Sink` trait and the one driver that every sink runs under.
//!
//! A sink encodes points into its provider's requests, sends them, and classifies what went
//! wrong. The [`Driver`] owns everything else, once: pending points per series coalesced
//! into time buckets (memory bounded by series × buckets, never by scrapes), batching to the
//! sink's limits, at most one in-flight write per series, retries with exponential backoff
//! and jitter, and a counted outcome for every point.
//!
//! This crate knows nothing of Prometheus text, tailscaled or any particular cloud; its
//! [`StdoutSink`] writes JSON lines, for the demo and for debugging.

mod driver;
mod point;
mod sink;
mod state;
mod stats;
mod stdout;

pub use driver::{Batch, Driver, DriverConfig, Names, Next, Restored, StateView};
pub use point::{CounterStats, GaugeStats, Point, Value};
pub use sink::{CheckFuture, Limits, Rejection, Report, SendFuture, Sink, SinkError, Values};
pub use state::{DriverState, NamedDriverState, NamedSeriesState, SeriesName, SeriesState};
pub use stats::Stats;
pub use stdout::StdoutSink;
