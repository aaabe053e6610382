//! A scripted tailscaled history through the real parser, catalog and tracker: whatever
//! happens, the deltas of every published series sum exactly to its true increase.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use tailship_collector::{TargetInfo, Tracker, TrackerConfig, published_totals};
use tailship_model::Timestamp;
use tailship_testkit::SimNode;

/// Drives a tracker over a simulated node and keeps the sum of the deltas it produced.
struct Run {
    node: SimNode,
    tracker: Tracker,
    now: u64,
    shipped: BTreeMap<String, u64>,
    restarts: usize,
    series_resets: usize,
}

impl Run {
    fn new() -> Self {
        Self {
            node: SimNode::new(),
            tracker: Tracker::new(TrackerConfig::default()),
            now: 1_700_000_000_000,
            shipped: BTreeMap::new(),
            restarts: 0,
            series_resets: 0,
        }
    }

    fn scrape_body(&mut self, body: &str) -> bool {
        self.now += 60_000;
        let target = TargetInfo {
            version: Some(self.node.version().to_owned()),
            ..TargetInfo::default()
        };
        let Ok(o) =
            self.tracker
                .observe(body.as_bytes(), &target, Timestamp::from_millis(self.now))
        else {
            return false;
        };
        self.restarts += usize::from(o.restart.is_some());
        self.series_resets += o.series_resets;
        for c in o.counter_points() {
            *self.shipped.entry(c.series.to_string()).or_default() += c.delta;
        }
        true
    }

    fn scrape(&mut self) {
        let body = self.node.render();
        assert!(self.scrape_body(&body));
    }

    fn traffic(&mut self, k: u64) {
        self.node.send("direct_ipv4", 10_000 + k, 9);
        self.node.send("derp", 300, 1);
        self.node.receive("direct_ipv6", 20_000 + k, 15);
        self.node.relay_forward("udp4", "udp6", 700, 2);
    }

    /// The true increase per published series, mapped through the same catalog.
    fn truth(&self) -> BTreeMap<String, u64> {
        let raw = self.node.increase();
        published_totals(raw.iter().map(|(series, n)| (series.as_str(), *n)))
    }

    fn assert_exact(&self) {
        let truth = self.truth();
        for (series, t) in &truth {
            assert_eq!(self.shipped.get(series), Some(t), "{series}");
        }
        for (series, s) in &self.shipped {
            assert_eq!(
                truth.get(series).copied().unwrap_or(0),
                *s,
                "{series} shipped without truth"
            );
        }
    }
}

#[test]
fn every_byte_counted_once_through_a_rough_history() {
    let mut run = Run::new();
    run.traffic(0);
    run.scrape(); // baseline
    run.node.mark();

    for k in 1..=3 {
        run.traffic(k);
        run.scrape();
    }

    // tailscaled restarts: counters go down.
    run.node.restart();
    run.traffic(4);
    run.scrape();
    assert_eq!(run.restarts, 1);

    // A new drop reason and a new Service appear: they count from 0.
    run.node.drop_inbound("acl", 4);
    run.node.serve("svc:web", 100, 2_000);
    run.traffic(5);
    run.scrape();

    // The missed reset: after this restart direct_ipv4 grows past its old value before the
    // next scrape, while derp stays below its old value.
    run.node.restart();
    run.node.send("direct_ipv4", 10_000_000, 1);
    run.node.relay_forward("udp4", "udp6", 5_000, 10);
    run.scrape();
    assert_eq!(run.restarts, 2);

    // The relay server is re-created: only its series reset, judged one by one.
    run.node.relay_reset();
    run.traffic(6);
    run.scrape();
    assert_eq!(run.restarts, 2);
    assert!(run.series_resets >= 2, "relay bytes and packets reset");

    // A series vanishes from one scrape and returns: it is remembered, not counted twice.
    run.traffic(7);
    let body = run.node.render();
    let without: String = body
        .lines()
        .filter(|l| !l.starts_with("tailscaled_inbound_bytes_total{path=\"direct_ipv6\"}"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, body);
    assert!(run.scrape_body(&without));
    run.traffic(8);
    run.scrape();

    // A malformed body changes nothing; neither does the source being down (no scrape).
    let before = serde_json::to_string(run.tracker.state()).unwrap();
    assert!(!run.scrape_body("<html><body>502 Bad Gateway</body></html>\n"));
    assert!(!run.scrape_body("\u{0}\u{1}\u{2} binary garbage"));
    assert_eq!(serde_json::to_string(run.tracker.state()).unwrap(), before);
    run.traffic(9);
    run.traffic(10); // two intervals' worth while the source was down
    run.scrape();

    run.assert_exact();
    let truth = run.truth();
    assert!(truth["tailscale.bytes.sent.total"] > 10_000_000);
    assert!(truth.contains_key("tailscale.packets.received.dropped.total{reason=acl}"));
}

#[test]
fn without_the_target_rule_the_missed_reset_would_be_under_counted() {
    // The same missed reset, checked from the other side: the shipped total includes the
    // bytes direct_ipv4 had before the restart, not just its growth past them.
    let mut run = Run::new();
    run.scrape();
    run.node.mark();
    run.node.send("direct_ipv4", 50_000, 1);
    run.node.send("derp", 5_000, 1);
    run.scrape();
    run.node.restart();
    run.node.send("direct_ipv4", 80_000, 1); // 80 000 > 50 000: no drop on this path
    run.node.send("derp", 10, 1); // 10 < 5 000: the evidence
    run.scrape();
    assert_eq!(
        run.shipped["tailscale.bytes.sent.total{path=direct_ipv4}"],
        130_000
    );
    run.assert_exact();
}
