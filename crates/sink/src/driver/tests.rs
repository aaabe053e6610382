use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tailship_model::{CounterPoint, Dimensions, GaugePoint, Series, Timestamp, Unit};

use super::*;
use crate::{Limits, Point, Rejection, Report, SendFuture, Sink, SinkError, Value, Values};

/// A sink that only states limits: the tests play the provider by hand.
struct Fake {
    limits: Limits,
    values: Values,
}

impl Sink for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn values(&self) -> Values {
        self.values
    }
    fn selects(&self, series: &Series) -> bool {
        series.dimensions.get("path") != Some("unselected")
    }
    fn admit(&self, series: &Series) -> Result<(), Rejection> {
        if series.dimensions.len() > 2 {
            return Err(Rejection {
                reason: "too_many_dimensions",
                detail: "over 2".into(),
            });
        }
        Ok(())
    }
    fn encoded_size(&self, p: &Point) -> usize {
        p.series.name.len() + 10
    }
    fn send(&self, _: &[Point]) -> SendFuture {
        Box::pin(std::future::ready(Ok(Report::default())))
    }
}

fn series(i: usize) -> Arc<Series> {
    Arc::new(Series {
        name: "tailscale.bytes.sent.total".into(),
        dimensions: Dimensions::new([("path", format!("p{i}"))]),
        unit: Unit::Bytes,
    })
}

/// Runs a driver over simulated time: one scrape of `n` series every `every`, each adding
/// `delta`; the provider answers with `answer(call, points, now)`. Tracks what it accepted.
struct Sim {
    sink: Fake,
    driver: Driver,
    now: Timestamp,
    /// Counter totals since start per series, as the tracker would produce them.
    cumulative: Vec<u64>,
    starts: Vec<Timestamp>,
    pushed: u64,
    accepted: BTreeMap<String, u64>,
    /// Bucket timestamps accepted per series (to check none is sent twice).
    accepted_buckets: Vec<(String, Timestamp)>,
    calls: usize,
    max_pending: usize,
    retry_until: Option<Timestamp>,
    /// Every retry delay the driver asked for.
    delays: Vec<Duration>,
}

impl Sim {
    fn new(limits: Limits, values: Values, n: usize) -> Self {
        let sink = Fake { limits, values };
        let driver = Driver::new(&sink, DriverConfig::default());
        Self {
            sink,
            driver,
            now: Timestamp::from_millis(1_700_000_000_000),
            cumulative: vec![0; n],
            starts: vec![Timestamp::from_millis(1_700_000_000_000); n],
            pushed: 0,
            accepted: BTreeMap::new(),
            accepted_buckets: Vec::new(),
            calls: 0,
            max_pending: 0,
            retry_until: None,
            delays: Vec::new(),
        }
    }

    fn scrape(&mut self, delta: u64) {
        let points: Vec<CounterPoint> = (0..self.cumulative.len())
            .map(|i| {
                self.cumulative[i] += delta;
                CounterPoint {
                    series: series(i),
                    start: self.starts[i],
                    end: self.now,
                    delta,
                    cumulative: self.cumulative[i],
                }
            })
            .collect();
        self.pushed += delta * points.len() as u64;
        self.driver.push(&self.sink, &points, &[], self.now);
        self.max_pending = self.max_pending.max(self.driver.pending_points());
    }

