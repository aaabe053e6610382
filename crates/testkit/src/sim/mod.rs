//! A scripted model of one tailscaled's usermetrics (v1.102 families), with the truth of what
//! was added, so history tests can check that shipped deltas sum to the real increase.

mod debug;
mod families;
mod render;

use std::collections::BTreeMap;

pub use families::{DEFAULT_VERSION, PATHS, TRANSPORTS};

use families::*;

/// One tailscaled's usermetrics, driven by a test script. Deterministic: values change only
/// through its methods.
///
/// Series are keyed as tailscaled prints them: `tailscaled_outbound_bytes_total{path="derp"}`.
/// Label values are given as plain strings; [`SimNode::render`] Go-quotes them.
#[derive(Clone, Debug)]
pub struct SimNode {
    version: String,
    /// family → label string (`{path="derp"}`, or empty) → value.
    counters: BTreeMap<&'static str, BTreeMap<String, u64>>,
    gauges: BTreeMap<&'static str, BTreeMap<String, f64>>,
    /// Counted since the last [`SimNode::mark`], per series key.
    added: BTreeMap<String, u64>,
    /// What the debug endpoint shows.
    debug: debug::Debug,
}

impl Default for SimNode {
    fn default() -> Self {
        Self::new()
    }
}

impl SimNode {
    /// A freshly started tailscaled: every eager series at 0, no drop reasons, no services.
    pub fn new() -> Self {
        let mut node = SimNode {
            version: DEFAULT_VERSION.to_owned(),
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
            added: BTreeMap::new(),
            debug: debug::Debug::default(),
        };
        node.create_eager_series();
        node.set_health_messages("warning", 0);
        for state in ["connecting", "open"] {
            node.set_relay_endpoints(state, 0);
        }
        node.set_routes(0, 0);
        node.set_home_derp(0);
        node
    }

