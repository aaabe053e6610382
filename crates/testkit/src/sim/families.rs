//! The vocabulary of tailscaled's usermetrics: family names, HELP texts, eager label values.

/// The `path` values tailscaled creates at start (magicsock), in the order it prints them.
pub const PATHS: [&str; 5] = [
    "derp",
    "direct_ipv4",
    "direct_ipv6",
    "peer_relay_ipv4",
    "peer_relay_ipv6",
];

/// The peer relay transports; every `transport_in`×`transport_out` pair exists from the start.
pub const TRANSPORTS: [&str; 2] = ["udp4", "udp6"];

/// The version a fresh [`SimNode`](super::SimNode) reports (`Tailscale-Version` header).
pub const DEFAULT_VERSION: &str = "1.102.0-t5e0b1c2d3-g4a5b6c7d8";

pub(super) const OUT_BYTES: &str = "tailscaled_outbound_bytes_total";
pub(super) const OUT_PACKETS: &str = "tailscaled_outbound_packets_total";
pub(super) const IN_BYTES: &str = "tailscaled_inbound_bytes_total";
pub(super) const IN_PACKETS: &str = "tailscaled_inbound_packets_total";
pub(super) const IN_DROPPED: &str = "tailscaled_inbound_dropped_packets_total";
pub(super) const OUT_DROPPED: &str = "tailscaled_outbound_dropped_packets_total";
pub(super) const RELAY_BYTES: &str = "tailscaled_peer_relay_forwarded_bytes_total";
pub(super) const RELAY_PACKETS: &str = "tailscaled_peer_relay_forwarded_packets_total";
pub(super) const SERVE_IN: &str = "tailscaled_serve_inbound_bytes_total";
pub(super) const SERVE_OUT: &str = "tailscaled_serve_outbound_bytes_total";
pub(super) const ADVERTISED: &str = "tailscaled_advertised_routes";
pub(super) const APPROVED: &str = "tailscaled_approved_routes";
pub(super) const HEALTH: &str = "tailscaled_health_messages";
pub(super) const HOME_DERP: &str = "tailscaled_home_derp_region_id";
pub(super) const RELAY_ENDPOINTS: &str = "tailscaled_peer_relay_endpoints";

/// A family as tailscaled declares it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) counter: bool,
    pub(super) help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        counter: true,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        counter: false,
        help,
    }
}

/// Every family tailscaled v1.102 prints, with its HELP text.
pub(super) const FAMILIES: [Family; 15] = [
    gauge(
        ADVERTISED,
        "Number of advertised network routes (e.g. by a subnet router)",
    ),
    gauge(
        APPROVED,
        "Number of approved network routes (e.g. by a subnet router)",
    ),
    gauge(HEALTH, "Number of health messages broken down by type."),
    gauge(HOME_DERP, "DERP region ID of this node's home relay server"),
    counter(
        IN_BYTES,
        "Counts the number of bytes received from other peers",
    ),
    counter(
        IN_DROPPED,
        "Counts the number of dropped packets received by the node from other peers",
    ),
    counter(
        IN_PACKETS,
        "Counts the number of packets received from other peers",
    ),
    counter(OUT_BYTES, "Counts the number of bytes sent to other peers"),
    counter(
        OUT_DROPPED,
        "Counts the number of packets dropped while being sent to other peers",
    ),
    counter(
        OUT_PACKETS,
        "Counts the number of packets sent to other peers",
    ),
    gauge(RELAY_ENDPOINTS, "Number of allocated Peer Relay endpoints"),
    counter(RELAY_BYTES, "Number of bytes forwarded via Peer Relay"),
    counter(RELAY_PACKETS, "Number of packets forwarded via Peer Relay"),
    counter(
        SERVE_IN,
        "Bytes received from peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
    ),
    counter(
        SERVE_OUT,
        "Bytes sent to peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
    ),
];