    /// Sends whatever the driver lets through now, answering with `answer`.
    fn flush(
        &mut self,
        flush_all: bool,
        mut answer: impl FnMut(usize, &[Point]) -> Result<Report, SinkError>,
    ) -> usize {
        if let Some(t) = self.retry_until {
            if self.now < t {
                return 0;
            }
            self.retry_until = None;
            self.driver.resume();
        }
        let mut requests = 0;
        while let Some(batch) = self.driver.take_batch(&self.sink, self.now, flush_all) {
            let (id, points) = (batch.id, batch.points.to_vec());
            self.calls += 1;
            requests += 1;
            let result = answer(self.calls, &points);
            if let Ok(report) = &result {
                for (i, p) in points.iter().enumerate() {
                    if report.rejected.iter().any(|(r, _)| *r == i) {
                        continue;
                    }
                    let Value::Counter(c) = &p.value else {
                        continue;
                    };
                    *self.accepted.entry(p.series.to_string()).or_default() += c.sum;
                    self.accepted_buckets.push((p.series.to_string(), c.bucket));
                }
            }
            if let Next::RetryAfter(d) = self.driver.complete(id, result, self.now) {
                self.delays.push(d);
                self.retry_until = Some(self.now.saturating_add(d));
                break;
            }
        }
        requests
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    fn accepted_total(&self) -> u64 {
        self.accepted.values().sum()
    }
}

fn ok(_: usize, _: &[Point]) -> Result<Report, SinkError> {
    Ok(Report::default())
}

/// Cloud Monitoring's shape: 200 points a request, a running total every 10 s at most.
fn gcm_like() -> Limits {
    Limits {
        max_points: 200,
        min_spacing: Duration::from_secs(10),
        ..Limits::default()
    }
}

fn cloudwatch_like() -> Limits {
    Limits {
        max_points: 1000,
        max_bytes: 1 << 20,
        bucket: Some(Duration::from_secs(60)),
        max_buckets: 30,
        max_age: Duration::from_secs(14 * 86_400),
        max_future: Duration::from_secs(7_200),
        ..Limits::default()
    }
}

#[test]
fn batches_are_the_fewest_the_limits_allow() {
    let mut sim = Sim::new(
        Limits {
            max_points: 1000,
            ..Limits::default()
        },
        Values::Deltas,
        2_500,
    );
    sim.scrape(7);
    assert_eq!(sim.flush(false, ok), 3);
    assert_eq!(sim.accepted_total(), sim.pushed);
    assert_eq!(sim.driver.pending_points(), 0);

    // The byte limit splits too: each point is 36 bytes here.
    let limits = Limits {
        max_points: 1000,
        max_bytes: 36 * 100,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits, Values::Deltas, 250);
    sim.scrape(1);
    assert_eq!(sim.flush(false, ok), 3);
    assert_eq!(sim.accepted_total(), 250);
}

#[test]
fn scrapes_in_one_bucket_become_one_point_sent_when_the_bucket_closes() {
    let mut sim = Sim::new(cloudwatch_like(), Values::Deltas, 1);
    // Align to a bucket start, then scrape every 10 s.
    sim.now = Timestamp::from_millis(1_700_000_040_000);
    let mut sent = Vec::new();
    for delta in [5, 1, 9, 3, 2, 4] {
        sim.scrape(delta);
        sim.flush(false, |_, points| {
            sent.extend(points.iter().cloned());
            Ok(Report::default())
        });
        sim.advance(Duration::from_secs(10));
    }
    assert!(sent.is_empty(), "nothing is sent before the bucket closes");
    assert_eq!(
        sim.driver.next_due(),
        Some(Timestamp::from_millis(1_700_000_100_000)),
        "the caller is told when the bucket closes"
    );
    sim.flush(false, |_, points| {
        sent.extend(points.iter().cloned());
        Ok(Report::default())
    });
    assert_eq!(sent.len(), 1);
    let Value::Counter(c) = &sent[0].value else {
        panic!("a counter")
    };
    assert_eq!(
        (c.count, c.sum, c.min, c.max, c.cumulative),
        (6, 24, 1, 9, 24)
    );
    assert_eq!(c.bucket, Timestamp::from_millis(1_700_000_040_000));
}

#[test]
fn a_throttling_storm_loses_nothing_and_honours_retry_after() {
    let mut sim = Sim::new(Limits::default(), Values::Deltas, 50);
    for _ in 0..100 {
        sim.scrape(100);
        sim.flush(false, |call, _| {
            if call % 4 != 0 {
                Err(SinkError::Throttled {
                    retry_after: Some(Duration::from_secs(3)),
                    detail: "Throttling".into(),
                })
            } else {
                Ok(Report::default())
            }
        });
        sim.advance(Duration::from_secs(1));
    }
    while sim.driver.pending_points() > 0 {
        sim.advance(Duration::from_secs(60));
        sim.flush(false, ok);
    }
    assert_eq!(sim.accepted_total(), sim.pushed);
    assert!(!sim.delays.is_empty());
    assert!(
        sim.delays.iter().all(|d| *d >= Duration::from_secs(3)),
        "{:?}",
        sim.delays
    );
    assert!(sim.driver.stats().requests["throttled"] > 0);
    assert!(sim.driver.stats().points_retried > 0);
}

#[test]
fn a_long_outage_stays_bounded_and_every_byte_arrives_in_its_bucket() {
    // Five hours down, scraping every minute: 300 buckets per series, capped at 30.
    let mut sim = Sim::new(cloudwatch_like(), Values::Deltas, 50);
    for minute in 0..300 {
        sim.scrape(1_000 + minute);
        sim.flush(false, |_, _| {
            Err(SinkError::Transient("connection refused".into()))
        });
        sim.advance(Duration::from_secs(60));
    }
    assert!(
        sim.max_pending <= 50 * 30,
        "pending points {}",
        sim.max_pending
    );
    assert!(sim.driver.stats().merged > 0);
    // Recovery.
    for _ in 0..40 {
        sim.advance(Duration::from_secs(301));
        sim.flush(false, ok);
    }
    assert_eq!(sim.driver.pending_points(), 0);
    assert_eq!(sim.accepted_total(), sim.pushed);
    // Within the cap, buckets keep their own minute: the last 29 minutes arrived one by one.
    let mut buckets: Vec<_> = sim
        .accepted_buckets
        .iter()
        .filter(|(s, _)| s.ends_with("p0}"))
        .collect();
    buckets.sort();
    buckets.dedup();
    assert_eq!(buckets.len(), 30, "one merged bucket plus 29 of their own");
}

#[test]
fn a_short_outage_delivers_every_bucket_with_its_own_time() {
    let mut sim = Sim::new(cloudwatch_like(), Values::Deltas, 3);
    for _ in 0..20 {
        sim.scrape(10);
        sim.flush(false, |_, _| Err(SinkError::Transient("503".into())));
        sim.advance(Duration::from_secs(60));
    }
    for _ in 0..20 {
        sim.advance(Duration::from_secs(301));
        sim.flush(false, ok);
    }
    assert_eq!(sim.accepted_total(), sim.pushed);
    assert_eq!(sim.driver.stats().merged, 0);
    let p0: Vec<_> = sim
        .accepted_buckets
        .iter()
        .filter(|(s, _)| s.ends_with("p0}"))
        .collect();
    assert_eq!(p0.len(), 20, "each minute once");
}

#[test]
fn rejections_drop_and_count_while_the_rest_is_written() {
    let mut sim = Sim::new(Limits::default(), Values::Deltas, 4);
    sim.scrape(5);
    sim.flush(false, |_, _| {
        Ok(Report {
            rejected: vec![(
                1,
                Rejection {
                    reason: "invalid_parameter",
                    detail: "bad".into(),
                },
            )],
            ..Report::default()
        })
    });
    assert_eq!(sim.accepted_total(), 15);
    sim.scrape(5);
    sim.flush(false, |_, _| {
        Err(SinkError::Rejected(Rejection {
            reason: "invalid_parameter",
            detail: "all bad".into(),
        }))
    });
    let stats = sim.driver.stats();
    assert_eq!(stats.points_dropped["invalid_parameter"], 5);
    assert_eq!(stats.requests["partial"], 1);
    assert_eq!(stats.requests["rejected"], 1);
    assert_eq!(sim.driver.pending_points(), 0);
    assert!(
        !sim.driver.is_paused(),
        "a rejection is no reason to back off"
    );
}

#[test]
fn unattributed_rejections_are_counted_and_the_rest_acknowledged() {
    let mut sim = Sim::new(Limits::default(), Values::Totals, 5);
    sim.scrape(1);
    sim.flush(false, |_, _| {
        Ok(Report {
            rejected_unattributed: vec![(
                2,
                Rejection {
                    reason: "out_of_order",
                    detail: "2 points".into(),
                },
            )],
            ..Report::default()
        })
    });
    let stats = sim.driver.stats();
    assert_eq!(stats.points_dropped["out_of_order"], 2);
    assert_eq!(stats.points_sent, 3);
    assert_eq!(stats.requests["partial"], 1);
    // Which two is unknown: every running total of the batch goes once more.
    assert_eq!(stats.points_retried, 5);
    assert_eq!(sim.driver.pending_points(), 5);

    let mut sim = Sim::new(Limits::default(), Values::Deltas, 5);
    sim.scrape(1);
    sim.flush(false, |_, _| {
        Ok(Report {
            rejected_unattributed: vec![(
                2,
                Rejection {
                    reason: "invalid",
                    detail: "2 points".into(),
                },
            )],
            ..Report::default()
        })
    });
    assert_eq!(sim.driver.stats().points_dropped["invalid"], 2);
    assert_eq!(
        sim.driver.pending_points(),
        0,
        "a delta sent again could count twice"
    );
}

/// The provider refuses a running total without saying which (Cloud Monitoring's partial
/// failures), and the series goes quiet (its reason vanished with a tailscaled restart):
/// its total is sent once more after the spacing, restamped, with nothing else to carry it.
#[test]
fn a_refused_running_total_of_a_quiet_series_is_sent_again_once() {
    let limits = Limits {
        min_spacing: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut sim = Sim::new(limits, Values::Totals, 3);
    sim.scrape(7);
    let mut sent: Vec<Point> = Vec::new();
    let refuse_one = |sent: &mut Vec<Point>, points: &[Point]| {
        sent.extend(points.iter().cloned());
        Ok(Report {
            rejected_unattributed: vec![(
                1,
                Rejection {
                    reason: "invalid_labels",
                    detail: "1 point".into(),
                },
            )],
            ..Report::default()
        })
    };
    assert_eq!(sim.flush(false, |_, p| refuse_one(&mut sent, p)), 1);
    let first_end = sent[0].value.end();
    // No scrape brings a newer point: it goes once a newer scrape could have carried it
    // (the spacing, and one more for that scrape), not before.
    sim.advance(Duration::from_secs(19));
    assert_eq!(sim.flush(false, ok), 0);
    assert_eq!(
        sim.driver.next_due(),
        Some(first_end.saturating_add(Duration::from_secs(20))),
        "the caller is told when to come back"
    );
    sim.advance(Duration::from_secs(1));
    let mut again: Vec<Point> = Vec::new();
    assert_eq!(
        sim.flush(false, |_, p| {
            again.extend(p.iter().cloned());
            Ok(Report::default())
        }),
        1
    );
    assert_eq!(again.len(), 3);
    for p in &again {
        let Value::Counter(c) = &p.value else {
            panic!("a counter")
        };
        assert_eq!(c.cumulative, 7, "the same total");
        assert_eq!(c.end, sim.now, "restamped to when it is sent");
    }
    assert_eq!(sim.driver.pending_points(), 0);

    // Refused again (a series the provider will never take): dropped, not sent forever.
    sim.scrape(1);
    sim.advance(Duration::from_secs(10));
    sim.scrape(1);
    sent.clear();
    assert_eq!(sim.flush(false, |_, p| refuse_one(&mut sent, p)), 1);
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.flush(false, |_, p| refuse_one(&mut sent, p)), 1);
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.flush(false, ok), 0, "sent once more, then given up");
    assert_eq!(sim.driver.pending_points(), 0);
    assert_eq!(sim.driver.stats().points_dropped["invalid_labels"], 3);
}

