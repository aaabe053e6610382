//! `tailship check`: everything that can be verified before running, without writing data.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use tailship_collector::{ReadSample, Source, read};
use tailship_model::{Dimensions, Series};

use crate::checkpoint::Store;
use crate::config::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            writeln!(out, "config   FAIL  {e:#}")?;
            return Ok(ExitCode::FAILURE);
        }
    };
    writeln!(out, "config   ok    {}", path.display())?;
    let mut failed = false;
    let mut report = |out: &mut io::StdoutLock<'_>, what: &str, r: Result<String, String>| {
        let line = match r {
            Ok(msg) => format!("{what:<8} ok    {msg}"),
            Err(msg) => {
                failed = true;
                format!("{what:<8} FAIL  {msg}")
            }
        };
        writeln!(out, "{line}")
    };

    let store = Store::new(&config.state.path);
    let state = store
        .ensure_writable()
        .map(|()| format!("{} is writable", store.path().display()))
        .map_err(|e| format!("{e:#}"));
    report(&mut out, "state", state)?;

    let rt = super::runtime()?;
    let spec = config.source_spec()?;
    let source = Source::new(spec.clone(), config.source_options());
    let mut published = BTreeSet::new();
    let scraped = rt
        .block_on(source.fetch())
        .map_err(|e| format!("{spec}: {e}"))
        .and_then(|f| {
            let r = read(&f.body);
            if r.samples.is_empty() {
                return Err(format!(
                    "{spec} answered, but with no tailscaled_* sample ({} unreadable lines)",
                    r.anomalies.total()
                ));
            }
            published = published_series(&r.samples);
            let who = f
                .target
                .version
                .map(|v| format!(", tailscaled {v}"))
                .unwrap_or_default();
            Ok(format!(
                "{spec}: {} samples, {} anomalies{who}",
                r.samples.len(),
                r.anomalies.total()
            ))
        });
    report(&mut out, "source", scraped)?;

    let sinks = match rt.block_on(super::run::sinks(&config, Vec::new())) {
        Ok(s) => s,
        Err(e) => {
            report(&mut out, "sinks", Err(format!("{e:#}")))?;
            return Ok(ExitCode::FAILURE);
        }
    };
    for sink in sinks {
        let selected = published.iter().filter(|s| sink.selects(s)).count();
        let verdict = rt
            .block_on(sink.check())
            .map(|msg| format!("{msg}; this node publishes {selected} series to it now"))
            .map_err(|e| e.to_string());
        report(&mut out, sink.name(), verdict)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every series a body publishes: each sample's breakdown and its family's aggregate.
fn published_series(samples: &[ReadSample]) -> BTreeSet<Series> {
    let mut out = BTreeSet::new();
    for s in samples {
        let series = |dimensions| Series {
            name: s.name.clone().into(),
            dimensions,
            unit: s.unit,
        };
        if !s.dimensions.is_empty() {
            out.insert(series(s.dimensions.clone()));
        }
        if s.aggregate {
            out.insert(series(Dimensions::none()));
        }
    }
    out
}
