//! Turns successive scrapes of one tailscaled into exact counter deltas.
//!
//! Two levels of state: every raw tailscaled series (`family{labels}`) keeps its last value,
//! and every published series (catalog name and dimensions) keeps its start and the running
//! total shipped since then. Deltas are computed per raw series, where resets are visible,
//! and then summed into the published series.

mod state;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::time::Duration;

use tailship_model::{
    CounterPoint, CounterRef, Dimensions, GaugePoint, GaugeRef, Series, Timestamp,
};

use crate::anomaly::{Anomalies, Anomaly, MAX_SERIES_KEY, clip, counter_value, gauge_value};
use crate::catalog::{self, Class, Kind, Resets};
use crate::key::{write_key, written_key};
use crate::{Event, Labels, MetricType, Sample, TargetInfo, parse};

use state::{NO_OUTPUT, Output, RawState};
pub use state::{PublishedIds, StateError, TrackerState};

/// Limits of the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    /// How long a series that is no longer in the scrapes is remembered before it is evicted.
    pub series_ttl: Duration,
    /// The most raw series tracked at once; new series beyond it are refused and counted.
    pub max_series: usize,
    /// Client metrics of the debug endpoint to publish by name (`tailscale.client.<name>`);
    /// none by default: they are internal to tailscaled and change between versions.
    pub client_metrics: BTreeSet<String>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            series_ttl: Duration::from_secs(3600),
            max_series: 100_000,
            client_metrics: BTreeSet::new(),
        }
    }
}

/// Why the tracker decided that tailscaled restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// The process behind the source is another one (PID, start time, boot, version).
    Identity {
        what: &'static str,
        before: String,
        after: String,
    },
    /// A process-lifetime counter went down: they all reset together.
    CounterWentDown {
        series: String,
        before: u64,
        after: u64,
    },
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::Identity {
                what,
                before,
                after,
            } => {
                write!(
                    f,
                    "tailscaled restarted: its {what} changed from {before} to {after}"
                )
            }
            Restart::CounterWentDown {
                series,
                before,
                after,
            } => write!(
                f,
                "tailscaled restarted: {series} went down from {before} to {after}; every process-lifetime counter counts from 0"
            ),
        }
    }
}

/// What one scrape produced. Its points are read from the tracker's state, which it borrows
/// (so handing them on touches no series' reference count and copies nothing):
/// [`Observation::counters`], [`Observation::gauges`], or owned copies of them.
#[derive(Clone, Default)]
pub struct Observation<'t> {
    pub at: Timestamp,
    pub anomalies: Anomalies,
    /// Set when tailscaled restarted since the previous scrape.
    pub restart: Option<Restart>,
    /// Counter series that went down on their own (`peer_relay_*` and unknown families).
    pub series_resets: usize,
    /// The first scrape of a fresh state: values are a baseline, not deltas.
    pub baseline: bool,
    /// Raw series seen for the first time.
    pub new_series: usize,
    /// Raw series forgotten after the TTL.
    pub evicted: usize,
    /// Samples of families that are not published (other programs', histograms, ...).
    pub ignored: usize,
    /// Samples tracked.
    pub samples: usize,
    /// Raw series tracked after the scrape ([`Tracker::series`]).
    pub series: usize,
    /// The published series present in the scrape, in the order first met.
    touched: Vec<u32>,
    /// The tracker's published series, as this scrape left them.
    outputs: &'t [Option<Output>],
}

impl<'t> Observation<'t> {
    fn present(&self, kind: Kind) -> impl Iterator<Item = &'t Output> + '_ {
        let outputs = self.outputs;
        self.touched
            .iter()
            .filter_map(move |&id| outputs.get(id as usize)?.as_ref())
            .filter(move |o| o.kind == kind)
    }

