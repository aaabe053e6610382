use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use tailship_model::{Series, Timestamp};

use crate::TargetInfo;
use crate::catalog::Kind;

/// The maps of the tracker: foldhash, seeded per process. The keys come from the local
/// tailscaled; SipHash's stronger flooding resistance is not worth its cost per scrape here.
pub(super) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    #[serde(with = "entries")]
    pub(super) raw: Map<Box<str>, RawState>,
    /// Published series; a raw series refers to them by index. Evicted slots are `None`.
    pub(super) outputs: Vec<Option<Output>>,
    /// Published series by identity, rebuilt from `outputs`.
    #[serde(skip)]
    pub(super) index: Index,
    /// Evicted slots of `outputs`, reused first; rebuilt from `outputs`.
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Output {
    pub series: Arc<Series>,
    pub kind: Kind,
    /// When counting began: `cumulative` is everything shipped since then.
    pub start: Timestamp,
    /// The end of the last point; the next one ends strictly later.
    pub end: Timestamp,
    pub cumulative: u64,
    pub seen: Timestamp,
    #[serde(skip)]
    pub touched: bool,
    #[serde(skip)]
    pub acc_delta: u64,
    #[serde(skip)]
    pub acc_value: f64,
}

/// A saved state that does not hold together.
#[derive(Debug, thiserror::Error)]
#[error("tracker state is inconsistent: {0}")]
pub struct StateError(String);

impl TrackerState {
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
        self.raw.retain(|_, r| now.since(r.seen) < ttl);
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
        for (key, raw) in &self.raw {
            for id in raw.outs.into_iter().filter(|&id| id != NO_OUTPUT) {
                if self.outputs.get(id as usize).is_none_or(Option::is_none) {
                    return Err(StateError(format!("{key} refers to a missing series {id}")));
                }
            }
        }
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

/// A map serialized as a list of `[key, value]` pairs (JSON object keys must be strings, and
/// a list keeps the format independent of the map type).
mod entries {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, H, S: Serializer>(
        map: &HashMap<K, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        H: BuildHasher + Default,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
