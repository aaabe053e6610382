//! Hostile input, end to end: the built binary against endpoints that answer with bodies of
//! gigabytes, endless lines, binary garbage, millions of series and labels no cloud takes.
//! Each is refused or bounded with a clear message; memory stays bounded (read from /proc);
//! nothing crashes; the state stays intact (what is shipped afterwards is still exact).

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Agent, assert_exact, http_get, shipped, temp_dir, traffic, truth, try_http_get, wait_until,
};
use tailship_testkit::{FakeCloudWatch, FakeMetricService, FakeTailscaled, SimNode};

const LIMIT: Duration = Duration::from_secs(60);

/// What the hostile endpoint answers.
#[derive(Clone)]
enum Mode {
    /// A well-formed answer with `Content-Length`.
    Body(Arc<Vec<u8>>),
    /// Valid-looking lines, chunked, without end (until the client hangs up).
    Endless,
    /// `Content-Length: 4 GiB`, then the bytes, slowly.
    Declared,
    /// One line that never ends, chunked.
    EndlessLine,
}

/// An HTTP/1.1 metrics endpoint on 127.0.0.1 that answers as told, counting the bytes it
/// managed to write per request (a client that stops reading stops it).
struct Hostile {
    addr: std::net::SocketAddr,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicU64>,
    /// The most body bytes written in one answer.
    most_written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// A safety bound for the endless answers: the test must end even if the client reads all.
const WRITE_CAP: u64 = 2 << 30;

impl Hostile {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Body(Arc::new(Vec::new()))));
        let requests = Arc::new(AtomicU64::new(0));
        let most_written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, r, w, s) = (
            Arc::clone(&mode),
            Arc::clone(&requests),
            Arc::clone(&most_written),
            Arc::clone(&stop),
        );
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (mode, r, w, s) = (
                            m.lock().unwrap().clone(),
                            Arc::clone(&r),
                            Arc::clone(&w),
                            Arc::clone(&s),
                        );
                        std::thread::spawn(move || {
                            r.fetch_add(1, Ordering::SeqCst);
                            let n = answer(stream, &mode, &s);
                            w.fetch_max(n, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            addr,
            mode,
            requests,
            most_written,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        self.most_written.store(0, Ordering::SeqCst);
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads the request head, answers per `mode`; returns the body bytes written.
fn answer(mut stream: TcpStream, mode: &Mode, stop: &AtomicBool) -> u64 {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return 0;
        }
        head.push(byte[0]);
    }
    const TYPE: &str = "Content-Type: text/plain; version=0.0.4; charset=utf-8";
    let (header, chunked, unit): (String, bool, Vec<u8>) = match mode {
        Mode::Body(body) => {
            let h = format!(
                "HTTP/1.1 200 OK\r\n{TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if stream.write_all(h.as_bytes()).is_err() {
                return 0;
            }
            return stream.write_all(body).map_or(0, |()| body.len() as u64);
        }
        Mode::Endless => (
            format!("HTTP/1.1 200 OK\r\n{TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n"),
            true,
            "tailscaled_outbound_bytes_total{path=\"derp\"} 1\n"
                .repeat(1400)
                .into_bytes(),
        ),
        Mode::Declared => (
            format!("HTTP/1.1 200 OK\r\n{TYPE}\r\nContent-Length: 4294967296\r\n\r\n"),
            false,
            vec![b'#'; 65536],
        ),
        Mode::EndlessLine => {
            let mut unit = b"tailscaled_outbound_bytes_total{path=\"".to_vec();
            unit.resize(65536, b'A');
            (
                format!("HTTP/1.1 200 OK\r\n{TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n"),
                true,
                unit,
            )
        }
    };
    if stream.write_all(header.as_bytes()).is_err() {
        return 0;
    }
    let mut written = 0u64;
    let mut first = true;
    while written < WRITE_CAP && !stop.load(Ordering::SeqCst) {
        // The endless line: only its first chunk opens the label, the rest is more of it.
        let data: &[u8] = if first || !matches!(mode, Mode::EndlessLine) {
            &unit
        } else {
            &unit[unit.len() / 2..]
        };
        first = false;
        let ok = if chunked {
            stream
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())
                .and_then(|()| stream.write_all(data))
                .and_then(|()| stream.write_all(b"\r\n"))
        } else {
            stream.write_all(data)
        };
        if ok.is_err() {
            break;
        }
        written += data.len() as u64;
    }
    written
}