    /// The `Tailscale-Version` this node reports.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Changes the reported version, e.g. together with [`SimNode::restart`] for an upgrade.
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = version.into();
    }

    /// Traffic sent to peers over `path` (one of [`PATHS`]; any other is created lazily).
    pub fn send(&mut self, path: &str, bytes: u64, packets: u64) {
        let labels = render::labels(&[("path", path)]);
        self.add(OUT_BYTES, &labels, bytes);
        self.add(OUT_PACKETS, &labels, packets);
    }

    /// Traffic received from peers over `path`.
    pub fn receive(&mut self, path: &str, bytes: u64, packets: u64) {
        let labels = render::labels(&[("path", path)]);
        self.add(IN_BYTES, &labels, bytes);
        self.add(IN_PACKETS, &labels, packets);
    }

    /// Inbound packets dropped for `reason`; the series appears on first use (also with 0).
    pub fn drop_inbound(&mut self, reason: &str, packets: u64) {
        self.add(IN_DROPPED, &render::labels(&[("reason", reason)]), packets);
    }

    /// Outbound packets dropped for `reason`; the series appears on first use (also with 0).
    pub fn drop_outbound(&mut self, reason: &str, packets: u64) {
        self.add(OUT_DROPPED, &render::labels(&[("reason", reason)]), packets);
    }

    /// Traffic forwarded by this node's peer relay server.
    pub fn relay_forward(
        &mut self,
        transport_in: &str,
        transport_out: &str,
        bytes: u64,
        packets: u64,
    ) {
        let labels = render::labels(&[
            ("transport_in", transport_in),
            ("transport_out", transport_out),
        ]);
        self.add(RELAY_BYTES, &labels, bytes);
        self.add(RELAY_PACKETS, &labels, packets);
    }

    /// Bytes on Serve connections for a Tailscale Service (e.g. `svc:web`), created lazily.
    pub fn serve(&mut self, service: &str, inbound: u64, outbound: u64) {
        let labels = render::labels(&[("service", service)]);
        self.add(SERVE_IN, &labels, inbound);
        self.add(SERVE_OUT, &labels, outbound);
    }

    /// Sets `tailscaled_advertised_routes` and `tailscaled_approved_routes`.
    pub fn set_routes(&mut self, advertised: u32, approved: u32) {
        self.set_gauge(ADVERTISED, String::new(), advertised);
        self.set_gauge(APPROVED, String::new(), approved);
    }

    /// Sets `tailscaled_health_messages{type=…}`.
    pub fn set_health_messages(&mut self, kind: &str, count: u32) {
        self.set_gauge(HEALTH, render::labels(&[("type", kind)]), count);
    }

    /// Sets `tailscaled_home_derp_region_id`.
    pub fn set_home_derp(&mut self, region: u32) {
        self.set_gauge(HOME_DERP, String::new(), region);
    }

    /// Sets `tailscaled_peer_relay_endpoints{state=…}`.
    pub fn set_relay_endpoints(&mut self, state: &str, count: u32) {
        self.set_gauge(RELAY_ENDPOINTS, render::labels(&[("state", state)]), count);
    }

    /// tailscaled restarts: every counter back to 0, lazily created series (drop reasons,
    /// services, unknown paths) gone until used again; relay endpoints back to 0. Other
    /// gauges and the version stay (change them if the script needs to). The truth keeps
    /// what was added before: it is what really crossed the wire.
    pub fn restart(&mut self) {
        self.debug.restart(60);
        self.counters.clear();
        self.create_eager_series();
        self.zero_relay_endpoints();
    }

    /// The peer relay server is re-created without a process restart: only the
    /// `tailscaled_peer_relay_*` series start again (counters at 0, endpoints at 0).
    pub fn relay_reset(&mut self) {
        for family in [RELAY_BYTES, RELAY_PACKETS] {
            self.counters.remove(family);
        }
        self.create_eager_series();
        self.zero_relay_endpoints();
    }

    /// Gives this build socket statistics (`net/sockstats`): off by default, as on standard
    /// Linux builds.
    pub fn enable_sockstats(&mut self) {
        self.debug.sockstats = true;
    }

    /// Bytes tailscaled's own sockets labelled `label` (e.g. `DERPHTTPClient`) sent and
    /// received, over cellular or not. Counted in the truth only with socket statistics.
    pub fn socket_traffic(&mut self, label: &str, cellular: bool, tx: u64, rx: u64) {
        let cellular = if cellular { "cellular_" } else { "" };
        for (dir, n) in [("tx", tx), ("rx", rx)] {
            let name = format!("sockstats_{dir}_bytes_{cellular}{label}");
            *self.debug.sockets.entry(name.clone()).or_default() += n;
            if self.debug.sockstats && n > 0 {
                *self.added.entry(name).or_default() += n;
            }
        }
    }

    /// Adds to a client metric of the debug endpoint (`magicsock_disco_recv_ping`, ...).
    pub fn client_metric(&mut self, name: &str, n: u64) {
        if let Some((counter, v)) = self
            .debug
            .client
            .iter_mut()
            .find(|(k, _)| **k == name)
            .map(|(_, v)| v)
        {
            *v += n;
            if *counter && n > 0 {
                *self.added.entry(name.to_owned()).or_default() += n;
            }
        }
    }

    /// When this tailscaled started, as its debug endpoint says (`process_start_unix_time`).
    pub fn started(&self) -> u64 {
        self.debug.started
    }

    /// The debug endpoint's body (`/debug/metrics`) as tailscaled prints it.
    pub fn render_debug(&self) -> String {
        self.debug.render(120)
    }

    /// The exposition exactly as tailscaled prints it (see the `render` module).
    pub fn render(&self) -> String {
        render::exposition(self)
    }

    /// The current raw value of a counter series, e.g. `tailscaled_outbound_bytes_total{path="derp"}`.
    pub fn value(&self, series: &str) -> Option<u64> {
        let (family, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        self.counters.get(family)?.get(labels).copied()
    }

    /// Per counter series, the true amount added since the last [`SimNode::mark`] (or since
    /// creation), across restarts and resets. Series with nothing added are absent.
    ///
    /// What is added between a scrape and a restart that follows it is lost to every scraper
    /// (the counter is gone before anyone reads it): scripts that compare this with shipped
    /// deltas scrape right before calling [`SimNode::restart`] or [`SimNode::relay_reset`].
    pub fn increase(&self) -> BTreeMap<String, u64> {
        self.added.clone()
    }

    /// [`SimNode::increase`] summed per family, e.g. `tailscaled_outbound_bytes_total` over
    /// every `path` (what the catalog aggregate `tailscale.bytes.sent.total` must add up to).
    pub fn family_increase(&self) -> BTreeMap<String, u64> {
        let mut sums = BTreeMap::new();
        for (series, n) in &self.added {
            let family = &series[..series.find('{').unwrap_or(series.len())];
            *sums.entry(family.to_owned()).or_default() += n;
        }
        sums
    }

    /// Starts counting the truth afresh, e.g. right after the baseline scrape.
    pub fn mark(&mut self) {
        self.added.clear();
    }

    fn add(&mut self, family: &'static str, labels: &str, n: u64) {
        let value = self
            .counters
            .entry(family)
            .or_default()
            .entry(labels.to_owned())
            .or_default();
        *value = value
            .checked_add(n)
            .expect("a simulated counter overflowed u64");
        if n > 0 {
            *self.added.entry(format!("{family}{labels}")).or_default() += n;
        }
    }

    fn set_gauge(&mut self, family: &'static str, labels: String, value: u32) {
        self.gauges
            .entry(family)
            .or_default()
            .insert(labels, f64::from(value));
    }

    fn zero_relay_endpoints(&mut self) {
        for value in self.gauges.entry(RELAY_ENDPOINTS).or_default().values_mut() {
            *value = 0.0;
        }
    }

    /// The series tailscaled creates at start: every path, every relay transport pair.
    fn create_eager_series(&mut self) {
        for path in PATHS {
            let labels = render::labels(&[("path", path)]);
            for family in [IN_BYTES, IN_PACKETS, OUT_BYTES, OUT_PACKETS] {
                self.add(family, &labels, 0);
            }
        }
        for transport_in in TRANSPORTS {
            for transport_out in TRANSPORTS {
                let pair = [
                    ("transport_in", transport_in),
                    ("transport_out", transport_out),
                ];
                let labels = render::labels(&pair);
                for family in [RELAY_BYTES, RELAY_PACKETS] {
                    self.add(family, &labels, 0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