    /// One point per published counter series present in the scrape (none on a baseline).
    pub fn counters(&self) -> impl Iterator<Item = CounterRef<'t>> + '_ {
        let baseline = self.baseline;
        self.present(Kind::Counter)
            .filter(move |_| !baseline)
            .map(|o| CounterRef {
                series: &o.series,
                start: o.start,
                end: o.end,
                delta: o.acc_delta,
                cumulative: o.cumulative,
            })
    }

    /// One point per published gauge series present in the scrape.
    pub fn gauges(&self) -> impl Iterator<Item = GaugeRef<'t>> + '_ {
        let at = self.at;
        self.present(Kind::Gauge).map(move |o| GaugeRef {
            series: &o.series,
            at,
            value: o.acc_value,
        })
    }

    /// [`Observation::counters`], owned.
    pub fn counter_points(&self) -> Vec<CounterPoint> {
        self.counters().map(|c| c.to_point()).collect()
    }

    /// [`Observation::gauges`], owned.
    pub fn gauge_points(&self) -> Vec<GaugePoint> {
        self.gauges().map(|g| g.to_point()).collect()
    }
}

impl fmt::Debug for Observation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observation")
            .field("at", &self.at)
            .field("counters", &self.counters().collect::<Vec<_>>())
            .field("gauges", &self.gauges().collect::<Vec<_>>())
            .field("anomalies", &self.anomalies)
            .field("restart", &self.restart)
            .field("series_resets", &self.series_resets)
            .field("baseline", &self.baseline)
            .field("new_series", &self.new_series)
            .field("evicted", &self.evicted)
            .field("ignored", &self.ignored)
            .field("samples", &self.samples)
            .field("series", &self.series)
            .finish()
    }
}

impl PartialEq for Observation<'_> {
    /// Equal when they say the same, points included, whichever states they read them from.
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
            && self.anomalies == other.anomalies
            && self.restart == other.restart
            && self.series_resets == other.series_resets
            && self.baseline == other.baseline
            && self.new_series == other.new_series
            && self.evicted == other.evicted
            && self.ignored == other.ignored
            && self.samples == other.samples
            && self.series == other.series
            && self.counters().eq(other.counters())
            && self.gauges().eq(other.gauges())
    }
}

/// A scrape with no sample the tracker could use: the state was left as it was.
#[derive(Clone, Debug, PartialEq)]
pub struct EmptyScrape {
    pub anomalies: Anomalies,
    pub ignored: usize,
}

impl fmt::Display for EmptyScrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the body has no usable tailscaled_* sample ({} unreadable lines or values, {} samples of other families); is the source a tailscaled metrics endpoint?",
            self.anomalies.total(),
            self.ignored
        )
    }
}

impl std::error::Error for EmptyScrape {}

/// Tracks the counters of one tailscaled.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    state: TrackerState,
    /// The sizes the last scrape needed, so that a scrape in steady state allocates each of
    /// its buffers once, whatever the number of series.
    sizes: Sizes,
    /// The raw series' ids of the last scrape, in body order: a scrape that writes the same
    /// series in the same order (tailscaled's steady state) is matched to them position by
    /// position, with no hashing, duplicate search or table lookup.
    layout: Vec<u32>,
}

/// Lengths of a scrape's buffers.
#[derive(Clone, Copy, Debug, Default)]
struct Sizes {
    keys: usize,
    obs: usize,
    touched: usize,
}

/// The id of a sample whose series is not tracked yet.
const NEW: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
}

struct Obs<'a> {
    key: Key<'a>,
    /// The raw series' id, or [`NEW`] for a series not tracked yet.
    id: u32,
    class: Class,
    /// The length of the sample's name, which its key starts with; the key's label text
    /// (between the braces) holds the sample's labels. Publishing a new series reads them
    /// there: at 10k series the scrape's list of these is its largest buffer, 64 bytes a
    /// sample where a name and labels of their own made it 96.
    name_len: u32,
    value: Value,
}

/// A series' canonical key: the body's own text when it is one, else written into the
/// scrape's key buffer (labels out of order, escapes, blanks).
enum Key<'a> {
    Body(&'a str),
    Written(Range<usize>),
}

