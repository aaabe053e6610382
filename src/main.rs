//! The `tailship` binary: reads tailscaled's client metrics and ships exact deltas.
//!
//! Only the binary reads configuration and the environment and installs the log subscriber;
//! every command lives in `cmd/`.

mod agent;
mod checkpoint;
mod cli;
mod cmd;
mod config;
mod http;
mod logs;
mod telemetry;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        // Output cut short by the reader (`| head`): nothing went wrong.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain: the operator needs the cause (key, socket path, status, limit).
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
