//! The `tailship` binary: reads tailscaled's client metrics and ships exact deltas.
//!
//! Only the binary reads the command line and installs the log subscriber; every command
//! lives in `cmd/`.

mod cli;
mod cmd;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logs(cli.log_level.as_deref());
    match cmd::run(cli.command) {
        Ok(code) => code,
        // Output cut short by the reader (`| head`): nothing went wrong.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain: the operator needs the cause (socket path, status, limit).
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logs(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_env("TAILSHIP_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