impl<'a> Key<'a> {
    /// The key's text; `keys` is the scrape's key buffer.
    fn text<'k>(&self, keys: &'k str) -> &'k str
    where
        'a: 'k,
    {
        match self {
            Key::Body(text) => text,
            Key::Written(range) => &keys[range.clone()],
        }
    }
}

impl<'a> Obs<'a> {
    fn key<'k>(&self, keys: &'k str) -> &'k str
    where
        'a: 'k,
    {
        self.key.text(keys)
    }

    /// The sample's name and labels, read in its key.
    fn name_and_labels<'k>(&self, keys: &'k str) -> (&'k str, Labels<'k>)
    where
        'a: 'k,
    {
        let key = self.key(keys);
        let (name, rest) = key
            .split_at_checked(self.name_len as usize)
            .unwrap_or((key, ""));
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or_default();
        (name, Labels::of_key(inner))
    }
}

impl Tracker {
    /// A tracker with no history: its first scrape is a baseline.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            state: TrackerState::default(),
            sizes: Sizes::default(),
            layout: Vec::new(),
        }
    }

    /// A tracker that continues from a saved state.
    pub fn restore(config: TrackerConfig, state: TrackerState) -> Result<Self, StateError> {
        let state = state.validated()?;
        Ok(Self {
            config,
            state,
            sizes: Sizes::default(),
            layout: Vec::new(),
        })
    }

    /// The state to save; [`Tracker::restore`] continues from it.
    pub fn state(&self) -> &TrackerState {
        &self.state
    }

    /// The tracker's own copy of a published series it knows, to share rather than copy.
    pub fn shared(&self, series: &Series) -> Option<Arc<Series>> {
        self.state.find(series).map(Arc::clone)
    }

    /// Raw series tracked.
    pub fn series(&self) -> usize {
        self.state.raw.len()
    }

    /// Reads one scrape's body and returns the deltas since the previous one.
    ///
    /// `target` is what the source learnt about the tailscaled that answered; `at` is when.
    pub fn observe(
        &mut self,
        body: &[u8],
        target: &TargetInfo,
        at: Timestamp,
    ) -> Result<Observation<'_>, EmptyScrape> {
        self.observe_bodies(&[body], target, at)
    }

    /// Reads one scrape made of several bodies of the same tailscaled (the usermetrics body
    /// and the debug endpoint's) as one.
    ///
    /// A scrape that writes the previous one's series in the same order (tailscaled's steady
    /// state) is read once, each sample compared with the series at its place, keeping only
    /// its value ([`Tracker::observe_steady`]); otherwise, and from the first sample that is
    /// not the series at its place, the bodies are read again and every sample's series
    /// found by its key ([`Tracker::observe_anew`]). Both give the same observation.
    pub fn observe_bodies(
        &mut self,
        bodies: &[&[u8]],
        target: &TargetInfo,
        at: Timestamp,
    ) -> Result<Observation<'_>, EmptyScrape> {
        let out = match self.observe_steady(bodies, target, at) {
            Some(out) => out,
            None => self.observe_anew(bodies, target, at)?,
        };
        Ok(Observation {
            outputs: &self.state.outputs,
            ..out
        })
    }

    /// Hands `each` the bodies' samples that count, in body order, with the scrape's key
    /// buffer (a key the body does not hold as it is, `Key::Written`, was written at its
    /// end). A sample that does not count is an anomaly or ignored. Stops when `each` breaks.
    fn read<'b>(
        &self,
        bodies: &[&'b [u8]],
        each: &mut dyn FnMut(Obs<'b>, &mut String) -> ControlFlow<()>,
    ) -> Read {
        let mut read = Read {
            keys: String::with_capacity(self.sizes.keys),
            anomalies: Anomalies::default(),
            ignored: 0,
            stopped: false,
        };
        let Read {
            keys,
            anomalies,
            ignored,
            ..
        } = &mut read;
        // The class of the last family's unsuffixed samples: a family's samples come
        // together and share the family text, so most samples skip the catalog lookup.
        let mut last: Option<(&str, MetricType, Class)> = None;
        for event in bodies.iter().flat_map(|b| parse(b)) {
            let sample = match event {
                Ok(Event::Sample(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    anomalies.push(Anomaly::Parse(e));
                    continue;
                }
            };
            // A sample's family is its name or a prefix of it: of equal length, they are
            // the same text, and the class depends on the family and its type alone.
            let unsuffixed = sample.name.len() == sample.family.len();
            let class = match last {
                Some((family, family_type, class))
                    if unsuffixed
                        && std::ptr::eq(family, sample.family)
                        && family_type == sample.family_type =>
                {
                    class
                }
                _ => {
                    let class = self.classify(&sample);
                    if unsuffixed {
                        last = Some((sample.family, sample.family_type, class));
                    }
                    class
                }
            };
            let Some(kind) = class.kind() else {
                *ignored += 1;
                continue;
            };
            let start = keys.len();
            let key = match written_key(&sample) {
                Some(text) => Key::Body(text),
                None => {
                    write_key(keys, &sample);
                    Key::Written(start..keys.len())
                }
            };
            let text = key.text(keys);
            if text.len() > MAX_SERIES_KEY {
                anomalies.push(Anomaly::TooLong {
                    series: clip(text),
                    len: text.len(),
                });
                keys.truncate(start);
                continue;
            }
            let value = match kind {
                Kind::Counter => counter_value(sample.value_text, sample.value).map(Value::Counter),
                Kind::Gauge => gauge_value(sample.value).map(Value::Gauge),
            };
            match value {
                Ok(value) => {
                    let o = Obs {
                        id: NEW,
                        key,
                        class,
                        // Shorter than the key, which is at most `MAX_SERIES_KEY` bytes.
                        name_len: u32::try_from(sample.name.len()).unwrap_or(0),
                        value,
                    };
                    if each(o, keys).is_break() {
                        read.stopped = true;
                        return read;
                    }
                }
                Err(problem) => {
                    anomalies.push(Anomaly::Value {
                        series: text.to_owned(),
                        problem,
                        text: sample.value_text.to_owned(),
                    });
                    keys.truncate(start);
                }
            }
        }
        read
    }

    /// The scrape, if each of its samples is the series at its place in the previous one
    /// (`layout`): then nothing is hashed, no duplicate can be, and a sample leaves only its
    /// value, 16 bytes, where a list of samples takes 64. `None`, with the state untouched,
    /// from the first sample that is not.
    fn observe_steady(
        &mut self,
        bodies: &[&[u8]],
        target: &TargetInfo,
        at: Timestamp,
    ) -> Option<Observation<'static>> {
        // Empty before the first scrape and after a restore: nothing to match.
        if self.layout.is_empty() {
            return None;
        }
        let mut values = Vec::with_capacity(self.layout.len());
        // The first process-lifetime counter that went down, in body order.
        let mut went_down = None;
        let (layout, raw) = (&self.layout, &self.state.raw);
        let read = self.read(bodies, &mut |o, keys| {
            let Some(&id) = layout.get(values.len()) else {
                return ControlFlow::Break(());
            };
            let key = o.key(keys);
            let Some(state) = raw.get_if(id, key) else {
                return ControlFlow::Break(());
            };
            if went_down.is_none() {
                went_down = counter_went_down(&o, key, state);
            }
            if let Key::Written(range) = &o.key {
                keys.truncate(range.start);
            }
            values.push(o.value);
            ControlFlow::Continue(())
        });
        if read.stopped || values.is_empty() {
            return None;
        }
        // Series that are gone this scrape were at the end.
        self.layout.truncate(values.len());
        let restart = self.identity_restart(target).or(went_down);
        let mut scrape = Scrape::begin(self, at, restart, read.ignored, read.anomalies);
        let layout = std::mem::take(&mut self.layout);
        for (&id, value) in layout.iter().zip(values) {
            scrape.apply(self, id, value);
        }
        self.layout = layout;
        Some(scrape.finish(self, target, 0))
    }

    /// The scrape, each sample's series found by its key ([`Tracker::find_series`]).
    fn observe_anew(
        &mut self,
        bodies: &[&[u8]],
        target: &TargetInfo,
        at: Timestamp,
    ) -> Result<Observation<'static>, EmptyScrape> {
        let mut obs = Vec::with_capacity(self.sizes.obs);
        let Read {
            keys,
            mut anomalies,
            ignored,
            ..
        } = self.read(bodies, &mut |o, _| {
            obs.push(o);
            ControlFlow::Continue(())
        });
        if obs.is_empty() {
            return Err(EmptyScrape { anomalies, ignored });
        }
        self.find_series(&mut obs, &keys, &mut anomalies);

        let restart = if self.state.scrapes == 0 {
            None
        } else {
            self.detect_restart(&obs, &keys, target)
        };
        let mut scrape = Scrape::begin(self, at, restart, ignored, anomalies);
        let baseline = scrape.out.baseline;
        let mut refused = 0;
        self.layout.clear();
        for o in &obs {
            let key = o.key(&keys);
            let id = if o.id != NEW {
                o.id
            } else {
                if self.state.raw.len() >= self.config.max_series {
                    scrape.out.anomalies.push(Anomaly::SeriesCap {
                        series: key.to_owned(),
                        max: self.config.max_series,
                    });
                    refused += 1;
                    continue;
                }
                // A series that appears after the baseline started at 0 since the previous
                // scrape, unless series were refused then: it may be one of them, and
                // counting it from 0 could count twice what it had before.
                let last = match o.value {
                    Value::Counter(v) if baseline || self.state.capped => v,
                    _ => 0,
                };
                let outs = self.outputs_for(o, &keys, at);
                scrape.out.new_series += 1;
                let state = RawState {
                    last,
                    seen: at,
                    outs,
                };
                // A key is never empty (it starts with the family's name): stored.
                let hash = self.state.raw.hash(key);
                let Some(id) = self.state.raw.insert(hash, key, state) else {
                    continue;
                };
                id
            };
            if scrape.apply(self, id, o.value) {
                self.layout.push(id);
            }
        }
        self.sizes.keys = keys.len();
        self.sizes.obs = obs.len();
        Ok(scrape.finish(self, target, refused))
    }

    /// Finds every sample's series by its key's hash and drops the repeats of a series: of
    /// two samples of one series, the first in the body is used and the other counted.
    fn find_series(&self, obs: &mut Vec<Obs<'_>>, keys: &str, anomalies: &mut Anomalies) {
        let raw = &self.state.raw;
        // Repeats are found by sorting (hash, index) pairs, not the samples themselves:
        // moving samples around was most of a 10k-series scrape's copying.
        let mut order: Vec<(u64, u32)> = Vec::with_capacity(obs.len());
        for (i, o) in obs.iter_mut().enumerate() {
            let key = o.key(keys);
            let hash = raw.hash(key);
            o.id = raw.find(hash, key).unwrap_or(NEW);
            // Fewer than 2^32 samples: a body is at most `max_body`, far below.
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            order.push((hash, i));
        }
        order.sort_unstable();
        let mut duplicate = Vec::new();
        for group in order.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            // By index: the first in the body comes first.
            for (j, &(_, later)) in group.iter().enumerate() {
                let key = |i: u32| obs.get(i as usize).map(|o: &Obs<'_>| o.key(keys));
                if group[..j]
                    .iter()
                    .any(|&(_, first)| key(first) == key(later))
                {
                    duplicate.push(later as usize);
                }
            }
        }
        if duplicate.is_empty() {
            return;
        }
        duplicate.sort_unstable();
        for &i in &duplicate {
            anomalies.push(Anomaly::Duplicate {
                series: obs[i].key(keys).to_owned(),
            });
        }
        let mut i = 0;
        obs.retain(|_| {
            let keep = duplicate.binary_search(&i).is_err();
            i += 1;
            keep
        });
    }

    fn classify(&self, sample: &Sample<'_>) -> Class {
        if self.config.client_metrics.contains(sample.name) {
            return match sample.family_type {
                MetricType::Counter => Class::Selected(Kind::Counter),
                MetricType::Gauge | MetricType::Unknown => Class::Selected(Kind::Gauge),
                _ => Class::Ignored,
            };
        }
        catalog::classify(sample.family, sample.family_type, sample.name)
    }

    fn detect_restart(&self, obs: &[Obs<'_>], keys: &str, target: &TargetInfo) -> Option<Restart> {
        self.identity_restart(target).or_else(|| {
            obs.iter()
                .find_map(|o| counter_went_down(o, o.key(keys), self.state.raw.get(o.id)?))
        })
    }

    /// A restart told by the process's identity (`target` against the last scrape's).
    fn identity_restart(&self, target: &TargetInfo) -> Option<Restart> {
        let before = self.state.target.as_ref()?;
        identity_change(before, target)
    }

    /// The published series a new raw series adds to: its aggregate and its breakdown.
    fn outputs_for(&mut self, o: &Obs<'_>, keys: &str, at: Timestamp) -> [u32; 2] {
        let (name, labels) = o.name_and_labels(keys);
        let Some(p) = catalog::published_as(o.class, name, &labels) else {
            return [NO_OUTPUT; 2];
        };
        // A series that appears after the first scrape began since the previous one.
        let start = match self.state.last_scrape {
            Some(prev) if self.state.scrapes > 0 => prev.min(at),
            _ => at,
        };
        let mut outs = [NO_OUTPUT; 2];
        if p.aggregate || p.dimensions.is_empty() {
            let series = Series {
                name: p.name.clone(),
                dimensions: Dimensions::none(),
                unit: p.unit,
            };
            outs[0] = self.state.intern(series, p.kind, start);
        }
        if !p.dimensions.is_empty() {
            let series = Series {
                name: p.name,
                dimensions: p.dimensions,
                unit: p.unit,
            };
            outs[1] = self.state.intern(series, p.kind, start);
        }
        outs
    }
}

