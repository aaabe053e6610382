//! `tailship once` and `tailship catalog`, as a user runs them, against a fake tailscaled
//! over a real unix socket, over HTTP, and from a file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{tailship, temp_dir};
use serde_json::Value;
use tailship_testkit::{FakeTailscaled, SimNode};

fn node() -> SimNode {
    let mut node = SimNode::new();
    node.send("derp", 5_684, 46);
    node.drop_outbound("multicast", 12);
    node.set_routes(2, 2);
    node
}

fn once_json(source: &str) -> Value {
    let out = tailship(&["once", "--source", source, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample<'a>(doc: &'a Value, series: &str) -> &'a Value {
    doc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["series"] == series)
        .unwrap_or_else(|| panic!("{series} not in {doc}"))
}

#[test]
fn once_over_the_localapi_socket() {
    let fake = FakeTailscaled::start();
    fake.serve(&node());
    let doc = once_json(&format!("unix:{}", fake.socket_path().display()));
    let s = sample(&doc, r#"tailscaled_outbound_bytes_total{path="derp"}"#);
    assert_eq!(s["name"], "tailscale.bytes.sent.total");
    assert_eq!(s["dimensions"]["path"], "derp");
    assert_eq!(s["value"], 5684.0);
    assert_eq!(s["unit"], "bytes");
    let drops = sample(
        &doc,
        r#"tailscaled_outbound_dropped_packets_total{reason="multicast"}"#,
    );
    assert_eq!(drops["name"], "tailscale.packets.sent.dropped.total");
    // The LocalAPI peer is the fake, in the test process.
    assert_eq!(doc["target"]["pid"], u64::from(std::process::id()));
    assert_eq!(doc["anomaly_count"], 0);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn once_over_http_with_the_human_table() {
    let fake = FakeTailscaled::start();
    fake.serve(&node());
    let out = tailship(&["once", "--source", &fake.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tailscaled version"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(r#"{path="derp"}"#) && l.contains("outbound_bytes"))
        .unwrap();
    assert!(
        line.contains("tailscale.bytes.sent.total{path=derp}") && line.ends_with("5684"),
        "{line}"
    );
}

#[test]
fn once_from_a_file_reports_bad_lines_with_their_number() {
    let dir = temp_dir("once-file");
    let path = dir.join("metrics.prom");
    let mut body = node().render();
    body.push_str(
        "tailscaled_outbound_bytes_total{path=\"direct_ipv4\"} NaN\nnot a metric line at all\n",
    );
    std::fs::write(&path, &body).unwrap();
    let doc = once_json(path.to_str().unwrap());
    assert_eq!(doc["anomaly_count"], 2);
    let messages: Vec<&str> = doc["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    let last_line = body.lines().count();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with(&format!("line {last_line}:"))),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("NaN")), "{messages:?}");
    // The good lines still count.
    assert_eq!(
        sample(&doc, r#"tailscaled_outbound_bytes_total{path="derp"}"#)["value"],
        5684.0
    );
}

#[test]
fn a_missing_socket_says_what_to_do() {
    let out = tailship(&["once", "--source", "unix:/nonexistent/tailscaled.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/tailscaled.sock") && err.contains("is tailscaled running"),
        "{err}"
    );
}

#[test]
fn an_old_tailscaled_without_usermetrics_is_named() {
    let fake = FakeTailscaled::start();
    fake.set_status(404);
    let out = tailship(&[
        "once",
        "--source",
        &format!("unix:{}", fake.socket_path().display()),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("v1.78"), "{err}");
}

#[test]
fn catalog_json_names_the_anchor_metric() {
    let out = tailship(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = doc["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["family"] == "tailscaled_outbound_bytes_total")
        .unwrap();
    assert_eq!(m["name"], "tailscale.bytes.sent.total");
    assert_eq!(m["unit"], "bytes");
    assert_eq!(m["dimensions"], serde_json::json!([[], ["path"]]));
    // The README's table lists every published name.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for m in doc["metrics"].as_array().unwrap() {
        let row = format!("| `{}` |", m["name"].as_str().unwrap());
        assert!(readme.contains(&row), "README lacks {row}");
    }
}

#[test]
fn catalog_with_a_config_lists_what_each_sink_receives() {
    let dir = temp_dir("catalog-config");
    let path = dir.join("tailship.toml");
    std::fs::write(
        &path,
        "[sinks.cloudwatch]\nregion = \"eu-west-1\"\nnamespace = \"Tailnet\"\ndimensions = { cluster = \"prod\" }\n\
         [sinks.gcm]\nproject_id = \"my-project\"\nbreakdowns = [\"*\"]\n",
    )
    .unwrap();
    let out = tailship(&[
        "catalog",
        "--format",
        "json",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cw = &doc["sinks"][0];
    assert_eq!(
        (cw["sink"].as_str(), cw["namespace"].as_str()),
        (Some("cloudwatch"), Some("Tailnet"))
    );
    let metric = |name: &str| {
        cw["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    // Bytes are broken down by path by default; packets are not; the static dimension is on every datum.
    let sent = metric("tailscale.bytes.sent.total");
    assert_eq!(
        sent["dimensions"],
        serde_json::json!([["cluster"], ["cluster", "path"]])
    );
    assert_eq!(sent["unit"], "Bytes");
    assert_eq!(
        metric("tailscale.packets.sent.total")["dimensions"],
        serde_json::json!([["cluster"]])
    );
    let gcm = &doc["sinks"][1];
    assert_eq!(gcm["sink"], "gcm");
    let dropped = gcm["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "workload.googleapis.com/tailscale.packets.sent.dropped.total")
        .unwrap();
    assert_eq!(
        (dropped["kind"].as_str(), dropped["value_type"].as_str()),
        (Some("CUMULATIVE"), Some("INT64"))
    );
    assert_eq!(
        dropped["labels"],
        serde_json::json!([[], ["reason"]]),
        "every breakdown with \"*\""
    );
    // A table without --format json is refused with the reason.
    let out = tailship(&["catalog", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format json"));
}
