use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tailship_collector::{DEFAULT_SOCKET, SourceSpec};

/// Ships tailscaled's client metrics to CloudWatch and Cloud Monitoring as exact deltas.
#[derive(Debug, Parser)]
#[command(name = "tailship", version, about)]
pub struct Cli {
    /// Log filter, e.g. `debug` or `tailship_collector=trace` (default: $TAILSHIP_LOG, else info).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: scrape tailscaled, track its counters and ship them to every sink.
    Run {
        /// The TOML configuration file.
        #[arg(
            long,
            short,
            value_name = "FILE",
            default_value = "/etc/tailship/tailship.toml"
        )]
        config: PathBuf,
    },
    /// Validate the configuration, reach the source and the state directory, and check every
    /// sink as far as possible without writing data.
    Check {
        #[arg(
            long,
            short,
            value_name = "FILE",
            default_value = "/etc/tailship/tailship.toml"
        )]
        config: PathBuf,
    },
    /// Run the real pipeline against a built-in simulated tailscaled (restarts, a missed
    /// reset, new series) into the stdout sink, then compare shipped with true bytes.
    Demo {
        /// How long the simulated traffic runs.
        #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Print the catalog: every tailscaled family and the name it is published under.
    Catalog {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also list, per configured sink, exactly what this configuration publishes there
        /// (CloudWatch namespace, names and dimension sets; Cloud Monitoring metric types
        /// and labels). JSON only.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Scrape tailscaled once and print the samples read and the lines that could not be.
    Once {
        /// `unix:/path/to/tailscaled.sock`, an `http://` URL, or a file written by
        /// `tailscale metrics write`.
        #[arg(long, value_name = "URL|PATH|unix:SOCKET", default_value_t = default_source())]
        source: SourceSpec,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// How long the whole scrape may take, e.g. `10s` or `500ms`.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// The largest body accepted, in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
        max_body: usize,
    },
    /// Print the checkpoint as one JSON document: the tracker's counters and every sink's
    /// points not yet acknowledged. Reads the file and changes nothing.
    State {
        /// The configuration whose `[state] path` to read.
        #[arg(
            long,
            short,
            value_name = "FILE",
            default_value = "/etc/tailship/tailship.toml",
            conflicts_with = "path"
        )]
        config: PathBuf,
        /// Read this checkpoint file instead.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

fn default_source() -> SourceSpec {
    SourceSpec::LocalApi {
        socket: DEFAULT_SOCKET.into(),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. `10s` or `500ms`)"))
}