/// A running total restored from the checkpoint as in flight (maybe written) is held back
/// by the spacing, then (a scrape later at most) goes restamped although no newer scrape
/// comes.
#[test]
fn a_restored_running_total_goes_after_the_spacing_without_a_newer_scrape() {
    let limits = Limits {
        min_spacing: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut sim = Sim::new(limits.clone(), Values::Totals, 2);
    sim.scrape(4);
    // Handed out, never answered (killed), and checkpointed meanwhile.
    assert!(sim.driver.take_batch(&sim.sink, sim.now, false).is_some());
    let state = sim.driver.state();
    let mut restarted = Sim::new(limits, Values::Totals, 2);
    restarted.now = sim.now;
    restarted.driver.restore(&restarted.sink, state, |_| None);
    assert_eq!(
        restarted.flush(false, ok),
        0,
        "may have been written: spaced"
    );
    restarted.advance(Duration::from_secs(10));
    assert_eq!(
        restarted.flush(false, ok),
        0,
        "a newer scrape may still come"
    );
    restarted.advance(Duration::from_secs(10));
    let mut sent: Vec<Point> = Vec::new();
    restarted.flush(false, |_, p| {
        sent.extend(p.iter().cloned());
        Ok(Report::default())
    });
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|p| matches!(&p.value,
        Value::Counter(c) if c.cumulative == 4 && c.end == restarted.now)));
}