/// What reading a scrape's bodies left beside its samples.
struct Read {
    /// Keys the body does not hold as they are, written out (`Key::Written`).
    keys: String,
    anomalies: Anomalies,
    /// Samples of families that are not published.
    ignored: usize,
    /// Whether the reader stopped before the end.
    stopped: bool,
}

/// A restart, if sample `o` (whose key is `key`, of the raw series in state `raw`) is a
/// process-lifetime counter that went down.
fn counter_went_down(o: &Obs<'_>, key: &str, raw: &RawState) -> Option<Restart> {
    let Value::Counter(v) = o.value else {
        return None;
    };
    (o.class.resets() == Resets::Process && v < raw.last).then(|| Restart::CounterWentDown {
        series: key.to_owned(),
        before: raw.last,
        after: v,
    })
}

/// One scrape being applied to the state: what it found so far, and the published series
/// it touched.
struct Scrape {
    out: Observation<'static>,
    touched: Vec<u32>,
}

impl Scrape {
    /// Starts a scrape taken `at`; a `restart` sets every raw series' last value to 0.
    fn begin(
        tracker: &mut Tracker,
        at: Timestamp,
        restart: Option<Restart>,
        ignored: usize,
        anomalies: Anomalies,
    ) -> Self {
        if restart.is_some() {
            for raw in tracker.state.raw.values_mut() {
                raw.last = 0;
            }
        }
        let sizes = tracker.sizes;
        Self {
            out: Observation {
                at,
                baseline: tracker.state.scrapes == 0,
                restart,
                ignored,
                anomalies,
                ..Observation::default()
            },
            touched: Vec::with_capacity(sizes.touched),
        }
    }

