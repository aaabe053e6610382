//! The one driver every sink runs under. It is sans-I/O: the caller feeds it points and the
//! time, asks it for request-sized batches, sends them with the sink, and reports back; the
//! driver decides everything else, once, for every sink.

mod buckets;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use hashbrown::HashTable;
use serde::ser::{Serialize, SerializeSeq as _, SerializeStruct as _, Serializer};
use tailship_model::{CounterRef, GaugeRef, Series, Timestamp};

use crate::point::bucket_of;
use crate::state::SeriesNameRef;
use crate::stats::Stats;
use crate::{DriverState, Limits, Point, Rejection, Report, Sink, SinkError, Value, Values};
use buckets::Buckets;

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

#[derive(Debug)]
struct Queue {
    series: Arc<Series>,
    /// Pending buckets, oldest first.
    buckets: Buckets,
    in_flight: bool,
    /// Whether the series is in `Driver::ready`.
    queued: bool,
    /// The end of the newest point the provider accepted.
    last_sent: Option<Timestamp>,
    /// Set when the sink refused the series itself: its points are dropped on arrival.
    /// Boxed: rare, and a queue per series per sink is most of the memory at 10k series.
    refused: Option<Box<Rejection>>,
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
    /// One queue per series, by slot: the series' slot is found by hashing once per point
    /// pushed; everything else (`ready`, batching) goes by slot.
    queues: Vec<Option<Queue>>,
    /// The slot of each queue, found by its series (`slot_of`): a table of bare slots, 5
    /// bytes a series where a map from series to slot took 17.
    slots: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Slots of `queues` free for new series.
    free: Vec<u32>,
    /// The slot of each point of the last `push`, in order (`u32::MAX` for none): scrapes
    /// list their series in the same order, so the slot at a point's place is nearly always
    /// its series', which one pointer comparison confirms without hashing the series.
    last_push: Vec<u32>,
    /// Slots of series that may have something to send, in arrival order.
    ready: VecDeque<u32>,
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
            queues: Vec::new(),
            slots: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            free: Vec::new(),
            last_push: Vec::new(),
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

    /// What the sink's points carry: deltas or running totals.
    pub fn values(&self) -> Values {
        self.values
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Series with points waiting (in flight included).
    pub fn pending_series(&self) -> usize {
        self.queues
            .iter()
            .flatten()
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

    /// Adds one scrape's points: borrowed from the tracker (`Observation::counters`), or
    /// owned ones (`&[CounterPoint]`).
    pub fn push<'a, C, G>(
        &mut self,
        sink: &dyn Sink,
        counters: impl IntoIterator<Item = C>,
        gauges: impl IntoIterator<Item = G>,
        now: Timestamp,
    ) where
        C: Into<CounterRef<'a>>,
        G: Into<GaugeRef<'a>>,
    {
        // Nothing can go before the earliest time a new point could: a scrape between two
        // sends (59 of 60 with one-minute buckets, 9 of 10 with a 10 s spacing) leaves
        // `take_batch` nothing to look at.
        let mut earliest = None;
        let mut order = std::mem::take(&mut self.last_push);
        let mut n = 0;
        for p in counters {
            let p = p.into();
            let bucket = bucket_of(p.end, self.limits.bucket);
            let hint = place(&mut order, &mut n);
            let at = self.enqueue(sink, p.series, hint, Value::from_counter(&p, bucket));
            earliest = earlier(earliest, at);
        }
        for p in gauges {
            let p = p.into();
            let bucket = bucket_of(p.at, self.limits.bucket);
            let hint = place(&mut order, &mut n);
            let at = self.enqueue(sink, p.series, hint, Value::from_gauge(&p, bucket));
            earliest = earlier(earliest, at);
        }
        order.truncate(n);
        self.last_push = order;
        if let Some(at) = earliest {
            self.hold_until = self.hold_until.map(|h| h.min(at));
        }
        self.sweep(now);
    }

    /// Adds a point to its series' queue; returns a time before which it cannot go (its
    /// bucket's close, the series' spacing), if it was added. `hint` is the slot the series
    /// likely has (the last push's at this place); it is set to the series' slot.
    fn enqueue(
        &mut self,
        sink: &dyn Sink,
        series: &Arc<Series>,
        hint: &mut u32,
        value: Value,
    ) -> Option<Timestamp> {
        let hinted = queue(&self.queues, *hint).is_some_and(|q| Arc::ptr_eq(&q.series, series));
        let found = if hinted {
            Some(*hint)
        } else {
            self.slot_of(series)
        };
        let slot = match found {
            Some(slot) => slot,
            None if !sink.selects(series) => return None,
            None => {
                let refused = sink.admit(series).err();
                if let Some(r) = &refused {
                    tracing::warn!(sink = %self.name, %series, reason = %r, "series cannot be published; its points are dropped");
                }
                let mut q = Queue::new(Arc::clone(series));
                q.refused = refused.map(Box::new);
                self.insert(q)
            }
        };
        *hint = slot;
        let queue = queue_mut(&mut self.queues, slot)?;
        if let Some(r) = &queue.refused {
            self.stats.drop_points(r.reason, 1);
            return None;
        }
        let gap = match self.values {
            Values::Totals => self.limits.min_spacing.max(Duration::from_millis(1)),
            Values::Deltas => self.limits.min_spacing,
        };
        let closes = self.limits.bucket.map(|w| value.bucket().saturating_add(w));
        let spaced = queue.last_sent.map(|t| t.saturating_add(gap));
        let earliest = closes
            .max(spaced)
            .unwrap_or_else(|| Timestamp::from_millis(0));
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
            self.ready.push_back(slot);
        }
        Some(earliest)
    }

