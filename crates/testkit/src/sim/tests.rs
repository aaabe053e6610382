use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/tailscale")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The node behind `usermetrics-v1.102-relay-serve.prom`.
fn fixture_node() -> SimNode {
    let mut node = SimNode::new();
    node.set_routes(2, 2);
    node.set_home_derp(1);
    node.receive("derp", 41282, 51);
    node.receive("direct_ipv4", 8_102_394, 30362);
    node.drop_inbound("acl", 17);
    node.send("derp", 5684, 46);
    node.send("direct_ipv4", 2_681_236, 27918);
    node.drop_outbound("error", 0);
    node.drop_outbound("multicast", 12);
    node.set_relay_endpoints("open", 3);
    node.relay_forward("udp4", "udp4", 918_273, 1204);
    node.serve("svc:web", 20480, 1_048_576);
    node
}

#[test]
fn renders_the_fixture_byte_for_byte() {
    assert_eq!(
        fixture_node().render(),
        fixture("usermetrics-v1.102-relay-serve.prom")
    );
}

#[test]
fn families_sorted_type_before_help_series_sorted() {
    let text = fixture_node().render();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    let mut families = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().expect("name");
            assert!(
                lines[i + 1].starts_with(&format!("# HELP {name} ")),
                "{line}"
            );
            families.push(name);
        }
    }
    assert!(families.is_sorted(), "{families:?}");
    assert_eq!(families.len(), 15);
    let derp = lines
        .iter()
        .position(|l| l.starts_with("tailscaled_outbound_bytes_total{path=\"derp\"}"));
    let v4 = lines
        .iter()
        .position(|l| l.starts_with("tailscaled_outbound_bytes_total{path=\"direct_ipv4\"}"));
    assert!(derp < v4);
}

#[test]
fn a_fresh_node_prints_eager_series_only() {
    let text = SimNode::new().render();
    for family in [IN_DROPPED, OUT_DROPPED, SERVE_IN, SERVE_OUT] {
        assert!(
            !text.contains(family),
            "{family} has no series yet, so no header:\n{text}"
        );
    }
    assert!(text.contains("tailscaled_inbound_bytes_total{path=\"peer_relay_ipv6\"} 0\n"));
    assert!(text.contains(
        "tailscaled_peer_relay_forwarded_packets_total{transport_in=\"udp6\",transport_out=\"udp4\"} 0\n"
    ));
}

#[test]
fn gauges_print_as_go_floats() {
    let mut node = SimNode::new();
    node.set_routes(1_000_000, 1_234_567);
    let text = node.render();
    assert!(
        text.contains("tailscaled_advertised_routes 1e+06\n"),
        "{text}"
    );
    assert!(
        text.contains("tailscaled_approved_routes 1.234567e+06\n"),
        "{text}"
    );
}

#[test]
fn label_values_are_go_quoted() {
    let mut node = SimNode::new();
    node.serve("svc:\"odd\"\n", 1, 2);
    assert!(
        node.render()
            .contains(r#"tailscaled_serve_inbound_bytes_total{service="svc:\"odd\"\n"} 1"#)
    );
}

#[test]
fn restart_zeroes_counters_and_drops_lazy_series() {
    let mut node = fixture_node();
    node.restart();
    let text = node.render();
    for gone in [IN_DROPPED, OUT_DROPPED, SERVE_IN, SERVE_OUT] {
        assert!(!text.contains(gone), "{gone} should vanish:\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let gauge = ["routes", "region_id", "health"]
            .iter()
            .any(|g| line.contains(g));
        if !gauge {
            assert!(line.ends_with(" 0"), "counter not reset: {line}");
        }
    }
    assert!(
        text.contains("tailscaled_advertised_routes 2\n"),
        "gauges stay"
    );
    assert!(text.contains("tailscaled_peer_relay_endpoints{state=\"open\"} 0\n"));
    assert_eq!(node.version(), DEFAULT_VERSION);

    node.drop_inbound("acl", 2);
    assert_eq!(
        node.value("tailscaled_inbound_dropped_packets_total{reason=\"acl\"}"),
        Some(2)
    );
    assert_eq!(
        node.value("tailscaled_outbound_dropped_packets_total{reason=\"multicast\"}"),
        None
    );
}

#[test]
fn relay_reset_touches_only_peer_relay_series() {
    let mut node = fixture_node();
    let before = node.render();
    node.relay_reset();
    let after = node.render();
    let differ: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .collect();
    assert_eq!(
        differ,
        [
            (
                "tailscaled_peer_relay_endpoints{state=\"open\"} 3",
                "tailscaled_peer_relay_endpoints{state=\"open\"} 0"
            ),
            (
                "tailscaled_peer_relay_forwarded_bytes_total{transport_in=\"udp4\",transport_out=\"udp4\"} 918273",
                "tailscaled_peer_relay_forwarded_bytes_total{transport_in=\"udp4\",transport_out=\"udp4\"} 0"
            ),
            (
                "tailscaled_peer_relay_forwarded_packets_total{transport_in=\"udp4\",transport_out=\"udp4\"} 1204",
                "tailscaled_peer_relay_forwarded_packets_total{transport_in=\"udp4\",transport_out=\"udp4\"} 0"
            ),
        ]
    );
}

#[test]
fn truth_counts_across_restarts_since_mark() {
    let mut node = SimNode::new();
    node.send("derp", 100, 1);
    node.mark();
    node.send("derp", 50, 1);
    node.send("direct_ipv4", 7, 1);
    node.restart();
    node.send("derp", 10, 1);
    node.drop_outbound("acl", 0);
    node.relay_forward("udp4", "udp6", 5, 1);
    node.relay_reset();
    node.relay_forward("udp4", "udp6", 3, 1);

    let expected: BTreeMap<String, u64> = [
        ("tailscaled_outbound_bytes_total{path=\"derp\"}", 60),
        ("tailscaled_outbound_bytes_total{path=\"direct_ipv4\"}", 7),
        ("tailscaled_outbound_packets_total{path=\"derp\"}", 2),
        ("tailscaled_outbound_packets_total{path=\"direct_ipv4\"}", 1),
        ("tailscaled_peer_relay_forwarded_bytes_total{transport_in=\"udp4\",transport_out=\"udp6\"}", 8),
        ("tailscaled_peer_relay_forwarded_packets_total{transport_in=\"udp4\",transport_out=\"udp6\"}", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(node.increase(), expected);
    assert_eq!(
        node.family_increase()["tailscaled_outbound_bytes_total"],
        67
    );
    assert_eq!(
        node.value("tailscaled_outbound_bytes_total{path=\"derp\"}"),
        Some(10)
    );

    node.mark();
    assert!(node.increase().is_empty());
}
