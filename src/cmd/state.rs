//! `tailship state`: the checkpoint as JSON, for people (`| jq`) and for tests.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::checkpoint::Store;
use crate::config::Config;

pub fn run(config: &Path, path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = match path {
        Some(path) => Store::new(path),
        None => Store::new(Config::load(config)?.state.path),
    };
    let checkpoint = store
        .read()
        .with_context(|| format!("reading the checkpoint {}", store.path().display()))?
        .with_context(|| {
            format!(
                "there is no checkpoint at {} (tailship writes it at its first scrape)",
                store.path().display()
            )
        })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, &checkpoint)?;
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
