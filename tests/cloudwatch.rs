//! The CloudWatch sink end to end: the built binary ships a scripted tailscaled history to
//! ministack (a third-party AWS emulator, installed into `.venv` by `./scripts/test`) and
//! the real SDK reads it back with `GetMetricStatistics`; fault tests and `check` run
//! against the in-repo contract fake.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Statistic};
use common::{BIN, assert_exact, shipped, step, temp_dir, traffic, truth, wait_until};
use tailship_testkit::{FakeCloudWatch, FakeTailscaled, Fault, SimNode};

const LIMIT: Duration = Duration::from_secs(90);

/// Test credentials: the child gets these and nothing else from the environment.
const ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDTAILSHIPTEST"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/tailship-test"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tailship-test"),
    ("NO_COLOR", "1"),
    ("TAILSHIP_LOG_LEVEL", "info"),
];

/// ministack on a free loopback port, started from the project's `.venv`, killed on drop.
struct Ministack {
    child: Child,
    endpoint: String,
}

impl Ministack {
    fn start() -> Self {
        let bin = std::env::var_os("TAILSHIP_MINISTACK").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/ministack"),
            PathBuf::from,
        );
        assert!(
            bin.exists(),
            "ministack is not installed at {}: run ./scripts/test, which installs it into .venv \
             (or set TAILSHIP_MINISTACK to a ministack executable)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = temp_dir("ministack").join("ministack.log");
        let child = Command::new(&bin)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("LOG_LEVEL", "WARNING")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(log.with_extension("err")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        wait_until("ministack to answer", Duration::from_secs(60), || {
            healthy(port)
        });
        eprintln!("ministack ready in {:?} on {endpoint}", started.elapsed());
        Self { child, endpoint }
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether ministack's health endpoint answers 200.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /_ministack/health HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// `tailship ARGS` with only [`ENV`]; stdout and stderr collected as lines.
struct Tailship {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Tailship {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |pipe: Box<dyn std::io::Read + Send>, echo: bool| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("tailship: {line}");
                    }
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()), false);
        let err = collect(Box::new(child.stderr.take().unwrap()), true);
        Self { child, out, err }
    }

    fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // the readers drain
                return status.code();
            }
            assert!(
                start.elapsed() < LIMIT,
                "tailship did not exit within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn term(&mut self) -> Option<i32> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait()
    }

    fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    fn logged(&self, text: &str) -> bool {
        self.err.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Tailship {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the scripted history of `tests/agent.rs` (restarts, a missed reset, late series, a
/// relay reset) against `tailship run` with `sink` (a `[sinks.cloudwatch]` table and more),
/// ends with SIGTERM and returns the node and the stdout sink's lines.
fn ship_history(name: &str, sink: &str) -> (SimNode, Vec<String>) {
    let dir = temp_dir(name);
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.set_routes(1, 1);
    fake.serve(&node);
    let extra = format!("{sink}\n[shutdown]\nflush_timeout = \"60s\"\n");
    let config = common::config(&dir, &fake, &extra);
    let mut agent = Tailship::spawn(&["run", "--config", config.to_str().unwrap()], ENV);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    for k in 1..=3 {
        step(&fake, &mut node, |n| traffic(n, k));
    }
    step(&fake, &mut node, |n| {
        n.restart();
        traffic(n, 4);
    });
    step(&fake, &mut node, |n| {
        n.drop_inbound("acl", 3);
        n.serve("svc:db", 10, 20);
        traffic(n, 5);
    });
    step(&fake, &mut node, |n| {
        n.restart();
        n.send("direct_ipv4", 1_000_000, 700);
    });
    step(&fake, &mut node, |n| {
        n.relay_reset();
        traffic(n, 6);
    });
    step(&fake, &mut node, |n| traffic(n, 7));
    assert_eq!(agent.term(), Some(0), "SIGTERM exits 0");
    assert!(
        !agent.logged("unsent points stay in the checkpoint"),
        "everything was flushed"
    );
    (node, agent.stdout())
}

/// `Sum` of one metric over the last hours, read back through the SDK.
fn read_sum(
    rt: &tokio::runtime::Runtime,
    cw: &aws_sdk_cloudwatch::Client,
    ns: &str,
    name: &str,
    dims: &[(String, String)],
) -> f64 {
    let now = std::time::SystemTime::now();
    let dims: Vec<Dimension> = dims
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect();
    let out = rt
        .block_on(
            cw.get_metric_statistics()
                .namespace(ns)
                .metric_name(name)
                .set_dimensions(Some(dims))
                .start_time(DateTime::from(now - Duration::from_secs(3 * 3600)))
                .end_time(DateTime::from(now + Duration::from_secs(3600)))
                .period(60)
                .statistics(Statistic::Sum)
                .send(),
        )
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}

fn reader(endpoint: &str) -> (tokio::runtime::Runtime, aws_sdk_cloudwatch::Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTAILSHIPTEST",
            "test",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    (rt, aws_sdk_cloudwatch::Client::from_conf(config))
}

/// `name{k=v,…}` (the truth's key) → catalog name and dimensions.
fn split_key(key: &str) -> (String, Vec<(String, String)>) {
    let Some((name, dims)) = key.split_once('{') else {
        return (key.to_owned(), Vec::new());
    };
    let dims = dims.trim_end_matches('}').split(',').map(|kv| {
        let (k, v) = kv.split_once('=').unwrap();
        (k.to_owned(), v.to_owned())
    });
    (name.to_owned(), dims.collect())
}

#[test]
fn ministack_reads_back_the_true_increase_per_aggregate_and_breakdown() {
    let ministack = Ministack::start();
    let run = format!("e2e-{}", std::process::id());
    let sink = format!(
        "[sinks.cloudwatch]\nnamespace = \"TailshipE2E\"\nregion = \"us-east-1\"\nendpoint = {:?}\n\
         storage_resolution = 1\nbreakdowns = [\"*\"]\ndimensions = {{ run = {run:?} }}\n",
        ministack.endpoint
    );
    let (node, lines) = ship_history("cw-ministack", &sink);
    let truth = truth(&node);
    assert_exact(&truth, &shipped(&lines));

    let (rt, cw) = reader(&ministack.endpoint);
    let mut read = BTreeMap::new();
    for key in truth.keys() {
        let (name, mut dims) = split_key(key);
        dims.push(("run".to_owned(), run.clone()));
        read.insert(
            key.clone(),
            read_sum(&rt, &cw, "TailshipE2E", &name, &dims) as u64,
        );
    }
    // Every counter metric CloudWatch holds, not only those with traffic, sums to the truth.
    let listed = rt
        .block_on(cw.list_metrics().namespace("TailshipE2E").send())
        .unwrap();
    let mut counters = 0;
    for m in listed
        .metrics()
        .iter()
        .filter(|m| m.metric_name().is_some_and(|n| n.ends_with(".total")))
    {
        let name = m.metric_name().unwrap();
        let mut dims: Vec<(String, String)> = m
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap().to_owned(), d.value().unwrap().to_owned()))
            .collect();
        let key_dims: Vec<String> = dims
            .iter()
            .filter(|(k, _)| k != "run")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = if key_dims.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", key_dims.join(","))
        };
        dims.sort();
        let sum = read_sum(&rt, &cw, "TailshipE2E", name, &dims) as u64;
        assert_eq!(
            sum,
            truth.get(&key).copied().unwrap_or(0),
            "{key}: read back vs true"
        );
        counters += 1;
    }
    eprintln!(
        "ministack: {} series with traffic, {counters} counter metrics listed",
        truth.len()
    );
    for (key, t) in &truth {
        eprintln!("  {key:<70} true {t:>10}  read back {:>10}", read[key]);
    }
    assert_eq!(
        read, truth,
        "GetMetricStatistics Sum per series vs the true increase"
    );
}

#[test]
fn ministack_aggregates_have_no_dimensions() {
    let ministack = Ministack::start();
    let sink = format!(
        "[sinks.cloudwatch]\nnamespace = \"TailshipAggregates\"\nregion = \"us-east-1\"\nendpoint = {:?}\n\
         storage_resolution = 1\nbreakdowns = []\n",
        ministack.endpoint
    );
    let (node, _) = ship_history("cw-aggregates", &sink);
    let (rt, cw) = reader(&ministack.endpoint);
    let listed = rt
        .block_on(cw.list_metrics().namespace("TailshipAggregates").send())
        .unwrap();
    assert!(!listed.metrics().is_empty());
    for m in listed.metrics() {
        assert!(m.dimensions().is_empty(), "{m:?} has dimensions");
    }
    // Without breakdowns nothing else shares the names, so a query without dimensions (which
    // ministack answers with every dimension combination) reads exactly the aggregate.
    let truth = truth(&node);
    let sent = "tailscale.bytes.sent.total";
    assert_eq!(
        read_sum(&rt, &cw, "TailshipAggregates", sent, &[]) as u64,
        truth[sent]
    );
    let filter = DimensionFilter::builder().name("path").build();
    let by_path = rt
        .block_on(
            cw.list_metrics()
                .namespace("TailshipAggregates")
                .dimensions(filter)
                .send(),
        )
        .unwrap();
    assert!(by_path.metrics().is_empty());
}

