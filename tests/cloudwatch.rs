//! The CloudWatch sink end to end: the built binary ships a scripted tailscaled history to
//! ministack (a third-party AWS emulator, installed into `.venv` by `./scripts/test`) and
//! the real SDK reads it back with `GetMetricStatistics`; fault tests and `check` run
//! against the in-repo contract fake.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

#[path = "common/aws.rs"]
mod aws;
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws::{Ministack, read_sum, reader, split_key};
use aws_sdk_cloudwatch::types::DimensionFilter;
use common::{
    Agent, assert_exact, counter_sums, rough_history, shipped, step, temp_dir, traffic, truth,
    wait_until,
};
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
    let mut agent = Agent::with_env(&["run", "--config", config.to_str().unwrap()], ENV);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    rough_history(&fake, &mut node);
    assert_eq!(agent.term(LIMIT), Some(0), "SIGTERM exits 0");
    assert!(
        !agent.logged("unsent points stay in the checkpoint"),
        "everything was flushed"
    );
    (node, agent.lines())
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

/// `tailship run` with CloudWatch at 1 s buckets against a fresh fake (every breakdown,
/// `more` after it in the sink's table), past its baseline scrape.
fn per_second_buckets(name: &str, more: &str) -> (FakeCloudWatch, FakeTailscaled, SimNode, Agent) {
    let cw = FakeCloudWatch::start();
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    let extra = format!(
        "[sinks.cloudwatch]\nregion = \"us-east-1\"\nendpoint = {:?}\nstorage_resolution = 1\n\
         breakdowns = [\"*\"]\n{more}",
        cw.endpoint()
    );
    let config = common::config(&temp_dir(name), &fake, &extra);
    let agent = Agent::with_env(&["run", "--config", config.to_str().unwrap()], ENV);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    (cw, fake, node, agent)
}

/// No series was written twice for one timestamp.
fn assert_one_datum_per_bucket(cw: &FakeCloudWatch) {
    let mut seen = std::collections::BTreeSet::new();
    for d in cw.datums() {
        assert!(
            seen.insert((d.key(), d.timestamp.unwrap().to_bits())),
            "{} sent twice for {:?}",
            d.key(),
            d.timestamp
        );
    }
}

/// A scrape still running when its bucket closes belongs to the next bucket: its points are
/// stamped when the body is in. Stamped when the scrape began, they landed in a bucket a
/// send had already taken, and went out as a second datum of that series and second.
#[test]
fn a_scrape_running_when_a_bucket_closes_sends_no_second_datum_of_it() {
    let (cw, fake, mut node, mut agent) = per_second_buckets("cw-straddle", "");
    // Scrapes every 200 ms that take 170 ms: one is running at nearly every second's end,
    // when that second's bucket closes and is sent.
    fake.set_delay(Duration::from_millis(170));
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(6) {
        k += 1;
        step(&fake, &mut node, |n| traffic(n, k));
    }
    // SIGTERM with a scrape running too: the shutdown's flush of the open buckets must wait
    // for its points.
    assert_eq!(agent.term(LIMIT), Some(0));
    assert!(cw.datums().len() > 100, "{} datums", cw.datums().len());
    assert_one_datum_per_bucket(&cw);
    let sums = counter_sums(cw.sums());
    // Every byte once, the scrape under way at SIGTERM included.
    assert_exact(&truth(&node), &sums);
}

#[test]
fn a_throttling_storm_and_an_outage_lose_nothing_and_duplicate_nothing() {
    let (cw, fake, mut node, mut agent) = per_second_buckets(
        "cw-faults",
        "timeout = \"2s\"\n[shutdown]\nflush_timeout = \"60s\"\n",
    );
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
    assert_eq!(agent.term(LIMIT), Some(0));
    let truth = truth(&node);
    assert_exact(&truth, &shipped(&agent.lines()));
    let sums = counter_sums(cw.sums());
    assert_exact(&truth, &sums);
    let refused = cw.refused();
    let throttled = refused.iter().filter(|r| r.1 == "Throttling").count();
    let failed = refused
        .iter()
        .filter(|r| r.1 == "InternalServiceError")
        .count();
    assert_eq!(throttled, 3);
    assert!(failed >= 2, "the outage was seen");
    assert_one_datum_per_bucket(&cw);
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
        let mut t = Agent::with_env(&["check", "--config", config.to_str().unwrap()], env);
        let code = t.wait(LIMIT);
        (code, t.lines().join("\n"))
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
