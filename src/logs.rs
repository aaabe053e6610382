//! The log subscriber: `tracing` to standard error, human or JSON.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Targets of the AWS SDK whose debug and trace events print the resolved identity, access
/// key ID included (the secret key and token are redacted): held at `info` unless the filter
/// names them itself.
const CREDENTIAL_TARGETS: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_sdk_cloudwatch",
];

/// `level`, with the SDK's credential-bearing targets held at `info` unless it names any of
/// them: `debug` or `trace` must not put an access key ID in the logs.
pub fn filter(level: &str) -> String {
    if level.contains("aws_") {
        return level.to_owned();
    }
    let mut filter = level.to_owned();
    for target in CREDENTIAL_TARGETS {
        filter.push_str(&format!(",{target}=info"));
    }
    filter
}

/// Parses a filter: a default level and `target=level` directives, comma-separated
/// (`info`, `warn,tailship_sink=debug`). `tracing_subscriber`'s `Targets` rather than its
/// `EnvFilter`, whose span and field matching tailship has no use for and whose regex engine
/// costs a few hundred kilobytes of code.
pub fn parse(level: &str) -> Result<Targets, String> {
    level.parse::<Targets>().map_err(|e| {
        format!("{e}: expected a level (error, warn, info, debug, trace, off) and target=level directives, comma-separated")
    })
}

/// Installs the subscriber. `level` is a filter as [`parse`] reads it; the configuration
/// checked it, and an unreadable `TAILSHIP_LOG_LEVEL` or `--log-level` falls back to `info`
/// with a warning.
pub fn init(level: &str, format: LogFormat) {
    let (filter, bad) = match parse(&filter(level)) {
        Ok(f) => (f, None),
        Err(e) => (Targets::new().with_default(tracing::Level::INFO), Some(e)),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests) keeps the first.
    let _ = match format {
        LogFormat::Human => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    if let Some(e) = bad {
        tracing::warn!(level, error = %e, "log level not understood; logging at info");
    }
}

/// The level from the command line, else `TAILSHIP_LOG_LEVEL`, else `default`.
pub fn level(cli: Option<&str>, default: &str) -> String {
    cli.map(str::to_owned)
        .or_else(|| std::env::var("TAILSHIP_LOG_LEVEL").ok())
        .unwrap_or_else(|| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_targets_stay_at_info_unless_named() {
        assert_eq!(
            filter("trace"),
            "trace,aws_config=info,aws_credential_types=info,aws_runtime=info,aws_sigv4=info,\
             aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_sdk_cloudwatch=info"
        );
        assert_eq!(filter("info,aws_sigv4=trace"), "info,aws_sigv4=trace");
        assert!(parse(&filter("tailship_sink=debug,warn")).is_ok());
        assert!(parse("info,tailship=loud").is_err());
    }
}
