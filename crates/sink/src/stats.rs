use std::collections::BTreeMap;

use tailship_model::Timestamp;

/// Outcomes of one sink since tailship started, for self-metrics and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Points the provider acknowledged.
    pub points_sent: u64,
    /// Points put back after a failed request, to be sent again.
    pub points_retried: u64,
    /// Points dropped, by reason (`too_old`, `too_large`, the provider's rejection reason, ...).
    pub points_dropped: BTreeMap<&'static str, u64>,
    /// Requests by result (`ok`, `partial`, `throttled`, `transient`, `uncertain`, `rejected`,
    /// `auth`, `config`).
    pub requests: BTreeMap<&'static str, u64>,
    /// Points that may reach the provider twice: delta points re-sent after a request whose
    /// outcome is unknown (a timeout), or restored from a checkpoint that recorded them in
    /// flight (tailship stopped before the answer came). Running totals never count twice.
    pub possible_duplicates: u64,
    /// Pending buckets merged because a series had too many.
    pub merged: u64,
    /// When a request last succeeded.
    pub last_success: Option<Timestamp>,
}

impl Stats {
    pub(crate) fn drop_points(&mut self, reason: &'static str, n: u64) {
        *self.points_dropped.entry(reason).or_default() += n;
    }

    pub(crate) fn request(&mut self, result: &'static str) {
        *self.requests.entry(result).or_default() += 1;
    }

    /// Points dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.points_dropped.values().sum()
    }
}
