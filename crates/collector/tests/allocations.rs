//! No heap allocation per sample in steady state: the parser allocates nothing for a body
//! without escapes, and the tracker allocates per scrape, not per sample. Counted on this
//! thread only, by `allocation-counter`'s global allocator.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use tailship_testkit::bodies;

use allocation_counter::measure;
use tailship_collector::{Event, TargetInfo, Tracker, TrackerConfig, parse};
use tailship_model::Timestamp;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

/// Allocations made while parsing `body` to the end; the number of samples.
fn parse_allocations(body: &[u8]) -> (u64, usize) {
    let mut samples = 0;
    let info = measure(|| {
        for item in parse(body) {
            samples += usize::from(matches!(item, Ok(Event::Sample(_))));
        }
    });
    (info.count_total, samples)
}

#[test]
fn the_parser_allocates_nothing() {
    // The 190 KB body of every metric type (no label value or HELP text holds an escape,
    // the one thing that allocates) and the Tailscale fixtures.
    let mut bodies =
        vec![std::fs::read(format!("{SHARED}/bench/alltypes.237mfs.prom.txt")).unwrap()];
    for name in [
        "usermetrics-v1.80.prom",
        "usermetrics-v1.96.prom",
        "usermetrics-v1.102-relay-serve.prom",
    ] {
        bodies.push(std::fs::read(format!("{SHARED}/fixtures/tailscale/{name}")).unwrap());
    }
    for body in bodies {
        let (allocations, samples) = parse_allocations(&body);
        assert!(samples >= 10);
        assert_eq!(allocations, 0, "allocations for {samples} samples");
    }
    // A thousand times the samples, still nothing.
    for series in [100, 100_000] {
        let (allocations, samples) = parse_allocations(bodies::body(series, 1).as_bytes());
        assert_eq!(samples, series);
        assert_eq!(allocations, 0, "allocations for {samples} samples");
    }
}

/// Allocations of one steady-state scrape of `series` series (every series known).
fn scrape_allocations(series: usize) -> u64 {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let target = TargetInfo {
        version: Some("1.102.0".into()),
        ..TargetInfo::default()
    };
    let mut scrape = |n: u64, body: &str| {
        let at = Timestamp::from_millis(1_700_000_000_000 + n * 60_000);
        let observation = tracker.observe(body.as_bytes(), &target, at).unwrap();
        assert!(!observation.baseline || n == 0);
        // Its points, read as a driver reads them, borrow the state: nothing to allocate.
        let points = observation.counters().count() + observation.gauges().count();
        assert!(points > 0 || n == 0);
    };
    for n in 0..3 {
        scrape(n, &bodies::body(series, n));
    }
    let body = bodies::body(series, 3);
    measure(|| scrape(3, &body)).count_total
}

#[test]
fn the_tracker_allocates_per_scrape_not_per_sample() {
    // One buffer each for the samples' values and the published series touched: the same
    // for every size. The points are read from the state, not copied into lists. (A list of
    // samples, keys written out and the duplicate search's order are needed only when a
    // scrape's series are not the last one's, in its order.)
    let counts = [50, 1_000, 10_000].map(scrape_allocations);
    assert_eq!(
        counts, [counts[0]; 3],
        "allocations of a scrape at 50, 1k and 10k series"
    );
    assert!(counts[0] <= 2, "{} allocations in a scrape", counts[0]);
}