/// Resident memory now and at its peak, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("tailship (pid {pid}) is gone: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn config(dir: &Path, source: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tailship.toml");
    let text = format!(
        "[source]\nkind = \"http\"\nurl = {source:?}\ntimeout = \"5s\"\n{extra}\n\
         [state]\npath = {state:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[sinks.stdout]\n",
        state = dir.join("state.json").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits for `n` more answers of the endpoint, then for the agent to have judged them.
fn scrapes(h: &Hostile, n: u64) {
    let seen = h.requests();
    wait_until("scrapes", LIMIT, || h.requests() >= seen + n);
}

#[test]
fn gigabyte_bodies_endless_lines_and_garbage_are_refused_in_bounded_memory() {
    let dir = temp_dir("hostile-bodies");
    let h = Hostile::start();
    let mut node = SimNode::new();
    h.set(Mode::Body(Arc::new(node.render().into_bytes())));
    const MAX_BODY: u64 = 1 << 20;
    let mut agent = Agent::start(&config(
        &dir,
        &h.url(),
        &format!("max_body = {MAX_BODY}\ninterval = \"300ms\""),
    ));
    let addr = agent.http_addr();
    scrapes(&h, 2);
    wait_until("the baseline", LIMIT, || {
        metric(&http_get(addr, "/metrics").1, "tailship_scrapes_total ") >= 1
    });
    node.mark();
    traffic(&mut node, 1);
    h.set(Mode::Body(Arc::new(node.render().into_bytes())));
    scrapes(&h, 2);
    let (_, before) = rss(agent.pid());

    for (mode, name) in [
        (Mode::Endless, "endless body"),
        (Mode::Declared, "4 GiB declared"),
        (Mode::EndlessLine, "endless line"),
    ] {
        let errors = metric(
            &http_get(addr, "/metrics").1,
            r#"tailship_scrape_errors_total{kind="too_large"} "#,
        );
        h.set(mode);
        scrapes(&h, 3);
        wait_until("the refusals counted", LIMIT, || {
            metric(
                &http_get(addr, "/metrics").1,
                r#"tailship_scrape_errors_total{kind="too_large"} "#,
            ) >= errors + 2
        });
        let written = h.most_written.load(Ordering::SeqCst);
        let (now, peak) = rss(agent.pid());
        eprintln!(
            "{name}: the endpoint wrote at most {:.1} MiB per answer before tailship hung up; RSS {:.1} MiB, peak {:.1} MiB",
            written as f64 / 1048576.0,
            now as f64 / 1048576.0,
            peak as f64 / 1048576.0
        );
        // Read up to the limit, plus what the sockets buffer: never the gigabytes.
        assert!(written < 32 * MAX_BODY, "{name}: {written} bytes were read");
        assert!(
            peak < before + (64 << 20),
            "{name}: peak RSS {peak} from {before}"
        );
    }
    assert!(agent.logged("max_body"), "the refusal names the setting");

    // Binary garbage within the limit: nothing usable, the state untouched.
    let mut garbage = Vec::with_capacity(512 << 10);
    let mut x: u32 = 0x9e37_79b9;
    while garbage.len() < 512 << 10 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.extend_from_slice(&x.to_le_bytes());
    }
    h.set(Mode::Body(Arc::new(garbage)));
    scrapes(&h, 2);
    wait_until("the garbage refused", LIMIT, || {
        metric(
            &http_get(addr, "/metrics").1,
            r#"tailship_scrape_errors_total{kind="empty"} "#,
        ) >= 1
    });

    // The state is intact: traffic afterwards is shipped exactly, nothing counted twice.
    traffic(&mut node, 2);
    h.set(Mode::Body(Arc::new(node.render().into_bytes())));
    scrapes(&h, 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.term(LIMIT), Some(0), "no crash, SIGTERM exits 0");
    assert_exact(&truth(&node), &shipped(&agent.lines()));
}