    /// Gives `queue` a slot.
    fn insert(&mut self, queue: Queue) -> u32 {
        let series = Arc::clone(&queue.series);
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(free) = self.queues.get_mut(slot as usize) {
                    *free = Some(queue);
                }
                slot
            }
            None => {
                self.queues.push(Some(queue));
                // Fewer than 2^32 series: the tracker's series limit is far below.
                u32::try_from(self.queues.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (queues, hasher) = (&self.queues, &self.hasher);
        self.slots
            .insert_unique(hasher.hash_one(&*series), slot, |&s| {
                // Every slot in the table holds a queue (`sweep` takes a freed one out).
                self::queue(queues, s).map_or(0, |q| hasher.hash_one(&*q.series))
            });
        slot
    }

    /// The slot of `series`' queue, if it has one. The tracker hands out one `Arc` per
    /// series, which the queue keeps, so a pointer comparison settles nearly every lookup;
    /// the series' text is compared only for another copy of it (e.g. after a restore).
    fn slot_of(&self, series: &Arc<Series>) -> Option<u32> {
        let queues = &self.queues;
        self.slots
            .find(self.hasher.hash_one(&**series), |&s| {
                queue(queues, s)
                    .is_some_and(|q| Arc::ptr_eq(&q.series, series) || *q.series == **series)
            })
            .copied()
    }

    /// Forgets series with nothing pending whose spacing no longer matters.
    fn sweep(&mut self, now: Timestamp) {
        let spacing = self.limits.min_spacing;
        for (slot, entry) in self.queues.iter_mut().enumerate() {
            let keep = entry.as_ref().is_none_or(|q| {
                q.in_flight
                    || q.queued
                    || !q.buckets.is_empty()
                    || q.refused.is_some()
                    || q.last_sent.is_some_and(|t| now.since(t) < spacing)
            });
            if !keep && let Some(q) = entry.take() {
                let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                if let Ok(found) = self
                    .slots
                    .find_entry(self.hasher.hash_one(&*q.series), |&s| s == slot)
                {
                    found.remove();
                }
                self.free.push(slot);
            }
        }
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
            let Some(slot) = self.ready.pop_front() else {
                break;
            };
            let Some(queue) = queue_mut(&mut self.queues, slot) else {
                continue;
            };
            let series = &queue.series;
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
                    series: Arc::clone(series),
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
                        self.ready.push_front(slot);
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
                if points.capacity() == 0 {
                    // Room for a request's points at most, once there is one: grown by
                    // doubling, a batch of Cloud Monitoring's 200 took room for 256, and a
                    // flush at 10k series takes 51 batches at once.
                    points.reserve_exact(self.limits.max_points.min(self.pending_points + 1));
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
                self.ready.push_back(slot);
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
                    let queue = self.queue_of(&p.series);
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
                // Points refused before anything was written (throttled, not authorized,
                // misconfigured) still belong to the round under way: it opens again, so
                // that they go after the backoff, not a spacing later (no series' spacing
                // holds them). A transient failure (a 5xx, gRPC `UNAVAILABLE` or `INTERNAL`,
                // which gRPC does not promise left nothing written) keeps the round's
                // cadence: a round later, a running total is accepted either way.
                let unwritten = matches!(
                    err,
                    SinkError::Throttled { .. } | SinkError::Auth(_) | SinkError::Config(_)
                );
                if unwritten && let Some(r) = &mut self.round {
                    r.open = true;
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
        let Some(slot) = self.slot_of(series) else {
            return;
        };
        let Some(queue) = queue_mut(&mut self.queues, slot) else {
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
            self.ready.push_back(slot);
        }
    }

    fn queue_of(&mut self, series: &Arc<Series>) -> Option<&mut Queue> {
        let slot = self.slot_of(series)?;
        queue_mut(&mut self.queues, slot)
    }

    /// Everything not yet acknowledged, in flight included, as an owned value. A checkpoint
    /// serializes [`Driver::state_view_named`] instead, which writes the same without
    /// copying (with the series the tracker holds by number).
    pub fn state(&self) -> DriverState {
        let series = self
            .entries()
            .map(|e| crate::state::SeriesState {
                series: Series::clone(e.series),
                buckets: e.buckets().cloned().collect(),
                in_flight: e.flying.len(),
                last_sent: e.last_sent,
            })
            .collect();
        DriverState { series }
    }

    /// The driver's state, borrowed: serialized, it is a [`DriverState`] (what
    /// [`Driver::restore`] reads), written without copying or sorting anything (at 10k series
    /// the owned copy and its sort were a third of the agent's time).
    pub fn state_view(&self) -> StateView<'_> {
        StateView {
            driver: self,
            names: None,
        }
    }

    /// The same, but serialized as a [`NamedDriverState`](crate::NamedDriverState): a
    /// series that `names` gives a number for is written as that number (the checkpoint's
    /// drivers name the tracker's series this way, rather than writing each name and labels
    /// once per sink more).
    pub fn state_view_named<'a>(&'a self, names: &'a Names<'a>) -> StateView<'a> {
        StateView {
            driver: self,
            names: Some(names),
        }
    }

