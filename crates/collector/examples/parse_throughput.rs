//! Parses each given file again and again with tailship's parser (`tailship_collector::parse`,
//! the entry point the tracker runs on every body) and prints one JSON object per file:
//! bytes, samples, line errors, parses timed, and the best and median time of one parse.
//!
//! `cargo run --release -p tailship-collector --example parse_throughput -- FILE...`; used by
//! `bench/parser_vs_python.py`, which runs Python's `prometheus_client` on the same files.
//!
//! Two loops per file: `parse` reads every item as benches/parse.rs does (labels stay unread,
//! as the parser validates them lazily); `with_labels` also walks every sample's labels (names
//! and unescaped values), as a consumer that needs them does. Options: `--rounds N` timed
//! rounds per loop (default 200), `--round-us N` least time of a round (default 200 µs; a round
//! parses the body as many times as that takes, and its time is divided by that count).

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool: its output

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tailship_collector::{Event, parse};

/// Reads every item; returns the samples and the line errors.
fn drain(body: &[u8]) -> (usize, usize) {
    let (mut samples, mut errors) = (0, 0);
    for item in parse(body) {
        match &item {
            Ok(Event::Sample(_)) => samples += 1,
            Err(_) => errors += 1,
            Ok(_) => {}
        }
        let _ = black_box(item);
    }
    (samples, errors)
}

/// Reads every item and every label of every sample.
fn drain_labels(body: &[u8]) -> usize {
    let mut samples = 0;
    for item in parse(body) {
        if let Ok(Event::Sample(sample)) = &item {
            samples += 1;
            for label in sample.labels.iter() {
                let _ = black_box(label);
            }
        }
        let _ = black_box(item);
    }
    samples
}

/// Times `f` on `body`: `rounds` rounds of at least `round` each. Returns the parses timed and
/// the best and median nanoseconds of one parse.
fn time(body: &[u8], rounds: usize, round: Duration, f: fn(&[u8]) -> usize) -> (u64, f64, f64) {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(20) {
        black_box(f(black_box(body)));
    }
    // How many parses fill a round.
    let mut per_round = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..per_round {
            black_box(f(black_box(body)));
        }
        if start.elapsed() >= round {
            break;
        }
        per_round *= 2;
    }
    let mut ns: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(f(black_box(body)));
            }
            start.elapsed().as_nanos() as f64 / per_round as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    (per_round * rounds as u64, ns[0], ns[ns.len() / 2])
}

fn main() -> ExitCode {
    let mut rounds = 200usize;
    let mut round_us = 200u64;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let number = |name: &str, value: Option<String>| {
            value
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} takes a positive number"))
        };
        let parsed = match arg.as_str() {
            "--rounds" => number("--rounds", args.next()).map(|v| rounds = v as usize),
            "--round-us" => number("--round-us", args.next()).map(|v| round_us = v),
            _ if arg.starts_with("--") => Err(format!("unknown option {arg}")),
            _ => {
                files.push(arg);
                Ok(())
            }
        };
        if let Err(e) = parsed {
            eprintln!("parse_throughput: {e}");
            return ExitCode::from(2);
        }
    }
    if files.is_empty() {
        eprintln!("usage: parse_throughput [--rounds N] [--round-us N] FILE...");
        return ExitCode::from(2);
    }
    let round = Duration::from_micros(round_us);
    for file in files {
        let body = match std::fs::read(&file) {
            Ok(body) => body,
            Err(e) => {
                eprintln!("parse_throughput: {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (samples, errors) = drain(&body);
        let (iterations, best, median) = time(&body, rounds, round, |b| drain(b).0);
        let (l_iterations, l_best, l_median) = time(&body, rounds, round, drain_labels);
        let out = serde_json::json!({
            "file": file,
            "bytes": body.len(),
            "samples": samples,
            "errors": errors,
            "iterations": iterations,
            "best_ns": best,
            "median_ns": median,
            "with_labels": {
                "iterations": l_iterations,
                "best_ns": l_best,
                "median_ns": l_median,
            },
        });
        println!("{out}");
    }
    ExitCode::SUCCESS
}
