//! The deployment manifests end to end: `kubectl kustomize` renders the EKS and GKE overlays
//! of `deploy/k8s/`, and the built binary runs with the exact `tailship.toml` of the rendered
//! ConfigMap and the exact environment of the rendered tailship container (downward-API
//! values filled in as the kubelet would), pointed at the fakes: the fake tailscaled for the
//! pod's socket, the CloudWatch contract fake or the Cloud Monitoring fake for the cloud, and
//! a fake GKE metadata server. Only the addresses change: the source (`TAILSHIP_SOURCE`), the
//! state file, the listen address, the scrape interval and the sink's `endpoint`.
//!
//! Needs `kubectl` (`./scripts/test` checks that it is installed).

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test code

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{BIN, http_get, step, temp_dir, traffic, truth, wait_until};
use serde_json::Value;
use tailship_testkit::{
    FakeCloudWatch, FakeInstanceMetadata, FakeMetricService, FakeTailscaled, GceIdentity, SimNode,
};

const LIMIT: Duration = Duration::from_secs(90);
/// The pod the kubelet would run: what the downward API gives.
const POD_NAME: &str = "tailscale-7f9c6d5b8-x2x7q";
const NODE_NAME: &str = "ip-10-0-1-17.eu-west-1.compute.internal";

/// `kubectl kustomize deploy/k8s/DIR`, as JSON objects (`kubectl annotate --local` converts
/// the YAML offline; the annotation is the only change).
fn render(dir: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kubectl = |args: &[&str], input: Option<&[u8]>| {
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "kubectl: {e}. The deployment tests render deploy/k8s with `kubectl kustomize`: \
                     install kubectl (./scripts/test says so too)"
                )
            });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.unwrap_or_default())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let yaml = kubectl(&["kustomize", &format!("deploy/k8s/{dir}")], None);
    let json = kubectl(
        &[
            "annotate",
            "--local",
            "-f",
            "-",
            "-o",
            "json",
            "tailship.test/rendered=true",
        ],
        Some(&yaml),
    );
    serde_json::Deserializer::from_slice(&json)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// What the e2e needs from one rendered overlay, checked for consistency on the way.
