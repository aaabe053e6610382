//! The one table that maps tailscaled families onto the published catalog.

use std::fmt;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tailship_model::{Dimensions, Name, Unit};

use crate::{Labels, MetricType, Sample};

/// Whether a catalog series is a cumulative counter or a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        })
    }
}

/// How a counter family's series go back to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resets {
    /// Only when tailscaled restarts, all at once: one of them going down means tailscaled
    /// restarted, and every process-lifetime counter is treated as reset.
    Process,
    /// On their own as well (the peer relay server is re-created without a restart), or not
    /// known: judged per series, and reset too when tailscaled restarts.
    Series,
}

/// Which labels become dimensions of the broken-down series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Breakdown {
    /// These labels, under the same names; other labels are summed over.
    Labels(&'static [&'static str]),
    /// Every label the sample has (families that are not in the table).
    All,
    /// The value is the rest of the sample's name after the family prefix, published under
    /// this dimension: `sockstats_tx_bytes_DERPHTTPClient` → `label=DERPHTTPClient`.
    NameSuffix(&'static str),
}

/// One row of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The tailscaled family, e.g. `tailscaled_outbound_bytes_total`.
    pub family: &'static str,
    /// The published name, e.g. `tailscale.bytes.sent.total`.
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    /// Whether a dimensionless series summed over every label is published.
    pub aggregate: bool,
    pub breakdown: Breakdown,
    pub resets: Resets,
    pub description: &'static str,
}

const PATH: &[&str] = &["path"];
const REASON: &[&str] = &["reason"];
const TRANSPORT: &[&str] = &["transport_in", "transport_out"];
const SERVICE: &[&str] = &["service"];
const NONE: &[&str] = &[];

const fn counter(
    family: &'static str,
    name: &'static str,
    unit: Unit,
    labels: &'static [&'static str],
    resets: Resets,
    description: &'static str,
) -> Entry {
    Entry {
        family,
        name,
        kind: Kind::Counter,
        unit,
        aggregate: true,
        breakdown: Breakdown::Labels(labels),
        resets,
        description,
    }
}

const fn gauge(
    family: &'static str,
    name: &'static str,
    unit: Unit,
    labels: &'static [&'static str],
    description: &'static str,
) -> Entry {
    Entry {
        family,
        name,
        kind: Kind::Gauge,
        unit,
        aggregate: true,
        breakdown: Breakdown::Labels(labels),
        resets: Resets::Series,
        description,
    }
}

use Resets::{Process, Series};
use Unit::{Bytes, Count};

/// The catalog, sorted by tailscaled family name.
pub static CATALOG: &[Entry] = &[
    gauge(
        "tailscaled_advertised_routes",
        "tailscale.routes.advertised",
        Count,
        NONE,
        "Number of network routes this node advertises (e.g. as a subnet router)",
    ),
    gauge(
        "tailscaled_approved_routes",
        "tailscale.routes.approved",
        Count,
        NONE,
        "Number of advertised routes approved by the tailnet admin",
    ),
    gauge(
        "tailscaled_health_messages",
        "tailscale.health.messages",
        Count,
        &["type"],
        "Number of health messages tailscaled reports, by type",
    ),
    gauge(
        "tailscaled_home_derp_region_id",
        "tailscale.derp.home_region",
        Unit::None,
        NONE,
        "DERP region id of this node's home relay server",
    ),
    counter(
        "tailscaled_inbound_bytes_total",
        "tailscale.bytes.received.total",
        Bytes,
        PATH,
        Process,
        "Cumulative count of bytes received across all Tailscale network connections since daemon startup",
    ),
    counter(
        "tailscaled_inbound_dropped_packets_total",
        "tailscale.packets.received.dropped.total",
        Count,
        REASON,
        Process,
        "Cumulative count of packets from peers that tailscaled dropped, by reason",
    ),
    counter(
        "tailscaled_inbound_packets_total",
        "tailscale.packets.received.total",
        Count,
        PATH,
        Process,
        "Cumulative count of packets received across all Tailscale network connections since daemon startup",
    ),
    counter(
        "tailscaled_outbound_bytes_total",
        "tailscale.bytes.sent.total",
        Bytes,
        PATH,
        Process,
        "Cumulative count of bytes transmitted across all Tailscale network connections since daemon startup",
    ),
    counter(
        "tailscaled_outbound_dropped_packets_total",
        "tailscale.packets.sent.dropped.total",
        Count,
        REASON,
        Process,
        "Cumulative count of packets dropped while being sent to peers, by reason",
    ),
    counter(
        "tailscaled_outbound_packets_total",
        "tailscale.packets.sent.total",
        Count,
        PATH,
        Process,
        "Cumulative count of packets transmitted across all Tailscale network connections since daemon startup",
    ),
    gauge(
        "tailscaled_peer_relay_endpoints",
        "tailscale.peer_relay.endpoints",
        Count,
        &["state"],
        "Number of allocated peer relay endpoints, by state",
    ),
    counter(
        "tailscaled_peer_relay_forwarded_bytes_total",
        "tailscale.peer_relay.bytes.forwarded.total",
        Bytes,
        TRANSPORT,
        Series,
        "Cumulative count of bytes this node forwarded as a peer relay",
    ),
    counter(
        "tailscaled_peer_relay_forwarded_packets_total",
        "tailscale.peer_relay.packets.forwarded.total",
        Count,
        TRANSPORT,
        Series,
        "Cumulative count of packets this node forwarded as a peer relay",
    ),
    counter(
        "tailscaled_serve_inbound_bytes_total",
        "tailscale.serve.bytes.received.total",
        Bytes,
        SERVICE,
        Series,
        "Cumulative count of bytes received on Serve connections for Tailscale Services, by service",
    ),
    counter(
        "tailscaled_serve_outbound_bytes_total",
        "tailscale.serve.bytes.sent.total",
        Bytes,
        SERVICE,
        Series,
        "Cumulative count of bytes sent on Serve connections for Tailscale Services, by service",
    ),
];