#[test]
fn a_million_series_are_capped_in_bounded_memory() {
    let dir = temp_dir("hostile-series");
    let h = Hostile::start();
    let mut body = String::with_capacity(64 << 20);
    body.push_str("# TYPE tailscaled_outbound_dropped_packets_total counter\n");
    for i in 0..1_000_000u32 {
        body.push_str(&format!(
            "tailscaled_outbound_dropped_packets_total{{reason=\"r{i}\"}} {i}\n"
        ));
    }
    eprintln!("a body of {:.1} MiB", body.len() as f64 / 1048576.0);
    h.set(Mode::Body(Arc::new(body.into_bytes())));
    let mut agent = Agent::start(&config(
        &dir,
        &h.url(),
        "max_body = 134217728\nmax_series = 10000\ninterval = \"1s\"",
    ));
    let addr = agent.http_addr();
    let start = Instant::now();
    let mut metrics = String::new();
    wait_until("three scrapes", Duration::from_secs(300), || {
        metrics = try_http_get(addr, "/metrics", Duration::from_secs(60))
            .map(|r| r.1)
            .unwrap_or_default();
        metric(&metrics, "tailship_scrapes_total ") >= 3
    });
    let (now, peak) = rss(agent.pid());
    eprintln!(
        "1,000,000 series, max_series 10000: {} tracked, {} refused, RSS {:.1} MiB, peak {:.1} MiB, 3 scrapes in {:.1?}",
        metric(&metrics, "tailship_series "),
        metric(&metrics, r#"tailship_anomalies_total{kind="series_cap"} "#),
        now as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        start.elapsed()
    );
    assert_eq!(metric(&metrics, "tailship_series "), 10_000);
    assert!(metric(&metrics, r#"tailship_anomalies_total{kind="series_cap"} "#) >= 990_000);
    assert!(agent.logged("maximum of 10000 series"));
    // Bounded by the body (about 60 MiB here) and the cap, not growing with scrapes.
    assert!(peak < 512 << 20, "peak RSS {peak}");
    let checkpoint = std::fs::metadata(dir.join("state.json")).unwrap().len();
    assert!(
        checkpoint < 16 << 20,
        "the checkpoint holds the capped series: {checkpoint}"
    );
    assert_eq!(agent.term(LIMIT), Some(0));
}

/// Labels that no cloud takes (too long, blank, not ASCII, a key Cloud Monitoring refuses):
/// each such series is dropped and counted by the sink that cannot take it, the others
/// still arrive exactly, and no request is refused whole.
#[test]
fn labels_the_clouds_refuse_are_dropped_per_series_and_the_rest_arrives() {
    let dir = temp_dir("hostile-labels");
    let ts = FakeTailscaled::start();
    let cw = FakeCloudWatch::start();
    let gcm = FakeMetricService::start();
    let mut node = SimNode::new();
    let hostile = |k: u64| {
        let long = "v".repeat(1500);
        let huge = "h".repeat(1 << 20);
        format!(
            "# TYPE tailscaled_hostile_total counter\n\
             tailscaled_hostile_total{{label=\"{long}\"}} {k}\n\
             tailscaled_hostile_total{{label=\"{huge}\"}} {k}\n\
             tailscaled_hostile_total{{label=\" \"}} {k}\n\
             tailscaled_hostile_total{{label=\"d\\u00e9rp\\n\\ttab\"}} {k}\n\
             tailscaled_hostile_total{{_key=\"x\"}} {k}\n\
             tailscaled_hostile_total{{Label=\"\\\\x00\"}} {k}\n"
        )
    };
    let serve = |node: &SimNode, k: u64| ts.set_body(node.render() + &hostile(k));
    serve(&node, 1);
    let extra = format!(
        "[sinks.cloudwatch]\nregion = \"us-east-1\"\nendpoint = {:?}\nstorage_resolution = 1\nbreakdowns = [\"*\"]\n\
         [sinks.gcm]\nproject_id = \"hostile-labels\"\nendpoint = {:?}\nbreakdowns = [\"*\"]\n\
         resource = {{ type = \"generic_node\", labels = {{ location = \"l\", namespace = \"n\", node_id = \"x\" }} }}\n\
         [shutdown]\nflush_timeout = \"20s\"\n",
        cw.endpoint(),
        gcm.endpoint()
    );
    let path = common::config(&dir, &ts, &extra);
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDHOSTILE"),
        ("AWS_SECRET_ACCESS_KEY", "hostile"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/tailship-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tailship-test"),
        ("TAILSHIP_LOG_LEVEL", "info"),
        ("NO_COLOR", "1"),
    ];
    let mut agent = Agent::with_env(&["run", "--config", path.to_str().unwrap()], &env);
    let addr = agent.http_addr();
    wait_until("the baseline", LIMIT, || ts.requests() >= 2);
    node.mark();
    for k in 2..=4 {
        traffic(&mut node, k);
        serve(&node, k);
        let seen = ts.requests();
        wait_until("a scrape", LIMIT, || ts.requests() > seen + 1);
    }
    // Cloud Monitoring takes a point per series per 10 s: wait for the last totals.
    let truth = truth(&node);
    wait_until(
        "every total at Cloud Monitoring",
        Duration::from_secs(60),
        || {
            let got: std::collections::BTreeMap<String, u64> = gcm
                .increase()
                .into_iter()
                .map(|(s, n)| (s.to_string().replace("workload.googleapis.com/", ""), n))
                .collect();
            truth.iter().all(|(k, v)| got.get(k) == Some(v))
        },
    );
    let metrics = http_get(addr, "/metrics").1;
    assert_eq!(agent.term(LIMIT), Some(0));

    assert!(
        cw.refused().is_empty(),
        "CloudWatch refused a request: {:?}",
        cw.refused()
    );
    assert!(
        gcm.rejections().is_empty(),
        "Cloud Monitoring refused: {:?}",
        gcm.rejections()
    );
    for line in [
        r#"tailship_anomalies_total{kind="too_long"}"#,
        r#"tailship_points_dropped_total{sink="cloudwatch",reason="invalid_dimension"}"#,
        r#"tailship_points_dropped_total{sink="gcm",reason="invalid_labels"}"#,
    ] {
        assert!(
            metric(&metrics, &format!("{line} ")) > 0,
            "{line} missing from\n{metrics}"
        );
    }
    for l in agent.log_lines() {
        assert!(
            l.len() < 8192,
            "a log line of {} bytes: {}…",
            l.len(),
            &l[..200]
        );
    }
    let sums: std::collections::BTreeMap<String, u64> = cw
        .sums()
        .into_iter()
        .filter(|(k, _)| truth.contains_key(k))
        .map(|(k, v)| (k, v as u64))
        .collect();
    let expected: std::collections::BTreeMap<String, u64> = truth
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_exact(
        &expected,
        &sums.into_iter().filter(|(_, v)| *v > 0).collect(),
    );
}