#[test]
fn series_the_configuration_does_not_select_are_skipped_quietly() {
    let sink = Fake {
        limits: Limits::default(),
        values: Values::Deltas,
    };
    let mut d = Driver::new(&sink, DriverConfig::default());
    let skip = Arc::new(Series {
        name: "x".into(),
        dimensions: Dimensions::new([("path", "unselected")]),
        unit: Unit::Count,
    });
    let p = GaugePoint {
        series: skip,
        at: Timestamp::from_millis(1),
        value: 1.0,
    };
    d.push(&sink, &[], &[p], Timestamp::from_millis(1));
    assert!(
        d.take_batch(&sink, Timestamp::from_millis(2), true)
            .is_none()
    );
    assert_eq!(d.stats().dropped(), 0);
    assert_eq!(d.pending_series(), 0);
}

#[test]
fn auth_failures_keep_the_points_until_credentials_work() {
    let mut sim = Sim::new(Limits::default(), Values::Deltas, 2);
    for _ in 0..5 {
        sim.scrape(3);
        sim.flush(false, |_, _| Err(SinkError::Auth("expired token".into())));
        sim.advance(Duration::from_secs(600));
    }
    assert_eq!(sim.accepted_total(), 0);
    sim.advance(Duration::from_secs(600));
    sim.flush(false, ok);
    assert_eq!(sim.accepted_total(), 30);
}

#[test]
fn refused_series_are_dropped_and_counted() {
    let sink = Fake {
        limits: Limits::default(),
        values: Values::Deltas,
    };
    let mut d = Driver::new(&sink, DriverConfig::default());
    let wide = Arc::new(Series {
        name: "x".into(),
        dimensions: Dimensions::new([("a", "1"), ("b", "2"), ("c", "3")]),
        unit: Unit::Count,
    });
    let p = GaugePoint {
        series: wide,
        at: Timestamp::from_millis(1),
        value: 1.0,
    };
    d.push(&sink, &[], &[p.clone(), p], Timestamp::from_millis(1));
    assert_eq!(d.stats().points_dropped["too_many_dimensions"], 2);
    assert!(
        d.take_batch(&sink, Timestamp::from_millis(2), true)
            .is_none()
    );
}

#[test]
fn totals_are_coalesced_spaced_and_superseded_not_resent() {
    let limits = gcm_like();
    let mut sim = Sim::new(limits, Values::Totals, 3);
    let mut sent: Vec<Point> = Vec::new();
    for second in 0..60 {
        sim.scrape(1);
        let fail = (20..30).contains(&second);
        sim.flush(false, |_, points| {
            if fail {
                return Err(SinkError::Transient("unavailable".into()));
            }
            sent.extend(points.iter().cloned());
            Ok(Report::default())
        });
        sim.advance(Duration::from_secs(1));
    }
    // The last total is held until 10 s after the previous one; a newer scrape carries it.
    sim.advance(Duration::from_secs(10));
    sim.scrape(0);
    sim.flush(true, |_, points| {
        sent.extend(points.iter().cloned());
        Ok(Report::default())
    });
    let p0: Vec<_> = sent
        .iter()
        .filter(|p| p.series.to_string().ends_with("p0}"))
        .collect();
    for pair in p0.windows(2) {
        let gap = pair[1].value.end().since(pair[0].value.end());
        assert!(gap >= Duration::from_secs(10), "points {gap:?} apart");
    }
    let Value::Counter(last) = &p0.last().unwrap().value else {
        panic!()
    };
    assert_eq!(last.cumulative, 60, "the newest total carries everything");
}

#[test]
fn old_points_are_dropped_and_counted() {
    let limits = Limits {
        max_age: Duration::from_secs(3600),
        ..Limits::default()
    };
    let mut sim = Sim::new(limits, Values::Deltas, 1);
    sim.scrape(9);
    sim.flush(false, |_, _| Err(SinkError::Transient("down".into())));
    sim.advance(Duration::from_secs(7200));
    sim.flush(false, ok);
    assert_eq!(sim.driver.stats().points_dropped["too_old"], 1);
    assert_eq!(sim.driver.pending_points(), 0);
}

#[test]
fn a_series_is_in_one_request_at_a_time() {
    let sink = Fake {
        limits: Limits::default(),
        values: Values::Deltas,
    };
    let mut d = Driver::new(&sink, DriverConfig::default());
    let t = Timestamp::from_millis(1_000);
    let point = |delta, end| CounterPoint {
        series: series(0),
        start: t,
        end: Timestamp::from_millis(end),
        delta,
        cumulative: delta,
    };
    d.push(&sink, &[point(1, 1_000)], &[], t);
    let first = d.take_batch(&sink, t, false).map(|b| b.id).unwrap();
    d.push(&sink, &[point(2, 2_000)], &[], t);
    assert!(
        d.take_batch(&sink, t, false).is_none(),
        "its earlier point is still in flight"
    );
    d.complete(first, Ok(Report::default()), t);
    assert_eq!(
        d.take_batch(&sink, t, false).map(|b| b.points.len()),
        Some(1)
    );
}

