//! `tailship demo`: the real pipeline against a built-in simulated tailscaled.
//!
//! A fake tailscaled serves a scripted node on a real unix socket; the real agent scrapes it
//! through the LocalAPI source every second, tracks it and ships into the stdout sink. The
//! script restarts tailscaled, makes a counter grow past its old value across a restart
//! (the missed reset), creates series late and resets the relay. At the end the bytes the
//! sink wrote are compared, series by series, with what the simulated node really counted.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tailship_collector::published_totals;
use tailship_sink::StdoutSink;
use tailship_testkit::{FakeTailscaled, SimNode};

use crate::config::{Config, SourceKind};

const INTERVAL: Duration = Duration::from_secs(1);

pub fn run(duration: Duration) -> anyhow::Result<ExitCode> {
    // Below 12 scrapes the scripted events would fall on each other.
    let steps = u32::try_from(duration.as_millis() / INTERVAL.as_millis())
        .unwrap_or(u32::MAX)
        .clamp(12, 3_600);
    let dir = std::env::temp_dir().join(format!("tailship-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fake = FakeTailscaled::start();

    let mut config = Config::default();
    config.source.kind = SourceKind::Localapi;
    config.source.socket = fake.socket_path().to_owned();
    config.source.interval = INTERVAL;
    config.source.timeout = Duration::from_secs(2);
    config.state.path = dir.join("state.json");
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config.sinks.stdout = None; // the demo's own stdout sink below keeps a tally

    let tally = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = StdoutSink::new(Box::new(io::stdout())).with_tally(Arc::clone(&tally));
    let mut node = SimNode::new();
    node.set_routes(2, 2);
    node.set_home_derp(1);
    fake.serve(&node);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = super::runtime()?;
    let narrate = |line: &str| {
        let _ = writeln!(io::stderr(), "demo: {line}");
    };
    narrate(&format!(
        "simulated tailscaled on {}, {steps} scrapes, one per second",
        fake.socket_path().display()
    ));
    let script = async {
        // The first scrape is the baseline: count the truth from there.
        wait_for_requests(&fake, 1).await;
        node.mark();
        for k in 1..=steps {
            step(&mut node, k, steps, &narrate);
            fake.serve(&node);
            // One scrape reads each step: a restart never swallows unscraped bytes (what a
            // real tailscaled counts between the last scrape and a crash is unknowable).
            wait_for_requests(&fake, u64::from(k) + 1).await;
        }
        let _ = stop.send(());
    };
    let agent = crate::cmd::run::serve(
        config,
        async {
            let _ = stopped.await;
        },
        vec![Arc::new(sink)],
    );
    let (result, ()) = rt.block_on(async { tokio::join!(agent, script) });
    result?;
    let _ = std::fs::remove_dir_all(&dir);

    let shipped = tally.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let truth = published_truth(&node);
    summarize(&truth, &shipped)
}

/// One scrape's worth of scripted traffic and events.
fn step(node: &mut SimNode, k: u32, steps: u32, narrate: &impl Fn(&str)) {
    let k64 = u64::from(k);
    if k == steps / 4 {
        narrate("tailscaled restarts: every counter starts again from 0");
        node.restart();
    }
    if k == steps * 3 / 5 {
        narrate(
            "tailscaled restarts, then direct_ipv4 sends 5 MB before the next scrape: it grows past its old value (a missed reset), while derp stays below",
        );
        node.restart();
        node.send("direct_ipv4", 5_000_000, 3_600);
    }
    if k == steps * 4 / 5 {
        narrate("the peer relay server is re-created: only its counters reset");
        node.relay_reset();
    }
    if k == steps * 2 / 5 {
        narrate("new series appear: drop reason \"acl\" and a Tailscale Service");
    }
    node.send("direct_ipv4", 40_000 + 1_000 * k64, 30 + k64);
    node.send("derp", 1_200, 2);
    node.receive("direct_ipv4", 90_000 + 500 * k64, 70);
    node.receive("derp", 700, 1);
    node.relay_forward("udp4", "udp4", 15_000, 12);
    if k >= steps * 2 / 5 {
        node.drop_inbound("acl", 2);
        node.serve("svc:web", 4_096, 65_536);
    }
    node.set_health_messages("warning", u32::from(k.is_multiple_of(7)));
}

async fn wait_for_requests(fake: &FakeTailscaled, n: u64) {
    while fake.requests() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The true increase per published series: the node's raw truth mapped through the catalog.
fn published_truth(node: &SimNode) -> BTreeMap<String, u64> {
    let raw = node.increase();
    published_totals(raw.iter().map(|(series, n)| (series.as_str(), *n)))
}

fn summarize(
    truth: &BTreeMap<String, u64>,
    shipped: &BTreeMap<String, u64>,
) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    writeln!(out, "\nSERIES{:54}TRUE      SHIPPED", "")?;
    let mut names: Vec<&String> = truth.keys().chain(shipped.keys()).collect();
    names.sort();
    names.dedup();
    let mut wrong = 0;
    for name in names {
        let (t, s) = (
            truth.get(name).copied().unwrap_or(0),
            shipped.get(name).copied().unwrap_or(0),
        );
        let mark = if t == s { "ok" } else { "MISMATCH" };
        wrong += usize::from(t != s);
        writeln!(out, "{name:<60}{t:>9} {s:>9}  {mark}")?;
    }
    if wrong == 0 {
        writeln!(
            out,
            "\nshipped = true for every series: every byte counted once across the restarts"
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "\n{wrong} series do not match")?;
        Ok(ExitCode::FAILURE)
    }
}
