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
    /// `process_start_unix_time` from tailscaled's debug endpoint: when it started, in Unix
    /// seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// `node_boot_time_seconds` from the debug endpoint (v1.102+, Linux): when the node booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_booted: Option<u64>,
}

impl TargetInfo {
    /// Takes the process start and node boot times from a debug endpoint body
    /// (`/debug/metrics`), where they are untyped samples in Unix seconds.
    pub fn read_debug(&mut self, body: &[u8]) {
        for event in crate::parse(body) {
            let Ok(crate::Event::Sample(s)) = event else {
                continue;
            };
            let seconds =
                || (s.value.is_finite() && s.value >= 0.0).then(|| s.value.round() as u64);
            match s.name {
                "process_start_unix_time" => self.started = seconds(),
                "node_boot_time_seconds" => self.node_booted = seconds(),
                _ => {}
            }
        }
    }
}
