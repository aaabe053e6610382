//! The floor of the footprint harness (`bench/footprint.py`): the least any scraper costs on
//! this machine. Once a second it wakes, asks `URL` for the body on one kept-alive connection,
//! reads all of it and adds its bytes up (so that every byte is touched, as a parser must).
//! Nothing else: no runtime, no allocation after the first scrapes, no parsing, no sink, no
//! checkpoint. What tailship costs beyond this is its own; what this costs, no scraper of the
//! same endpoint at the same interval can save.
//!
//! ```sh
//! cargo build --release -p tailship-testkit --example floor
//! target/release/examples/floor http://127.0.0.1:PORT/metrics
//! ```

// A measurement tool without logging: its one message, why it stopped, goes to stderr.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: floor http://HOST:PORT/PATH");
        return ExitCode::from(2);
    };
    let Err(e) = run(&url);
    eprintln!("floor: {url}: {e}");
    ExitCode::FAILURE
}

fn run(url: &str) -> Result<std::convert::Infallible, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are read")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let stream = TcpStream::connect(host).map_err(|e| format!("connecting: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let (mut line, mut body) = (String::new(), Vec::new());
    let mut sum = 0u64;
    let mut due = Instant::now();
    loop {
        // At once, then every whole second after, as tailship's interval timer.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        due += Duration::from_secs(1);
        writer
            .write_all(request.as_bytes())
            .map_err(|e| format!("asking: {e}"))?;
        let mut length = None;
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection".into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or("an answer without Content-Length")?;
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading the body: {e}"))?;
        sum = body.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
        std::hint::black_box(sum);
    }
}
