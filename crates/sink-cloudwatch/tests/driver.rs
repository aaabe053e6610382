//! The sink under the shared driver against the contract fake, in compressed time: the
//! driver reads no clock, so a 15-minute run with a throttling storm and a 5-minute outage
//! takes as long as its HTTP requests. Every request is real, over loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{series, sink};
use tailship_model::{CounterPoint, Series, Timestamp, Unit};
use tailship_sink::{Driver, DriverConfig, Next, Sink};
use tailship_sink_cloudwatch::CloudWatchSink;
use tailship_testkit::{FakeCloudWatch, Fault};

/// One sink, its driver, a simulated clock and the truth of what was pushed.
struct Run {
    fake: FakeCloudWatch,
    sink: CloudWatchSink,
    driver: Driver,
    now: Timestamp,
    retry_at: Option<Timestamp>,
    series: Vec<Arc<Series>>,
    cumulative: Vec<u64>,
    truth: BTreeMap<String, f64>,
    /// Requests sent per call of `pump`.
    rounds: Vec<usize>,
}

impl Run {
    async fn new(series: Vec<Arc<Series>>) -> Self {
        let fake = FakeCloudWatch::start();
        let sink = sink(&fake, |c| c.breakdowns = vec!["*".into()]).await;
        let config = DriverConfig {
            max_in_flight: 4,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        };
        let driver = Driver::new(&sink, config);
        // On a minute, so that buckets are whole.
        let now = Timestamp::from_millis(Timestamp::now().as_millis() / 60_000 * 60_000);
        let cumulative = vec![0; series.len()];
        Self {
            fake,
            sink,
            driver,
            now,
            retry_at: None,
            series,
            cumulative,
            truth: BTreeMap::new(),
            rounds: Vec::new(),
        }
    }

    /// One scrape: series `i` grew by `delta(i)`.
    fn scrape(&mut self, delta: impl Fn(usize) -> u64) {
        let mut points = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let d = delta(i);
            self.cumulative[i] += d;
            *self.truth.entry(key(s)).or_default() += d as f64;
            points.push(CounterPoint {
                series: Arc::clone(s),
                start: Timestamp::from_millis(0),
                end: self.now,
                delta: d,
                cumulative: self.cumulative[i],
            });
        }
        self.driver.push(&self.sink, &points, &[], self.now);
    }

    /// Sends everything the driver hands out now, as the agent does.
    async fn pump(&mut self, flush: bool) {
        if self.retry_at.is_some_and(|t| t <= self.now) {
            self.retry_at = None;
            self.driver.resume();
        }
        let mut sent = 0;
        loop {
            let mut requests = Vec::new();
            while let Some(batch) = self.driver.take_batch(&self.sink, self.now, flush) {
                requests.push((batch.id, self.sink.send(batch.points)));
            }
            if requests.is_empty() {
                break;
            }
            sent += requests.len();
            for (id, request) in requests {
                let result = request.await;
                if let Next::RetryAfter(d) = self.driver.complete(id, result, self.now) {
                    self.retry_at = Some(self.now.saturating_add(d));
                }
            }
        }
        if sent > 0 {
            self.rounds.push(sent);
        }
    }

    fn tick(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }
}

fn key(s: &Series) -> String {
    s.to_string()
}