    /// The series with something to remember: those in a request (their points there come
    /// first), then those with pending buckets or a spacing to keep. A series' points in one
    /// request are consecutive (`take_batch` takes them together).
    fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        // When the last send does not matter (deltas with no spacing), it is not kept.
        let keep_sent = !self.limits.min_spacing.is_zero() || self.values == Values::Totals;
        let flying = self
            .in_flight
            .values()
            .flat_map(|points| points.chunk_by(|a, b| a.series == b.series))
            .filter_map(move |run| {
                let series = &run.first()?.series;
                let queue = self
                    .slot_of(series)
                    .and_then(|slot| queue(&self.queues, slot));
                Some(Entry {
                    series,
                    flying: run,
                    pending: queue.map(|q| &q.buckets),
                    last_sent: queue.and_then(|q| q.last_sent).filter(|_| keep_sent),
                })
            });
        let resting = self
            .queues
            .iter()
            .flatten()
            .filter(|q| !q.in_flight)
            .map(move |q| Entry {
                series: &q.series,
                flying: &[],
                pending: Some(&q.buckets),
                last_sent: q.last_sent.filter(|_| keep_sent),
            })
            .filter(|e| e.pending.is_some_and(|b| !b.is_empty()) || e.last_sent.is_some());
        flying.chain(resting)
    }

    /// Continues from a checkpoint: its points become pending again. Those that were in
    /// flight when it was written may have reached the provider: a delta sink sends them
    /// again and counts them as possible duplicates (nothing can tell whether the provider
    /// wrote them); a running total sink holds the series' next point back by the spacing,
    /// as if they had been written, so that it is accepted either way.
    ///
    /// `shared` gives the tracker's own copy of a series, if it has one: the driver keeps it
    /// instead of the checkpoint's, so that a restarted agent holds each series once, as a
    /// fresh one does.
    pub fn restore(
        &mut self,
        sink: &dyn Sink,
        state: DriverState,
        shared: impl Fn(&Series) -> Option<Arc<Series>>,
    ) -> Restored {
        self.hold_until = None;
        let mut restored = Restored::default();
        for s in state.series {
            let series = shared(&s.series).unwrap_or_else(|| Arc::new(s.series));
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
                let mut no_hint = u32::MAX;
                self.enqueue(sink, &series, &mut no_hint, value);
            }
            if let Some(q) = self.queue_of(&series) {
                q.last_sent = last_sent;
            } else if last_sent.is_some() {
                let mut q = Queue::new(series);
                q.last_sent = last_sent;
                self.insert(q);
            }
        }
        if self.values == Values::Deltas {
            restored.possible_duplicates = restored.in_flight.len();
            self.stats.possible_duplicates += restored.in_flight.len() as u64;
        }
        restored
    }
}

