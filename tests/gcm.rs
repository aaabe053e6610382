//! The Cloud Monitoring sink end to end: the built binary ships a scripted tailscaled
//! history to the in-repo `MetricService` fake over gRPC on 127.0.0.1 (anonymous, since the
//! endpoint is `http://`), and what the fake stored, read as Cloud Monitoring reads
//! cumulative series, sums to the true increase of every series.
//!
//! The scrape interval is 200 ms and Cloud Monitoring's 10 s per series holds: the driver
//! coalesces fifty scrapes into one point, and the fake refuses anything closer.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Agent, BIN, assert_exact, http_get, step, temp_dir, traffic, truth, wait_until};
use tailship_testkit::{
    FakeInstanceMetadata, FakeMetricService, FakeTailscaled, GceIdentity, GcmCode as Code,
    GcmFault, SimNode,
};

const LIMIT: Duration = Duration::from_secs(90);
const PREFIX: &str = "workload.googleapis.com/";

/// A config with `[sinks.gcm]` at `gcm` (and the stdout sink the helper always adds).
fn config(dir: &Path, ts: &FakeTailscaled, gcm: &FakeMetricService) -> PathBuf {
    let extra = format!(
        "[sinks.gcm]\nproject_id = \"e2e-project\"\nendpoint = {endpoint:?}\nbreakdowns = [\"*\"]\n\
         resource = {{ type = \"generic_node\", labels = {{ location = \"test\", namespace = \"e2e\", node_id = \"n1\" }} }}\n\
         [shutdown]\nflush_timeout = \"2s\"\n",
        endpoint = gcm.endpoint(),
    );
    common::config(dir, ts, &extra)
}

/// What the fake holds, read as Cloud Monitoring reads cumulative series, by catalog series.
fn published(gcm: &FakeMetricService) -> BTreeMap<String, u64> {
    gcm.increase()
        .into_iter()
        .map(|(s, n)| (s.to_string().strip_prefix(PREFIX).unwrap().to_owned(), n))
        .collect()
}

/// Whether the checkpoint holds the last scrape served and, for every series the fake has,
/// the end of the point the fake stored last: then no write is unrecorded.
fn checkpoint_matches(dir: &Path, gcm: &FakeMetricService, scrapes: u64) -> bool {
    let Some(v) = common::checkpoint(&dir.join("state.json")) else {
        return false;
    };
    if v["tracker"]["scrapes"] != scrapes {
        return false;
    }
    let mut sent = BTreeMap::new();
    for s in v["sinks"]["gcm"]["series"].as_array().into_iter().flatten() {
        let dims: Vec<String> = s["series"]["dimensions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let name = s["series"]["name"].as_str().unwrap();
        let key = if dims.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", dims.join(","))
        };
        sent.insert(key, s["last_sent"].as_u64());
    }
    gcm.stored().iter().all(|(s, points)| {
        let key = s.to_string().strip_prefix(PREFIX).unwrap().to_owned();
        sent.get(&key).copied().flatten() == points.last().map(|p| p.end)
    })
}

/// Scrapes go on (no new traffic) until every running total has reached the fake.
fn wait_for_delivery(gcm: &FakeMetricService, node: &SimNode) {
    let truth = truth(node);
    wait_until("every total delivered", LIMIT, || {
        let got = published(gcm);
        truth.iter().all(|(k, v)| got.get(k) == Some(v))
    });
}

#[test]
fn a_history_with_restarts_and_a_kill_9_arrives_exactly() {
    let dir = temp_dir("gcm-history");
    let ts = FakeTailscaled::start();
    let gcm = FakeMetricService::start();
    let mut node = SimNode::new();
    node.set_routes(1, 1);
    ts.serve(&node);
    let cfg = config(&dir, &ts, &gcm);
    let mut first = Agent::start(&cfg);
    wait_until("the baseline scrape", LIMIT, || ts.requests() >= 1);
    node.mark();
    for k in 1..=3 {
        step(&ts, &mut node, |n| traffic(n, k));
    }
    step(&ts, &mut node, |n| {
        n.restart();
        traffic(n, 4);
    });
    // New series appear: a drop reason and a served service.
    step(&ts, &mut node, |n| {
        n.drop_inbound("acl", 3);
        n.serve("svc:db", 10, 20);
        traffic(n, 5);
    });
    // The missed reset: direct_ipv4 grows past its old value across the restart.
    step(&ts, &mut node, |n| {
        n.restart();
        n.send("direct_ipv4", 1_000_000, 700);
    });
    step(&ts, &mut node, |n| {
        n.relay_reset();
        traffic(n, 6);
    });

    // Hold the next scrape in the fake tailscaled: the agent then has nothing to wake it, so
    // once the checkpoint records every write the fake took, none can be under way.
    ts.set_delay(Duration::from_secs(120));
    let served = ts.requests();
    wait_until("a scrape stuck in the fake", LIMIT, || {
        ts.requests() > served
    });
    let mut settled = 0;
    wait_until("a checkpoint that records every write", LIMIT, || {
        let requests = gcm.requests().len();
        let ok = checkpoint_matches(&dir, &gcm, served);
        std::thread::sleep(Duration::from_millis(300));
        settled = if ok && gcm.requests().len() == requests {
            settled + 1
        } else {
            0
        };
        settled >= 2
    });
    first.kill9();

    // While tailship is down, traffic goes on.
    ts.set_delay(Duration::ZERO);
    traffic(&mut node, 10);
    ts.serve(&node);
    let mut second = Agent::start(&cfg);
    wait_until("the first scrape after the restart", LIMIT, || {
        ts.requests() > served + 1
    });
    step(&ts, &mut node, |n| {
        n.restart();
        traffic(n, 11);
    });
    step(&ts, &mut node, |n| traffic(n, 12));
    wait_for_delivery(&gcm, &node);
    second.signal("-TERM");
    assert_eq!(second.wait(LIMIT), Some(0));
    assert!(second.logged("continuing from the checkpoint"));
    assert!(second.logged("publishing to Cloud Monitoring"));

    assert_eq!(
        gcm.rejections(),
        [],
        "no point refused for ordering, spacing or anything"
    );
    let requests = gcm.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.code == Code::Ok && r.series <= 200 && r.series == r.written)
    );
    eprintln!(
        "{} requests, {} points stored",
        requests.len(),
        gcm.stored().values().map(Vec::len).sum::<usize>()
    );
    assert_exact(&truth(&node), &published(&gcm));
    for (name, (kind, value_type, unit)) in gcm.descriptors() {
        let expected = if name.ends_with(".total") {
            ("CUMULATIVE", "INT64")
        } else {
            ("GAUGE", "DOUBLE")
        };
        assert_eq!((kind.as_str(), value_type.as_str()), expected, "{name}");
        assert_eq!(
            unit,
            if name.contains(".bytes.") { "By" } else { "1" },
            "{name}"
        );
    }
}