/// A restored driver keeps the tracker's copy of a series (given by `shared`) rather than
/// the checkpoint's, in its queue and in the points it hands out.
#[test]
fn a_restored_driver_shares_the_series_it_is_given() {
    let mut sim = Sim::new(Limits::default(), Values::Deltas, 2);
    sim.scrape(4);
    sim.scrape(4);
    let json = serde_json::to_string(&sim.driver.state()).unwrap();
    let tracker_copy = series(0);
    let mut restored = Driver::new(&sim.sink, DriverConfig::default());
    let r = restored.restore(&sim.sink, serde_json::from_str(&json).unwrap(), |s| {
        (*s == *tracker_copy).then(|| Arc::clone(&tracker_copy))
    });
    assert_eq!(r.points, 2);
    let queued = |d: &mut Driver, s: &Arc<Series>| Arc::clone(&d.queue_of(s).unwrap().series);
    assert!(Arc::ptr_eq(
        &queued(&mut restored, &tracker_copy),
        &tracker_copy
    ));
    // A series the tracker does not have keeps the checkpoint's copy.
    let other = series(1);
    assert!(!Arc::ptr_eq(&queued(&mut restored, &other), &other));
    let batch = restored.take_batch(&sim.sink, sim.now, true).unwrap();
    let p0 = batch
        .points
        .iter()
        .find(|p| *p.series == *tracker_copy)
        .unwrap();
    assert!(Arc::ptr_eq(&p0.series, &tracker_copy));
}

#[test]
fn state_keeps_in_flight_and_pending_points_across_a_restart() {
    let mut sim = Sim::new(
        Limits {
            max_points: 2,
            ..Limits::default()
        },
        Values::Deltas,
        3,
    );
    sim.scrape(4);
    let id = sim
        .driver
        .take_batch(&sim.sink, sim.now, false)
        .map(|b| b.id)
        .unwrap();
    let state = sim.driver.state();
    let json = serde_json::to_string(&state).unwrap();
    let _ = id; // killed while the request was in flight

    let mut restored = Driver::new(&sim.sink, DriverConfig::default());
    restored.restore(&sim.sink, serde_json::from_str(&json).unwrap(), |_| None);
    assert_eq!(restored.pending_points(), 3);
    let mut total = 0;
    while let Some(b) = restored.take_batch(&sim.sink, sim.now, true) {
        let (id, sum) = (
            b.id,
            b.points
                .iter()
                .map(|p| match &p.value {
                    Value::Counter(c) => c.sum,
                    Value::Gauge(_) => 0,
                })
                .sum::<u64>(),
        );
        total += sum;
        restored.complete(id, Ok(Report::default()), sim.now);
    }
    assert_eq!(total, 12);
}

/// What a checkpoint says was in flight, restored: a delta sink counts it as possible
/// duplicates and sends it again; a running total sink spaces its next point after it.
#[test]
fn in_flight_points_are_marked_and_restored_as_possible_duplicates() {
    for values in [Values::Deltas, Values::Totals] {
        let limits = Limits {
            max_points: 2,
            min_spacing: Duration::from_secs(10),
            ..Limits::default()
        };
        let mut sim = Sim::new(limits, values, 3);
        sim.scrape(4);
        let batch = sim.driver.take_batch(&sim.sink, sim.now, false).unwrap();
        let in_batch = batch.points.len();
        let state = sim.driver.state();
        let marked: usize = state.series.iter().map(|s| s.in_flight).sum();
        assert_eq!(marked, in_batch, "{values:?}");
        let json = serde_json::to_string(&state).unwrap();

        let mut restored = Driver::new(&sim.sink, DriverConfig::default());
        let r = restored.restore(&sim.sink, serde_json::from_str(&json).unwrap(), |_| None);
        assert_eq!((r.points, r.in_flight.len()), (3, in_batch));
        match values {
            Values::Deltas => {
                assert_eq!(r.possible_duplicates, in_batch);
                assert_eq!(restored.stats().possible_duplicates, in_batch as u64);
                let mut n = 0;
                while let Some(b) = restored.take_batch(&sim.sink, sim.now, true) {
                    n += b.points.len();
                    let id = b.id;
                    restored.complete(id, Ok(Report::default()), sim.now);
                }
                assert_eq!(n, 3, "everything is sent again");
            }
            Values::Totals => {
                assert_eq!(
                    r.possible_duplicates, 0,
                    "a running total cannot count twice"
                );
                let b = restored.take_batch(&sim.sink, sim.now, true).unwrap();
                assert_eq!(b.points.len(), 1, "only the series that was not in flight");
                let id = b.id;
                restored.complete(id, Ok(Report::default()), sim.now);
                // A newer scrape 10 s later moves the held series past the spacing.
                let later = sim.now.saturating_add(Duration::from_secs(10));
                let points: Vec<CounterPoint> = (0..3)
                    .map(|i| CounterPoint {
                        series: series(i),
                        start: sim.starts[i],
                        end: later,
                        delta: 1,
                        cumulative: 5,
                    })
                    .collect();
                restored.push(&sim.sink, &points, &[], later);
                let mut n = 0;
                while let Some(b) = restored.take_batch(&sim.sink, later, true) {
                    n += b.points.len();
                    let id = b.id;
                    restored.complete(id, Ok(Report::default()), later);
                }
                assert_eq!(n, 3);
            }
        }
    }
}

