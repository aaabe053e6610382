//! Security posture, end to end: no credential in logs or self-metrics, the HTTP listener on
//! localhost unless configured, the checkpoint readable by its owner only, and the agent
//! running as an unprivileged user with no capability at all.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use common::{Agent, BIN, http_get, step, temp_dir, traffic, wait_until};
use tailship_testkit::{FakeCloudWatch, FakeMetricService, FakeTailscaled, Fault, SimNode};

const LIMIT: Duration = Duration::from_secs(60);

const ACCESS_KEY: &str = "AKIAZZSECRETKEYID7Q2X";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETVALUE";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENSECRETxyz";
const PRIVATE_KEY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCSECRETKEYMATERIAL";

/// Every secret, and the parts of them that would betray them.
fn secrets() -> Vec<&'static str> {
    vec![
        ACCESS_KEY,
        &ACCESS_KEY[..16],
        SECRET_KEY,
        &SECRET_KEY[..20],
        SESSION_TOKEN,
        &SESSION_TOKEN[..20],
        PRIVATE_KEY,
        "SECRETKEYMATERIAL",
    ]
}

/// With credentials in the environment (AWS keys and a session token, a Google service
/// account key file), debug logging, and errors that make the sinks explain themselves,
/// neither the logs, standard output, `/metrics` nor `check` show any of them.
#[test]
fn credentials_never_reach_logs_metrics_or_check() {
    let dir = temp_dir("security-secrets");
    let ts = FakeTailscaled::start();
    let cw = FakeCloudWatch::start();
    let gcm = FakeMetricService::start();
    let key_file = dir.join("service-account.json");
    std::fs::write(
        &key_file,
        format!(
            r#"{{"type":"service_account","project_id":"sec-proj","private_key_id":"0123abcd","private_key":"-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY}\n-----END PRIVATE KEY-----\n","client_email":"t@sec-proj.iam.gserviceaccount.com","token_uri":"http://127.0.0.1:9/token"}}"#
        ),
    )
    .unwrap();
    let mut node = SimNode::new();
    ts.serve(&node);
    let extra = format!(
        "[sinks.cloudwatch]\nregion = \"us-east-1\"\nendpoint = {:?}\nstorage_resolution = 1\ntimeout = \"2s\"\n\
         [sinks.gcm]\nproject_id = \"sec-proj\"\nendpoint = {:?}\n\
         resource = {{ type = \"generic_node\", labels = {{ location = \"l\", namespace = \"n\", node_id = \"x\" }} }}\n\
         [delivery]\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n[shutdown]\nflush_timeout = \"3s\"\n",
        cw.endpoint(),
        gcm.endpoint()
    );
    let config = common::config(&dir, &ts, &extra);
    let key_path = key_file.to_str().unwrap().to_owned();
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/tailship-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tailship-test"),
        ("GOOGLE_APPLICATION_CREDENTIALS", &key_path),
        ("GOOGLE_CLOUD_PROJECT", "sec-proj"),
        // As verbose as it gets, the SDKs included.
        ("TAILSHIP_LOG_LEVEL", "trace"),
        ("TAILSHIP_LOG_FORMAT", "json"),
        ("NO_COLOR", "1"),
    ];
    let mut agent = Agent::with_env(&["run", "--config", config.to_str().unwrap()], &env);
    let addr = agent.http_addr();
    wait_until("the baseline", LIMIT, || ts.requests() >= 1);
    cw.fail_next(Fault::AccessDenied, 2);
    cw.fail_next(Fault::Throttling, 1);
    for k in 1..=4 {
        step(&ts, &mut node, |n| traffic(n, k));
    }
    wait_until("a write to each cloud", LIMIT, || {
        !cw.accepted().is_empty() && !gcm.requests().is_empty()
    });
    let (_, metrics) = http_get(addr, "/metrics");
    assert_eq!(agent.term(LIMIT), Some(0));
    let mut seen = agent.log_lines();
    seen.extend(agent.lines());
    seen.push(metrics);
    assert!(
        agent.logged("AccessDenied"),
        "the refused credentials were logged as such"
    );

    let mut check = Agent::with_env(&["check", "--config", config.to_str().unwrap()], &env);
    assert_eq!(check.wait(LIMIT), Some(0));
    seen.extend(check.lines());
    seen.extend(check.log_lines());
    assert!(
        check.lines().iter().any(|l| l.contains("access key …7Q2X")),
        "check names the key by its last four characters only"
    );

    let text = seen.join("\n");
    for secret in secrets() {
        assert!(
            !text.contains(secret),
            "{secret:?} appears in the output:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "{} lines of trace logs, standard output and /metrics checked: no credential",
        text.lines().count()
    );
}

