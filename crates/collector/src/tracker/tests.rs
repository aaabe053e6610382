use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;

/// Expands the short names used in these tests into tailscaled families, with `# TYPE`
/// lines, so a scrape reads like `out{path="derp"} 10`.
fn expo(lines: &str) -> String {
    const ALIASES: &[(&str, &str, &str)] = &[
        ("out", "tailscaled_outbound_bytes_total", "counter"),
        ("in", "tailscaled_inbound_bytes_total", "counter"),
        (
            "dropin",
            "tailscaled_inbound_dropped_packets_total",
            "counter",
        ),
        (
            "relay",
            "tailscaled_peer_relay_forwarded_bytes_total",
            "counter",
        ),
        ("routes", "tailscaled_advertised_routes", "gauge"),
        ("health", "tailscaled_health_messages", "gauge"),
        ("newctr", "tailscaled_new_thing_total", "counter"),
    ];
    let mut body = String::new();
    let mut typed = Vec::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (alias, rest) = line.split_at(line.find(['{', ' ']).unwrap_or(line.len()));
        match ALIASES.iter().find(|(a, _, _)| *a == alias) {
            Some((_, family, ty)) => {
                if !typed.contains(family) {
                    typed.push(family);
                    writeln!(body, "# TYPE {family} {ty}").unwrap();
                }
                writeln!(body, "{family}{rest}").unwrap();
            }
            None => writeln!(body, "{line}").unwrap(),
        }
    }
    body
}

/// Renders an observation compactly: counters as `name{dims} +delta =cumulative`, gauges as
/// `name{dims} value`, then restarts, resets and anomalies.
fn render(o: &Observation<'_>) -> String {
    let mut s = String::new();
    if o.baseline {
        s.push_str("baseline\n");
    }
    if let Some(r) = &o.restart {
        writeln!(s, "{r}").unwrap();
    }
    let mut counters: Vec<_> = o.counter_points().into_iter().collect();
    counters.sort_by(|a, b| a.series.cmp(&b.series));
    for c in counters {
        writeln!(s, "{} +{} ={}", c.series, c.delta, c.cumulative).unwrap();
    }
    let mut gauges: Vec<_> = o.gauge_points().into_iter().collect();
    gauges.sort_by(|a, b| a.series.cmp(&b.series));
    for g in gauges {
        writeln!(s, "{} {}", g.series, g.value).unwrap();
    }
    if o.series_resets > 0 {
        writeln!(s, "series resets: {}", o.series_resets).unwrap();
    }
    for a in o.anomalies.details() {
        writeln!(s, "anomaly: {a}").unwrap();
    }
    s
}

/// Runs scrapes one second apart through a fresh tracker and compares every rendered
/// observation; `!` as a scrape's first line gives it a new tailscaled PID.
fn check(scrapes: &[&str], expected: &[&str]) {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut target = TargetInfo {
        pid: Some(100),
        ..TargetInfo::default()
    };
    let mut got = Vec::new();
    for (i, scrape) in scrapes.iter().enumerate() {
        let scrape = match scrape.trim_start().strip_prefix('!') {
            Some(rest) => {
                target.pid = target.pid.map(|p| p + 1);
                rest
            }
            None => scrape,
        };
        let at = Timestamp::from_millis(1_000_000 + 1_000 * i as u64);
        got.push(match t.observe(expo(scrape).as_bytes(), &target, at) {
            Ok(o) => render(&o),
            Err(e) => format!("empty: {e}\n"),
        });
    }
    let expected: Vec<String> = expected.iter().map(|e| unindent(e)).collect();
    assert_eq!(got, expected);
}