/// Families whose name carries a label value (`sockstats_tx_bytes_<Label>`, from
/// `tailscale.com/net/sockstats`, on the debug endpoint of builds that have socket statistics).
/// `family` is the prefix. The totals (`sockstats_tx_bytes`, `…_cellular`) are the sums of the
/// labelled series, which the aggregate already is: they are not published twice.
pub static PREFIXED: &[Entry] = &[
    sockstats(
        "sockstats_rx_bytes_cellular_",
        "tailscale.sockstats.cellular.bytes.received.total",
        "Cumulative count of bytes tailscaled's own sockets received over cellular, by socket label",
    ),
    sockstats(
        "sockstats_rx_bytes_",
        "tailscale.sockstats.bytes.received.total",
        "Cumulative count of bytes tailscaled's own sockets received (control, DERP, DNS, logs, ...), by socket label",
    ),
    sockstats(
        "sockstats_tx_bytes_cellular_",
        "tailscale.sockstats.cellular.bytes.sent.total",
        "Cumulative count of bytes tailscaled's own sockets sent over cellular, by socket label",
    ),
    sockstats(
        "sockstats_tx_bytes_",
        "tailscale.sockstats.bytes.sent.total",
        "Cumulative count of bytes tailscaled's own sockets sent (control, DERP, DNS, logs, ...), by socket label",
    ),
];

const fn sockstats(family: &'static str, name: &'static str, description: &'static str) -> Entry {
    Entry {
        family,
        name,
        kind: Kind::Counter,
        unit: Bytes,
        aggregate: true,
        breakdown: Breakdown::NameSuffix("label"),
        resets: Process,
        description,
    }
}

/// The table row of a prefixed family (longest prefix first) and the label value in `name`.
fn lookup_prefixed(name: &str) -> Option<(&'static Entry, &str)> {
    PREFIXED.iter().find_map(|e| {
        let rest = name.strip_prefix(e.family)?;
        // `sockstats_tx_bytes_cellular` is the cellular total, not a label named "cellular".
        (!rest.is_empty() && rest != "cellular").then_some((e, rest))
    })
}

/// Client metrics published by name from configuration (`tailscale.client.<name>`): internal
/// and unstable in tailscaled, so off unless asked for.
pub fn client_metric_name(name: &str) -> String {
    format!("tailscale.client.{}", name.replace('_', "."))
}

/// The prefix of every family tailscaled publishes; other families are not published.
pub const FAMILY_PREFIX: &str = "tailscaled_";

/// What the catalog says about one sample's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A row of the table.
    Known(&'static Entry),
    /// A `tailscaled_*` family the table does not know yet: published under a derived name,
    /// its series judged one by one.
    Derived(Kind),
    /// A client metric of the debug endpoint that the configuration asks for by name:
    /// published as `tailscale.client.<name>`, its series judged one by one.
    Selected(Kind),
    /// Not published: another program's family, or a type tailship does not ship
    /// (histogram, summary, info, stateset).
    Ignored,
}

impl Class {
    pub fn kind(self) -> Option<Kind> {
        match self {
            Class::Known(e) => Some(e.kind),
            Class::Derived(k) | Class::Selected(k) => Some(k),
            Class::Ignored => None,
        }
    }

    pub fn resets(self) -> Resets {
        match self {
            Class::Known(e) => e.resets,
            _ => Resets::Series,
        }
    }
}

/// Looks up the row for a family.
pub fn lookup(family: &str) -> Option<&'static Entry> {
    CATALOG
        .binary_search_by(|e| e.family.cmp(family))
        .ok()
        .map(|i| &CATALOG[i])
}