impl Queue {
    fn new(series: Arc<Series>) -> Self {
        Self {
            series,
            buckets: Buckets::Empty,
            in_flight: false,
            queued: false,
            last_sent: None,
            refused: None,
            reaffirmed: false,
        }
    }
}

/// The last push's slot at place `n` (`u32::MAX` past its end), and `n` moved on.
fn place<'o>(order: &'o mut Vec<u32>, n: &mut usize) -> &'o mut u32 {
    if *n == order.len() {
        order.push(u32::MAX);
    }
    *n += 1;
    &mut order[*n - 1]
}

/// The earlier of two times, either of which may be unknown.
fn earlier(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The queue in `slot`, if one is there.
fn queue(queues: &[Option<Queue>], slot: u32) -> Option<&Queue> {
    queues.get(slot as usize)?.as_ref()
}

/// The queue in `slot`, if one is there.
fn queue_mut(queues: &mut [Option<Queue>], slot: u32) -> Option<&mut Queue> {
    queues.get_mut(slot as usize)?.as_mut()
}

/// One series of [`Driver::entries`].
struct Entry<'a> {
    series: &'a Arc<Series>,
    /// Its points in a request, oldest first.
    flying: &'a [Point],
    pending: Option<&'a Buckets>,
    last_sent: Option<Timestamp>,
}

impl Entry<'_> {
    /// Every bucket not acknowledged, oldest first: those in flight, then the pending ones.
    fn buckets(&self) -> impl Iterator<Item = &Value> {
        let pending = self.pending.into_iter().flat_map(Buckets::iter);
        self.flying.iter().map(|p| &p.value).chain(pending)
    }
}

/// A series' number elsewhere (the tracker's), if it has one; see
/// [`Driver::state_view_named`].
pub type Names<'a> = dyn Fn(&Arc<Series>) -> Option<u32> + 'a;

/// A driver's state, borrowed, serialized as a [`DriverState`] (see [`Driver::state_view`])
/// or, with names, as a [`NamedDriverState`](crate::NamedDriverState).
#[derive(Clone, Copy)]
pub struct StateView<'a> {
    driver: &'a Driver,
    names: Option<&'a Names<'a>>,
}

impl std::fmt::Debug for StateView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView")
            .field("driver", &self.driver.name)
            .field("named", &self.names.is_some())
            .finish_non_exhaustive()
    }
}

impl Serialize for StateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Series<'a>(StateView<'a>);
        impl Serialize for Series<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let StateView { driver, names } = self.0;
                let entries = driver.entries().map(|entry| Named { entry, names });
                // Counted first: a binary format writes the length before the elements.
                sequence(serializer, driver.entries().count(), entries)
            }
        }
        let mut state = serializer.serialize_struct("DriverState", 1)?;
        state.serialize_field("series", &Series(*self))?;
        state.end()
    }
}

/// An entry, its series written as its number when `names` has one.
struct Named<'a> {
    entry: Entry<'a>,
    names: Option<&'a Names<'a>>,
}

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Buckets<'a, 'b>(&'a Entry<'b>);
        impl Serialize for Buckets<'_, '_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let entry = self.0;
                let len = entry.flying.len() + entry.pending.map_or(0, |b| b.len());
                sequence(serializer, len, entry.buckets())
            }
        }
        let entry = &self.entry;
        let buckets = Buckets(entry);
        let (in_flight, last_sent) = (entry.flying.len(), entry.last_sent);
        let Some(names) = self.names else {
            let series: &Series = entry.series;
            return crate::state::serialize_series(
                serializer, series, &buckets, in_flight, last_sent,
            );
        };
        let name = match names(entry.series) {
            Some(id) => SeriesNameRef::Id(id),
            None => SeriesNameRef::Series(entry.series),
        };
        crate::state::serialize_series(serializer, &name, &buckets, in_flight, last_sent)
    }
}

/// Serializes the `len` items of `items` as a sequence.
fn sequence<S: Serializer, T: Serialize>(
    serializer: S,
    len: usize,
    items: impl Iterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(len))?;
    for item in items {
        seq.serialize_element(&item)?;
    }
    seq.end()
}

/// Merges the two oldest buckets into one, so that a long outage costs a bounded number of
/// buckets per series and no bytes.
fn merge_oldest(buckets: &mut Buckets) {
    if let (Some(mut oldest), Some(next)) = (buckets.pop_front(), buckets.front_mut())
        && oldest.absorb(next)
    {
        *next = oldest;
    }
}

#[cfg(test)]
mod tests;
