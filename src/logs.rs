//! The log subscriber: `tracing` to standard error, human or JSON.

use tracing_subscriber::EnvFilter;

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

/// Installs the subscriber. `level` is a `tracing` filter (`info`, `tailship_sink=debug`).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter(level)).unwrap_or_else(|_| EnvFilter::new("info"));
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
        assert!(EnvFilter::try_new(filter("tailship_sink=debug,warn")).is_ok());
    }
}
