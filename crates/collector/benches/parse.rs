//! Parser throughput on the Tailscale usermetrics fixtures and on a 190 KB body with every
//! metric type (`shared/bench/alltypes.237mfs.prom.txt`, a Prometheus server's own metrics).
//!
//! `cargo bench -p tailship-collector --bench parse`; the figures are in docs/PERFORMANCE.md.
//! Under `cargo test` each benchmark runs once.

#![allow(clippy::unwrap_used)] // bench code: a missing input is a failed run

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use tailship_collector::{Event, parse};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

const FIXTURES: &[&str] = &[
    "usermetrics-v1.80.prom",
    "usermetrics-v1.96.prom",
    "usermetrics-v1.102-relay-serve.prom",
];

fn main() {
    divan::main();
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{SHARED}/{path}")).expect("the bench inputs are in shared/")
}

/// Reads every item as a consumer would; returns the number of samples.
fn drain(body: &[u8]) -> usize {
    let mut samples = 0;
    for item in parse(body) {
        if let Ok(Event::Sample(_)) = &item {
            samples += 1;
        }
        let _ = black_box(item);
    }
    samples
}

fn run(bencher: Bencher<'_, '_>, body: &[u8]) {
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    bencher
        .counter(BytesCount::new(body.len()))
        .counter(ItemsCount::new(lines))
        .bench_local(|| drain(black_box(body)));
}

/// One Tailscale usermetrics body (2–5 KB, 30–60 series).
#[divan::bench(args = FIXTURES)]
fn tailscale(bencher: Bencher<'_, '_>, name: &str) {
    let body = read(&format!("fixtures/tailscale/{name}"));
    run(bencher, &body);
}

/// The 190 KB body: 237 families of every type, 2,332 lines (the throughput budget).
#[divan::bench]
fn alltypes(bencher: Bencher<'_, '_>) {
    let body = read("bench/alltypes.237mfs.prom.txt");
    assert!(drain(&body) > 1_800, "the body parses");
    run(bencher, &body);
}
