//! The long-running agent: scrape on a timer, track, hand points to every sink's driver,
//! send, checkpoint, and flush on shutdown.
//!
//! One task owns all state (tracker, drivers), so a checkpoint is always consistent; only
//! the requests themselves run as separate tasks, so one slow or failing sink never delays
//! another or the scrapes.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tailship_collector::{Fetched, Observation, Source, SourceError, Tracker};
use tailship_model::Timestamp;
use tailship_sink::{Driver, DriverConfig, Next, Report, Sink, SinkError};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::checkpoint::{CheckpointRef, FORMAT, Store};
use crate::config::Config;
use crate::telemetry::{SinkSnapshot, Telemetry};

/// A sink as the agent holds it.
pub type DynSink = Arc<dyn Sink + Send + Sync>;

struct Slot {
    sink: DynSink,
    driver: Driver,
    retry_at: Option<Instant>,
    /// Batches taken from the driver (in flight in the checkpoint), not sent yet: a round of
    /// sends is recorded by one write-ahead checkpoint, then goes out `max_in_flight` at a
    /// time (one checkpoint per taken batch was 13 writes of 9 MB per Cloud Monitoring
    /// round at 10k series).
    waiting: VecDeque<u64>,
    /// Requests of this sink under way.
    running: usize,
}

/// How many restored in-flight points are logged one by one, per sink.
const LOGGED_IN_FLIGHT: usize = 50;

/// Everything the agent runs with.
pub struct Agent {
    source: Arc<Source>,
    source_name: String,
    tracker: Tracker,
    slots: Vec<Slot>,
    store: Store,
    telemetry: Arc<Telemetry>,
    interval: Duration,
    /// Requests per sink under way at most (`[delivery] max_in_flight`).
    max_in_flight: usize,
    /// See [`crate::config::StateConfig::interval`].
    checkpoint_interval: Duration,
    /// When the last checkpoint was written (or tried).
    saved_at: Instant,
    flush_timeout: Duration,
    /// Whether the last checkpoint write succeeded. Nothing is sent while it fails: a point
    /// goes out only once a checkpoint on disk records it in flight, so that a crash can
    /// neither lose it nor count it twice unknowingly.
    durable: bool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("source", &self.source_name)
            .finish_non_exhaustive()
    }
}

type Sent = (usize, u64, Result<Report, SinkError>);