    /// Adds a sample of raw series `id` (its delta since the last one, for a counter) to
    /// the published series it feeds; `false` if there is no such series.
    fn apply(&mut self, tracker: &mut Tracker, id: u32, value: Value) -> bool {
        let Some(raw) = tracker.state.raw.get_mut(id) else {
            return false;
        };
        raw.seen = self.out.at;
        let outs = raw.outs;
        let value = match value {
            Value::Counter(v) => {
                let delta = if v >= raw.last {
                    v - raw.last
                } else {
                    // Only series judged one by one get here: a process-lifetime counter
                    // going down was a restart, which set every `last` to 0.
                    self.out.series_resets += 1;
                    v
                };
                raw.last = v;
                Value::Counter(delta)
            }
            Value::Gauge(v) => Value::Gauge(v),
        };
        for id in outs.into_iter().filter(|&id| id != NO_OUTPUT) {
            let Some(output) = tracker.state.output_mut(id) else {
                continue;
            };
            if !output.touched {
                output.touched = true;
                output.acc_delta = 0;
                output.acc_value = 0.0;
                self.touched.push(id);
            }
            match value {
                Value::Counter(d) => output.acc_delta = output.acc_delta.saturating_add(d),
                Value::Gauge(v) => output.acc_value += v,
            }
        }
        self.out.samples += 1;
        true
    }