/// A request without an answer may have been written: delta points are counted as possible
/// duplicates and resent; a running total's next point keeps the spacing after it.
#[test]
fn an_uncertain_outcome_is_counted_or_spaced() {
    let limits = Limits {
        min_spacing: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut sim = Sim::new(limits.clone(), Values::Deltas, 2);
    sim.scrape(5);
    sim.flush(false, |_, _| Err(SinkError::Uncertain("timeout".into())));
    assert_eq!(sim.driver.stats().possible_duplicates, 2);
    assert_eq!(sim.driver.stats().requests["uncertain"], 1);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.flush(false, ok), 1);
    assert_eq!(sim.accepted_total(), 10);

    let mut sim = Sim::new(limits, Values::Totals, 2);
    sim.scrape(5);
    sim.flush(false, |_, _| Err(SinkError::Uncertain("timeout".into())));
    assert_eq!(sim.driver.stats().possible_duplicates, 0);
    sim.advance(Duration::from_secs(2));
    sim.scrape(1);
    assert_eq!(sim.flush(false, ok), 0, "held back by the spacing");
    sim.advance(Duration::from_secs(9));
    sim.scrape(1);
    assert_eq!(sim.flush(false, ok), 1);
}

/// A batch taken back unsent is pending again, with nothing counted.
#[test]
fn a_cancelled_batch_is_pending_again_with_nothing_counted() {
    let mut sim = Sim::new(Limits::default(), Values::Deltas, 3);
    sim.scrape(2);
    let id = sim.driver.take_batch(&sim.sink, sim.now, false).unwrap().id;
    sim.driver.cancel(id);
    assert_eq!(sim.driver.in_flight(), 0);
    assert_eq!(sim.driver.stats(), &crate::Stats::default());
    assert_eq!(
        sim.driver
            .state()
            .series
            .iter()
            .map(|s| s.in_flight)
            .sum::<usize>(),
        0
    );
    assert_eq!(sim.flush(false, ok), 1);
    assert_eq!(sim.accepted_total(), 6);
}

proptest! {
    /// Whatever the provider answers, every point is accepted once or dropped and counted:
    /// accepted + rejected equals what was pushed, and pending memory stays bounded.
    #[test]
    fn every_point_is_accepted_once_or_counted(answers in proptest::collection::vec(0..6u8, 1..200)) {
        let mut sim = Sim::new(Limits { max_points: 7, max_buckets: 5, bucket: Some(Duration::from_secs(60)), ..Limits::default() }, Values::Deltas, 10);
        let mut rejected = 0u64;
        let mut answers = answers.into_iter().cycle();
        for _ in 0..100 {
            sim.scrape(3);
            sim.flush(false, |_, points| match answers.next().unwrap_or(0) {
                0 | 1 => Ok(Report::default()),
                2 => Err(SinkError::Throttled { retry_after: None, detail: "slow down".into() }),
                3 => Err(SinkError::Transient("timeout".into())),
                4 => {
                    rejected += points.iter().map(|p| match &p.value { Value::Counter(c) => c.sum, Value::Gauge(_) => 0 }).sum::<u64>();
                    Err(SinkError::Rejected(Rejection { reason: "invalid", detail: String::new() }))
                }
                _ => Err(SinkError::Auth("denied".into())),
            });
            sim.advance(Duration::from_secs(30));
        }
        for _ in 0..100 {
            sim.advance(Duration::from_secs(400));
            sim.flush(true, ok);
        }
        prop_assert_eq!(sim.driver.pending_points(), 0);
        prop_assert_eq!(sim.accepted_total() + rejected, sim.pushed);
        prop_assert!(sim.max_pending <= 10 * 5 + 7 * 4);
    }
}

proptest! {
    /// Each point lands in its own series' queue whatever order the pushes list the series
    /// in, whether a series comes as the same `Arc` or as a copy, and when queues emptied by
    /// a send are swept and their slots reused: the slot at a point's place in the last push
    /// is only a guess.
    #[test]
    fn points_reach_their_series_whatever_the_order(
        pushes in proptest::collection::vec(
            (proptest::collection::vec((0..6usize, any::<bool>(), 1..100u64), 0..8), any::<bool>()),
            1..12,
        ),
    ) {
        let mut sim = Sim::new(cloudwatch_like(), Values::Deltas, 0);
        let shared: Vec<Arc<Series>> = (0..6).map(series).collect();
        let mut pushed: BTreeMap<String, u64> = BTreeMap::new();
        for (points, send) in pushes {
            let points: Vec<CounterPoint> = points
                .into_iter()
                .map(|(i, copy, delta)| {
                    *pushed.entry(shared[i].to_string()).or_default() += delta;
                    CounterPoint {
                        series: if copy { series(i) } else { Arc::clone(&shared[i]) },
                        start: sim.now,
                        end: sim.now,
                        delta,
                        cumulative: delta,
                    }
                })
                .collect();
            sim.driver.push(&sim.sink, &points, &[], sim.now);
            if send {
                sim.flush(true, ok);
            }
            sim.advance(Duration::from_secs(1));
        }
        sim.flush(true, ok);
        prop_assert_eq!(sim.driver.pending_points(), 0);
        prop_assert_eq!(&sim.accepted, &pushed);
    }
}

