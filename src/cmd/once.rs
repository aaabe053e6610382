//! `tailship once`: one scrape, shown.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tailship_collector::{Kind, ReadSample, Source, SourceOptions, SourceSpec, TargetInfo, read};

use crate::cli::Format;

pub fn run(
    spec: SourceSpec,
    format: Format,
    timeout: Duration,
    max_body: usize,
) -> anyhow::Result<ExitCode> {
    let source = Source::new(spec.clone(), SourceOptions { timeout, max_body });
    let fetched = super::runtime()?
        .block_on(source.fetch())
        .with_context(|| format!("scraping {spec}"))?;
    let reading = read(&fetched.body);
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let anomalies: Vec<Anomaly> = reading
                .anomalies
                .details()
                .iter()
                .map(|a| Anomaly {
                    kind: a.kind(),
                    message: a.to_string(),
                })
                .collect();
            let doc = Doc {
                source: spec.to_string(),
                target: &fetched.target,
                bytes: fetched.body.len(),
                samples: &reading.samples,
                ignored: reading.ignored,
                anomaly_count: reading.anomalies.total(),
                anomalies,
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Table => write_table(&mut out, &spec, &fetched.target, &reading)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct Doc<'a> {
    source: String,
    target: &'a TargetInfo,
    bytes: usize,
    samples: &'a [ReadSample],
    ignored: usize,
    anomaly_count: u64,
    /// The first anomalies in full (all of them are counted in `anomaly_count`).
    anomalies: Vec<Anomaly>,
}

#[derive(Debug, Serialize)]
struct Anomaly {
    kind: &'static str,
    message: String,
}

fn write_table(
    out: &mut impl Write,
    spec: &SourceSpec,
    target: &TargetInfo,
    reading: &tailship_collector::Reading,
) -> io::Result<()> {
    let mut who = Vec::new();
    if let Some(v) = &target.version {
        who.push(format!("version {v}"));
    }
    if let Some(p) = target.pid {
        who.push(format!("pid {p}"));
    }
    writeln!(out, "source     {spec}")?;
    if !who.is_empty() {
        writeln!(out, "tailscaled {}", who.join(", "))?;
    }
    writeln!(
        out,
        "read       {} samples published, {} of other families ignored, {} anomalies\n",
        reading.samples.len(),
        reading.ignored,
        reading.anomalies.total()
    )?;
    let rows: Vec<[String; 4]> = reading
        .samples
        .iter()
        .map(|s| {
            let published = if s.dimensions.is_empty() {
                s.name.clone()
            } else {
                format!("{}{{{}}}", s.name, s.dimensions)
            };
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            [
                s.series.clone(),
                published,
                kind.to_owned(),
                s.value.to_string(),
            ]
        })
        .collect();
    let header = ["TAILSCALED SERIES", "PUBLISHED AS", "KIND", "VALUE"].map(String::from);
    super::write_columns(out, &header, &rows)?;
    if !reading.anomalies.is_empty() {
        writeln!(out, "\nanomalies (lines or values not used):")?;
        for a in reading.anomalies.details() {
            writeln!(out, "  {a}")?;
        }
        let hidden = reading.anomalies.total() - reading.anomalies.details().len() as u64;
        if hidden > 0 {
            writeln!(out, "  … and {hidden} more")?;
        }
    }
    Ok(())
}
