//! The debug endpoint end to end: the built binary scrapes usermetrics over the LocalAPI and
//! `/debug/metrics` over HTTP, and the socket statistics reach the stdout sink with their
//! `label` dimension, every byte once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{Agent, assert_exact, config, shipped, temp_dir, traffic, truth, wait_until};
use tailship_testkit::{FakeTailscaled, SimNode};

const LIMIT: Duration = Duration::from_secs(60);

/// Changes the node once the scrape in progress is over (one usermetrics read and two debug
/// reads per scrape), serves it, and waits for a whole scrape of it.
fn step(fake: &FakeTailscaled, node: &mut SimNode, f: impl FnOnce(&mut SimNode)) {
    let settled = || fake.debug_requests() >= 2 * fake.requests();
    wait_until("the scrape in progress", LIMIT, settled);
    f(node);
    fake.serve(node);
    let seen = fake.requests();
    wait_until("a scrape", LIMIT, || {
        fake.requests() > seen + 1 && settled()
    });
}

#[test]
fn socket_statistics_flow_to_the_stdout_sink_with_their_label() {
    let dir = temp_dir("debug");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.enable_sockstats();
    node.socket_traffic("DERPHTTPClient", false, 500, 700);
    fake.serve(&node);
    let cfg = config(&dir, &fake, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[source]\n",
        &format!(
            "[source]\ndebug_url = \"{}\"\nclient_metrics = [\"magicsock_disco_recv_ping\"]\n",
            fake.debug_url()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg);
    wait_until("the baseline scrape", LIMIT, || {
        fake.requests() >= 1 && fake.debug_requests() >= 2
    });
    node.mark();
    for k in 1..=3 {
        step(&fake, &mut node, |n| {
            traffic(n, k);
            n.socket_traffic("DERPHTTPClient", false, 1_000 * k, 2_000 * k);
            n.socket_traffic("MagicsockConnUDP4", true, 300, 400);
            n.client_metric("magicsock_disco_recv_ping", 7);
        });
    }
    // A restart after which every counter grows past its old value: only the debug
    // endpoint's process start time tells.
    step(&fake, &mut node, |n| {
        n.restart();
        for _ in 0..3 {
            traffic(n, 50);
        }
        n.send("derp", 100_000, 1);
        n.receive("derp", 100_000, 1);
        n.socket_traffic("DERPHTTPClient", false, 90_000, 90_000);
        n.socket_traffic("MagicsockConnUDP4", true, 9_000, 9_000);
        n.client_metric("magicsock_disco_recv_ping", 100);
    });
    step(&fake, &mut node, |n| traffic(n, 9));
    agent.signal("-TERM");
    assert_eq!(agent.wait(LIMIT), Some(0));
    assert!(agent.logged("process start time (debug endpoint) changed"));

    let lines = agent.lines();
    let label = lines
        .iter()
        .find(|l| {
            l.contains("tailscale.sockstats.bytes.sent.total")
                && l.contains("\"label\":\"DERPHTTPClient\"")
        })
        .unwrap();
    assert!(label.contains("\"unit\":\"bytes\""), "{label}");
    let mut sums = shipped(&lines);
    assert!(sums["tailscale.sockstats.cellular.bytes.received.total{label=MagicsockConnUDP4}"] > 0);
    // The client metric asked for by name, against its own truth.
    let pings = sums
        .remove("tailscale.client.magicsock.disco.recv.ping")
        .unwrap();
    assert_eq!(pings, node.increase()["magicsock_disco_recv_ping"]);
    assert_eq!(pings, 3 * 7 + 100);
    assert_exact(&truth(&node), &sums);
}
