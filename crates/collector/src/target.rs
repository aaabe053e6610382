use serde::{Deserialize, Serialize};

/// What a source could learn about the tailscaled process that answered a scrape.
///
/// Each field is evidence of process identity: when a field is known on two consecutive
/// scrapes and differs, tailscaled restarted in between, whatever its counters say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The `Tailscale-Version` response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The LocalAPI peer's PID from `SO_PEERCRED` (absent when it is 0: the peer is in a PID
    /// namespace this process cannot see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The peer's start time in clock ticks after boot (`/proc/PID/stat`, field 22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`, which tells the start ticks of two boots apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}