/// Running totals of series that began a scrape apart (gauges from the baseline scrape,
/// counters from the next, a series that appears later) end up in one request per spacing
/// period, not one per phase.
#[test]
fn running_totals_of_every_phase_share_one_round() {
    let limits = gcm_like();
    let mut sim = Sim::new(limits, Values::Totals, 6);
    let started = sim.now;
    let mut requests: Vec<(Duration, usize)> = Vec::new();
    for second in 0..60u64 {
        // Series 0-2 from the first scrape, 3-4 from the second, 5 from the seventh.
        let live = match second {
            0 => 3,
            1..=6 => 5,
            _ => 6,
        };
        let points: Vec<CounterPoint> = (0..live)
            .map(|i| {
                sim.cumulative[i] += 1;
                CounterPoint {
                    series: series(i),
                    start: sim.starts[i],
                    end: sim.now,
                    delta: 1,
                    cumulative: sim.cumulative[i],
                }
            })
            .collect();
        sim.driver.push(&sim.sink, &points, &[], sim.now);
        let at = sim.now.since(started);
        sim.flush(false, |_, p| {
            requests.push((at, p.len()));
            Ok(Report::default())
        });
        sim.advance(Duration::from_secs(1));
    }
    // After the phases have met, every request carries all six series, 10 s apart.
    let settled: Vec<_> = requests
        .iter()
        .filter(|(at, _)| *at >= Duration::from_secs(30))
        .collect();
    assert!(!settled.is_empty());
    assert!(
        settled.iter().all(|(_, n)| *n == 6),
        "one request per round: {requests:?}"
    );
    for pair in settled.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            Duration::from_secs(10),
            "{requests:?}"
        );
    }
}

/// When the points of a round refused as a whole go again, as the agent takes batches
/// (all of a round before any answer): the gap between the refusal and the retry, and the
/// ends each series' accepted points carry.
fn retry_of_a_refused_round(refusal: SinkError) -> (Duration, Vec<Vec<Timestamp>>) {
    let limits = gcm_like();
    let mut sim = Sim::new(limits, Values::Totals, 3);
    let started = sim.now;
    let mut answers: Vec<(Duration, bool)> = Vec::new();
    let mut sent: Vec<Point> = Vec::new();
    let mut refusal = Some(refusal);
    let mut paused_until: Option<Timestamp> = None;
    for _ in 0..80 {
        sim.scrape(1);
        let at = sim.now.since(started);
        if paused_until.is_some_and(|t| sim.now >= t) {
            paused_until = None;
            sim.driver.resume();
        }
        // As the agent does: batches are taken while requests may be in flight, so the
        // round is over (a take hands out nothing) before the answer comes.
        let mut batches = Vec::new();
        while let Some(b) = sim.driver.take_batch(&sim.sink, sim.now, false) {
            batches.push((b.id, b.points.to_vec()));
        }
        for (id, points) in batches {
            // The first request of the round due at 20 s is refused.
            let result = match refusal.take_if(|_| at >= Duration::from_secs(20)) {
                Some(err) => Err(err),
                None => {
                    sent.extend(points);
                    Ok(Report::default())
                }
            };
            answers.push((at, result.is_ok()));
            if let Next::RetryAfter(d) = sim.driver.complete(id, result, sim.now) {
                paused_until = Some(sim.now.saturating_add(d));
            }
        }
        sim.advance(Duration::from_millis(500));
    }
    let refused = answers.iter().position(|(_, ok)| !ok).expect("one refusal");
    let (failed_at, _) = answers[refused];
    let (retried_at, ok) = answers[refused + 1];
    assert!(ok, "{answers:?}");
    let ends = (0..3)
        .map(|i| {
            let name = format!("p{i}}}");
            sent.iter()
                .filter(|p| p.series.to_string().ends_with(&name))
                .map(|p| p.value.end())
                .collect()
        })
        .collect();
    (retried_at - failed_at, ends)
}

/// A round refused before anything was written (throttled) goes again after the backoff, not
/// at the next round; a transient failure (which gRPC does not promise wrote nothing) waits
/// for the next round, where a running total is accepted either way. Each series' points
/// stay spaced as the provider requires in both.
#[test]
fn a_round_refused_unwritten_is_retried_after_the_backoff_a_transient_one_a_round_later() {
    let throttled = SinkError::Throttled {
        retry_after: None,
        detail: "ResourceExhausted".into(),
    };
    let (gap, ends) = retry_of_a_refused_round(throttled);
    // The default backoff starts at 1 s, with jitter: up to twice that, and a scrape apart.
    assert!(gap <= Duration::from_millis(2_500), "retried {gap:?} after");
    let (gap_transient, ends_transient) =
        retry_of_a_refused_round(SinkError::Transient("Unavailable".into()));
    assert!(
        gap_transient >= Duration::from_secs(10),
        "retried {gap_transient:?} after"
    );
    for ends in ends.iter().chain(&ends_transient) {
        assert!(ends.len() >= 3, "{ends:?}");
        for pair in ends.windows(2) {
            assert!(
                pair[1].since(pair[0]) >= Duration::from_secs(10),
                "{ends:?}"
            );
        }
    }
}

