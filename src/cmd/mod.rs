mod catalog;
mod check;
mod demo;
mod once;
mod run;
mod state;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};
use crate::logs;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let level = cli.log_level.as_deref();
    match cli.command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            logs::init(&logs::level(level, &config.log.level), config.log.format);
            run::run(config)
        }
        Command::Check { config } => {
            logs::init(&logs::level(level, "warn"), LogFormat::Human);
            check::run(&config)
        }
        Command::Demo { duration } => {
            logs::init(&logs::level(level, "warn"), LogFormat::Human);
            demo::run(duration)
        }
        Command::Catalog { format, config } => catalog::run(format, config.as_deref()),
        Command::Once {
            source,
            format,
            timeout,
            max_body,
        } => {
            logs::init(&logs::level(level, "warn"), LogFormat::Human);
            once::run(source, format, timeout, max_body)
        }
        Command::State { config, path } => state::run(&config, path.as_deref()),
    }
}

/// A single-threaded runtime: tailship is a sidecar and one thread does the job.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Writes rows in aligned columns under a header; the last column is not padded.
fn write_columns<const N: usize>(
    out: &mut impl std::io::Write,
    header: &[String; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
