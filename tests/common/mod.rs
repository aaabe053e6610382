//! Helpers for the end-to-end tests: the built binary as a child process, talking to the
//! fake tailscaled over real sockets.

// Test support: a failed unwrap is a failed test, and the child's log goes to the test output.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tailship_collector::published_totals;
use tailship_testkit::{FakeTailscaled, SimNode};

pub const BIN: &str = env!("CARGO_BIN_EXE_tailship");

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tailship-e2e-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tailship ARGS` to completion.
pub fn tailship(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TAILSHIP_SOURCE")
        .output()
        .unwrap()
}

/// The checkpoint at `path` as JSON, read by `tailship state`; `None` while there is none.
pub fn checkpoint(path: &Path) -> Option<Value> {
    let out = tailship(&["state", "--path", path.to_str().unwrap()]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("there is no checkpoint"),
            "tailship state: {err}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Polls `cond` until it holds; fails the test after `limit` (a bound, not a measurement).
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `tailship run` as a child process, its stdout lines collected as they come.
pub struct Agent {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub logs: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Agent {
    /// `tailship run --config CONFIG` with the test's environment (less `TAILSHIP_SOURCE`).
    pub fn start(config: &Path) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["run", "--config"])
            .arg(config)
            .env_remove("TAILSHIP_SOURCE")
            .env("TAILSHIP_LOG_LEVEL", "info")
            .env("NO_COLOR", "1");
        Self::spawn(command)
    }

    /// `tailship ARGS` with `env` and nothing else from the environment (no stray `AWS_*`,
    /// `GOOGLE_*` or `TAILSHIP_*` of the machine running the tests).
    pub fn with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args).env_clear().envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Starts `command` with its stdout and stderr collected as lines.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let log_sink = Arc::clone(&logs);
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("tailship: {line}");
                log_sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            logs,
            readers: vec![reader, err_reader],
        }
    }

    /// The address the HTTP endpoints listen on, from the log.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let mut found = None;
        wait_until("the HTTP listener", Duration::from_secs(30), || {
            found = self.logs.lock().unwrap().iter().find_map(|l| {
                // Human (`listen=ADDR`) or JSON (`"listen":"ADDR"`) logs.
                let (at, end) = match l.find("listen=") {
                    Some(at) => (at + "listen=".len(), ' '),
                    None => (l.find("\"listen\":\"")? + "\"listen\":\"".len(), '"'),
                };
                l[at..].split(end).next()?.trim().parse().ok()
            });
            found.is_some()
        });
        found.unwrap()
    }

    pub fn logged(&self, text: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Every line written to standard error so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit code.
    pub fn term(&mut self, limit: Duration) -> Option<i32> {
        self.signal("-TERM");
        self.wait(limit)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a real signal with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end and its output to be read; returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < limit,
                "tailship did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        status.code()
    }

    pub fn kill9(&mut self) {
        self.signal("-KILL");
        self.wait(Duration::from_secs(10));
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for the fake's socket with the stdout sink.
pub fn config(dir: &Path, fake: &FakeTailscaled, extra: &str) -> PathBuf {
    let path = dir.join("tailship.toml");
    let text = format!(
        "[source]\nkind = \"localapi\"\nsocket = {socket:?}\ninterval = \"200ms\"\ntimeout = \"10s\"\n\
         [state]\npath = {state:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[sinks.stdout]\n{extra}",
        socket = fake.socket_path().display().to_string(),
        state = dir.join("state.json").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Sums `delta` per series (`name{k=v,…}`) over the stdout sink's counter lines.
pub fn shipped(lines: &[String]) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["kind"] != "counter" {
            continue;
        }
        let dims: Vec<String> = v["dimensions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let name = v["name"].as_str().unwrap();
        let key = if dims.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", dims.join(","))
        };
        *sums.entry(key).or_default() += v["delta"].as_u64().unwrap();
    }
    sums
}

/// The node's true increase per published series, mapped through the catalog.
pub fn truth(node: &SimNode) -> BTreeMap<String, u64> {
    let raw = node.increase();
    published_totals(raw.iter().map(|(series, n)| (series.as_str(), *n)))
}

/// The counters of `FakeCloudWatch::sums` keyed as [`truth`] is: the `.total` series, in
/// whole units.
pub fn counter_sums(sums: BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    sums.into_iter()
        .filter(|(k, _)| k.split('{').next().is_some_and(|n| n.ends_with(".total")))
        .map(|(k, v)| (k, v as u64))
        .collect()
}

/// Every published series with a true increase shipped exactly that, and nothing else.
pub fn assert_exact(truth: &BTreeMap<String, u64>, shipped: &BTreeMap<String, u64>) {
    assert!(!truth.is_empty());
    for (series, t) in truth {
        assert_eq!(
            shipped.get(series).copied().unwrap_or(0),
            *t,
            "{series}: shipped vs true"
        );
    }
    for (series, s) in shipped {
        assert_eq!(
            truth.get(series).copied().unwrap_or(0),
            *s,
            "{series}: shipped vs true"
        );
    }
}

/// Applies one step to the node, serves it, and waits until a scrape has read it.
pub fn step(fake: &FakeTailscaled, node: &mut SimNode, f: impl FnOnce(&mut SimNode)) {
    f(node);
    fake.serve(node);
    let seen = fake.requests();
    wait_until("a scrape", Duration::from_secs(30), || {
        fake.requests() > seen
    });
}

/// Some traffic on every kind of counter.
pub fn traffic(node: &mut SimNode, k: u64) {
    node.send("direct_ipv4", 10_000 + k, 8);
    node.send("derp", 500, 1);
    node.receive("direct_ipv4", 30_000 + k, 20);
    node.receive("derp", 200, 1);
    node.relay_forward("udp4", "udp4", 3_000, 3);
}

/// [`http_get`], or `None` when no answer comes within `timeout`.
pub fn try_http_get(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A plain HTTP/1.0 GET on loopback: status code and body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The scripted history the end-to-end tests share: traffic, a restart, late series (a drop
/// reason and a Service), the missed reset (direct_ipv4 grows past its old value across a
/// restart), a relay reset, more traffic. Each step is read by a scrape before the next.
pub fn rough_history(fake: &FakeTailscaled, node: &mut SimNode) {
    for k in 1..=3 {
        step(fake, node, |n| traffic(n, k));
    }
    step(fake, node, |n| {
        n.restart();
        traffic(n, 4);
    });
    step(fake, node, |n| {
        n.drop_inbound("acl", 3);
        n.serve("svc:db", 10, 20);
        traffic(n, 5);
    });
    step(fake, node, |n| {
        n.restart();
        n.send("direct_ipv4", 1_000_000, 700);
    });
    step(fake, node, |n| {
        n.relay_reset();
        traffic(n, 6);
    });
    step(fake, node, |n| traffic(n, 7));
}
