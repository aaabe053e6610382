use std::fmt;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tailship_model::{Series, Timestamp};

use crate::TargetInfo;
use crate::catalog::Kind;

/// Marks an unused slot in [`RawState::outs`].
pub(super) const NO_OUTPUT: u32 = u32::MAX;

/// Everything the tracker knows, as a plain value: serialize it to continue after a restart
/// with no byte lost or counted twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// Scrapes observed; the first one is a baseline.
    pub(super) scrapes: u64,
    pub(super) last_scrape: Option<Timestamp>,
    /// The tailscaled process that answered the last scrape, as far as it is known.
    pub(super) target: Option<TargetInfo>,
    /// Whether the last scrape refused series for the series limit.
    pub(super) capped: bool,
    /// Raw series by canonical key (`family{label="value",...}`).
    pub(super) raw: Raw,
    /// Published series; a raw series refers to them by index. Evicted slots are `None`.
    pub(super) outputs: Vec<Option<Output>>,
    /// Published series by identity, rebuilt from `outputs`.
    #[serde(skip)]
    pub(super) index: Index,
    /// Evicted slots of `outputs`, reused first, lowest first (kept in descending order, so
    /// that a restored state is equal to the one saved); rebuilt from `outputs`.
    #[serde(skip)]
    pub(super) free: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RawState {
    /// The last counter value (0 after a restart: the next value counts in full).
    pub last: u64,
    pub seen: Timestamp,
    /// The aggregate and broken-down published series it adds to.
    pub outs: [u32; 2],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Output {
    pub series: Arc<Series>,
    pub kind: Kind,
    /// When counting began: `cumulative` is everything shipped since then.
    pub start: Timestamp,
    /// The end of the last point; the next one ends strictly later.
    pub end: Timestamp,
    pub cumulative: u64,
    pub seen: Timestamp,
    /// The scrape's, while it is applied; the last scrape's after it (its points read
    /// them): not state, neither saved nor compared.
    #[serde(skip)]
    pub touched: bool,
    #[serde(skip)]
    pub acc_delta: u64,
    #[serde(skip)]
    pub acc_value: f64,
}

impl PartialEq for Output {
    /// What is saved: a restored state equals the one saved.
    fn eq(&self, other: &Self) -> bool {
        self.series == other.series
            && self.kind == other.kind
            && self.start == other.start
            && self.end == other.end
            && self.cumulative == other.cumulative
            && self.seen == other.seen
    }
}

/// A saved state that does not hold together.
#[derive(Debug, thiserror::Error)]
#[error("tracker state is inconsistent: {0}")]
pub struct StateError(String);

/// The numbers of the published series, found by their allocation: a checkpoint writes a
/// sink's series that the tracker also holds (the same `Arc`, shared) as its number here
/// instead of its name and labels once more ([`TrackerState::published_series`] reads it
/// back).
#[derive(Debug, Default)]
pub struct PublishedIds(std::collections::HashMap<*const Series, u32, foldhash::fast::FixedState>);

impl PublishedIds {
    /// The number of `series`, if it is one of the tracker's published series itself (not an
    /// equal copy).
    pub fn get(&self, series: &Arc<Series>) -> Option<u32> {
        self.0.get(&Arc::as_ptr(series)).copied()
    }
}

impl TrackerState {
    /// The numbers of the published series (see [`PublishedIds`]).
    pub fn published_ids(&self) -> PublishedIds {
        let mut ids = std::collections::HashMap::with_capacity_and_hasher(
            self.outputs.len().saturating_sub(self.free.len()),
            foldhash::fast::FixedState::default(),
        );
        for (id, output) in self.outputs.iter().enumerate() {
            if let (Some(output), Ok(id)) = (output, u32::try_from(id)) {
                ids.insert(Arc::as_ptr(&output.series), id);
            }
        }
        PublishedIds(ids)
    }

    /// Published series number `id` (see [`PublishedIds`]), if there is one.
    pub fn published_series(&self, id: u32) -> Option<&Series> {
        series_of(&self.outputs, id).map(|s| &**s)
    }

    pub(super) fn output_mut(&mut self, id: u32) -> Option<&mut Output> {
        self.outputs.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// The id of the published series, created with `start` if it is new.
    pub(super) fn intern(&mut self, series: Series, kind: Kind, start: Timestamp) -> u32 {
        if let Some(id) = self.index.get(&self.outputs, &series) {
            return id;
        }
        let series = Arc::new(series);
        let output = Output {
            series: Arc::clone(&series),
            kind,
            start,
            end: start,
            cumulative: 0,
            seen: start,
            touched: false,
            acc_delta: 0,
            acc_value: 0.0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.outputs[id as usize] = Some(output);
                id
            }
            None => {
                self.outputs.push(Some(output));
                // Fewer than u32::MAX series: the series limit is far below.
                u32::try_from(self.outputs.len() - 1).unwrap_or(NO_OUTPUT)
            }
        };
        self.index.insert(&self.outputs, &series, id);
        id
    }

    /// The published series equal to `series`, if there is one.
    pub(super) fn find(&self, series: &Series) -> Option<&Arc<Series>> {
        series_of(&self.outputs, self.index.get(&self.outputs, series)?)
    }

    /// Forgets raw series not seen for `ttl`, and published series none of them feeds.
    /// Returns the number of raw series evicted.
    pub(super) fn evict(&mut self, now: Timestamp, ttl: Duration) -> usize {
        let before = self.raw.len();
        self.raw.retain(|r| now.since(r.seen) < ttl);
        // A published series is seen whenever one of its raw series is, so it outlives them.
        for (id, slot) in self.outputs.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|o| now.since(o.seen) >= ttl)
                && let Some(o) = slot.take()
            {
                let id = u32::try_from(id).unwrap_or(NO_OUTPUT);
                self.index.remove(&o.series, id);
                self.free.push(id);
            }
        }
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        before - self.raw.len()
    }

    /// Checks references and rebuilds the index after deserializing.
    pub(super) fn validated(mut self) -> Result<Self, StateError> {
        self.index.clear();
        self.free.clear();
        for o in self.outputs.iter_mut().flatten() {
            o.series = Arc::new(crate::catalog::borrowed(&o.series));
        }
        for (id, o) in self.outputs.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| StateError("too many series".into()))?;
            let Some(o) = o else {
                self.free.push(id);
                continue;
            };
            {
                if o.end < o.start {
                    return Err(StateError(format!("{} ends before it starts", o.series)));
                }
                if self.index.get(&self.outputs, &o.series).is_some() {
                    return Err(StateError(format!("{} is stored twice", o.series)));
                }
                self.index.insert(&self.outputs, &o.series, id);
            }
        }
        for (key, raw) in self.raw.iter() {
            for id in raw.outs.into_iter().filter(|&id| id != NO_OUTPUT) {
                if self.outputs.get(id as usize).is_none_or(Option::is_none) {
                    return Err(StateError(format!("{key} refers to a missing series {id}")));
                }
            }
        }
        self.free.reverse();
        Ok(self)
    }
}