fn unindent(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn first_scrape_is_a_baseline_then_deltas() {
    check(
        &[
            r#"out{path="derp"} 10
               out{path="direct_ipv4"} 100"#,
            r#"out{path="derp"} 15
               out{path="direct_ipv4"} 100"#,
        ],
        &[
            "baseline",
            "tailscale.bytes.sent.total +5 =5
             tailscale.bytes.sent.total{path=derp} +5 =5
             tailscale.bytes.sent.total{path=direct_ipv4} +0 =0",
        ],
    );
}

#[test]
fn a_counter_going_down_resets_every_process_counter_even_those_that_grew() {
    // The missed reset: direct_ipv4 grew past its old value after the restart; counting it
    // as +20 would lose the 100 it had before.
    check(
        &[
            r#"out{path="derp"} 50
               out{path="direct_ipv4"} 100"#,
            r#"out{path="derp"} 3
               out{path="direct_ipv4"} 120"#,
        ],
        &[
            "baseline",
            r#"tailscaled restarted: tailscaled_outbound_bytes_total{path="derp"} went down from 50 to 3; every process-lifetime counter counts from 0
               tailscale.bytes.sent.total +123 =123
               tailscale.bytes.sent.total{path=derp} +3 =3
               tailscale.bytes.sent.total{path=direct_ipv4} +120 =120"#,
        ],
    );
}

#[test]
fn a_new_process_id_is_a_restart_even_when_nothing_went_down() {
    check(
        &[r#"out{path="derp"} 50"#, r#"! out{path="derp"} 70"#],
        &[
            "baseline",
            "tailscaled restarted: its process id changed from 100 to 101
             tailscale.bytes.sent.total +70 =70
             tailscale.bytes.sent.total{path=derp} +70 =70",
        ],
    );
}

#[test]
fn without_evidence_a_restart_past_every_old_value_is_under_counted() {
    // FIXME(known limit): no counter went down and the source gives no process identity, so
    // the restart cannot be seen; only +20 of the 70 bytes are counted. The debug endpoint's
    // process start time is the evidence that closes this gap.
    let mut t = Tracker::new(TrackerConfig::default());
    let none = TargetInfo::default();
    let body = |v: u64| expo(&format!(r#"out{{path="derp"}} {v}"#));
    t.observe(body(50).as_bytes(), &none, Timestamp::from_millis(1_000))
        .unwrap();
    let o = t
        .observe(body(70).as_bytes(), &none, Timestamp::from_millis(2_000))
        .unwrap();
    assert_eq!(o.restart, None);
    assert_eq!(o.counter_points()[0].delta, 20);
}

#[test]
fn relay_counters_reset_on_their_own_without_a_restart() {
    check(
        &[
            r#"out{path="derp"} 10
               relay{transport_in="udp4",transport_out="udp4"} 500"#,
            r#"out{path="derp"} 12
               relay{transport_in="udp4",transport_out="udp4"} 40"#,
        ],
        &[
            "baseline",
            "tailscale.bytes.sent.total +2 =2
             tailscale.bytes.sent.total{path=derp} +2 =2
             tailscale.peer_relay.bytes.forwarded.total +40 =40
             tailscale.peer_relay.bytes.forwarded.total{transport_in=udp4,transport_out=udp4} +40 =40
             series resets: 1",
        ],
    );
}

#[test]
fn series_that_appear_later_count_from_zero() {
    check(
        &[
            r#"out{path="derp"} 10"#,
            r#"out{path="derp"} 10
               dropin{reason="acl"} 7
               newctr{kind="x"} 3"#,
        ],
        &[
            "baseline",
            "tailscale.bytes.sent.total +0 =0
             tailscale.bytes.sent.total{path=derp} +0 =0
             tailscale.new.thing.total +3 =3
             tailscale.new.thing.total{kind=x} +3 =3
             tailscale.packets.received.dropped.total +7 =7
             tailscale.packets.received.dropped.total{reason=acl} +7 =7",
        ],
    );
}

#[test]
fn a_series_absent_during_a_restart_counts_in_full_when_it_returns() {
    check(
        &[
            r#"out{path="derp"} 10
               dropin{reason="acl"} 70"#,
            r#"out{path="derp"} 2"#,
            r#"out{path="derp"} 3
               dropin{reason="acl"} 5"#,
        ],
        &[
            "baseline",
            r#"tailscaled restarted: tailscaled_outbound_bytes_total{path="derp"} went down from 10 to 2; every process-lifetime counter counts from 0
               tailscale.bytes.sent.total +2 =2
               tailscale.bytes.sent.total{path=derp} +2 =2"#,
            "tailscale.bytes.sent.total +1 =3
             tailscale.bytes.sent.total{path=derp} +1 =3
             tailscale.packets.received.dropped.total +5 =5
             tailscale.packets.received.dropped.total{reason=acl} +5 =5",
        ],
    );
}

#[test]
fn gauges_are_their_latest_value_and_aggregates_sum_them() {
    check(
        &[
            r#"routes 2
               health{type="warning"} 1
               health{type="error"} 2"#,
            "routes 3",
        ],
        &[
            "baseline
             tailscale.health.messages 3
             tailscale.health.messages{type=error} 2
             tailscale.health.messages{type=warning} 1
             tailscale.routes.advertised 2",
            "tailscale.routes.advertised 3",
        ],
    );
}

#[test]
fn anomalies_are_reported_and_leave_the_series_alone() {
    check(
        &[
            r#"out{path="derp"} 10
               out{path="direct_ipv4"} 1"#,
            r#"out{path="derp"} NaN
               out{path="direct_ipv4"} 2
               out{path="direct_ipv4"} 1
               routes +Inf
               out{path="derp" 12"#,
            r#"out{path="derp"} 11
               out{path="direct_ipv4"} 4"#,
        ],
        &[
            "baseline",
            // derp keeps 10 through its NaN; the repeated direct_ipv4 line is refused.
            r#"tailscale.bytes.sent.total +1 =1
               tailscale.bytes.sent.total{path=direct_ipv4} +1 =1
               anomaly: tailscaled_outbound_bytes_total{path="derp"}: value "NaN" is NaN; not shipped
               anomaly: line 4: the previous line has the same series; a repeated series needs timestamps
               anomaly: tailscaled_advertised_routes: value "+Inf" is infinite; not shipped
               anomaly: line 7: expected ',' or '}' after the value of label "path""#,
            "tailscale.bytes.sent.total +3 =4
             tailscale.bytes.sent.total{path=derp} +1 =1
             tailscale.bytes.sent.total{path=direct_ipv4} +2 =3",
        ],
    );
}

#[test]
fn a_body_with_nothing_usable_changes_nothing() {
    let mut t = Tracker::new(TrackerConfig::default());
    let target = TargetInfo::default();
    let first = expo(r#"out{path="derp"} 10"#);
    t.observe(first.as_bytes(), &target, Timestamp::from_millis(1_000))
        .unwrap();
    let before = t.state().clone();
    for junk in [
        "<html>login</html>\n",
        "go_goroutines 12\n",
        "\u{0}\u{1}garbage",
        "",
    ] {
        let err = t
            .observe(junk.as_bytes(), &target, Timestamp::from_millis(2_000))
            .unwrap_err();
        assert!(
            err.to_string().contains("no usable tailscaled_* sample"),
            "{err}"
        );
    }
    assert_eq!(t.state(), &before);
}

#[test]
fn vanished_series_are_kept_for_the_ttl_then_evicted() {
    let config = TrackerConfig {
        series_ttl: Duration::from_secs(10),
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(config);
    let target = TargetInfo::default();
    let both = expo(
        r#"out{path="derp"} 10
                       out{path="direct_ipv4"} 5"#,
    );
    let one = expo(r#"out{path="derp"} 10"#);
    let at = |s: u64| Timestamp::from_millis(s * 1_000);
    t.observe(both.as_bytes(), &target, at(0)).unwrap();
    assert_eq!(
        t.observe(one.as_bytes(), &target, at(5)).unwrap().evicted,
        0
    );
    // Back within the TTL: its state was kept, so +0, not +5.
    let o = t.observe(both.as_bytes(), &target, at(9)).unwrap();
    assert_eq!(o.counter_points().iter().map(|c| c.delta).sum::<u64>(), 0);
    assert_eq!(
        t.observe(one.as_bytes(), &target, at(20)).unwrap().evicted,
        1
    );
    assert_eq!(t.series(), 1);
}

#[test]
fn series_beyond_the_limit_are_refused_and_counted() {
    let config = TrackerConfig {
        max_series: 2,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(config);
    let target = TargetInfo::default();
    let body = expo(
        r#"out{path="a"} 1
                       out{path="b"} 1
                       out{path="c"} 1
                       out{path="d"} 1"#,
    );
    let o = t
        .observe(body.as_bytes(), &target, Timestamp::from_millis(1_000))
        .unwrap();
    assert_eq!(
        o.anomalies.counts().collect::<Vec<_>>(),
        [("series_cap", 2)]
    );
    assert!(
        o.anomalies.details()[0]
            .to_string()
            .contains("maximum of 2 series")
    );
    assert_eq!(t.series(), 2);
}

#[test]
fn series_longer_than_the_limit_are_refused_clipped_and_counted() {
    let mut t = Tracker::new(TrackerConfig::default());
    let target = TargetInfo::default();
    let huge = "x".repeat(1 << 20);
    let body = expo(&format!("out{{path=\"derp\"}} 1\nout{{path=\"{huge}\"}} 1"));
    let o = t
        .observe(body.as_bytes(), &target, Timestamp::from_millis(1_000))
        .unwrap();
    assert_eq!(o.anomalies.counts().collect::<Vec<_>>(), [("too_long", 1)]);
    let shown = o.anomalies.details()[0].to_string();
    assert_eq!(t.series(), 1, "only the sane series is tracked");
    assert!(
        shown.len() < 400,
        "the message is clipped: {} bytes",
        shown.len()
    );
    assert!(shown.contains("over the 4096"), "{shown}");
}

#[test]
fn ends_move_forward_even_when_the_clock_steps_back() {
    let mut t = Tracker::new(TrackerConfig::default());
    let target = TargetInfo::default();
    let body = |v: u64| expo(&format!(r#"out{{path="derp"}} {v}"#));
    t.observe(body(1).as_bytes(), &target, Timestamp::from_millis(10_000))
        .unwrap();
    let a = t
        .observe(body(2).as_bytes(), &target, Timestamp::from_millis(11_000))
        .unwrap()
        .counter_points();
    let b = t
        .observe(body(3).as_bytes(), &target, Timestamp::from_millis(5_000))
        .unwrap()
        .counter_points();
    assert_eq!(a[0].end, Timestamp::from_millis(11_000));
    assert_eq!(b[0].end, Timestamp::from_millis(11_001));
    assert_eq!(b[0].start, Timestamp::from_millis(10_000));
}

#[test]
fn state_round_trips_through_json_and_the_tracker_continues() {
    let mut t = Tracker::new(TrackerConfig::default());
    let target = TargetInfo {
        pid: Some(7),
        ..TargetInfo::default()
    };
    let body = |v: u64| {
        expo(&format!(
            "out{{path=\"derp\"}} {v}\nrelay{{transport_in=\"udp4\",transport_out=\"udp6\"}} {v}"
        ))
    };
    t.observe(body(10).as_bytes(), &target, Timestamp::from_millis(1_000))
        .unwrap();
    t.observe(body(15).as_bytes(), &target, Timestamp::from_millis(2_000))
        .unwrap();
    let json = serde_json::to_string(t.state()).unwrap();
    let state: TrackerState = serde_json::from_str(&json).unwrap();
    let mut restored = Tracker::restore(TrackerConfig::default(), state).unwrap();
    let o = restored
        .observe(body(18).as_bytes(), &target, Timestamp::from_millis(3_000))
        .unwrap();
    let counters = o.counter_points();
    let agg = counters
        .iter()
        .find(|c| c.series.to_string() == "tailscale.bytes.sent.total")
        .unwrap();
    assert_eq!(
        (agg.delta, agg.cumulative, agg.start),
        (3, 8, Timestamp::from_millis(1_000))
    );
    // A state that does not hold together is refused, not trusted.
    let broken = json.replace("[0,1]", "[0,9]").replace("[2,3]", "[2,9]");
    assert_ne!(broken, json);
    let err = Tracker::restore(
        TrackerConfig::default(),
        serde_json::from_str(&broken).unwrap(),
    );
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("refers to a missing series")
    );
}

#[test]
fn a_restored_state_borrows_catalog_names_and_shares_its_series() {
    use std::borrow::Cow;
    let mut t = Tracker::new(TrackerConfig::default());
    let target = TargetInfo::default();
    let body = |v: u64| {
        expo(&format!(
            "out{{path=\"derp\"}} {v}\nnewctr{{zone=\"a\"}} {v}\nrelay{{transport_in=\"udp4\",transport_out=\"udp6\"}} {v}"
        ))
    };
    let borrowed = |s: &Series| {
        let keys: Vec<bool> = s
            .dimensions
            .iter()
            .map(|(k, _)| {
                // A borrowed dimension name points into the catalog's static table.
                catalog::CATALOG.iter().any(|e| match e.breakdown {
                    catalog::Breakdown::Labels(keep) => keep.iter().any(|c| std::ptr::eq(*c, k)),
                    _ => false,
                })
            })
            .collect();
        (matches!(s.name, Cow::Borrowed(_)), keys)
    };
    t.observe(body(10).as_bytes(), &target, Timestamp::from_millis(1_000))
        .unwrap();
    let second = t
        .observe(body(11).as_bytes(), &target, Timestamp::from_millis(1_500))
        .unwrap();
    let summary = |o: &Observation<'_>| -> BTreeSet<_> {
        o.counter_points()
            .iter()
            .map(|c| (c.series.to_string(), borrowed(&c.series)))
            .collect()
    };
    let fresh = summary(&second);
    // A scrape borrows a catalog family's name and dimension names, and owns a derived one's.
    assert!(fresh.contains(&(
        "tailscale.bytes.sent.total{path=derp}".to_owned(),
        (true, vec![true])
    )));
    assert!(fresh.contains(&(
        "tailscale.new.thing.total{zone=a}".to_owned(),
        (false, vec![false])
    )));
    assert_eq!(fresh.len(), 6, "{fresh:?}");

    let json = serde_json::to_string(t.state()).unwrap();
    let mut restored = Tracker::restore(
        TrackerConfig::default(),
        serde_json::from_str(&json).unwrap(),
    )
    .unwrap();
    let o = restored
        .observe(body(12).as_bytes(), &target, Timestamp::from_millis(2_000))
        .unwrap();
    let after = summary(&o);
    assert_eq!(
        after, fresh,
        "a restored tracker holds its series as a fresh one does"
    );
    let points = o.counter_points();
    // The checkpoint names a sink's series by its number when it is the tracker's own.
    let ids = restored.state().published_ids();
    let mut numbers = std::collections::BTreeSet::new();
    for c in &points {
        // Equal to the restored copy, and the very same allocation.
        let shared = restored.shared(&c.series).unwrap();
        assert!(Arc::ptr_eq(&shared, &c.series), "{}", c.series);
        let id = ids
            .get(&shared)
            .expect("the tracker's own series has a number");
        assert_eq!(restored.state().published_series(id), Some(&*c.series));
        numbers.insert(id);
        // An equal copy is not the tracker's: written in full.
        assert_eq!(ids.get(&Arc::new(Series::clone(&c.series))), None);
    }
    assert_eq!(numbers.len(), points.len(), "one number per series");
    let unknown = Series {
        name: "tailscale.nope".into(),
        dimensions: Dimensions::none(),
        unit: tailship_model::Unit::Count,
    };
    assert!(restored.shared(&unknown).is_none());
}

/// One step of a scripted history over three `path` counters and one relay counter.
#[derive(Clone, Debug)]
enum Step {
    Add(usize, u64),
    Relay(u64),
    RelayReset,
    /// tailscaled restarts; `with_evidence` gives it a new PID.
    Restart {
        with_evidence: bool,
    },
    Scrape,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..3usize, 0..1_000u64).prop_map(|(i, n)| Step::Add(i, n)),
        2 => (0..1_000u64).prop_map(Step::Relay),
        1 => Just(Step::RelayReset),
        1 => any::<bool>().prop_map(|with_evidence| Step::Restart { with_evidence }),
        4 => Just(Step::Scrape),
    ]
}

const PATHS: [&str; 3] = ["derp", "direct_ipv4", "direct_ipv6"];

proptest! {
    /// Whatever happens, every delta of a published series adds up to its cumulative value,
    /// and the total shipped is the true increase less exactly what undetectable resets hid:
    /// a restart with evidence or with a counter going down is counted in full; a restart
    /// (or relay reset) after which nothing went down loses the values held before it.
    #[test]
    fn shipped_equals_true_increase(steps in proptest::collection::vec(step(), 1..60)) {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut target = TargetInfo { pid: Some(1), ..TargetInfo::default() };
        let (mut paths, mut relay) = ([0u64; 3], 0u64);
        // Values at the last scrape, and which resets happened since without evidence.
        let (mut seen_paths, mut seen_relay) = ([0u64; 3], 0u64);
        let (mut silent_restart, mut relay_reset) = (false, false);
        // Bytes added since the last scrape: a restart before the next scrape wipes them
        // unseen, for any scraper.
        let (mut unscraped, mut unscraped_relay) = (0u64, 0u64);
        let (mut truth, mut shipped, mut hidden) = (0u64, 0u64, 0u64);
        let mut cumulative = std::collections::HashMap::new();
        let mut scraped = false;
        let mut now = 0;
        for step in steps.iter().chain([&Step::Scrape]) {
            match *step {
                Step::Add(i, n) => { paths[i] += n; if scraped { truth += n; unscraped += n } }
                Step::Relay(n) => { relay += n; if scraped { truth += n; unscraped_relay += n } }
                Step::RelayReset => {
                    relay = 0;
                    relay_reset = true;
                    hidden += std::mem::take(&mut unscraped_relay);
                }
                Step::Restart { with_evidence } => {
                    hidden += std::mem::take(&mut unscraped) + std::mem::take(&mut unscraped_relay);
                    paths = [0; 3];
                    relay = 0;
                    relay_reset = true;
                    if with_evidence {
                        target.pid = target.pid.map(|p| p + 1);
                    } else {
                        silent_restart = true;
                    }
                }
                Step::Scrape => {
                    let mut body = String::new();
                    for (p, v) in PATHS.iter().zip(paths) {
                        writeln!(body, "out{{path=\"{p}\"}} {v}").unwrap();
                    }
                    writeln!(body, "relay{{transport_in=\"udp4\",transport_out=\"udp4\"}} {relay}").unwrap();
                    now += 1_000;
                    let o = t.observe(expo(&body).as_bytes(), &target, Timestamp::from_millis(now)).unwrap();
                    if scraped && o.restart.is_none() {
                        if silent_restart {
                            // A process counter that went down must have been seen.
                            prop_assert!(paths.iter().zip(seen_paths).all(|(v, old)| *v >= old));
                            hidden += seen_paths.iter().sum::<u64>();
                        }
                        if relay_reset && relay >= seen_relay {
                            hidden += seen_relay;
                        }
                    }
                    for c in &o.counter_points() {
                        let total = cumulative.entry(c.series.to_string()).or_insert(0u64);
                        *total += c.delta;
                        prop_assert_eq!(*total, c.cumulative, "{}", c.series);
                        prop_assert!(c.end > c.start);
                        if c.series.dimensions.is_empty() {
                            shipped += c.delta;
                        }
                    }
                    (seen_paths, seen_relay) = (paths, relay);
                    (silent_restart, relay_reset) = (false, false);
                    (unscraped, unscraped_relay) = (0, 0);
                    scraped = true;
                }
            }
        }
        prop_assert_eq!(shipped + hidden, truth);
    }

    /// With no reset, the deltas of a series add up to last − first.
    #[test]
    fn without_resets_deltas_sum_to_last_minus_first(increments in proptest::collection::vec(0..u32::MAX as u64, 1..40)) {
        let mut t = Tracker::new(TrackerConfig::default());
        let target = TargetInfo::default();
        let first = 12_345u64;
        let mut v = first;
        let mut sum = 0;
        let body = |v: u64| expo(&format!(r#"out{{path="derp"}} {v}"#));
        t.observe(body(v).as_bytes(), &target, Timestamp::from_millis(0)).unwrap();
        for (i, inc) in increments.iter().enumerate() {
            v += inc;
            let o = t.observe(body(v).as_bytes(), &target, Timestamp::from_millis(i as u64 + 1)).unwrap();
            prop_assert_eq!(o.counter_points().len(), 2);
            prop_assert_eq!(o.counter_points()[0].delta, o.counter_points()[1].delta);
            sum += o.counter_points()[0].delta;
        }
        prop_assert_eq!(sum, v - first);
    }

    /// A reset restarts counting from the new value.
    #[test]
    fn a_reset_restarts_from_the_new_value(before in 1..1_000_000u64, after in 0..1_000_000u64) {
        prop_assume!(after < before);
        let mut t = Tracker::new(TrackerConfig::default());
        let target = TargetInfo::default();
        let body = |v: u64| expo(&format!(r#"relay{{transport_in="a",transport_out="b"}} {v}"#));
        t.observe(body(before).as_bytes(), &target, Timestamp::from_millis(0)).unwrap();
        let o = t.observe(body(after).as_bytes(), &target, Timestamp::from_millis(1)).unwrap();
        prop_assert_eq!(o.counter_points()[0].delta, after);
        prop_assert_eq!(o.series_resets, 1);
    }
}

/// A series written twice in one body: the first sample in the body is used, every other one
/// is counted as an anomaly and changes nothing (labels in another order are the same
/// series).
#[test]
fn of_a_series_written_twice_the_first_in_the_body_counts() {
    check(
        &[
            r#"out{path="derp"} 10
               out{path="direct_ipv4"} 5
               out{path="derp"} 99"#,
            r#"out{path="direct_ipv4"} 5
               out{path="derp"} 15
               out{path="derp"} 1
               newctr{a="1",b="2"} 4
               out{path="derp"} 7
               newctr{b="2",a="1"} 9"#,
        ],
        &[
            r#"baseline
               anomaly: tailscaled_outbound_bytes_total{path="derp"}: appears more than once in the body; the first one counts"#,
            // The repeat right after its first sample is the parser's to refuse; a series
            // new since the baseline counts from 0.
            r#"tailscale.bytes.sent.total +5 =5
               tailscale.bytes.sent.total{path=derp} +5 =5
               tailscale.bytes.sent.total{path=direct_ipv4} +0 =0
               tailscale.new.thing.total +4 =4
               tailscale.new.thing.total{a=1,b=2} +4 =4
               anomaly: line 4: the previous line has the same series; a repeated series needs timestamps
               anomaly: tailscaled_outbound_bytes_total{path="derp"}: appears more than once in the body; the first one counts
               anomaly: tailscaled_new_thing_total{a="1",b="2"}: appears more than once in the body; the first one counts"#,
        ],
    );
}

/// The series of [`a_tracker_continuing_observes_what_one_restored_before_each_scrape_does`],
/// one written with its labels out of order (a key written out, not taken from the body).
const LAYOUT_SERIES: [&str; 8] = [
    r#"out{path="derp"}"#,
    r#"out{path="direct_ipv4"}"#,
    r#"in{path="derp"}"#,
    r#"newctr{a="1",b="2"}"#,
    r#"newctr{b="2",a="1"}"#,
    r#"relay{transport_in="udp4",transport_out="udp4"}"#,
    "routes",
    "dropin",
];

/// A scrape: the series in body order (indexes into [`LAYOUT_SERIES`], repeats allowed),
/// `None` to write the previous scrape's again, with values drawn per scrape.
fn layout_scrape() -> impl Strategy<Value = (Option<Vec<usize>>, Vec<u64>, bool)> {
    let layout = proptest::collection::vec(0..LAYOUT_SERIES.len(), 0..9);
    (
        prop_oneof![2 => Just(None), 1 => layout.prop_map(Some)],
        proptest::collection::vec(0..50u64, LAYOUT_SERIES.len()),
        proptest::bool::weighted(0.1),
    )
}

proptest! {
    /// A scrape is matched to the previous one's series by position when it can be (no
    /// hashing, no duplicate search); a tracker restored from its state before every scrape
    /// never can. Both see the same observations and keep the same state, whatever the
    /// layouts: series that move, repeat, vanish, come back, are evicted or refused.
    #[test]
    fn a_tracker_continuing_observes_what_one_restored_before_each_scrape_does(
        scrapes in proptest::collection::vec(layout_scrape(), 1..30)
    ) {
        let config = TrackerConfig {
            series_ttl: Duration::from_millis(2_500),
            max_series: 5,
            ..TrackerConfig::default()
        };
        let mut continuing = Tracker::new(config.clone());
        let mut saved = continuing.state().clone();
        let mut target = TargetInfo { pid: Some(1), ..TargetInfo::default() };
        let mut layout = Vec::new();
        let mut totals = [0u64; LAYOUT_SERIES.len()];
        for (i, (next, increments, restart)) in scrapes.iter().enumerate() {
            if let Some(next) = next {
                layout.clone_from(next);
            }
            if *restart {
                target.pid = target.pid.map(|p| p + 1);
                totals = [0; LAYOUT_SERIES.len()];
            }
            let mut body = String::new();
            for (total, inc) in totals.iter_mut().zip(increments) {
                *total += inc;
            }
            for &s in &layout {
                writeln!(body, "{} {}", LAYOUT_SERIES[s], totals[s]).unwrap();
            }
            let body = expo(&body);
            let at = Timestamp::from_millis(1_000 * (i as u64 + 1));
            let json = serde_json::to_string(&saved).unwrap();
            let mut restored = Tracker::restore(config.clone(), serde_json::from_str(&json).unwrap()).unwrap();
            let expected = restored.observe(body.as_bytes(), &target, at);
            let got = continuing.observe(body.as_bytes(), &target, at);
            prop_assert_eq!(got, expected, "scrape {} of\n{}", i, body);
            prop_assert_eq!(continuing.state(), restored.state());
            saved = restored.state().clone();
        }
    }
}