#[test]
fn a_throttling_storm_and_an_outage_lose_nothing_and_duplicate_nothing() {
    let cw = FakeCloudWatch::start();
    let dir = temp_dir("cw-faults");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    let extra = format!(
        "[sinks.cloudwatch]\nregion = \"us-east-1\"\nendpoint = {:?}\nstorage_resolution = 1\n\
         breakdowns = [\"*\"]\ntimeout = \"2s\"\n[shutdown]\nflush_timeout = \"60s\"\n",
        cw.endpoint()
    );
    let config = common::config(&dir, &fake, &extra);
    let mut agent = Tailship::spawn(&["run", "--config", config.to_str().unwrap()], ENV);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    step(&fake, &mut node, |n| traffic(n, 1));
    wait_until("a first accepted request", LIMIT, || {
        !cw.accepted().is_empty()
    });
    cw.fail_next(Fault::Throttling, 3);
    for k in 2..=6 {
        step(&fake, &mut node, |n| traffic(n, k));
    }
    wait_until("the storm", LIMIT, || cw.refused().len() >= 3);
    let before = cw.accepted().len();
    step(&fake, &mut node, |n| traffic(n, 7));
    wait_until("the end of the storm", LIMIT, || {
        cw.accepted().len() > before
    });
    // The outage lasts until the driver has retried into it twice, and at least 3 s.
    cw.set_outage(Some(Fault::InternalError));
    let outage = Instant::now();
    let failures = || {
        cw.refused()
            .iter()
            .filter(|r| r.1 == "InternalServiceError")
            .count()
    };
    while outage.elapsed() < Duration::from_secs(3) || failures() < 2 {
        assert!(outage.elapsed() < LIMIT, "no retry during the outage");
        step(&fake, &mut node, |n| traffic(n, 8));
    }
    cw.set_outage(None);
    for k in 9..=10 {
        step(&fake, &mut node, |n| traffic(n, k));
    }
    assert_eq!(agent.term(), Some(0));
    let truth = truth(&node);
    assert_exact(&truth, &shipped(&agent.stdout()));
    let sums: BTreeMap<String, u64> = cw
        .sums()
        .into_iter()
        .filter(|(k, _)| k.split('{').next().is_some_and(|n| n.ends_with(".total")))
        .map(|(k, v)| (k, v as u64))
        .collect();
    assert_exact(&truth, &sums);
    let refused = cw.refused();
    let throttled = refused.iter().filter(|r| r.1 == "Throttling").count();
    let failed = refused
        .iter()
        .filter(|r| r.1 == "InternalServiceError")
        .count();
    assert_eq!(throttled, 3);
    assert!(failed >= 2, "the outage was seen");
    let mut seen = std::collections::BTreeSet::new();
    for d in cw.datums() {
        assert!(
            seen.insert((d.key(), d.timestamp.unwrap().to_bits())),
            "{} sent twice",
            d.key()
        );
    }
    eprintln!(
        "binary faults: {} requests, {throttled} throttled, {failed} failed in the outage, {} accepted",
        cw.requests(),
        cw.accepted().len()
    );
}

#[test]
fn check_says_what_it_verified_and_how_many_metrics_this_node_makes() {
    let cw = FakeCloudWatch::start();
    let dir = temp_dir("cw-check");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    traffic(&mut node, 1);
    fake.serve(&node);
    let extra = format!(
        "[sinks.cloudwatch]\nregion = \"us-east-1\"\nendpoint = {:?}\n",
        cw.endpoint()
    );
    let config = common::config(&dir, &fake, &extra);
    let check = |env: &[(&str, &str)]| {
        let mut t = Tailship::spawn(&["check", "--config", config.to_str().unwrap()], env);
        let code = t.wait();
        (code, t.stdout().join("\n"))
    };
    let (code, text) = check(ENV);
    assert_eq!(code, Some(0), "{text}");
    let line = text.lines().find(|l| l.starts_with("cloudwatch")).unwrap();
    assert!(
        line.contains("ok")
            && line.contains("access key …TEST")
            && line.contains("region us-east-1"),
        "{line}"
    );
    // The aggregate of every family in the body, and bytes by path (the default breakdowns).
    let mut expected = std::collections::BTreeSet::new();
    for s in tailship_collector::read(node.render().as_bytes()).samples {
        if s.aggregate {
            expected.insert(s.name.clone());
        }
        if !s.dimensions.is_empty()
            && tailship_sink_cloudwatch::DEFAULT_BREAKDOWNS.contains(&s.name.as_str())
        {
            expected.insert(format!("{}{{{}}}", s.name, s.dimensions));
        }
    }
    assert!(expected.len() > 10);
    let count = format!("this node publishes {} series to it now", expected.len());
    assert!(line.contains(&count), "{line} lacks {count:?}");
    assert!(cw.datums().is_empty(), "check writes nothing");

    cw.fail_next(Fault::AccessDenied, 1);
    let (code, text) = check(ENV);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cloudwatch FAIL") && text.contains("cloudwatch:PutMetricData"),
        "{text}"
    );

    let no_credentials: Vec<(&str, &str)> = ENV
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let (code, text) = check(&no_credentials);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cloudwatch FAIL") && text.contains("no usable AWS credentials"),
        "{text}"
    );
}
