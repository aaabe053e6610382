//! The one driver every sink runs under. It is sans-I/O: the caller feeds it points and the
//! time, asks it for request-sized batches, sends them with the sink, and reports back; the
//! driver decides everything else, once, for every sink.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tailship_model::{CounterPoint, GaugePoint, Series, Timestamp};

use crate::point::bucket_of;
use crate::stats::Stats;
use crate::{DriverState, Limits, Point, Rejection, Report, Sink, SinkError, Value, Values};

/// What [`Driver::restore`] took back from a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// Points pending again (in flight ones included).
    pub points: usize,
    /// Points that were in a request when the checkpoint was written: the provider may have
    /// written them before tailship stopped.
    pub in_flight: Vec<Point>,
    /// Of those, how many may now count twice (delta sinks: all; running totals: none).
    pub possible_duplicates: usize,
}

/// How the driver paces retries and concurrency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Requests in flight at once (each series is in at most one of them).
    pub max_in_flight: usize,
    /// The first retry delay; it doubles, with jitter, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// What the caller should do after [`Driver::complete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Carry on: take more batches.
    Continue,
    /// Stop sending until `after` has passed, then call [`Driver::resume`].
    RetryAfter(Duration),
}

/// A request-sized batch handed out by [`Driver::take_batch`].
#[derive(Debug)]
pub struct Batch<'a> {
    pub id: u64,
    pub points: &'a [Point],
}

#[derive(Debug, Default)]
struct Queue {
    /// Pending buckets, oldest first.
    buckets: VecDeque<Value>,
    in_flight: bool,
    /// Whether the series is in `Driver::ready`.
    queued: bool,
    /// The end of the newest point the provider accepted.
    last_sent: Option<Timestamp>,
    /// Set when the sink refused the series itself: its points are dropped on arrival.
    refused: Option<Rejection>,
    /// A running total of this series was sent once more after a request in which the
    /// provider refused points without saying which; cleared by a request with no refusal.
    reaffirmed: bool,
}

/// A round of a running-total sink with a spacing: every series due goes in it, so that
/// series that began a scrape apart (gauges from the first scrape, counters from the second,
/// a series that appeared later) share requests instead of keeping their own phase for ever.
/// A round opens with the first point whose end is at least the spacing after the newest
/// point of the previous round (every series sent then is spaced by then: points end at
/// scrapes, so rounds follow the scrapes, not the clock of the loop) and closes once nothing
/// more can go; a series that was not due in it waits for the next one.
#[derive(Clone, Copy, Debug)]
struct Round {
    /// The newest end among the points handed out in the round.
    newest: Timestamp,
    open: bool,
}

/// Pending state and outcomes of one sink.
#[derive(Debug)]
pub struct Driver {
    name: String,
    limits: Limits,
    values: Values,
    config: DriverConfig,
    queues: HashMap<Arc<Series>, Queue, foldhash::fast::RandomState>,
    /// Series that may have something to send, in arrival order.
    ready: VecDeque<Arc<Series>>,
    in_flight: HashMap<u64, Vec<Point>>,
    next_id: u64,
    pending_points: usize,
    backoff: Option<ExponentialBackoff>,
    paused: bool,
    /// See [`Driver::next_due`].
    next_due: Option<Timestamp>,
    /// Running totals with a spacing go out in rounds (see [`Round`]).
    round: Option<Round>,
    /// Nothing can go before this time unless new points or answers come: `take_batch`
    /// then returns at once instead of looking at every series again (at 10k series that
    /// look was most of the agent's time between scrapes).
    hold_until: Option<Timestamp>,
    stats: Stats,
}