/// The checkpoint serializes the driver's state without copying it (`state_view`): what it
/// writes reads back as the owned state, in flight points first and marked, pending buckets
/// after them, and a last send only where a spacing makes it matter.
#[test]
fn the_state_view_serializes_as_the_owned_state() {
    for (values, spacing) in [
        (Values::Deltas, Duration::ZERO),
        (Values::Totals, Duration::from_secs(10)),
    ] {
        let limits = Limits {
            max_points: 3,
            min_spacing: spacing,
            many_points_per_series: true,
            bucket: Some(Duration::from_secs(60)),
            max_buckets: 4,
            ..Limits::default()
        };
        let mut sim = Sim::new(limits, values, 4);
        // Sent and acknowledged once, then two more buckets, one of them handed out.
        sim.scrape(1);
        sim.advance(Duration::from_secs(60));
        assert!(sim.flush(false, ok) > 0);
        sim.scrape(2);
        sim.advance(Duration::from_secs(60));
        sim.scrape(3);
        sim.advance(Duration::from_secs(60));
        let id = sim
            .driver
            .take_batch(&sim.sink, sim.now, false)
            .map(|b| b.id);
        assert!(id.is_some(), "{values:?}: a batch is in flight");

        let owned = sim.driver.state();
        let json = serde_json::to_string(&sim.driver.state_view()).unwrap();
        let read: DriverState = serde_json::from_str(&json).unwrap();
        assert_eq!(read, owned, "{values:?}");
        assert_eq!(serde_json::to_string(&owned).unwrap(), json, "{values:?}");
        // And in the checkpoint's binary format, where every field is written in place.
        let binary = postcard::to_stdvec(&sim.driver.state_view()).unwrap();
        let read: DriverState = postcard::from_bytes(&binary).unwrap();
        assert_eq!(read, owned, "{values:?}: postcard");
        assert_eq!(postcard::to_stdvec(&owned).unwrap(), binary, "{values:?}");
        // Named (the checkpoint's format 3): every other series by its number, the rest in
        // full; read back and resolved, the same state, in fewer bytes.
        let known: Vec<Series> = owned.series.iter().map(|s| s.series.clone()).collect();
        let names = |series: &Arc<Series>| {
            let i = known.iter().position(|k| k == &**series)?;
            (i % 2 == 0).then(|| u32::try_from(i).unwrap())
        };
        let named = postcard::to_stdvec(&sim.driver.state_view_named(&names)).unwrap();
        let read: crate::NamedDriverState = postcard::from_bytes(&named).unwrap();
        let by_number = read
            .series
            .iter()
            .filter(|s| matches!(s.series, crate::SeriesName::Id(_)))
            .count();
        assert_eq!(by_number, known.len().div_ceil(2), "{values:?}");
        let resolved = read
            .clone()
            .resolve(|id| known.get(id as usize).cloned())
            .unwrap();
        assert_eq!(resolved, owned, "{values:?}: named");
        assert!(named.len() < binary.len(), "{values:?}");
        // A number with no series is refused, not guessed.
        assert_eq!(read.resolve(|_| None), Err(0), "{values:?}");

        let flying: usize = owned.series.iter().map(|s| s.in_flight).sum();
        let in_batch = sim.driver.in_flight.values().map(Vec::len).sum::<usize>();
        assert!(in_batch > 0);
        assert_eq!(
            flying, in_batch,
            "{values:?}: the points in flight are marked"
        );
        let points: usize = owned.series.iter().map(|s| s.buckets.len()).sum();
        assert_eq!(
            points,
            sim.driver.pending_points(),
            "{values:?}: every point is in it"
        );
        let sent = owned
            .series
            .iter()
            .filter(|s| s.last_sent.is_some())
            .count();
        match values {
            Values::Deltas => assert_eq!(sent, 0, "no spacing: the last send is not kept"),
            Values::Totals => assert_eq!(sent, 4, "the spacing needs every series' last send"),
        }
        for s in &owned.series {
            let in_flight = s.buckets.iter().take(s.in_flight);
            let pending = s.buckets.iter().skip(s.in_flight);
            let last_flying = in_flight.map(Value::end).max();
            let first_pending = pending.map(Value::end).min();
            if let (Some(a), Some(b)) = (last_flying, first_pending) {
                assert!(a <= b, "{values:?}: oldest first, in flight before pending");
            }
        }
    }
}

/// Between sends, a scrape does not make the driver look at every series again: it only
/// moves the time before which nothing can go to the earliest its new points could go. A
/// point due before that time (here a bucket already closed: the clock stepped back) still
/// goes at once.
#[test]
fn a_new_point_due_before_the_held_time_is_not_held() {
    let mut sim = Sim::new(cloudwatch_like(), Values::Deltas, 2);
    sim.scrape(1);
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.flush(false, ok), 0, "the bucket is open");
    sim.scrape(1);
    assert_eq!(sim.flush(false, ok), 0, "still open: held until it closes");
    // A series that appears with a point of a bucket closed long ago (its clock is behind).
    let old = Timestamp::from_millis(sim.now.as_millis() - 120_000);
    let late = CounterPoint {
        series: series(7),
        start: old,
        end: old,
        delta: 5,
        cumulative: 5,
    };
    sim.driver.push(&sim.sink, &[late], &[], sim.now);
    let batch = sim.driver.take_batch(&sim.sink, sim.now, false);
    let points: Vec<String> = batch
        .iter()
        .flat_map(|b| b.points.iter().map(|p| p.series.to_string()))
        .collect();
    assert_eq!(
        points,
        [series(7).to_string()],
        "the closed bucket goes now"
    );
}
