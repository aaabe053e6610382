//! Generated tailscaled usermetrics bodies of any size, for the benchmarks, the allocation
//! tests and the footprint harness's metrics endpoint (`examples/fakes.rs`).
//!
//! A body has the families of a v1.102 node with peer relay and Serve (42 series), and grows
//! with per-Service Serve byte counters, inbound and outbound
//! (`service="svc:app-NNNNNN"`), each Service a label value and a published series of its
//! own: the way one tailscaled can reach thousands of series. Every counter grows by a step
//! of its own per scrape.

use std::fmt::Write as _;

use crate::{PATHS, TRANSPORTS};

const DROPPED_IN: &[&str] = &["acl", "error", "multicast", "too_short", "fragment"];
const DROPPED_OUT: &[&str] = &["acl", "error", "multicast"];

/// The body of `series` series (at least the 42 of the fixed families, and one more when the
/// Services cannot share the rest evenly) as scrape number `scrape` reads it.
pub fn body(series: usize, scrape: u64) -> String {
    GeneratedBody::new(series).render(scrape)
}

/// A piece of the body: header text, or a sample's `name{labels} ` and how its value goes.
#[derive(Debug)]
enum Piece {
    Text(String),
    Gauge(String, u64),
    /// Prefix, and the sample's index (its base value and step derive from it).
    Counter(String, u64),
}

/// A body laid out once; [`GeneratedBody::render`] only writes the values of a scrape.
#[derive(Debug)]
pub struct GeneratedBody {
    pieces: Vec<Piece>,
    series: usize,
    published: usize,
    bytes_hint: usize,
}

impl GeneratedBody {
    pub fn new(series: usize) -> Self {
        let mut b = Self {
            pieces: Vec::new(),
            series: 0,
            published: 0,
            bytes_hint: 0,
        };
        b.gauge(
            "tailscaled_advertised_routes",
            "Number of advertised network routes (e.g. by a subnet router)",
            &[("", 2)],
        );
        b.gauge(
            "tailscaled_approved_routes",
            "Number of approved network routes (e.g. by a subnet router)",
            &[("", 2)],
        );
        b.gauge(
            "tailscaled_health_messages",
            "Number of health messages broken down by type.",
            &[("type=\"warning\"", 0)],
        );
        b.gauge(
            "tailscaled_home_derp_region_id",
            "DERP region ID of this node's home relay server",
            &[("", 1)],
        );
        let paths = labels("path", &PATHS);
        b.counter(
            "tailscaled_inbound_bytes_total",
            "Counts the number of bytes received from other peers",
            &paths,
        );
        b.counter(
            "tailscaled_inbound_dropped_packets_total",
            "Counts the number of dropped packets received by the node from other peers",
            &labels("reason", DROPPED_IN),
        );
        b.counter(
            "tailscaled_inbound_packets_total",
            "Counts the number of packets received from other peers",
            &paths,
        );
        b.counter(
            "tailscaled_outbound_bytes_total",
            "Counts the number of bytes sent to other peers",
            &paths,
        );
        b.counter(
            "tailscaled_outbound_dropped_packets_total",
            "Counts the number of packets dropped while being sent to other peers",
            &labels("reason", DROPPED_OUT),
        );
        b.counter(
            "tailscaled_outbound_packets_total",
            "Counts the number of packets sent to other peers",
            &paths,
        );
        b.gauge(
            "tailscaled_peer_relay_endpoints",
            "Number of allocated Peer Relay endpoints",
            &[("state=\"connecting\"", 0), ("state=\"open\"", 3)],
        );
        let transports: Vec<String> = TRANSPORTS
            .iter()
            .flat_map(|i| {
                TRANSPORTS
                    .iter()
                    .map(move |o| format!("transport_in=\"{i}\",transport_out=\"{o}\""))
            })
            .collect();
        b.counter(
            "tailscaled_peer_relay_forwarded_bytes_total",
            "Number of bytes forwarded via Peer Relay",
            &transports,
        );
        b.counter(
            "tailscaled_peer_relay_forwarded_packets_total",
            "Number of packets forwarded via Peer Relay",
            &transports,
        );
        let services = series.saturating_sub(b.series).div_ceil(2).max(1);
        let services: Vec<String> = (0..services)
            .map(|i| format!("service=\"svc:app-{i:06}\""))
            .collect();
        b.counter(
            "tailscaled_serve_inbound_bytes_total",
            "Bytes received from peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
            &services,
        );
        b.counter(
            "tailscaled_serve_outbound_bytes_total",
            "Bytes sent to peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
            &services,
        );
        b
    }

    /// Series in the body.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Series a sink publishes with `breakdowns = ["*"]`: every sample, and an aggregate for
    /// each family whose samples have labels.
    pub fn published(&self) -> usize {
        self.published
    }

    /// The body scrape number `scrape` reads: every counter a step of its own further on.
    pub fn render(&self, scrape: u64) -> String {
        let mut out = String::with_capacity(self.bytes_hint);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Gauge(prefix, value) => {
                    out.push_str(prefix);
                    let _ = writeln!(out, "{value}");
                }
                Piece::Counter(prefix, n) => {
                    out.push_str(prefix);
                    let value = n * 1_000_003 + scrape * (n % 97 + 1) * 1_500;
                    let _ = writeln!(out, "{value}");
                }
            }
        }
        out
    }

    fn header(&mut self, family: &str, kind: &str, help: &str) {
        let text = format!("# TYPE {family} {kind}\n# HELP {family} {help}\n");
        self.bytes_hint += text.len();
        self.pieces.push(Piece::Text(text));
    }

    fn prefix(&mut self, family: &str, labels: &str) -> String {
        self.series += 1;
        let prefix = if labels.is_empty() {
            format!("{family} ")
        } else {
            format!("{family}{{{labels}}} ")
        };
        // The prefix, up to 20 digits and the newline.
        self.bytes_hint += prefix.len() + 21;
        prefix
    }

    fn gauge(&mut self, family: &str, help: &str, samples: &[(&str, u64)]) {
        self.header(family, "gauge", help);
        self.published += samples.len() + usize::from(samples.iter().any(|(l, _)| !l.is_empty()));
        for &(labels, value) in samples {
            let prefix = self.prefix(family, labels);
            self.pieces.push(Piece::Gauge(prefix, value));
        }
    }

    fn counter(&mut self, family: &str, help: &str, series: &[String]) {
        self.header(family, "counter", help);
        self.published += series.len() + usize::from(series.iter().any(|l| !l.is_empty()));
        for labels in series {
            let n = self.series as u64;
            let prefix = self.prefix(family, labels);
            self.pieces.push(Piece::Counter(prefix, n));
        }
    }
}

/// `name="value"` for each value.
fn labels(name: &str, values: &[&str]) -> Vec<String> {
    values.iter().map(|v| format!("{name}=\"{v}\"")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_published_series() {
        let b = GeneratedBody::new(50);
        assert_eq!(b.series(), 50);
        // 50 samples and an aggregate for each of the 12 labelled families.
        assert_eq!(b.published(), 62);
        assert_eq!(GeneratedBody::new(10_000).series(), 10_000);
        let text = b.render(3);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 50);
        assert!(text.contains("tailscaled_outbound_bytes_total{path=\"derp\"} "));
        assert_ne!(b.render(1), b.render(2), "counters advance");
    }
}
