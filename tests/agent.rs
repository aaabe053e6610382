//! `tailship run` end to end: the built binary against the fake tailscaled over a real unix
//! socket, into the stdout sink, with real signals.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{
    Agent, assert_exact, config, http_get, rough_history, shipped, step, temp_dir, traffic, truth,
    wait_until,
};
use tailship_testkit::{FakeTailscaled, SimNode};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn restarts_missed_resets_and_new_series_sum_exactly_and_sigterm_exits_0() {
    let dir = temp_dir("history");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.set_routes(1, 1);
    fake.serve(&node);
    let mut agent = Agent::start(&config(&dir, &fake, ""));
    let addr = agent.http_addr();
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    wait_until("readiness", LIMIT, || http_get(addr, "/readyz").0 == 200);

    rough_history(&fake, &mut node);

    let (status, metrics) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tailship_tailscaled_restarts_total 2"),
        "{metrics}"
    );

    agent.signal("-TERM");
    assert_eq!(agent.wait(LIMIT), Some(0), "SIGTERM exits 0");
    assert!(agent.logged("SIGTERM received"));
    assert_exact(&truth(&node), &shipped(&agent.lines()));
}

#[test]
fn kill_9_between_scrapes_loses_nothing_and_duplicates_nothing() {
    let dir = temp_dir("kill9");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    let cfg = config(&dir, &fake, "");
    let mut first = Agent::start(&cfg);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    for k in 1..=3 {
        step(&fake, &mut node, |n| traffic(n, k));
    }
    // Hold the next scrape inside the fake, so the kill falls between two scrapes: wait
    // until the checkpoint holds every scrape served so far with nothing pending.
    fake.set_delay(Duration::from_secs(120));
    let served = fake.requests();
    wait_until("a scrape stuck in the fake", LIMIT, || {
        fake.requests() > served
    });
    let state = dir.join("state.json");
    wait_until("the checkpoint of the last scrape", LIMIT, || {
        let Some(v) = common::checkpoint(&state) else {
            return false;
        };
        let pending = v["sinks"]["stdout"]["series"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| !s["buckets"].as_array().unwrap().is_empty())
        });
        v["tracker"]["scrapes"] == served && !pending
    });
    first.kill9();
    let before = first.lines();

    // While tailship is down, traffic goes on and tailscaled restarts once.
    fake.set_delay(Duration::ZERO);
    traffic(&mut node, 10);
    fake.serve(&node);
    let mut second = Agent::start(&cfg);
    wait_until("the first scrape after the restart", LIMIT, || {
        fake.requests() > served + 1
    });
    step(&fake, &mut node, |n| {
        n.restart();
        traffic(n, 11);
    });
    step(&fake, &mut node, |n| traffic(n, 12));
    second.signal("-TERM");
    assert_eq!(second.wait(LIMIT), Some(0));
    assert!(second.logged("continuing from the checkpoint"));

    let mut all = before;
    all.extend(second.lines());
    assert_exact(&truth(&node), &shipped(&all));
}

#[test]
fn a_json_checkpoint_of_an_earlier_version_is_continued_exactly() {
    let dir = temp_dir("upgrade");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    let cfg = config(&dir, &fake, "");
    let mut first = Agent::start(&cfg);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    for k in 1..=2 {
        step(&fake, &mut node, |n| traffic(n, k));
    }
    first.signal("-TERM");
    assert_eq!(first.wait(LIMIT), Some(0));
    let before = first.lines();

    // The checkpoint as format 1 wrote it: JSON, the same document `tailship state` prints.
    let state = dir.join("state.json");
    assert!(
        std::fs::read(&state)
            .unwrap()
            .starts_with(b"tailship checkpoint\n")
    );
    let mut v = common::checkpoint(&state).unwrap();
    assert_eq!(v["format"], 3);
    v["format"] = 1.into();
    std::fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();

    // Traffic while tailship is down counts only if the JSON checkpoint is continued.
    traffic(&mut node, 3);
    fake.serve(&node);
    let mut second = Agent::start(&cfg);
    step(&fake, &mut node, |n| traffic(n, 4));
    second.signal("-TERM");
    assert_eq!(second.wait(LIMIT), Some(0));
    assert!(second.logged("continuing from the checkpoint"));
    assert!(
        std::fs::read(&state)
            .unwrap()
            .starts_with(b"tailship checkpoint\n"),
        "written in the binary format again"
    );

    let mut all = before;
    all.extend(second.lines());
    assert_exact(&truth(&node), &shipped(&all));
}

#[test]
fn a_corrupt_checkpoint_is_moved_aside_and_survived() {
    let dir = temp_dir("corrupt");
    std::fs::write(
        dir.join("state.json"),
        b"{\"format\":1,\"source\":\"unix:/x\",\"tracker\":{\"scra",
    )
    .unwrap();
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    let mut agent = Agent::start(&config(&dir, &fake, ""));
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    step(&fake, &mut node, |n| traffic(n, 1));
    step(&fake, &mut node, |n| traffic(n, 2));
    agent.signal("-INT");
    assert_eq!(agent.wait(LIMIT), Some(0));
    assert!(agent.logged("moved aside"));
    let aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".rejected-")
        })
        .count();
    assert_eq!(aside, 1);
    assert_exact(&truth(&node), &shipped(&agent.lines()));
}

#[test]
fn a_bad_config_is_refused_with_the_key_name() {
    let dir = temp_dir("badconfig");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[source]\ninterval = \"fast\"\n[sinks.stdout]\n").unwrap();
    let out = common::tailship(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("interval") && err.contains("bad.toml"),
        "{err}"
    );
}

#[test]
fn check_reports_each_part() {
    let dir = temp_dir("check");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    traffic(&mut node, 1);
    fake.serve(&node);
    let cfg = config(&dir, &fake, "");
    let out = common::tailship(&["check", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    for part in ["config   ok", "state    ok", "source   ok", "stdout   ok"] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
    drop(fake);
    let out = common::tailship(&["check", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!out.status.success());
    assert!(text.contains("source   FAIL"), "{text}");
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_the_checkpoint_whole() {
    let dir = temp_dir("second-signal");
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    fake.serve(&node);
    // A flush that could take a minute: the shutdown waits for the scrape under way.
    let cfg = config(&dir, &fake, "[shutdown]\nflush_timeout = \"60s\"\n");
    let mut agent = Agent::start(&cfg);
    wait_until("the baseline scrape", LIMIT, || fake.requests() >= 1);
    node.mark();
    step(&fake, &mut node, |n| traffic(n, 1));
    wait_until("a checkpoint", LIMIT, || dir.join("state.json").exists());
    fake.set_delay(Duration::from_secs(120));
    let served = fake.requests();
    wait_until("a scrape stuck in the fake", LIMIT, || {
        fake.requests() > served
    });
    agent.signal("-TERM");
    wait_until("the first signal seen", LIMIT, || {
        agent.logged("SIGTERM received")
    });
    agent.signal("-TERM");
    // Without the second signal it would end with 0 once the stuck scrape timed out (10 s).
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(130));
    assert!(agent.logged("second signal: exiting now"));

    // The checkpoint on disk is whole: the next start continues from it.
    fake.set_delay(Duration::ZERO);
    let before = agent.lines();
    let mut second = Agent::start(&cfg);
    step(&fake, &mut node, |n| traffic(n, 2));
    second.signal("-TERM");
    assert_eq!(second.wait(LIMIT), Some(0));
    assert!(second.logged("continuing from the checkpoint"));
    let mut all = before;
    all.extend(second.lines());
    assert_exact(&truth(&node), &shipped(&all));
}