impl Agent {
    /// Builds the agent and continues from the checkpoint, if there is a usable one.
    pub fn new(
        config: &Config,
        sinks: Vec<DynSink>,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<Self> {
        let spec = config.source_spec()?;
        let source_name = spec.to_string();
        let store = Store::new(&config.state.path);
        store.ensure_writable()?;
        let mut checkpoint = store.load(&source_name);
        let tracker = match checkpoint.as_mut().map(|c| std::mem::take(&mut c.tracker)) {
            Some(state) => match Tracker::restore(config.tracker(), state) {
                Ok(t) => {
                    let written = checkpoint.as_ref().map(|c| c.written_at.to_string());
                    tracing::info!(path = %store.path().display(), series = t.series(), written_at = ?written, "continuing from the checkpoint");
                    t
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint not used; starting afresh (the first scrape is a baseline)");
                    checkpoint = None;
                    Tracker::new(config.tracker())
                }
            },
            None => Tracker::new(config.tracker()),
        };
        let mut saved = checkpoint.map(|c| c.sinks).unwrap_or_default();
        let slots = sinks
            .into_iter()
            .map(|sink| {
                // The agent bounds the requests under way (`dispatch`); the driver hands
                // out every batch that may go, so that one checkpoint records a round.
                let mut driver = Driver::new(
                    &*sink,
                    DriverConfig {
                        max_in_flight: usize::MAX,
                        ..config.driver()
                    },
                );
                if let Some(state) = saved.remove(sink.name()) {
                    let restored = driver.restore(&*sink, state, |s| tracker.shared(s));
                    log_restored(sink.name(), &restored);
                }
                Slot {
                    sink,
                    driver,
                    retry_at: None,
                    waiting: VecDeque::new(),
                    running: 0,
                }
            })
            .collect();
        for (name, state) in saved {
            let points: usize = state.series.iter().map(|s| s.buckets.len()).sum();
            tracing::warn!(sink = %name, points, "the checkpoint holds points for a sink that is no longer configured; they are dropped");
        }
        let source = Arc::new(config.source()?);
        Ok(Self {
            source,
            source_name,
            tracker,
            slots,
            store,
            telemetry,
            interval: config.source.interval,
            max_in_flight: config.delivery.max_in_flight.max(1),
            checkpoint_interval: config.state.interval,
            saved_at: Instant::now(),
            flush_timeout: config.shutdown.flush_timeout,
            durable: true,
        })
    }

    /// Runs until `shutdown` resolves, then flushes for at most the flush timeout and writes
    /// the final checkpoint.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sends: JoinSet<Sent> = JoinSet::new();
        // The scrape in progress runs as its own task, so that a hanging source never holds
        // up sends or a shutdown.
        let mut scraping: Option<tokio::task::JoinHandle<Result<Fetched, SourceError>>> = None;
        let mut deadline: Option<Instant> = None;
        let mut dirty = false;
        // An answer to deltas (acknowledgement or refusal) is not written yet.
        let mut acked = false;
        self.publish_telemetry();
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.resume_due();
            // Write-ahead: the batches are taken (marked in flight), the checkpoint that
            // records them is written, and only then do they go out. If it cannot be
            // written, they are put back and nothing is sent until it can.
            // Without a send, a scrape or an acknowledgement is written once the checkpoint
            // interval has passed, an acknowledgement also once nothing is in flight: a
            // checkpoint a little behind loses nothing (the tracker state it holds has
            // shipped nothing since, so the next scrape counts the whole increase again),
            // and at 10k series one checkpoint is megabytes.
            // At shutdown, buckets still open go too, but only once no scrape is under way:
            // its points, pushed after them, would go out as second datums of those buckets.
            let taken = self.take_batches(deadline.is_some() && scraping.is_none());
            let waiting = self.slots.iter().any(|s| !s.waiting.is_empty());
            let due = dirty
                && (self.saved_at.elapsed() >= self.checkpoint_interval
                    || (acked && sends.is_empty() && !waiting));
            if due || taken > 0 {
                self.save();
                dirty = !self.durable;
                acked = false;
            }
            self.dispatch(&mut sends);
            if let Some(d) = deadline {
                // A scrape already under way finishes (within the deadline): its bytes count.
                // Once nothing is in flight or waiting for a retry, what is still pending
                // cannot be sent before the next scrape (a running total held back by the
                // provider's spacing): it stays in the checkpoint. Without a checkpoint
                // nothing may be sent at all.
                let idle = scraping.is_none()
                    && sends.is_empty()
                    && self
                        .slots
                        .iter()
                        .all(|s| s.retry_at.is_none() && s.waiting.is_empty());
                if idle || !self.durable || Instant::now() >= d {
                    break;
                }
            }
            // An unwritten scrape or acknowledgement is due a checkpoint at the interval.
            let save_at = dirty.then(|| self.saved_at + self.checkpoint_interval);
            let wake = self.next_wake().into_iter().chain(save_at).min();
            let stop_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                _ = tick.tick(), if deadline.is_none() && scraping.is_none() => {
                    let source = Arc::clone(&self.source);
                    scraping = Some(tokio::spawn(async move { source.fetch().await }));
                }
                fetched = async {
                    match &mut scraping {
                        Some(task) => task.await,
                        None => std::future::pending().await,
                    }
                }, if scraping.is_some() => {
                    scraping = None;
                    // Stamped when the body is in, not when the scrape began: its points are
                    // pushed now, before any send can look at the clock again, so a bucket
                    // that a send found closed never gets a point of a scrape still running
                    // then (which would go out as a second datum of that bucket).
                    let at = Timestamp::now();
                    match fetched {
                        Ok(result) => self.scraped(result, at),
                        Err(e) => tracing::error!(error = %e, "the scrape task failed"),
                    }
                    dirty = true;
                }
                Some(joined) = sends.join_next() => {
                    match joined {
                        Ok((i, id, result)) => acked |= self.complete(i, id, result),
                        Err(e) => tracing::error!(error = %e, "a send task failed"),
                    }
                    dirty = true;
                }
                _ = tokio::time::sleep_until(wake.unwrap_or(stop_at)), if wake.is_some() => {}
                _ = &mut shutdown, if deadline.is_none() => {
                    tracing::info!(timeout = ?self.flush_timeout, "shutting down: flushing pending points");
                    deadline = Some(Instant::now() + self.flush_timeout);
                }
                _ = tokio::time::sleep_until(stop_at), if deadline.is_some() => {}
            }
        }
        if let Some(task) = scraping.take() {
            task.abort();
        }
        sends.abort_all();
        for slot in &mut self.slots {
            cancel_waiting(slot);
        }
        let left: usize = self.slots.iter().map(|s| s.driver.pending_points()).sum();
        if left > 0 {
            tracing::warn!(
                points = left,
                "flush timeout reached; unsent points stay in the checkpoint for the next start"
            );
        }
        self.save();
        self.publish_telemetry();
        Ok(())
    }

    fn scraped(&mut self, result: Result<Fetched, SourceError>, at: Timestamp) {
        let fetched = match result {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(source = %self.source_name, error = %e, "scrape failed");
                self.telemetry
                    .update(|s| *s.scrape_errors.entry(e.kind()).or_default() += 1);
                return;
            }
        };
        let debug = match &fetched.debug {
            Some(Ok(body)) => Some(body.clone()),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the debug endpoint could not be read; its restart evidence and socket statistics are missing from this scrape");
                self.telemetry
                    .update(|s| *s.scrape_errors.entry("debug_endpoint").or_default() += 1);
                None
            }
            None => None,
        };
        let bodies: Vec<&[u8]> = std::iter::once(&fetched.body[..])
            .chain(debug.as_deref())
            .collect();
        match self.tracker.observe_bodies(&bodies, &fetched.target, at) {
            Ok(obs) => {
                // The points borrow the tracker: the drivers take them before anything else
                // touches it.
                accept(
                    &self.source_name,
                    &mut self.slots,
                    &self.telemetry,
                    &obs,
                    at,
                );
                self.publish_telemetry();
            }
            Err(empty) => {
                tracing::warn!(source = %self.source_name, "scrape not used: {empty}");
                for a in empty.anomalies.details().iter().take(5) {
                    tracing::warn!(anomaly = %a, "unreadable");
                }
                self.telemetry.update(|s| {
                    *s.scrape_errors.entry("empty").or_default() += 1;
                    for (kind, n) in empty.anomalies.counts() {
                        *s.anomalies.entry(kind).or_default() += n;
                    }
                });
            }
        }
    }

    /// The earliest retry delay's end or bucket close among the sinks.
    fn next_wake(&self) -> Option<Instant> {
        let (now, wall) = (Instant::now(), Timestamp::now());
        let closes = self
            .slots
            .iter()
            .filter_map(|s| s.driver.next_due())
            .map(|due| now + due.since(wall));
        self.slots
            .iter()
            .filter_map(|s| s.retry_at)
            .chain(closes)
            .min()
    }

    fn resume_due(&mut self) {
        let now = Instant::now();
        for slot in &mut self.slots {
            if slot.retry_at.is_some_and(|t| t <= now) {
                slot.retry_at = None;
                slot.driver.resume();
            }
        }
    }

    /// Takes every batch the drivers let go now, encoded, without sending anything.
    /// Takes every batch the drivers let go now, without sending or encoding anything; says
    /// how many.
    fn take_batches(&mut self, flush: bool) -> usize {
        let mut taken = 0;
        let now = Timestamp::now();
        for slot in &mut self.slots {
            while let Some(batch) = slot.driver.take_batch(&*slot.sink, now, flush) {
                slot.waiting.push_back(batch.id);
                taken += 1;
            }
        }
        taken
    }

    /// Sends waiting batches, at most `max_in_flight` per sink at a time, if the checkpoint
    /// recorded them; else puts them all back.
    fn dispatch(&mut self, sends: &mut JoinSet<Sent>) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !self.durable || slot.driver.is_paused() {
                cancel_waiting(slot);
                continue;
            }
            while slot.running < self.max_in_flight
                && let Some(id) = slot.waiting.pop_front()
            {
                let Some(points) = slot.driver.batch(id) else {
                    continue;
                };
                tracing::debug!(sink = %slot.driver.name(), points = points.len(), "sending");
                let request = slot.sink.send(points);
                slot.running += 1;
                sends.spawn(async move { (i, id, request.await) });
            }
        }
    }

    /// Records an answer; says whether the checkpoint must catch up with it soon: deltas
    /// acknowledged but still recorded in flight would be sent again after a crash and count
    /// twice. Running totals recorded in flight are only spaced after a restart, as if
    /// written, so their answers wait for the checkpoint interval.
    fn complete(&mut self, i: usize, id: u64, result: Result<Report, SinkError>) -> bool {
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        slot.running = slot.running.saturating_sub(1);
        if let Next::RetryAfter(d) = slot.driver.complete(id, result, Timestamp::now()) {
            slot.retry_at = Some(Instant::now() + d);
            // Not sent: back with the rest, for after the delay.
            cancel_waiting(slot);
        }
        let deltas = slot.driver.values() == tailship_sink::Values::Deltas;
        // Once per round of answers, not per answer: each publication looks at every series.
        if slot.running == 0 {
            self.publish_telemetry();
        }
        deltas
    }

    fn save(&mut self) {
        self.saved_at = Instant::now();
        // The sinks' series are the tracker's (shared): written as its numbers for them.
        let ids = self.tracker.state().published_ids();
        let names = |series: &Arc<_>| ids.get(series);
        let sinks: BTreeMap<&str, _> = self
            .slots
            .iter()
            .map(|s| (s.sink.name(), s.driver.state_view_named(&names)))
            .collect();
        let checkpoint = CheckpointRef {
            format: FORMAT,
            source: &self.source_name,
            written_at: Timestamp::now(),
            tracker: self.tracker.state(),
            sinks,
        };
        match self.store.save(&checkpoint) {
            Ok(()) => {
                if !self.durable {
                    tracing::info!(path = %self.store.path().display(), "checkpoint written again; sending resumes");
                }
                self.durable = true;
                self.telemetry.update(|s| s.checkpoint_writes += 1);
            }
            Err(e) => {
                if self.durable {
                    tracing::error!(error = %format!("{e:#}"), "checkpoint not written; nothing is sent until it can be (points wait in memory, retried at every scrape)");
                } else {
                    tracing::debug!(error = %format!("{e:#}"), "checkpoint still not written");
                }
                self.durable = false;
                self.telemetry.update(|s| s.checkpoint_errors += 1);
            }
        }
    }

    fn publish_telemetry(&self) {
        let sinks: Vec<SinkSnapshot> = self
            .slots
            .iter()
            .map(|s| SinkSnapshot {
                name: s.driver.name().to_owned(),
                stats: s.driver.stats().clone(),
                pending_series: s.driver.pending_series() as u64,
                pending_points: s.driver.pending_points() as u64,
            })
            .collect();
        self.telemetry.update(|s| s.sinks = sinks);
    }
}