/// Outages, throttling and a partial failure: retried or counted, and the next running
/// total still carries every byte.
#[test]
fn faults_are_retried_or_counted_and_totals_still_arrive() {
    let dir = temp_dir("gcm-faults");
    let ts = FakeTailscaled::start();
    let gcm = FakeMetricService::start();
    let mut node = SimNode::new();
    ts.serve(&node);
    let mut agent = Agent::start(&config(&dir, &ts, &gcm));
    let addr = agent.http_addr();
    wait_until("the baseline scrape", LIMIT, || ts.requests() >= 1);
    node.mark();
    step(&ts, &mut node, |n| traffic(n, 1));
    wait_until("a first write", LIMIT, || !gcm.requests().is_empty());
    gcm.inject(GcmFault::Status(Code::Unavailable));
    gcm.inject(GcmFault::Status(Code::ResourceExhausted));
    gcm.inject(GcmFault::Partial {
        refuse: 3,
        message: "Field timeSeries[0].metric.labels had an invalid value (injected)".into(),
    });
    for k in 2..=4 {
        step(&ts, &mut node, |n| traffic(n, k));
    }
    wait_until("the faults to be used", LIMIT, || gcm.requests().len() >= 4);
    step(&ts, &mut node, |n| traffic(n, 5));
    wait_for_delivery(&gcm, &node);
    let (_, metrics) = http_get(addr, "/metrics");
    agent.signal("-TERM");
    assert_eq!(agent.wait(LIMIT), Some(0));

    for line in [
        r#"tailship_requests_total{sink="gcm",result="transient"} 1"#,
        r#"tailship_requests_total{sink="gcm",result="throttled"} 1"#,
        r#"tailship_requests_total{sink="gcm",result="partial"} 1"#,
        r#"tailship_points_dropped_total{sink="gcm",reason="invalid_labels"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert_eq!(gcm.rejections().len(), 3, "only the injected refusals");
    assert_exact(&truth(&node), &published(&gcm));
}

/// `tailship check` verifies the project and credentials without writing, and shows the
/// detected resource; a refused read names the role.
#[test]
fn check_shows_the_detected_resource_and_names_the_role() {
    let dir = temp_dir("gcm-check");
    let ts = FakeTailscaled::start();
    let gcm = FakeMetricService::start();
    let meta = FakeInstanceMetadata::start(
        Some(GceIdentity {
            project_id: "meta-project".into(),
            instance_id: "4242".into(),
            zone: "europe-west1-b".into(),
            cluster_name: None,
            cluster_location: None,
        }),
        None,
    );
    let mut node = SimNode::new();
    traffic(&mut node, 1);
    ts.serve(&node);
    let path = common::config(
        &dir,
        &ts,
        &format!("[sinks.gcm]\nendpoint = {:?}\n", gcm.endpoint()),
    );
    let check = || {
        let out = Command::new(BIN)
            .args(["check", "--config", path.to_str().unwrap()])
            .env_remove("TAILSHIP_SOURCE")
            .env_remove("GOOGLE_CLOUD_PROJECT")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("GCE_METADATA_HOST", meta.host())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", meta.url())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(
        text.contains("gcm      ok    project meta-project reachable")
            && text.contains("resource gce_instance{instance_id=4242,project_id=meta-project,zone=europe-west1-b}"),
        "{text}"
    );
    gcm.inject(GcmFault::Status(Code::PermissionDenied));
    let (ok, text) = check();
    assert!(!ok);
    assert!(
        text.contains("gcm      FAIL") && text.contains("roles/monitoring.metricWriter"),
        "{text}"
    );
    assert!(gcm.requests().is_empty(), "check writes nothing");
}
