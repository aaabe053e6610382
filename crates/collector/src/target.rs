use serde::ser::{SerializeStruct as _, Serializer};
use serde::{Deserialize, Serialize};

/// What a source could learn about the tailscaled process that answered a scrape.
///
/// Each field is evidence of process identity: when a field is known on two consecutive
/// scrapes and differs, tailscaled restarted in between, whatever its counters say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TargetInfo {
    /// The `Tailscale-Version` response header.
    #[serde(default)]
    pub version: Option<String>,
    /// The LocalAPI peer's PID from `SO_PEERCRED` (absent when it is 0: the peer is in a PID
    /// namespace this process cannot see).
    #[serde(default)]
    pub pid: Option<u32>,
    /// The peer's start time in clock ticks after boot (`/proc/PID/stat`, field 22).
    #[serde(default)]
    pub process_start: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`, which tells the start ticks of two boots apart.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// `process_start_unix_time` from tailscaled's debug endpoint: when it started, in Unix
    /// seconds.
    #[serde(default)]
    pub started: Option<u64>,
    /// `node_boot_time_seconds` from the debug endpoint (v1.102+, Linux): when the node booted.
    #[serde(default)]
    pub node_booted: Option<u64>,
}

impl Serialize for TargetInfo {
    /// A text format (`tailship once --format json`) leaves out what is unknown; a binary
    /// one (the checkpoint's) writes every field, since its fields are known by their place.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn field<T: Serialize, S: serde::ser::SerializeStruct>(
            state: &mut S,
            every_field: bool,
            name: &'static str,
            value: &Option<T>,
        ) -> Result<(), S::Error> {
            if value.is_some() || every_field {
                state.serialize_field(name, value)
            } else {
                state.skip_field(name)
            }
        }
        let every_field = !serializer.is_human_readable();
        let mut state = serializer.serialize_struct("TargetInfo", 6)?;
        field(&mut state, every_field, "version", &self.version)?;
        field(&mut state, every_field, "pid", &self.pid)?;
        field(
            &mut state,
            every_field,
            "process_start",
            &self.process_start,
        )?;
        field(&mut state, every_field, "boot_id", &self.boot_id)?;
        field(&mut state, every_field, "started", &self.started)?;
        field(&mut state, every_field, "node_booted", &self.node_booted)?;
        state.end()
    }
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