    /// Moves the end and the running total of every counter series touched (the
    /// observation's points read them there); evicts what the TTL says, and counts the
    /// scrape. `refused` series were over the series limit.
    fn finish(
        self,
        tracker: &mut Tracker,
        target: &TargetInfo,
        refused: usize,
    ) -> Observation<'static> {
        let Scrape { mut out, touched } = self;
        let at = out.at;
        let baseline = out.baseline;
        let state = &mut tracker.state;
        // The points are these outputs as left here: `acc_delta` and `acc_value` hold the
        // scrape's until the next scrape touches the series again.
        for &id in &touched {
            let Some(output) = state.output_mut(id) else {
                continue;
            };
            output.touched = false;
            output.seen = at;
            if output.kind == Kind::Counter && !baseline {
                output.end = at.max(output.end.saturating_add(Duration::from_millis(1)));
                output.cumulative = output.cumulative.saturating_add(output.acc_delta);
            }
        }
        out.evicted = state.evict(at, tracker.config.series_ttl);
        state.capped = refused > 0;
        state.scrapes += 1;
        state.last_scrape = Some(at);
        if state.target.as_ref() != Some(target) {
            state.target = Some(target.clone());
        }
        tracker.sizes.touched = touched.len();
        Observation {
            series: state.raw.len(),
            touched,
            ..out
        }
    }
}

fn identity_change(before: &TargetInfo, after: &TargetInfo) -> Option<Restart> {
    fn differ<T: PartialEq + fmt::Display>(
        what: &'static str,
        a: &Option<T>,
        b: &Option<T>,
    ) -> Option<Restart> {
        match (a, b) {
            (Some(a), Some(b)) if a != b => Some(Restart::Identity {
                what,
                before: a.to_string(),
                after: b.to_string(),
            }),
            _ => None,
        }
    }
    differ("boot id", &before.boot_id, &after.boot_id)
        .or_else(|| differ("node boot time", &before.node_booted, &after.node_booted))
        .or_else(|| {
            differ(
                "process start time (debug endpoint)",
                &before.started,
                &after.started,
            )
        })
        .or_else(|| differ("process id", &before.pid, &after.pid))
        .or_else(|| {
            differ(
                "process start time",
                &before.process_start,
                &after.process_start,
            )
        })
        .or_else(|| differ("version", &before.version, &after.version))
}

#[cfg(test)]
mod tests;
