//! What a simulated tailscaled serves on its debug endpoint (`--debug=ADDR:PORT`,
//! `GET /debug/metrics`): the Go expvars as `tsweb/varz` prints them, then the client
//! metrics as `util/clientmetric.WritePrometheusExpositionFormat` prints them — two blocks,
//! each sorted on its own. Socket statistics (`net/sockstats`) are client metrics that exist
//! only on builds with sockstats (not standard Linux builds).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The debug endpoint's state of one simulated tailscaled.
#[derive(Clone, Debug)]
pub(super) struct Debug {
    /// `process_start_unix_time`: moves on at every restart.
    pub started: u64,
    /// `node_boot_time_seconds`.
    pub booted: u64,
    /// Whether this build has socket statistics.
    pub sockstats: bool,
    /// `sockstats_{tx,rx}_bytes[_cellular]_<Label>` → value.
    pub sockets: BTreeMap<String, u64>,
    /// Other client metrics (`magicsock_disco_recv_ping`, ...): name → (counter?, value).
    pub client: BTreeMap<&'static str, (bool, u64)>,
}

impl Default for Debug {
    fn default() -> Self {
        let client = [
            ("controlclient_map_response_message", true),
            ("magicsock_disco_recv_ping", true),
            ("magicsock_disco_sent_udp", true),
            ("netcheck_report", true),
            ("magicsock_num_peers", false),
        ];
        Self {
            started: 1_763_700_000,
            booted: 1_763_600_000,
            sockstats: false,
            sockets: BTreeMap::new(),
            client: client.into_iter().map(|(n, c)| (n, (c, 0))).collect(),
        }
    }
}

impl Debug {
    /// tailscaled restarts `after` seconds after it last started: every client metric is a
    /// new process's (0), socket statistics start again.
    pub fn restart(&mut self, after: u64) {
        self.started += after.max(1);
        self.sockets.values_mut().for_each(|v| *v = 0);
        self.client.values_mut().for_each(|(_, v)| *v = 0);
    }

    pub fn render(&self, uptime: u64) -> String {
        let mut out = String::new();
        // Block 1: expvars, sorted with their type prefix removed.
        out.push_str("# skipping expvar \"cmdline\" (Go type expvar.Func returning []string) with undeclared Prometheus type\n");
        out.push_str("go_version{version=\"go1.25.4\"} 1\n");
        out.push_str("# TYPE goroutines gauge\ngoroutines 143\n");
        for (name, kind, value, help) in [
            (
                "heap_alloc",
                "gauge",
                21_733_376u64,
                "current bytes of allocated heap objects (up/down smoothly)",
            ),
            (
                "total_alloc",
                "counter",
                9_832_144_880,
                "cumulative bytes allocated for heap objects",
            ),
            (
                "sys",
                "gauge",
                52_512_008,
                "total bytes of memory obtained from the OS",
            ),
            (
                "mallocs",
                "counter",
                118_003_221,
                "cumulative count of heap objects allocated",
            ),
            (
                "frees",
                "counter",
                117_911_872,
                "cumulative count of heap objects freed",
            ),
            ("num_gc", "counter", 3_911, "number of completed GC cycles"),
        ] {
            let _ = write!(
                out,
                "# HELP memstats_{name} {help}\n# TYPE memstats_{name} {kind}\nmemstats_{name} {value}\n"
            );
        }
        let _ = writeln!(out, "node_boot_time_seconds {}", self.booted);
        let _ = writeln!(out, "process_start_unix_time {}", self.started);
        let _ = write!(out, "# TYPE uptime_sec counter\nuptime_sec {uptime}\n");
        out.push_str("version{version=\"1.96.3-t0123456789-gabcdef012\"} 1\n");
        // Block 2: client metrics, sorted by name.
        let mut client: BTreeMap<String, (bool, u64)> = self
            .client
            .iter()
            .map(|(n, v)| ((*n).to_owned(), *v))
            .collect();
        if self.sockstats {
            for (name, v) in &self.sockets {
                client.insert(name.clone(), (true, *v));
            }
            for total in [
                "tx_bytes",
                "rx_bytes",
                "tx_bytes_cellular",
                "rx_bytes_cellular",
            ] {
                let prefix = format!("sockstats_{total}_");
                let sum = self
                    .sockets
                    .iter()
                    .filter(|(n, _)| {
                        n.strip_prefix(&prefix).is_some_and(|label| {
                            // The plain totals do not include the cellular series' names.
                            total.ends_with("cellular") || !label.starts_with("cellular_")
                        })
                    })
                    .map(|(_, v)| v)
                    .sum();
                client.insert(format!("sockstats_{total}"), (true, sum));
            }
            client.insert("sockstats_cellular_radio_high_fraction".into(), (false, 0));
        }
        for (name, (counter, value)) in client {
            let kind = if counter { "counter" } else { "gauge" };
            let _ = write!(out, "# TYPE {name} {kind}\n{name} {value}\n");
        }
        out
    }
}