impl Driver {
    pub fn new(sink: &dyn Sink, config: DriverConfig) -> Self {
        let mut limits = sink.limits().clone();
        if sink.values() == Values::Totals {
            // Only the newest running total matters: older ones are superseded, not lost.
            limits.max_buckets = 1;
            limits.many_points_per_series = false;
        }
        limits.max_buckets = limits.max_buckets.max(1);
        limits.max_points = limits.max_points.max(1);
        Self {
            name: sink.name().to_owned(),
            limits,
            values: sink.values(),
            config,
            queues: HashMap::default(),
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            pending_points: 0,
            backoff: None,
            paused: false,
            next_due: None,
            round: None,
            hold_until: None,
            stats: Stats::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Series with points waiting (in flight included).
    pub fn pending_series(&self) -> usize {
        self.queues
            .values()
            .filter(|q| !q.buckets.is_empty() || q.in_flight)
            .count()
    }

    /// Points waiting, in flight included.
    pub fn pending_points(&self) -> usize {
        self.pending_points + self.in_flight.values().map(Vec::len).sum::<usize>()
    }

    /// Whether a retry delay is running.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The points of batch `id`, handed out and not answered yet.
    pub fn batch(&self, id: u64) -> Option<&[Point]> {
        self.in_flight.get(&id).map(Vec::as_slice)
    }

    /// Adds one scrape's points.
    pub fn push(
        &mut self,
        sink: &dyn Sink,
        counters: &[CounterPoint],
        gauges: &[GaugePoint],
        now: Timestamp,
    ) {
        self.hold_until = None;
        for p in counters {
            let bucket = bucket_of(p.end, self.limits.bucket);
            self.enqueue(sink, &p.series, Value::from_counter(p, bucket));
        }
        for p in gauges {
            let bucket = bucket_of(p.at, self.limits.bucket);
            self.enqueue(sink, &p.series, Value::from_gauge(p, bucket));
        }
        self.sweep(now);
    }

    fn enqueue(&mut self, sink: &dyn Sink, series: &Arc<Series>, value: Value) {
        let queue = match self.queues.get_mut(series) {
            Some(q) => q,
            None if !sink.selects(series) => return,
            None => {
                let refused = sink.admit(series).err();
                if let Some(r) = &refused {
                    tracing::warn!(sink = %self.name, %series, reason = %r, "series cannot be published; its points are dropped");
                }
                let q = Queue {
                    refused,
                    ..Queue::default()
                };
                self.queues.entry(Arc::clone(series)).or_insert(q)
            }
        };
        if let Some(r) = &queue.refused {
            self.stats.drop_points(r.reason, 1);
            return;
        }
        match queue.buckets.back_mut() {
            Some(last) if last.bucket() == value.bucket() || self.limits.max_buckets == 1 => {
                if !last.absorb(&value) {
                    // A series that changed kind: keep the newest.
                    *last = value;
                }
            }
            _ => {
                queue.buckets.push_back(value);
                self.pending_points += 1;
                if queue.buckets.len() > self.limits.max_buckets {
                    merge_oldest(&mut queue.buckets);
                    self.pending_points -= 1;
                    self.stats.merged += 1;
                }
            }
        }
        if !queue.queued && !queue.in_flight {
            queue.queued = true;
            self.ready.push_back(Arc::clone(series));
        }
    }

    /// Forgets series with nothing pending whose spacing no longer matters.
    fn sweep(&mut self, now: Timestamp) {
        let spacing = self.limits.min_spacing;
        self.queues.retain(|_, q| {
            q.in_flight
                || q.queued
                || !q.buckets.is_empty()
                || q.refused.is_some()
                || q.last_sent.is_some_and(|t| now.since(t) < spacing)
        });
    }

    /// The next request-sized batch, if one may be sent now. With `flush`, buckets that have
    /// not closed yet go too (shutdown).
    pub fn take_batch(
        &mut self,
        sink: &dyn Sink,
        now: Timestamp,
        flush: bool,
    ) -> Option<Batch<'_>> {
        if self.paused || self.in_flight.len() >= self.config.max_in_flight.max(1) {
            // Completions and the retry delay wake the caller, not the clock.
            self.next_due = None;
            return None;
        }
        if !flush && self.hold_until.is_some_and(|h| now < h) {
            self.next_due = self.hold_until;
            return None;
        }
        self.hold_until = None;
        let mut due: Option<Timestamp> = None;
        // Set when a series is held back with no time at which it would go by itself.
        let mut unbounded = false;
        let mut points = Vec::new();
        let rounds = self.values == Values::Totals && !self.limits.min_spacing.is_zero();
        let mut round_open = self.round.is_some_and(|r| r.open);
        let threshold = self
            .round
            .map(|r| r.newest.saturating_add(self.limits.min_spacing));
        let mut bytes = 0usize;
        let mut rotations = self.ready.len();
        'series: while rotations > 0 && points.len() < self.limits.max_points {
            rotations -= 1;
            let Some(series) = self.ready.pop_front() else {
                break;
            };
            let Some(queue) = self.queues.get_mut(&series) else {
                continue;
            };
            queue.queued = false;
            if queue.in_flight || queue.buckets.is_empty() {
                continue;
            }
            let mut took = 0;
            while let Some(front) = queue.buckets.front() {
                let age = now.since(front.end());
                if age > self.limits.max_age {
                    tracing::warn!(sink = %self.name, %series, age = ?age, "point older than the provider accepts; dropped");
                    queue.buckets.pop_front();
                    self.pending_points -= 1;
                    self.stats.drop_points("too_old", 1);
                    continue;
                }
                if front.end().since(now) > self.limits.max_future {
                    tracing::warn!(sink = %self.name, %series, "point further in the future than the provider accepts; dropped");
                    queue.buckets.pop_front();
                    self.pending_points -= 1;
                    self.stats.drop_points("too_new", 1);
                    continue;
                }
                let closed = match self.limits.bucket {
                    Some(w) if !flush => front.bucket().saturating_add(w) <= now,
                    _ => true,
                };
                let spacing = self.limits.min_spacing;
                // A running total is never sent twice with the same end time.
                let gap = match self.values {
                    Values::Totals => spacing.max(Duration::from_millis(1)),
                    Values::Deltas => spacing,
                };
                let next_at = queue.last_sent.map(|t| t.saturating_add(gap));
                let mut spaced = gap.is_zero() || next_at.is_none_or(|t| front.end() >= t);
                if closed && !spaced && self.values == Values::Totals {
                    // A running total held back by the spacing (behind one that may have
                    // been written, or that was refused) is still the total when the spacing
                    // has passed: it goes then, restamped, even if no newer scrape comes
                    // (its series may have vanished).
                    // Not as soon as the spacing has passed: a newer scrape is likely due
                    // then, and carries the total with the rest of its round.
                    match next_at {
                        Some(at) if at.saturating_add(spacing) <= now => {
                            spaced = queue.buckets.front_mut().is_some_and(|f| f.restamp(now));
                            unbounded |= !spaced;
                        }
                        Some(at) => {
                            let at = at.saturating_add(spacing);
                            due = Some(due.map_or(at, |d| d.min(at)));
                        }
                        None => {}
                    }
                }
                let Some(front_end) = queue.buckets.front().map(Value::end) else {
                    break;
                };
                if rounds && spaced && !round_open {
                    // A total older than the round threshold (retried, or of a series that
                    // went quiet) is still the total once the threshold has passed.
                    let held = match threshold {
                        Some(t) if front_end < t => {
                            now < t.saturating_add(spacing)
                                || !queue.buckets.front_mut().is_some_and(|f| f.restamp(now))
                        }
                        _ => false,
                    };
                    match threshold {
                        Some(t) if held => {
                            let at = t.saturating_add(spacing);
                            if now < at {
                                due = Some(due.map_or(at, |d| d.min(at)));
                            } else {
                                unbounded = true;
                            }
                            spaced = false;
                        }
                        _ => {
                            round_open = true;
                            self.round = Some(Round {
                                newest: Timestamp::from_millis(0),
                                open: true,
                            });
                        }
                    }
                }
                let Some(front) = queue.buckets.front() else {
                    break;
                };
                if !closed || !spaced {
                    // An open bucket is due when it closes; a point held back by the
                    // spacing or the round is due when they pass (set above).
                    if let (false, Some(w)) = (closed, self.limits.bucket) {
                        let at = front.bucket().saturating_add(w);
                        due = Some(due.map_or(at, |d| d.min(at)));
                    }
                    unbounded |= closed && self.values == Values::Deltas;
                    break;
                }
                let point = Point {
                    series: Arc::clone(&series),
                    value: front.clone(),
                };
                let size = sink.encoded_size(&point);
                if size > self.limits.max_bytes {
                    tracing::error!(sink = %self.name, %series, size, "point larger than a whole request; dropped");
                    queue.buckets.pop_front();
                    self.pending_points -= 1;
                    self.stats.drop_points("too_large", 1);
                    continue;
                }
                if bytes.saturating_add(size) > self.limits.max_bytes
                    || points.len() >= self.limits.max_points
                {
                    // Full: this series goes first next time.
                    if took == 0 {
                        queue.queued = true;
                        self.ready.push_front(series);
                        break 'series;
                    }
                    break;
                }
                queue.buckets.pop_front();
                self.pending_points -= 1;
                bytes += size;
                if let (true, Some(r)) = (rounds, &mut self.round) {
                    r.newest = r.newest.max(point.value.end());
                }
                points.push(point);
                took += 1;
                if !self.limits.many_points_per_series {
                    break;
                }
            }
            if took > 0 {
                queue.in_flight = true;
            } else if !queue.buckets.is_empty() {
                // Not due yet: look again later.
                queue.queued = true;
                self.ready.push_back(series);
            }
        }
        self.next_due = due;
        if points.is_empty() {
            // Nothing more can go: the round is over, and nothing will before `due`.
            if let Some(r) = &mut self.round {
                r.open = false;
            }
            if !flush && !unbounded {
                self.hold_until = due;
            }
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let points = self.in_flight.entry(id).or_insert(points);
        Some(Batch { id, points })
    }

    /// Records what became of batch `id`.
    pub fn complete(&mut self, id: u64, result: Result<Report, SinkError>, now: Timestamp) -> Next {
        let Some(points) = self.in_flight.remove(&id) else {
            return Next::Continue;
        };
        self.stats.request(match &result {
            Ok(r) if r.rejected.is_empty() && r.rejected_unattributed.is_empty() => "ok",
            Ok(_) => "partial",
            Err(e) => e.kind(),
        });
        match result {
            Ok(report) => {
                let mut rejected = vec![false; points.len()];
                for (i, r) in &report.rejected {
                    if let Some(slot) = rejected.get_mut(*i)
                        && !*slot
                    {
                        {
                            *slot = true;
                            tracing::warn!(sink = %self.name, series = %points[*i].series, reason = %r, "point rejected by the provider; dropped");
                            self.stats.drop_points(r.reason, 1);
                        }
                    }
                }
                let mut unattributed = 0;
                for (n, r) in &report.rejected_unattributed {
                    tracing::warn!(sink = %self.name, points = n, reason = %r, "points rejected by the provider; dropped");
                    self.stats.drop_points(r.reason, *n as u64);
                    unattributed += n;
                }
                let sent = rejected
                    .iter()
                    .filter(|r| !**r)
                    .count()
                    .saturating_sub(unattributed);
                self.stats.points_sent += sent as u64;
                self.stats.last_success = Some(now);
                // Which points an unattributed refusal hit is unknown. A running total
                // refused is only superseded by the series' next point, and a series that
                // went quiet has none: each running total of the batch is sent once more,
                // after the spacing (accepted whether or not it was written). One refused
                // again is dropped for good.
                let reaffirm = unattributed > 0 && self.values == Values::Totals;
                let mut again = 0u64;
                for (p, rejected) in points.into_iter().zip(rejected) {
                    let end = (!rejected).then(|| p.value.end());
                    let queue = self.queues.get_mut(&p.series);
                    let resend = match queue {
                        Some(q) if reaffirm && !rejected && !q.reaffirmed => {
                            q.reaffirmed = true;
                            true
                        }
                        Some(q) => {
                            q.reaffirmed &= reaffirm;
                            false
                        }
                        None => false,
                    };
                    if resend {
                        again += 1;
                        self.release(&p.series, end, Some(p.value));
                    } else {
                        self.release(&p.series, end, None);
                    }
                }
                if again > 0 {
                    self.stats.points_retried += again;
                    tracing::info!(sink = %self.name, points = again, "the provider did not say which points it refused: the batch's running totals are sent once more after the spacing");
                }
                self.backoff = None;
                Next::Continue
            }
            Err(SinkError::Rejected(r)) => {
                tracing::error!(sink = %self.name, points = points.len(), reason = %r, "request rejected by the provider; its points are dropped");
                self.stats.drop_points(r.reason, points.len() as u64);
                for p in points {
                    self.release(&p.series, None, None);
                }
                self.backoff = None;
                Next::Continue
            }
            Err(err) => {
                let retry_after = match &err {
                    SinkError::Throttled { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let uncertain = matches!(err, SinkError::Uncertain(_));
                self.stats.points_retried += points.len() as u64;
                if uncertain && self.values == Values::Deltas {
                    // The provider may have written them: sent again, they may count twice.
                    self.stats.possible_duplicates += points.len() as u64;
                    tracing::warn!(sink = %self.name, points = points.len(), "no answer to a request the provider may have written; its points are sent again and may count twice");
                }
                // Newest first: each goes back in front of the ones after it. A running
                // total that may have been written holds the series' next point back by the
                // spacing, so that it is accepted whether or not this one was.
                let written = uncertain && self.values == Values::Totals;
                for p in points.into_iter().rev() {
                    let series = Arc::clone(&p.series);
                    let end = written.then(|| p.value.end());
                    self.release(&series, end, Some(p.value));
                }
                let config = &self.config;
                let backoff = self.backoff.get_or_insert_with(|| {
                    ExponentialBuilder::default()
                        .with_min_delay(config.backoff_min)
                        .with_max_delay(config.backoff_max)
                        .with_jitter()
                        .without_max_times()
                        .build()
                });
                let delay = backoff.next().unwrap_or(self.config.backoff_max);
                let delay = retry_after.map_or(delay, |r| r.max(delay));
                tracing::warn!(sink = %self.name, error = %err, retry_in = ?delay, "send failed; points kept and retried");
                self.paused = true;
                Next::RetryAfter(delay)
            }
        }
    }

    /// Takes batch `id` back unsent (the caller could not record it as in flight): its
    /// points are pending again, as if it had never been handed out.
    pub fn cancel(&mut self, id: u64) {
        let Some(points) = self.in_flight.remove(&id) else {
            return;
        };
        for p in points.into_iter().rev() {
            let series = Arc::clone(&p.series);
            self.release(&series, None, Some(p.value));
        }
    }

    /// When a bucket held back by [`Driver::take_batch`] closes, as of its last call that
    /// handed out nothing: the caller should call it again then (or at the next scrape).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.next_due
    }

    /// Ends a retry delay.
    pub fn resume(&mut self) {
        self.hold_until = None;
        self.paused = false;
    }

    /// A series' point came back: acknowledged at `sent`, or to be sent again (`requeue`).
    fn release(&mut self, series: &Arc<Series>, sent: Option<Timestamp>, requeue: Option<Value>) {
        self.hold_until = None;
        let Some(queue) = self.queues.get_mut(series) else {
            return;
        };
        queue.in_flight = false;
        if let Some(t) = sent {
            queue.last_sent = Some(queue.last_sent.map_or(t, |l| l.max(t)));
        }
        if let Some(mut older) = requeue {
            match queue.buckets.front_mut() {
                Some(front) if front.bucket() == older.bucket() || self.limits.max_buckets == 1 => {
                    if older.absorb(front) {
                        *front = older;
                    }
                }
                _ => {
                    queue.buckets.push_front(older);
                    self.pending_points += 1;
                    if queue.buckets.len() > self.limits.max_buckets {
                        merge_oldest(&mut queue.buckets);
                        self.pending_points -= 1;
                        self.stats.merged += 1;
                    }
                }
            }
        }
        if !queue.buckets.is_empty() && !queue.queued {
            queue.queued = true;
            self.ready.push_back(Arc::clone(series));
        }
    }

    /// Everything not yet acknowledged, in flight included, for the checkpoint.
    pub fn state(&self) -> DriverState {
        // In-flight points by series, gathered in one pass (not one pass per series: at
        // 10k series in flight that was 10^8 comparisons per checkpoint).
        let mut flying: HashMap<&Series, Vec<Value>, foldhash::fast::RandomState> =
            HashMap::default();
        for p in self.in_flight.values().flatten() {
            flying.entry(&*p.series).or_default().push(p.value.clone());
        }
        let mut series = Vec::new();
        for (s, q) in &self.queues {
            let mut buckets: Vec<Value> = match q.in_flight {
                true => flying.remove(&**s).unwrap_or_default(),
                false => Vec::new(),
            };
            let in_flight = buckets.len();
            buckets.extend(q.buckets.iter().cloned());
            if buckets.is_empty() && q.last_sent.is_none() {
                continue;
            }
            series.push(crate::state::SeriesState {
                series: Series::clone(s),
                buckets,
                in_flight,
                last_sent: q.last_sent,
            });
        }
        series.sort_by(|a, b| a.series.cmp(&b.series));
        DriverState { series }
    }

    /// Continues from a checkpoint: its points become pending again. Those that were in
    /// flight when it was written may have reached the provider: a delta sink sends them
    /// again and counts them as possible duplicates (nothing can tell whether the provider
    /// wrote them); a running total sink holds the series' next point back by the spacing,
    /// as if they had been written, so that it is accepted either way.
    pub fn restore(&mut self, sink: &dyn Sink, state: DriverState) -> Restored {
        self.hold_until = None;
        let mut restored = Restored::default();
        for s in state.series {
            let series = Arc::new(s.series);
            let mut last_sent = s.last_sent;
            let in_flight = s.in_flight.min(s.buckets.len());
            for (i, value) in s.buckets.into_iter().enumerate() {
                restored.points += 1;
                if i < in_flight {
                    if self.values == Values::Totals {
                        last_sent = Some(last_sent.map_or(value.end(), |t| t.max(value.end())));
                    }
                    restored.in_flight.push(Point {
                        series: Arc::clone(&series),
                        value: value.clone(),
                    });
                }
                self.enqueue(sink, &series, value);
            }
            if let Some(q) = self.queues.get_mut(&series) {
                q.last_sent = last_sent;
            } else if last_sent.is_some() {
                let q = Queue {
                    last_sent,
                    ..Queue::default()
                };
                self.queues.insert(series, q);
            }
        }
        if self.values == Values::Deltas {
            restored.possible_duplicates = restored.in_flight.len();
            self.stats.possible_duplicates += restored.in_flight.len() as u64;
        }
        restored
    }
}

/// Merges the two oldest buckets into one, so that a long outage costs a bounded number of
/// buckets per series and no bytes.
fn merge_oldest(buckets: &mut VecDeque<Value>) {
    if let (Some(mut oldest), Some(next)) = (buckets.pop_front(), buckets.front_mut())
        && oldest.absorb(next)
    {
        *next = oldest;
    }
}

#[cfg(test)]
mod tests;