/// Classifies a sample by its family, its declared type and its own name.
pub fn classify(family: &str, family_type: MetricType, name: &str) -> Class {
    if let Some(entry) = lookup(family) {
        // A known family whose type changed under us is not what the table describes.
        let type_agrees = matches!(
            (entry.kind, family_type),
            (Kind::Counter, MetricType::Counter | MetricType::Unknown)
                | (Kind::Gauge, MetricType::Gauge | MetricType::Unknown)
        );
        if type_agrees && name == family {
            return Class::Known(entry);
        }
    }
    if let Some((entry, _)) = lookup_prefixed(name)
        && matches!(family_type, MetricType::Counter | MetricType::Unknown)
    {
        return Class::Known(entry);
    }
    // `_created` (OpenMetrics) is a counter's creation time, not a count.
    if !name.starts_with(FAMILY_PREFIX)
        || name.len() == FAMILY_PREFIX.len()
        || name.ends_with("_created")
    {
        return Class::Ignored;
    }
    match family_type {
        MetricType::Counter => Class::Derived(Kind::Counter),
        MetricType::Gauge | MetricType::Unknown => Class::Derived(Kind::Gauge),
        _ => Class::Ignored,
    }
}

/// The published name of a family the table does not know: `tailscaled_foo_bar_total`
/// becomes `tailscale.foo.bar.total`. A derived name never takes a name of the table: a
/// family that would collide is published as `tailscale.derived.…`.
pub fn derived_name(name: &str) -> String {
    let rest = name.strip_prefix(FAMILY_PREFIX).unwrap_or(name);
    let dotted: String = rest
        .chars()
        .map(|c| if c == '_' { '.' } else { c })
        .collect();
    let plain = format!("tailscale.{dotted}");
    let taken = CATALOG.iter().chain(PREFIXED).any(|e| e.name == plain)
        || plain.starts_with("tailscale.client.");
    if taken {
        format!("tailscale.derived.{dotted}")
    } else {
        plain
    }
}

/// How one sample is published: its catalog name, unit and broken-down dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub unit: Unit,
    /// Whether the sample also adds to the dimensionless aggregate.
    pub aggregate: bool,
    /// The breakdown dimensions (empty when the family has none).
    pub dimensions: Dimensions,
}

/// How a sample of this class is published; `None` when it is not.
pub fn published(class: Class, sample: &Sample<'_>) -> Option<Published> {
    published_as(class, sample.name, &sample.labels)
}

/// [`published`] from the two parts of a sample it reads: its name and its labels.
pub(crate) fn published_as(
    class: Class,
    sample_name: &str,
    labels: &Labels<'_>,
) -> Option<Published> {
    let (name, kind, unit, aggregate, breakdown) = match class {
        Class::Known(e) => (
            Cow::Borrowed(e.name),
            e.kind,
            e.unit,
            e.aggregate,
            e.breakdown,
        ),
        Class::Derived(kind) => (
            Cow::Owned(derived_name(sample_name)),
            kind,
            derived_unit(sample_name, kind),
            kind == Kind::Counter,
            Breakdown::All,
        ),
        Class::Selected(kind) => (
            Cow::Owned(client_metric_name(sample_name)),
            kind,
            derived_unit(sample_name, kind),
            kind == Kind::Counter,
            Breakdown::All,
        ),
        Class::Ignored => return None,
    };
    let dimensions = match breakdown {
        Breakdown::NameSuffix(dimension) => {
            let label = lookup_prefixed(sample_name).map_or("", |(_, l)| l);
            Dimensions::new([(dimension, label)])
        }
        // The catalog's own name of a kept label: not a copy per series.
        Breakdown::Labels(keep) => Dimensions::new(
            labels
                .iter()
                .filter_map(|(k, v)| Some((*keep.iter().find(|&&c| c == k)?, v))),
        ),
        Breakdown::All => Dimensions::new(labels.iter().map(|(k, v)| (k.to_owned(), v))),
    };
    Some(Published {
        name,
        kind,
        unit,
        aggregate,
        dimensions,
    })
}

/// A series read back from a checkpoint as a scrape makes it: its catalog name and its
/// dimension names borrowed from the catalog (a checkpoint's strings are owned, a copy per
/// series), so that a restarted agent holds no more than a fresh one.
pub fn borrowed(series: &tailship_model::Series) -> tailship_model::Series {
    let entries = || CATALOG.iter().chain(PREFIXED);
    let name = entries()
        .find(|e| e.name == series.name)
        .map_or_else(|| series.name.clone(), |e| Name::Borrowed(e.name));
    let dimension = |k: &str| {
        entries()
            .find_map(|e| match e.breakdown {
                Breakdown::Labels(keep) => keep.iter().copied().find(|&c| c == k),
                Breakdown::NameSuffix(d) => (d == k).then_some(d),
                Breakdown::All => None,
            })
            .map_or_else(|| Name::Owned(k.to_owned()), Name::Borrowed)
    };
    tailship_model::Series {
        name,
        dimensions: Dimensions::new(series.dimensions.iter().map(|(k, v)| (dimension(k), v))),
        unit: series.unit,
    }
}

