use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock instant in whole milliseconds since the Unix epoch.
///
/// Milliseconds are the finest resolution any backend keeps apart (Cloud Monitoring wants a
/// new start at least 1 ms after the previous end), and they serialize as a plain integer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The current wall-clock time (the Unix epoch if the clock is set before it).
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Timestamp {
    /// Seconds with millisecond precision, e.g. `1700000000.250`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(1)).as_millis(),
            1_001
        );
        assert_eq!(Timestamp::from_millis(500).since(t), Duration::ZERO);
        assert_eq!(
            t.since(Timestamp::from_millis(250)),
            Duration::from_millis(750)
        );
        assert_eq!(
            Timestamp::from_millis(u64::MAX).saturating_add(Duration::from_secs(1)),
            Timestamp::from_millis(u64::MAX)
        );
    }

    #[test]
    fn round_trips_through_system_time_and_json() {
        let t = Timestamp::from_millis(1_700_000_000_250);
        assert_eq!(Timestamp::from(t.to_system_time()), t);
        assert_eq!(t.to_string(), "1700000000.250");
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000250");
    }
}