/// Hands a scrape's points to every driver and counts it.
fn accept(
    source_name: &str,
    slots: &mut [Slot],
    telemetry: &Telemetry,
    obs: &Observation<'_>,
    at: Timestamp,
) {
    if let Some(r) = &obs.restart {
        tracing::warn!(source = %source_name, "{r}");
    }
    if obs.baseline {
        tracing::info!(
            series = obs.samples,
            "first scrape: values taken as the baseline"
        );
    }
    for a in obs.anomalies.details() {
        tracing::warn!(anomaly = %a, "sample not used");
    }
    tracing::debug!(
        samples = obs.samples,
        counters = obs.counters().count(),
        gauges = obs.gauges().count(),
        "scraped"
    );
    for slot in slots {
        slot.driver
            .push(&*slot.sink, obs.counters(), obs.gauges(), at);
    }
    telemetry.update(|s| {
        s.ready = true;
        s.scrapes += 1;
        s.restarts += u64::from(obs.restart.is_some());
        s.series_resets += obs.series_resets as u64;
        s.series = obs.series as u64;
        s.series_evicted += obs.evicted as u64;
        s.last_scrape = Some(at.to_system_time());
        for (kind, n) in obs.anomalies.counts() {
            *s.anomalies.entry(kind).or_default() += n;
        }
    });
}