/// The ids of the published series, found by their series: a table of bare ids hashed by the
/// series in `outputs` (5 bytes a series, where a map from series to id took 17).
#[derive(Clone, Debug, Default)]
pub(super) struct Index {
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

/// The series of output `id`, if there is one.
fn series_of(outputs: &[Option<Output>], id: u32) -> Option<&Arc<Series>> {
    Some(&outputs.get(id as usize)?.as_ref()?.series)
}

impl Index {
    pub(super) fn get(&self, outputs: &[Option<Output>], series: &Series) -> Option<u32> {
        self.table
            .find(self.hasher.hash_one(series), |&id| {
                series_of(outputs, id).is_some_and(|s| **s == *series)
            })
            .copied()
    }

    /// Adds `id`, whose output is already in `outputs` and not yet in the index.
    pub(super) fn insert(&mut self, outputs: &[Option<Output>], series: &Series, id: u32) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hasher.hash_one(series), id, |&id| {
                // Every id in the table has its output (`evict` takes a freed one out).
                series_of(outputs, id).map_or(0, |s| hasher.hash_one(&**s))
            });
    }

    pub(super) fn remove(&mut self, series: &Series, id: u32) {
        if let Ok(found) = self
            .table
            .find_entry(self.hasher.hash_one(series), |&i| i == id)
        {
            found.remove();
        }
    }

    fn clear(&mut self) {
        self.table.clear();
    }
}

impl PartialEq for Index {
    /// The index is a function of `outputs`, which the state's equality compares.
    fn eq(&self, other: &Self) -> bool {
        self.table.len() == other.table.len()
    }
}

/// The raw series: each key with its state, by id, and a table from a key's hash to its id.
///
/// A scrape finds a series by its position in the previous scrape first (`Tracker::layout`:
/// ids in body order), so in steady state it walks these entries in order and hashes
/// nothing; the table serves the scrapes whose series moved. Ids are stable while a series
/// is tracked; a forgotten series leaves its slot to the next new one. The hasher is
/// foldhash, seeded per process: the keys come from the local tailscaled, and SipHash's
/// stronger flooding resistance is not worth its cost per scrape here.
#[derive(Clone, Default)]
pub(super) struct Raw {
    /// By id; a forgotten series' entry is [`Entry::FREE`] until a new series takes it.
    entries: Vec<Entry>,
    /// Every key, back to back, in the order the series came (the body's): a scrape that
    /// compares its samples with them reads this in order rather than a key per allocation.
    keys: String,
    /// Bytes of `keys` that belong to forgotten series; compacted away past half.
    garbage: usize,
    /// Free entries, reused first.
    free: Vec<u32>,
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

#[derive(Clone)]
struct Entry {
    /// The key's place in [`Raw::keys`]; a key is never empty, so `len == 0` marks a free
    /// entry.
    start: usize,
    len: u32,
    state: RawState,
}

impl Entry {
    const FREE: Entry = Entry {
        start: 0,
        len: 0,
        state: RawState {
            last: 0,
            seen: Timestamp::from_millis(0),
            outs: [NO_OUTPUT; 2],
        },
    };