/// Without `[http] listen`, the endpoints listen on 127.0.0.1 only; another address must be
/// asked for.
#[test]
fn the_http_listener_is_on_localhost_unless_configured() {
    let dir = temp_dir("security-listen");
    let ts = FakeTailscaled::start();
    let config = common::config(&dir, &ts, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[http]\nlisten = \"127.0.0.1:0\"\n", "");
    std::fs::write(&config, text).unwrap();
    let mut agent = Agent::start(&config);
    // Port 9464 may be taken on this machine: either way the address is loopback.
    wait_until("the listener or its failure", LIMIT, || {
        agent.logged("listen=") || agent.logged("cannot listen there")
    });
    let logs = agent.log_lines().join("\n");
    assert!(logs.contains("127.0.0.1:9464"), "{logs}");
    assert!(
        !logs.contains("0.0.0.0") && !logs.contains("[::]"),
        "{logs}"
    );
    if agent.logged("listen=") {
        // Not reachable on another address of this machine (if it has one).
        assert_eq!(agent.http_addr().ip().to_string(), "127.0.0.1");
    }
    let _ = agent.term(LIMIT);
}

/// The checkpoint is created 0600 whatever the umask, end to end.
#[test]
fn the_checkpoint_is_readable_by_its_owner_only_whatever_the_umask() {
    let dir = temp_dir("security-mode");
    let ts = FakeTailscaled::start();
    let mut node = SimNode::new();
    ts.serve(&node);
    let config = common::config(&dir, &ts, "");
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000; exec \"$0\" run --config \"$1\""])
        .arg(BIN)
        .arg(&config)
        .env_remove("TAILSHIP_SOURCE")
        .env("NO_COLOR", "1");
    let mut agent = Agent::spawn(command);
    wait_until("the baseline", LIMIT, || ts.requests() >= 1);
    step(&ts, &mut node, |n| traffic(n, 1));
    assert_eq!(agent.term(LIMIT), Some(0));
    let mode = std::fs::metadata(dir.join("state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "checkpoint mode {:o}", mode & 0o777);
}

/// As an unprivileged user with every capability dropped (setpriv(1), when the tests run as
/// root, as CI does), tailship scrapes, checkpoints and ships: it needs no privilege.
#[test]
fn it_runs_as_nobody_with_no_capabilities() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("not root or no setpriv: the tests already run unprivileged");
        return;
    }
    let dir = temp_dir("security-nobody");
    let ts = FakeTailscaled::start();
    let mut node = SimNode::new();
    ts.serve(&node);
    // As tailscaled makes it: the socket is 0666; the state directory belongs to the user.
    std::fs::set_permissions(ts.socket_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket_dir = ts.socket_path().parent().unwrap();
    std::fs::set_permissions(socket_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let ok = Command::new("chown")
        .args(["65534:65534", state.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    for d in [&dir, std::path::Path::new(BIN).parent().unwrap()] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
    }
    let config = common::config(&dir, &ts, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{:?}", dir.join("state.json").display().to_string()),
        &format!("{:?}", state.join("state.json").display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ])
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("TAILSHIP_SOURCE")
        .env("NO_COLOR", "1");
    let mut agent = Agent::spawn(command);
    wait_until("the baseline", LIMIT, || ts.requests() >= 1);
    step(&ts, &mut node, |n| traffic(n, 1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(caps), "0000000000000000", "{caps}");
    }
    assert_eq!(agent.term(LIMIT), Some(0));
    assert!(
        state.join("state.json").exists(),
        "the checkpoint was written"
    );
    assert!(!agent.lines().is_empty(), "points were shipped");
}