/// Puts a sink's batches that were taken but not sent back into its driver.
fn cancel_waiting(slot: &mut Slot) {
    while let Some(id) = slot.waiting.pop_back() {
        slot.driver.cancel(id);
    }
}

/// Says what a sink took back from the checkpoint, and which points may now count twice.
fn log_restored(sink: &str, restored: &tailship_sink::Restored) {
    if restored.points > 0 {
        tracing::info!(
            sink,
            points = restored.points,
            "pending points restored from the checkpoint"
        );
    }
    if restored.in_flight.is_empty() {
        return;
    }
    if restored.possible_duplicates == 0 {
        tracing::info!(
            sink,
            points = restored.in_flight.len(),
            "points were in flight when tailship stopped; they are running totals, so sending them again cannot count twice"
        );
        return;
    }
    tracing::warn!(
        sink,
        points = restored.possible_duplicates,
        "points were in flight when tailship stopped: the provider may have written them before it stopped; they are sent again and may count twice (tailship_possible_duplicates_total)"
    );
    for p in restored.in_flight.iter().take(LOGGED_IN_FLIGHT) {
        if let tailship_sink::Value::Counter(c) = &p.value {
            tracing::info!(sink, series = %p.series, bucket = %c.bucket, delta = c.sum, "possible duplicate");
        }
    }
    if restored.in_flight.len() > LOGGED_IN_FLIGHT {
        tracing::info!(
            sink,
            more = restored.in_flight.len() - LOGGED_IN_FLIGHT,
            "more possible duplicates not listed"
        );
    }
}
