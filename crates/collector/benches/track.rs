//! One scrape through `Tracker::observe` (parse, catalog, per-series deltas, points) at 50,
//! 10k and 100k series of a generated tailscaled body (`tailship_testkit::bodies`).
//!
//! `cargo bench -p tailship-collector --bench track`; the figures are in docs/PERFORMANCE.md.
//! Under `cargo test` each benchmark runs once, at 50 and 1k series only: the test build is
//! not optimised, and 100k series would take seconds there.

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use tailship_collector::{TargetInfo, Tracker, TrackerConfig};
use tailship_model::Timestamp;

use tailship_testkit::bodies;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// The sizes measured: 50, 10k and 100k series under `cargo bench` (which passes `--bench`).
fn series() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        &[50, 10_000, 100_000]
    } else {
        &[50, 1_000]
    }
}

/// Scrapes a second apart.
const START: u64 = 1_700_000_000_000;

fn main() {
    divan::main();
}

fn tracker(series: usize) -> Tracker {
    Tracker::new(TrackerConfig {
        max_series: series * 2,
        ..TrackerConfig::default()
    })
}

/// One scrape, and its points read once (as a sink's driver reads them): the number of
/// points.
fn observe(tracker: &mut Tracker, body: &str, at: u64) -> usize {
    let at = Timestamp::from_millis(at);
    let observation = tracker.observe(body.as_bytes(), &TargetInfo::default(), at);
    let o = observation.expect("the body has tailscaled samples");
    o.counters().count() + o.gauges().count()
}

/// A scrape in steady state: every series known. The body is the same each time (deltas of
/// 0), which costs what a body with traffic costs.
#[divan::bench(args = series())]
fn steady(bencher: Bencher<'_, '_>, series: usize) {
    let body = bodies::body(series, 1);
    let mut tracker = tracker(series);
    observe(&mut tracker, &bodies::body(series, 0), START);
    let mut at = START + 1_000;
    observe(&mut tracker, &body, at);
    assert_eq!(tracker.series(), series);
    bencher
        .counter(ItemsCount::new(series))
        .counter(BytesCount::of_str(&body))
        .bench_local(|| {
            at += 1_000;
            observe(&mut tracker, &body, at)
        });
}

/// The first scrape of a fresh tracker: every series new.
#[divan::bench(args = series())]
fn baseline(bencher: Bencher<'_, '_>, series: usize) {
    let body = bodies::body(series, 0);
    bencher
        .counter(ItemsCount::new(series))
        .with_inputs(|| tracker(series))
        .bench_local_values(|mut tracker| {
            let observation = observe(&mut tracker, &body, START);
            (tracker, observation)
        });
}
