//! Generated tailscaled usermetrics bodies of any size, for the benchmarks and the allocation
//! tests (`tests/allocations.rs` includes this module).
//!
//! A body has the families of a v1.102 node with peer relay and Serve (about 40 series), and
//! grows with per-Service Serve byte counters, inbound and outbound, each Service a label value
//! and a published series of its own: the way one tailscaled can reach thousands of series.

use std::fmt::Write as _;

const PATHS: &[&str] = &[
    "derp",
    "direct_ipv4",
    "direct_ipv6",
    "peer_relay_ipv4",
    "peer_relay_ipv6",
];
const DROPPED_IN: &[&str] = &["acl", "error", "multicast", "too_short", "fragment"];
const DROPPED_OUT: &[&str] = &["acl", "error", "multicast"];
const TRANSPORTS: &[(&str, &str)] = &[
    ("udp4", "udp4"),
    ("udp4", "udp6"),
    ("udp6", "udp4"),
    ("udp6", "udp6"),
];

/// A body of `series` series as scrape number `scrape` sees it (at least the 42 series of the
/// fixed families, and one more when the Services cannot share the rest evenly): every counter
/// grows by a step of its own per scrape.
pub fn body(series: usize, scrape: u64) -> String {
    let mut b = Body {
        out: String::with_capacity(series * 72 + 8192),
        scrape,
        n: 0,
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
    let paths = labels("path", PATHS);
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
        .map(|(i, o)| format!("transport_in=\"{i}\",transport_out=\"{o}\""))
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
    let services = series.saturating_sub(b.n).div_ceil(2).max(1);
    let services: Vec<String> = (0..services)
        .map(|i| format!("service=\"svc:app-{i:06}\""))
        .collect();
    b.counter("tailscaled_serve_inbound_bytes_total", "Bytes received from peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.", &services);
    b.counter("tailscaled_serve_outbound_bytes_total", "Bytes sent to peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.", &services);
    b.out
}

/// `name="value"` for each value.
fn labels(name: &str, values: &[&str]) -> Vec<String> {
    values.iter().map(|v| format!("{name}=\"{v}\"")).collect()
}

struct Body {
    out: String,
    scrape: u64,
    /// Series written so far.
    n: usize,
}

impl Body {
    fn header(&mut self, family: &str, ty: &str, help: &str) {
        let _ = writeln!(self.out, "# TYPE {family} {ty}\n# HELP {family} {help}");
    }

    fn sample(&mut self, family: &str, labels: &str, value: u64) {
        self.n += 1;
        let _ = if labels.is_empty() {
            writeln!(self.out, "{family} {value}")
        } else {
            writeln!(self.out, "{family}{{{labels}}} {value}")
        };
    }

    fn gauge(&mut self, family: &str, help: &str, samples: &[(&str, u64)]) {
        self.header(family, "gauge", help);
        for &(labels, value) in samples {
            self.sample(family, labels, value);
        }
    }

    fn counter(&mut self, family: &str, help: &str, series: &[String]) {
        self.header(family, "counter", help);
        for labels in series {
            let n = self.n as u64;
            let value = n * 1_000_003 + self.scrape * (n % 97 + 1) * 1_500;
            self.sample(family, labels, value);
        }
    }
}
