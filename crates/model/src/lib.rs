//! The values that flow between tailship's crates: published series, timestamps and the
//! counter and gauge points a scrape produces.
//!
//! This crate does no I/O and knows nothing about Prometheus text, tailscaled or any cloud.
//! A [`Series`] is named by the catalog (`tailscale.bytes.sent.total`), never by the
//! tailscaled family it came from.

mod point;
mod series;
mod time;

pub use point::{CounterPoint, CounterRef, GaugePoint, GaugeRef};
pub use series::{Dimensions, Name, Series, Unit};
pub use time::Timestamp;
