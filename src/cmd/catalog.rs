//! `tailship catalog`: the table of what is published.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use tailship_collector::{Breakdown, CATALOG, Entry, Kind, PREFIXED, Resets};
use tailship_model::Unit;

use crate::cli::Format;
use crate::config::Config;

pub fn run(format: Format, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match (format, config) {
        (Format::Table, None) => write_table(&mut out)?,
        (Format::Table, Some(_)) => anyhow::bail!("--config needs --format json"),
        (Format::Json, config) => {
            let mut catalog = json();
            if let Some(path) = config {
                catalog.sinks = Some(published(&Config::load(path)?));
            }
            serde_json::to_writer_pretty(&mut out, &catalog)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What one configured sink receives: the names and dimension sets as the provider sees
/// them.
#[derive(Debug, Serialize)]
#[serde(tag = "sink", rename_all = "lowercase")]
enum SinkCatalog {
    Cloudwatch {
        namespace: String,
        metrics: Vec<CloudWatchMetric>,
    },
    Gcm {
        metric_prefix: String,
        metrics: Vec<GcmMetric>,
    },
}

#[derive(Debug, Serialize)]
struct GcmMetric {
    /// The metric type, e.g. `workload.googleapis.com/tailscale.bytes.sent.total`.
    r#type: String,
    kind: &'static str,
    value_type: &'static str,
    /// Every label set its time series carry (the monitored resource's labels aside).
    labels: Vec<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct CloudWatchMetric {
    name: &'static str,
    /// The CloudWatch unit of its datums.
    unit: &'static str,
    /// Every dimension set its datums carry, static and node dimensions included.
    dimensions: Vec<Vec<String>>,
}

fn published(config: &Config) -> Vec<SinkCatalog> {
    let mut sinks = Vec::new();
    if let Some(cw) = &config.sinks.cloudwatch {
        let mut extra: Vec<String> = cw.dimensions.keys().cloned().collect();
        extra.extend(cw.node.as_ref().map(|n| n.name.clone()));
        let metrics = rows()
            .map(|e| {
                let dimensions = dimension_sets(e)
                    .into_iter()
                    .filter(|set| set.is_empty() || cw.breaks_down(e.name))
                    .map(|set| {
                        let mut names: Vec<String> = set.iter().map(|d| (*d).to_owned()).collect();
                        names.extend(extra.iter().cloned());
                        names.sort();
                        names
                    })
                    .collect();
                let unit = match e.unit {
                    Unit::Bytes => "Bytes",
                    Unit::Count => "Count",
                    Unit::None => "None",
                };
                CloudWatchMetric {
                    name: e.name,
                    unit,
                    dimensions,
                }
            })
            .collect();
        sinks.push(SinkCatalog::Cloudwatch {
            namespace: cw.namespace.clone(),
            metrics,
        });
    }
    if let Some(gcm) = &config.sinks.gcm {
        let metrics = rows()
            .map(|e| GcmMetric {
                r#type: format!("{}{}", gcm.metric_prefix, e.name),
                kind: match e.kind {
                    Kind::Counter => "CUMULATIVE",
                    Kind::Gauge => "GAUGE",
                },
                value_type: match e.kind {
                    Kind::Counter => "INT64",
                    Kind::Gauge => "DOUBLE",
                },
                labels: dimension_sets(e)
                    .into_iter()
                    .filter(|set| set.is_empty() || gcm.breaks_down(e.name))
                    .map(|set| set.iter().map(|d| (*d).to_owned()).collect())
                    .collect(),
            })
            .collect();
        sinks.push(SinkCatalog::Gcm {
            metric_prefix: gcm.metric_prefix.clone(),
            metrics,
        });
    }
    sinks
}

/// One catalog row as published: every dimension set it is published with.
#[derive(Debug, Serialize)]
struct Row {
    /// The tailscaled family; `<label>` stands for the part of the name that is a label.
    family: String,
    name: &'static str,
    kind: Kind,
    unit: Unit,
    /// The dimension sets published: `[]` is the aggregate.
    dimensions: Vec<&'static [&'static str]>,
    /// How its counters reset (`process` or `series`); absent for gauges.
    #[serde(skip_serializing_if = "Option::is_none")]
    resets: Option<Resets>,
    description: &'static str,
}

#[derive(Debug, Serialize)]
struct Catalog {
    metrics: Vec<Row>,
    /// How a `tailscaled_*` family not in the table is published.
    derived: &'static str,
    /// How client metrics of the debug endpoint named in `[source] client_metrics` are.
    client_metrics: &'static str,
    /// With `--config`: what each configured sink receives.
    #[serde(skip_serializing_if = "Option::is_none")]
    sinks: Option<Vec<SinkCatalog>>,
}

/// Every row: the table, then the families whose name carries a label.
fn rows() -> impl Iterator<Item = &'static Entry> {
    CATALOG.iter().chain(PREFIXED)
}

fn family(e: &Entry) -> String {
    match e.breakdown {
        Breakdown::NameSuffix(label) => format!("{}<{label}>", e.family),
        _ => e.family.to_owned(),
    }
}

fn dimension_sets(e: &'static Entry) -> Vec<&'static [&'static str]> {
    let mut sets = Vec::new();
    let labels: &'static [&'static str] = match &e.breakdown {
        Breakdown::Labels(labels) => labels,
        Breakdown::NameSuffix(label) => std::slice::from_ref(label),
        Breakdown::All => return sets,
    };
    if e.aggregate || labels.is_empty() {
        sets.push(&[][..]);
    }
    if !labels.is_empty() {
        sets.push(labels);
    }
    sets
}

const CLIENT_METRICS: &str = "a client metric <name> of the debug endpoint named in [source] client_metrics is published as tailscale.client.<name, with _ as .>, broken down by all its labels; each series judged on its own for resets";

const DERIVED: &str = "tailscaled_<rest> is published as tailscale.<rest, with _ as .>, broken down by all its labels; counters also as a dimensionless aggregate; each series judged on its own for resets";

fn json() -> Catalog {
    let metrics = rows()
        .map(|e| Row {
            family: family(e),
            name: e.name,
            kind: e.kind,
            unit: e.unit,
            dimensions: dimension_sets(e),
            resets: (e.kind == Kind::Counter).then_some(e.resets),
            description: e.description,
        })
        .collect();
    Catalog {
        metrics,
        derived: DERIVED,
        client_metrics: CLIENT_METRICS,
        sinks: None,
    }
}

fn write_table(out: &mut impl Write) -> io::Result<()> {
    let rows: Vec<[String; 5]> = rows()
        .map(|e| {
            let dims = dimension_sets(e)
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        "-".to_owned()
                    } else {
                        d.join("+")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            [
                e.name.to_owned(),
                e.kind.to_string(),
                e.unit.to_string(),
                dims,
                family(e),
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "UNIT", "DIMENSIONS", "TAILSCALED FAMILY"].map(String::from);
    crate::cmd::write_columns(out, &header, &rows)?;
    writeln!(
        out,
        "\nOther {DERIVED}.\nFrom the debug endpoint, {CLIENT_METRICS}."
    )
}