/// The unit of a family the table does not know, guessed from its name.
pub fn derived_unit(name: &str, kind: Kind) -> Unit {
    if name.contains("bytes") {
        Unit::Bytes
    } else if kind == Kind::Counter {
        Unit::Count
    } else {
        Unit::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_names_are_unique() {
        for w in CATALOG.windows(2) {
            assert!(
                w[0].family < w[1].family,
                "{} before {}",
                w[0].family,
                w[1].family
            );
        }
        let mut names: Vec<_> = CATALOG.iter().chain(PREFIXED).map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len() + PREFIXED.len());
        for e in CATALOG {
            assert!(e.family.starts_with(FAMILY_PREFIX), "{}", e.family);
            assert!(e.name.starts_with("tailscale."), "{}", e.name);
        }
    }

    #[test]
    fn the_anchor_entry() {
        let e = lookup("tailscaled_outbound_bytes_total").unwrap();
        assert_eq!(e.name, "tailscale.bytes.sent.total");
        assert_eq!(e.unit, Unit::Bytes);
        assert_eq!(e.kind, Kind::Counter);
        assert!(e.aggregate);
        assert_eq!(e.breakdown, Breakdown::Labels(&["path"]));
        assert_eq!(e.resets, Resets::Process);
    }

    fn check(family: &str, ty: MetricType, name: &str, expected: &str) {
        let got = match classify(family, ty, name) {
            Class::Known(e) => format!("known {}", e.name),
            Class::Derived(k) => format!("derived {k} {}", derived_name(name)),
            Class::Selected(k) => format!("selected {k} {}", client_metric_name(name)),
            Class::Ignored => "ignored".to_owned(),
        };
        assert_eq!(got, expected, "{family} {ty:?} {name}");
    }

    #[test]
    fn classification() {
        use MetricType::*;
        let t = "tailscaled_outbound_bytes_total";
        check(t, Counter, t, "known tailscale.bytes.sent.total");
        check(t, Unknown, t, "known tailscale.bytes.sent.total");
        check(t, Gauge, t, "derived gauge tailscale.outbound.bytes.total");
        check(
            "tailscaled_new_thing_total",
            Counter,
            "tailscaled_new_thing_total",
            "derived counter tailscale.new.thing.total",
        );
        check(
            "tailscaled_temp",
            Unknown,
            "tailscaled_temp",
            "derived gauge tailscale.temp",
        );
        check(
            "tailscaled_lat",
            Histogram,
            "tailscaled_lat_bucket",
            "ignored",
        );
        check("go_goroutines", Gauge, "go_goroutines", "ignored");
        let s = "sockstats_tx_bytes_DERPHTTPClient";
        check(s, Counter, s, "known tailscale.sockstats.bytes.sent.total");
        let s = "sockstats_rx_bytes_cellular_NetcheckClient";
        check(
            s,
            Counter,
            s,
            "known tailscale.sockstats.cellular.bytes.received.total",
        );
        check(
            "sockstats_tx_bytes",
            Counter,
            "sockstats_tx_bytes",
            "ignored",
        );
        check(
            "sockstats_tx_bytes_cellular",
            Counter,
            "sockstats_tx_bytes_cellular",
            "ignored",
        );
        check("tailscaled_", Gauge, "tailscaled_", "ignored");
    }

    #[test]
    fn derived_names_never_take_a_table_name() {
        assert_eq!(
            derived_name("tailscaled_bytes_sent_total"),
            "tailscale.derived.bytes.sent.total"
        );
        for e in CATALOG {
            assert_ne!(derived_name(e.family), e.name);
        }
        assert_eq!(
            derived_name("tailscaled_sockstats_bytes_sent_total"),
            "tailscale.derived.sockstats.bytes.sent.total"
        );
        assert_eq!(
            derived_name("tailscaled_client_x"),
            "tailscale.derived.client.x"
        );
    }

    #[test]
    fn derived_units() {
        assert_eq!(
            derived_unit("tailscaled_x_bytes_total", Kind::Counter),
            Unit::Bytes
        );
        assert_eq!(
            derived_unit("tailscaled_x_total", Kind::Counter),
            Unit::Count
        );
        assert_eq!(derived_unit("tailscaled_x", Kind::Gauge), Unit::None);
    }
}
