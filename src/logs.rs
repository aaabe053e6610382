//! The log subscriber: `tracing` to standard error, human or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the subscriber. `level` is a `tracing` filter (`info`, `tailship_sink=debug`).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The level from the command line, else `TAILSHIP_LOG_LEVEL`, else `default`.
pub fn level(cli: Option<&str>, default: &str) -> String {
    cli.map(str::to_owned)
        .or_else(|| std::env::var("TAILSHIP_LOG_LEVEL").ok())
        .unwrap_or_else(|| default.to_owned())
}