    fn is_free(&self) -> bool {
        self.len == 0
    }
}

impl Raw {
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The key of `entry` (empty for a free one).
    fn key_of(&self, entry: &Entry) -> &str {
        key_in(&self.keys, entry)
    }

    fn entry(&self, id: u32) -> Option<&Entry> {
        self.entries.get(id as usize).filter(|e| !e.is_free())
    }

    /// The id of `key`, whose [`Raw::hash`] is `hash`.
    pub(super) fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let found = self.table.find(hash, |&id| self.is(id, key));
        found.copied()
    }

    /// Whether `id` is the series `key`.
    pub(super) fn is(&self, id: u32, key: &str) -> bool {
        self.get_if(id, key).is_some()
    }

    /// The state of series `id` if its key is `key`.
    pub(super) fn get_if(&self, id: u32, key: &str) -> Option<&RawState> {
        self.entry(id)
            .filter(|e| same(self.key_of(e), key))
            .map(|e| &e.state)
    }

    pub(super) fn get(&self, id: u32) -> Option<&RawState> {
        self.entry(id).map(|e| &e.state)
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut RawState> {
        let entry = self.entries.get_mut(id as usize)?;
        (!entry.is_free()).then_some(&mut entry.state)
    }

    /// Sets the state of `key`, whose [`Raw::hash`] is `hash`, and returns its id. A key
    /// is never empty (it starts with its family's name); an empty one is not stored.
    pub(super) fn insert(&mut self, hash: u64, key: &str, state: RawState) -> Option<u32> {
        if let Some(id) = self.find(hash, key) {
            if let Some(e) = self.entries.get_mut(id as usize) {
                e.state = state;
            }
            return Some(id);
        }
        let len = u32::try_from(key.len()).ok().filter(|&l| l > 0)?;
        let new = Entry {
            start: self.keys.len(),
            len,
            state,
        };
        self.keys.push_str(key);
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.entries.get_mut(id as usize) {
                    *slot = new;
                }
                id
            }
            None => {
                self.entries.push(new);
                // Fewer than 2^32 series: the series limit is far below.
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (entries, keys, hasher) = (&self.entries, &self.keys, &self.hasher);
        self.table.insert_unique(hash, id, |&id| {
            // Every id in the table has its entry (`retain` takes a freed one out).
            let key = entries.get(id as usize).map_or("", |e| key_in(keys, e));
            hasher.hash_one(key)
        });
        Some(id)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every series, by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &RawState)> {
        let live = self.entries.iter().filter(|e| !e.is_free());
        live.map(|e| (self.key_of(e), &e.state))
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut RawState> {
        let live = self.entries.iter_mut().filter(|e| !e.is_free());
        live.map(|e| &mut e.state)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&RawState) -> bool) {
        for (id, entry) in self.entries.iter_mut().enumerate() {
            if entry.is_free() || keep(&entry.state) {
                continue;
            }
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            let hash = self.hasher.hash_one(key_in(&self.keys, entry));
            if let Ok(found) = self.table.find_entry(hash, |&i| i == id) {
                found.remove();
            }
            self.garbage += entry.len as usize;
            *entry = Entry::FREE;
            self.free.push(id);
        }
        if self.garbage > self.keys.len() / 2 {
            self.compact();
        }
    }

    /// Rewrites `keys` without the forgotten series' keys, in id order.
    fn compact(&mut self) {
        let mut keys = String::with_capacity(self.keys.len() - self.garbage);
        for entry in self.entries.iter_mut().filter(|e| !e.is_free()) {
            let start = keys.len();
            keys.push_str(key_in(&self.keys, entry));
            entry.start = start;
        }
        self.keys = keys;
        self.garbage = 0;
    }
}

fn key_in<'k>(keys: &'k str, entry: &Entry) -> &'k str {
    let end = entry.start.saturating_add(entry.len as usize);
    keys.get(entry.start..end).unwrap_or_default()
}

fn same(a: &str, b: &str) -> bool {
    crate::parse::bytes::same(a.as_bytes(), b.as_bytes())
}

impl PartialEq for Raw {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.find(other.hash(k), k).and_then(|id| other.get(id)) == Some(v))
    }
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A list of `[key, state]` pairs (JSON object keys must be strings, and a list keeps the
/// format independent of the table).
impl Serialize for Raw {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // With its length: the checkpoint's writer needs it up front.
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for pair in self.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Raw {
    /// A key listed twice keeps its last state, as a map would.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut raw = Raw::default();
        for (key, state) in Vec::<(Box<str>, RawState)>::deserialize(d)? {
            if raw.insert(raw.hash(&key), &key, state).is_none() {
                return Err(serde::de::Error::custom("a raw series has an empty key"));
            }
        }
        Ok(raw)
    }
}