struct Pod {
    namespace: String,
    /// The ConfigMap's `tailship.toml`, byte for byte.
    config: String,
    /// The tailship container's `args`.
    args: Vec<String>,
    /// Its environment, downward-API references resolved.
    env: Vec<(String, String)>,
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

fn parent(path: &str) -> String {
    Path::new(path).parent().unwrap().display().to_string()
}

/// The pod of an overlay: the Deployment with the tailship sidecar, and its ConfigMap.
/// Asserts what ties the manifests to the configuration: the native sidecar, the config
/// mount, the probes on `[http] listen` (on every address), the state on an emptyDir, the
/// socket shared with the tailscale container, the grace period above the flush timeout.
fn pod(objects: &[Value]) -> Pod {
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_owned();
    let spec = &deployment["spec"]["template"]["spec"];
    let sidecar = named(&spec["initContainers"], "tailship");
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");
    let volumes = &spec["volumes"];
    let mount = |container: &Value, path: &str| -> Value {
        let m = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path} in {}", container["name"]));
        named(volumes, m["name"].as_str().unwrap()).clone()
    };
    let args: Vec<String> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args[..2], ["run", "--config"]);
    let config_path = &args[2];
    let config_map_name = mount(sidecar, &parent(config_path))["configMap"]["name"].clone();
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == config_map_name)
        .expect("the mounted ConfigMap");
    let file = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let config = config_map["data"][file].as_str().unwrap().to_owned();
    let t = table(&config);

    let listen: SocketAddr = t["http"]["listen"].as_str().unwrap().parse().unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "the kubelet probes the pod IP"
    );
    let port = named(&sidecar["ports"], "http")["containerPort"].as_u64();
    assert_eq!(port, Some(u64::from(listen.port())));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(sidecar[probe]["httpGet"]["path"], path);
        assert_eq!(sidecar[probe]["httpGet"]["port"], "http");
    }
    let state = t["state"]["path"].as_str().unwrap();
    assert!(mount(sidecar, &parent(state)).get("emptyDir").is_some());
    let socket = t["source"]["socket"].as_str().unwrap();
    let tailscale = named(&spec["containers"], "tailscale");
    assert_eq!(named(&tailscale["env"], "TS_SOCKET")["value"], socket);
    assert_eq!(
        mount(sidecar, &parent(socket)),
        mount(tailscale, &parent(socket)),
        "one volume for the socket"
    );
    let flush =
        humantime::parse_duration(t["shutdown"]["flush_timeout"].as_str().unwrap()).unwrap();
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        flush.as_secs() + 5 < grace,
        "the flush fits in the grace period"
    );
    let security = &sidecar["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);

    let env = sidecar["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                        Some("metadata.name") => POD_NAME.to_owned(),
                        Some("metadata.namespace") => namespace.clone(),
                        Some("spec.nodeName") => NODE_NAME.to_owned(),
                        Some(other) => panic!("a fieldRef the test does not know: {other}"),
                        None => e["value"].as_str().unwrap().to_owned(),
                    };
                    (e["name"].as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    Pod {
        namespace,
        config,
        args,
        env,
    }
}

/// The config with `endpoint = URL` added to `[sinks.NAME]`, which must not have one (the
/// production default is the cloud's own endpoint).
fn with_endpoint(config: &str, sink: &str, url: &str) -> String {
    let header = format!("[sinks.{sink}]");
    assert!(table(config)["sinks"][sink].get("endpoint").is_none());
    let mut found = false;
    let lines: Vec<String> = config
        .lines()
        .map(|l| {
            if l.split('#').next().unwrap().trim() == header {
                found = true;
                format!("{header}\nendpoint = {url:?}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "{header} in the config");
    lines.join("\n") + "\n"
}

/// The pod's tailship in a temporary directory: `tailship ARGS` with the pod's args (the
/// config path replaced), the pod's environment, and the test's addresses.
struct Sidecar {
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Sidecar {
    fn new(
        name: &str,
        pod: &Pod,
        config: &str,
        ts: &FakeTailscaled,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = temp_dir(name);
        let path = dir.join("tailship.toml");
        std::fs::write(&path, config).unwrap();
        let mut args = pod.args.clone();
        args[2] = path.display().to_string();
        let mut env = pod.env.clone();
        for (k, v) in [
            (
                "TAILSHIP_SOURCE",
                format!("unix:{}", ts.socket_path().display()),
            ),
            (
                "TAILSHIP_STATE_PATH",
                dir.join("state.json").display().to_string(),
            ),
            ("TAILSHIP_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
            ("TAILSHIP_INTERVAL", "200ms".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ] {
            env.push((k.to_owned(), v));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self { dir, args, env }
    }

    fn command(&self, verb: &str) -> Command {
        let mut c = Command::new(BIN);
        c.arg(verb)
            .args(&self.args[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `tailship check` with the pod's config: its output, and whether it passed.
    fn check(&self) -> (bool, String) {
        let out = self.command("check").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn run(&self) -> Running {
        let mut child = self
            .command("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("tailship: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, logs }
    }
}

struct Running {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// The listen address from the JSON log (`"listen":"127.0.0.1:PORT"`).
    fn http_addr(&self) -> SocketAddr {
        let mut found = None;
        wait_until("the HTTP listener", LIMIT, || {
            found = self.logs.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                v["listen"].as_str()?.parse().ok()
            });
            found.is_some()
        });
        found.unwrap()
    }

    /// SIGTERM, as the kubelet stops a sidecar; the exit code.
    fn term(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(start.elapsed() < LIMIT, "tailship did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The series a config's `breakdowns` selects: aggregates, and breakdowns of those named.
fn selected(truth: BTreeMap<String, u64>, breakdowns: &[&str]) -> BTreeMap<String, u64> {
    truth
        .into_iter()
        .filter(|(k, _)| match k.split_once('{') {
            None => true,
            Some((name, _)) => breakdowns.contains(&name),
        })
        .collect()
}

#[test]
fn the_eks_overlay_ships_every_byte_to_cloudwatch() {
    let pod = pod(&render("overlays/eks"));
    assert_eq!(pod.namespace, "tailscale");
    let cw = FakeCloudWatch::start();
    let ts = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.set_routes(1, 1);
    ts.serve(&node);
    let config = with_endpoint(&pod.config, "cloudwatch", &cw.endpoint());
    // What the EKS pod identity webhook injects, with static test keys for the web identity.
    let sidecar = Sidecar::new(
        "deploy-eks",
        &pod,
        &config,
        &ts,
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTAILSHIPTEST"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/tailship-test"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tailship-test"),
        ],
    );

    let (ok, text) = sidecar.check();
    assert!(ok, "{text}");
    assert!(
        text.contains("cloudwatch ok") && text.contains("namespace \"Tailscale\""),
        "{text}"
    );

    let mut agent = sidecar.run();
    let addr = agent.http_addr();
    wait_until("the baseline scrape", LIMIT, || ts.requests() >= 1);
    wait_until("/readyz", LIMIT, || http_get(addr, "/readyz").0 == 200);
    assert_eq!(http_get(addr, "/healthz").0, 200);
    node.mark();
    for k in 1..=4 {
        step(&ts, &mut node, |n| traffic(n, k));
    }
    step(&ts, &mut node, |n| n.drop_outbound("error", 3));
    assert_eq!(agent.term(), Some(0), "SIGTERM exits 0");

    let cloudwatch = table(&pod.config)["sinks"]["cloudwatch"].clone();
    let breakdowns: Vec<&str> = cloudwatch["breakdowns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    let truth = selected(truth(&node), &breakdowns);
    let sums = common::counter_sums(cw.sums());
    common::assert_exact(&truth, &sums);
    // What the alarms of terraform/modules/aws read: the aggregates without any dimension,
    // and bytes through DERP.
    for key in [
        "tailscale.bytes.sent.total",
        "tailscale.bytes.sent.total{path=derp}",
        "tailscale.bytes.received.total{path=derp}",
        "tailscale.packets.sent.dropped.total",
    ] {
        assert!(sums.get(key).is_some_and(|n| *n > 0), "{key} in {sums:?}");
    }
    assert!(
        cw.datums()
            .iter()
            .any(|d| d.metric_name == "tailscale.routes.advertised" && d.dimensions.is_empty()),
        "the gauge the silence alarm counts"
    );
    eprintln!("eks overlay: {} series shipped exactly", truth.len());
    let _ = std::fs::remove_dir_all(&sidecar.dir);
}

#[test]
fn the_gke_overlay_writes_k8s_container_series_named_by_the_downward_api() {
    let pod = pod(&render("overlays/gke"));
    let env: BTreeMap<&str, &str> = pod
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env.get("POD_NAME"), Some(&POD_NAME));
    assert_eq!(env.get("CONTAINER_NAME"), Some(&"tailship"));
    let gcm = FakeMetricService::start();
    let meta = FakeInstanceMetadata::start(
        Some(GceIdentity {
            project_id: "gke-project-1".into(),
            instance_id: "4242".into(),
            zone: "europe-west1-b".into(),
            cluster_name: Some("prod".into()),
            cluster_location: Some("europe-west1".into()),
        }),
        None,
    );
    let ts = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.set_routes(1, 1);
    ts.serve(&node);
    let config = with_endpoint(&pod.config, "gcm", &gcm.endpoint());
    // On GKE the metadata server answers at the link-local address and the API server's
    // address is in the environment of every pod.
    let sidecar = Sidecar::new(
        "deploy-gke",
        &pod,
        &config,
        &ts,
        &[
            ("GCE_METADATA_HOST", &meta.host()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &meta.url()),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ],
    );
    let resource = format!(
        "k8s_container{{cluster_name=prod,container_name=tailship,location=europe-west1,namespace_name={},pod_name={POD_NAME},project_id=gke-project-1}}",
        pod.namespace
    );

    let (ok, text) = sidecar.check();
    assert!(ok, "{text}");
    assert!(
        text.contains("gcm      ok") && text.contains(&resource),
        "{text}"
    );

    let mut agent = sidecar.run();
    wait_until("the baseline scrape", LIMIT, || ts.requests() >= 1);
    for k in 1..=3 {
        step(&ts, &mut node, |n| traffic(n, k));
    }
    let prefix = table(&pod.config)["sinks"]["gcm"]["metric_prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    let wanted = [
        format!("{prefix}tailscale.bytes.sent.total"),
        format!("{prefix}tailscale.bytes.sent.total{{path=derp}}"),
        format!("{prefix}tailscale.routes.advertised"),
    ];
    wait_until("the series the alert policies read", LIMIT, || {
        let stored: Vec<String> = gcm.stored().keys().map(ToString::to_string).collect();
        wanted.iter().all(|w| stored.contains(w))
    });
    assert_eq!(agent.term(), Some(0), "SIGTERM exits 0");
    for series in gcm.stored().keys() {
        let labels = format!(
            "{}{{{}}}",
            series.resource_type,
            series
                .resource_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(labels, resource, "{series}");
        assert!(series.metric_type.starts_with(&prefix), "{series}");
    }
    let _ = std::fs::remove_dir_all(&sidecar.dir);
}

/// The host agent's example configuration passes `check` as written, but for its addresses.
#[test]
fn the_host_agent_config_checks_against_cloudwatch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/systemd/tailship.toml")).unwrap();
    let unit = std::fs::read_to_string(root.join("deploy/systemd/tailship.service")).unwrap();
    assert!(unit.contains("--config /etc/tailship/tailship.toml"));
    let state = table(&text)["state"]["path"].as_str().unwrap().to_owned();
    assert!(
        unit.contains(&format!(
            "StateDirectory={}",
            parent(&state).trim_start_matches("/var/lib/")
        )),
        "[state] path is in the unit's StateDirectory"
    );
    let cw = FakeCloudWatch::start();
    let ts = FakeTailscaled::start();
    let node = SimNode::new();
    ts.serve(&node);
    let pod = Pod {
        namespace: String::new(),
        config: String::new(),
        args: vec!["run".into(), "--config".into(), String::new()],
        env: Vec::new(),
    };
    let config = with_endpoint(&text, "cloudwatch", &cw.endpoint());
    let host = Sidecar::new(
        "deploy-host",
        &pod,
        &config,
        &ts,
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTAILSHIPTEST"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/tailship-test"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tailship-test"),
        ],
    );
    let (ok, text) = host.check();
    assert!(ok, "{text}");
    let _ = std::fs::remove_dir_all(&host.dir);
}