fn many(n: usize, value_len: usize) -> Vec<Arc<Series>> {
    (0..n)
        .map(|i| {
            let reason = format!("r{i:05}{}", "x".repeat(value_len));
            series(
                "tailscale.packets.received.dropped.total",
                &[("reason", &reason)],
                Unit::Count,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_throttling_storm_and_a_five_minute_outage_lose_nothing_and_duplicate_nothing() {
    let mut run = Run::new(many(50, 0)).await;
    let mut most_pending = 0;
    for sec in 0..=900u64 {
        match sec {
            120 => run.fake.fail_next(Fault::Throttling, 4),
            240 => run.fake.set_outage(Some(Fault::InternalError)),
            540 => run.fake.set_outage(None),
            _ => {}
        }
        if sec % 10 == 0 {
            run.scrape(|i| (i as u64 + 1) * 1000 + sec);
        }
        run.pump(false).await;
        most_pending = most_pending.max(run.driver.pending_points());
        run.tick(Duration::from_secs(1));
    }
    for _ in 0..120 {
        run.pump(true).await;
        if run.driver.pending_points() == 0 {
            break;
        }
        run.tick(Duration::from_secs(1));
    }
    assert_eq!(run.driver.pending_points(), 0);

    let sums = run.fake.sums();
    assert_eq!(sums.len(), 50);
    for (series, truth) in &run.truth {
        assert_eq!(sums.get(series), Some(truth), "{series}");
    }
    let stats = run.driver.stats();
    assert_eq!(stats.dropped(), 0, "{:?}", stats.points_dropped);
    let refused = run.fake.refused();
    let throttled = refused.iter().filter(|r| r.1 == "Throttling").count();
    let failed = refused
        .iter()
        .filter(|r| r.1 == "InternalServiceError")
        .count();
    assert_eq!(throttled, 4);
    // Backoff doubles from 1 s to 60 s: a handful of attempts in five minutes, not 300.
    assert!(
        (3..=15).contains(&failed),
        "{failed} attempts during the outage"
    );
    // One datum per series per bucket: nothing sent twice.
    let mut seen = BTreeSet::new();
    for d in run.fake.datums() {
        assert!(
            seen.insert((d.key(), d.timestamp.unwrap().to_bits())),
            "{} sent twice",
            d.key()
        );
    }
    // Memory stays per series and bucket, never per scrape.
    assert!(most_pending <= 50 * 60, "{most_pending} pending points");
    eprintln!(
        "outage run: {} requests, {} throttled, {failed} failed, {} accepted, {} datums, most pending {most_pending}",
        run.fake.requests(),
        throttled,
        run.fake.accepted().len(),
        run.fake.datums().len()
    );
}

#[tokio::test]
async fn each_flush_takes_the_fewest_requests_the_datum_limit_allows() {
    let mut run = Run::new(many(2500, 0)).await;
    run.scrape(|i| i as u64);
    run.tick(Duration::from_secs(20));
    run.scrape(|i| 2 * i as u64);
    run.pump(false).await;
    assert!(run.rounds.is_empty(), "an open bucket waits");
    run.tick(Duration::from_secs(60));
    run.pump(false).await;
    let sizes: Vec<usize> = run.fake.accepted().iter().map(|r| r.datums.len()).collect();
    assert_eq!(run.rounds, vec![3], "ceil(2500 / 1000) requests");
    assert_eq!(sizes, vec![1000, 1000, 500]);
    assert!(
        run.fake
            .datums()
            .iter()
            .all(|d| d.statistic_values.is_some_and(|s| s.sample_count == 2.0))
    );
    let sums = run.fake.sums();
    for (series, truth) in &run.truth {
        assert_eq!(sums.get(series), Some(truth), "{series}");
    }
}

#[tokio::test]
async fn each_flush_takes_the_fewest_requests_the_byte_limit_allows() {
    let mut run = Run::new(many(1000, 900)).await;
    run.scrape(|i| i as u64 + 1);
    run.tick(Duration::from_secs(60));
    let bound: usize = {
        let probe: Vec<_> = run
            .series
            .iter()
            .map(|s| common::counter(Arc::clone(s), &[1]))
            .collect();
        probe.iter().map(|p| run.sink.encoded_size(p)).sum()
    };
    let max = run.sink.limits().max_bytes;
    run.pump(false).await;
    let accepted = run.fake.accepted();
    assert_eq!(
        accepted.len(),
        bound.div_ceil(max),
        "{bound} bytes in requests of {max}"
    );
    assert_eq!(accepted.len(), 2);
    assert!(accepted.iter().all(|r| r.cbor_bytes <= 1_000_000 && r.gzip));
    assert_eq!(run.fake.datums().len(), 1000);
}

#[tokio::test]
async fn points_older_than_cloudwatch_takes_are_dropped_and_counted() {
    let mut run = Run::new(many(2, 0)).await;
    let old = CounterPoint {
        series: Arc::clone(&run.series[0]),
        start: Timestamp::from_millis(0),
        end: Timestamp::from_millis(run.now.as_millis() - 14 * 86_400_000),
        delta: 5,
        cumulative: 5,
    };
    run.driver.push(&run.sink, &[old], &[], run.now);
    run.scrape(|_| 7);
    run.tick(Duration::from_secs(60));
    run.pump(false).await;
    assert_eq!(run.driver.stats().points_dropped.get("too_old"), Some(&1));
    assert_eq!(run.fake.datums().len(), 2, "the recent points went");
    assert!(
        run.fake.refused().is_empty(),
        "nothing CloudWatch would refuse was sent"
    );
}
