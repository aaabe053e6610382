//! tailscaled's debug endpoint (`/debug/metrics`): its body parses, its process start time
//! proves restarts that no counter shows, and its socket statistics are published.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use tailship_collector::{
    Kind, Source, SourceOptions, SourceSpec, TargetInfo, Tracker, TrackerConfig, read,
};
use tailship_model::Timestamp;
use tailship_testkit::{FakeTailscaled, SimNode};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/debug-metrics");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

#[test]
fn the_fixtures_parse_cleanly_and_give_the_identity() {
    for name in ["linux.prom", "sockstats.prom"] {
        let body = fixture(name);
        let r = read(&body);
        assert!(
            r.anomalies.is_empty(),
            "{name}: {:?}",
            r.anomalies.details()
        );
        let mut target = TargetInfo::default();
        target.read_debug(&body);
        assert_eq!(target.started, Some(1_763_700_345), "{name}");
        assert_eq!(target.node_booted, Some(1_763_600_012), "{name}");
    }
    // A standard Linux build has no socket statistics: nothing is published from it.
    assert!(read(&fixture("linux.prom")).samples.is_empty());
}

#[test]
fn socket_statistics_are_published_by_label_and_totals_are_not_doubled() {
    let r = read(&fixture("sockstats.prom"));
    let by_series: BTreeMap<String, f64> = r
        .samples
        .iter()
        .map(|s| (format!("{}{{{}}}", s.name, s.dimensions), s.value))
        .collect();
    assert_eq!(
        by_series["tailscale.sockstats.bytes.sent.total{label=DERPHTTPClient}"],
        9_931_042.0
    );
    assert_eq!(
        by_series["tailscale.sockstats.cellular.bytes.received.total{label=MagicsockConnUDP4}"],
        411_232.0
    );
    assert!(
        r.samples
            .iter()
            .all(|s| s.kind == Kind::Counter && s.unit == tailship_model::Unit::Bytes)
    );
    // 6 labels × tx/rx + 2 cellular labels × tx/rx; the 4 totals and the radio gauge are not.
    assert_eq!(r.samples.len(), 16);
    assert!(
        r.samples
            .iter()
            .all(|s| !s.series.starts_with("sockstats_tx_bytes "))
    );
}

/// One tailscaled, scraped in-process: the usermetrics body plus, optionally, the debug body.
fn run_missed_reset(with_debug: bool) -> (u64, u64, Option<String>) {
    let mut node = SimNode::new();
    node.enable_sockstats();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut at = 1_700_000_000_000;
    let mut scrape = |node: &SimNode, tracker: &mut Tracker| {
        at += 60_000;
        let debug = node.render_debug();
        let main = node.render();
        let mut target = TargetInfo::default();
        let mut bodies = vec![main.as_bytes()];
        if with_debug {
            target.read_debug(debug.as_bytes());
            bodies.push(debug.as_bytes());
        }
        let o = tracker
            .observe_bodies(&bodies, &target, Timestamp::from_millis(at))
            .unwrap();
        (o.counter_points(), o.restart.clone())
    };
    node.send("derp", 100, 1);
    node.socket_traffic("DERPHTTPClient", false, 1_000, 2_000);
    scrape(&node, &mut tracker);
    node.mark();
    node.send("derp", 5_000, 10);
    node.send("direct_ipv4", 7_000, 10);
    node.socket_traffic("DERPHTTPClient", false, 3_000, 4_000);
    scrape(&node, &mut tracker);
    // tailscaled restarts, and before the next scrape every counter grows past its old
    // value: no counter goes down.
    node.restart();
    node.send("derp", 60_000, 100);
    node.send("direct_ipv4", 80_000, 100);
    node.socket_traffic("DERPHTTPClient", false, 90_000, 90_000);
    for path in ["direct_ipv6", "peer_relay_ipv4", "peer_relay_ipv6"] {
        node.send(path, 1, 1);
    }
    node.receive("derp", 1, 1);
    node.receive("direct_ipv4", 1, 1);
    let (counters, restart) = scrape(&node, &mut tracker);
    let shipped = counters
        .iter()
        .find(|c| c.series.to_string() == "tailscale.bytes.sent.total")
        .map(|c| c.cumulative)
        .unwrap();
    let truth = node.family_increase()["tailscaled_outbound_bytes_total"];
    (shipped, truth, restart.map(|r| r.to_string()))
}

#[test]
fn with_the_debug_endpoint_a_restart_past_every_old_value_is_counted_in_full() {
    let (shipped, truth, restart) = run_missed_reset(true);
    assert_eq!(shipped, truth);
    assert!(
        restart
            .unwrap()
            .contains("process start time (debug endpoint)")
    );
}

#[test]
fn without_it_the_same_restart_is_under_counted_by_the_old_values() {
    // FIXME(known limit, shown on purpose): no evidence, no counter down, so the bytes sent
    // before the restart in that interval (5 000 + 7 000 + the first scrape's 100) are lost.
    let (shipped, truth, restart) = run_missed_reset(false);
    assert_eq!(restart, None);
    assert_eq!(truth - shipped, 5_100 + 7_000);
}

#[tokio::test(flavor = "current_thread")]
async fn the_source_reads_the_debug_endpoint_around_the_main_body() {
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.enable_sockstats();
    node.socket_traffic("LogtailLogger", false, 10, 20);
    fake.serve(&node);
    let spec = SourceSpec::LocalApi {
        socket: fake.socket_path().to_owned(),
    };
    let source =
        Source::new(spec, SourceOptions::default()).with_debug(fake.debug_url().parse().unwrap());
    let fetched = source.fetch().await.unwrap();
    assert_eq!(fetched.target.started, Some(node.started()));
    let debug = fetched.debug.unwrap().unwrap();
    assert!(
        std::str::from_utf8(&debug)
            .unwrap()
            .contains("sockstats_tx_bytes_LogtailLogger 10")
    );
    assert_eq!(
        (fake.requests(), fake.debug_requests()),
        (1, 2),
        "before and after the body"
    );

    // A debug endpoint that fails does not fail the scrape: the body still counts.
    let broken = Source::new(
        SourceSpec::LocalApi {
            socket: fake.socket_path().to_owned(),
        },
        SourceOptions::default(),
    )
    .with_debug(
        format!("http://{}/nothing-here", fake.addr())
            .parse()
            .unwrap(),
    );
    let fetched = broken.fetch().await.unwrap();
    assert_eq!(fetched.debug.unwrap().unwrap_err().kind(), "not_found");
    assert_eq!(fetched.target.started, None);
}

#[test]
fn a_restart_between_the_two_debug_reads_refuses_the_scrape() {
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.send("derp", 10, 1);
    fake.serve(&node);
    // Every answer waits 1 s, so the restart below lands while the main body is answered:
    // after the first debug read and before the second.
    fake.set_delay(std::time::Duration::from_secs(1));
    let spec = SourceSpec::LocalApi {
        socket: fake.socket_path().to_owned(),
    };
    let source =
        Source::new(spec, SourceOptions::default()).with_debug(fake.debug_url().parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while fake.requests() == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            node.restart();
            fake.serve(&node);
        });
        runtime.block_on(source.fetch())
    });
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "restarted_during_scrape");
    assert!(
        err.to_string().contains("next one counts everything"),
        "{err}"
    );
}
