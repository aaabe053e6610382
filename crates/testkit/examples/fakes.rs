//! The loopback world of the whole-process footprint harness (`bench/footprint.py`): a
//! tailscaled-shaped metrics endpoint of N series whose counters advance at every scrape,
//! the CloudWatch and Cloud Monitoring fakes, and a status endpoint saying what each saw.
//!
//! ```sh
//! cargo build --release -p tailship-testkit --features cloudwatch,gcm --example fakes
//! target/release/examples/fakes --series 10000
//! ```
//!
//! When everything listens it prints one JSON line, `{"metrics": URL, "status": URL,
//! "cloudwatch": URL, "gcm": URL, "series": N, "published": P, "body_bytes": B}`, where P
//! is the series a sink publishes with `breakdowns = ["*"]`; then it serves until its
//! standard input closes. `GET /status` answers (times in microseconds since the epoch):
//!
//! ```json
//! {"now_us": T, "series": N, "body_bytes": B,
//!  "tailscaled": {"scrapes": n, "connections": c, "scrape_us": [T, …]},
//!  "cloudwatch": {"connections": c, "requests": [[at_us, points, accepted, newest_us], …]},
//!  "gcm": {"connections": c, "requests": [[at_us, points, accepted, newest_us], …]}}
//! ```
//!
//! The body has the families of a v1.102 node with peer relay and Serve (42 series: the
//! shape of `crates/collector/benches/bodies`), grown with per-Service Serve byte counters
//! (`service="svc:app-NNNNNN"`, inbound and outbound), each a published series of its own
//! under `breakdowns = ["*"]`. At 50 series it is about 5.6 KB, the size of a real
//! usermetrics body. Every counter grows by a step of its own at every scrape.
//!
//! The cloud fakes keep no history here (`set_keep_accepted(false)`,
//! `set_keep_history(false)`): they still judge every request by the documented limits,
//! and keep one point per Cloud Monitoring series and a few words per request, so that a
//! long run at 100k series costs them memory per series, not per point.

// A measurement tool: a failure to bind or to write its status is fatal and says so.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tailship_testkit::{
    Arrival, DEFAULT_CONTENT_TYPE, DEFAULT_VERSION, FakeCloudWatch, FakeMetricService,
};

const PATHS: &[&str] = &[
    "derp",
    "direct_ipv4",
    "direct_ipv6",
    "peer_relay_ipv4",
    "peer_relay_ipv6",
];
const DROPPED_IN: &[&str] = &["acl", "error", "multicast", "too_short", "fragment"];
const DROPPED_OUT: &[&str] = &["acl", "error", "multicast"];
const TRANSPORTS: &[&str] = &[
    "transport_in=\"udp4\",transport_out=\"udp4\"",
    "transport_in=\"udp4\",transport_out=\"udp6\"",
    "transport_in=\"udp6\",transport_out=\"udp4\"",
    "transport_in=\"udp6\",transport_out=\"udp6\"",
];

/// A piece of the body: header text, or a sample's `name{labels} ` and how its value goes.
enum Piece {
    Text(String),
    Gauge(String, u64),
    /// Prefix, and the sample's index (its base value and step derive from it).
    Counter(String, u64),
}

/// The body's pieces, laid out once; [`Body::render`] only writes the values.
struct Body {
    pieces: Vec<Piece>,
    series: usize,
    /// Series published with `breakdowns = ["*"]`: every sample, and an aggregate for each
    /// family whose samples have labels.
    published: usize,
    bytes_hint: usize,
}

impl Body {
    fn new(series: usize) -> Self {
        let mut b = Self {
            pieces: Vec::new(),
            series: 0,
            published: 0,
            bytes_hint: 0,
        };
        b.gauge(
            "tailscaled_advertised_routes",
            "Number of advertised network routes (e.g. by a subnet router)",
            &[("", 2)],
        );
        b.gauge(
            "tailscaled_approved_routes",
            "Number of approved network routes (e.g. by a subnet router)",
            &[("", 2)],
        );
        b.gauge(
            "tailscaled_health_messages",
            "Number of health messages broken down by type.",
            &[("type=\"warning\"", 0)],
        );
        b.gauge(
            "tailscaled_home_derp_region_id",
            "DERP region ID of this node's home relay server",
            &[("", 1)],
        );
        let paths = labels("path", PATHS);
        b.counter(
            "tailscaled_inbound_bytes_total",
            "Counts the number of bytes received from other peers",
            &paths,
        );
        b.counter(
            "tailscaled_inbound_dropped_packets_total",
            "Counts the number of dropped packets received by the node from other peers",
            &labels("reason", DROPPED_IN),
        );
        b.counter(
            "tailscaled_inbound_packets_total",
            "Counts the number of packets received from other peers",
            &paths,
        );
        b.counter(
            "tailscaled_outbound_bytes_total",
            "Counts the number of bytes sent to other peers",
            &paths,
        );
        b.counter(
            "tailscaled_outbound_dropped_packets_total",
            "Counts the number of packets dropped while being sent to other peers",
            &labels("reason", DROPPED_OUT),
        );
        b.counter(
            "tailscaled_outbound_packets_total",
            "Counts the number of packets sent to other peers",
            &paths,
        );
        b.gauge(
            "tailscaled_peer_relay_endpoints",
            "Number of allocated Peer Relay endpoints",
            &[("state=\"connecting\"", 0), ("state=\"open\"", 3)],
        );
        let transports: Vec<String> = TRANSPORTS.iter().map(|t| (*t).to_owned()).collect();
        b.counter(
            "tailscaled_peer_relay_forwarded_bytes_total",
            "Number of bytes forwarded via Peer Relay",
            &transports,
        );
        b.counter(
            "tailscaled_peer_relay_forwarded_packets_total",
            "Number of packets forwarded via Peer Relay",
            &transports,
        );
        let services = series.saturating_sub(b.series).div_ceil(2).max(1);
        let services: Vec<String> = (0..services)
            .map(|i| format!("service=\"svc:app-{i:06}\""))
            .collect();
        b.counter(
            "tailscaled_serve_inbound_bytes_total",
            "Bytes received from peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
            &services,
        );
        b.counter(
            "tailscaled_serve_outbound_bytes_total",
            "Bytes sent to peers on Serve connections for Tailscale Services, labeled by Tailscale Service name.",
            &services,
        );
        b
    }

    /// Counts the family's published series.
    fn publish(&mut self, samples: usize, labelled: bool) {
        self.published += samples + usize::from(labelled);
    }

    fn header(&mut self, family: &str, kind: &str, help: &str) {
        let text = format!("# TYPE {family} {kind}\n# HELP {family} {help}\n");
        self.bytes_hint += text.len();
        self.pieces.push(Piece::Text(text));
    }

    fn prefix(&mut self, family: &str, labels: &str) -> String {
        self.series += 1;
        let prefix = if labels.is_empty() {
            format!("{family} ")
        } else {
            format!("{family}{{{labels}}} ")
        };
        // The prefix, up to 20 digits and the newline.
        self.bytes_hint += prefix.len() + 21;
        prefix
    }

    fn gauge(&mut self, family: &str, help: &str, samples: &[(&str, u64)]) {
        self.header(family, "gauge", help);
        self.publish(samples.len(), samples.iter().any(|(l, _)| !l.is_empty()));
        for &(labels, value) in samples {
            let prefix = self.prefix(family, labels);
            self.pieces.push(Piece::Gauge(prefix, value));
        }
    }

    fn counter(&mut self, family: &str, help: &str, series: &[String]) {
        self.header(family, "counter", help);
        self.publish(series.len(), series.iter().any(|l| !l.is_empty()));
        for labels in series {
            let n = self.series as u64;
            let prefix = self.prefix(family, labels);
            self.pieces.push(Piece::Counter(prefix, n));
        }
    }

    /// The body scrape number `scrape` reads: every counter a step of its own further on.
    fn render(&self, scrape: u64) -> String {
        let mut out = String::with_capacity(self.bytes_hint);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Gauge(prefix, value) => {
                    out.push_str(prefix);
                    let _ = writeln!(out, "{value}");
                }
                Piece::Counter(prefix, n) => {
                    out.push_str(prefix);
                    let value = n * 1_000_003 + scrape * (n % 97 + 1) * 1_500;
                    let _ = writeln!(out, "{value}");
                }
            }
        }
        out
    }
}

/// `name="value"` for each value.
fn labels(name: &str, values: &[&str]) -> Vec<String> {
    values.iter().map(|v| format!("{name}=\"{v}\"")).collect()
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What the metrics endpoint saw, and the fakes behind the status endpoint.
struct World {
    body: Body,
    /// When each scrape arrived, in microseconds since the epoch.
    scrapes: Mutex<Vec<u64>>,
    connections: AtomicU64,
    body_bytes: AtomicU64,
    cloudwatch: FakeCloudWatch,
    gcm: FakeMetricService,
}

impl World {
    fn status(&self) -> String {
        let scrapes = self
            .scrapes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = String::with_capacity(64 * 1024);
        let _ = write!(
            out,
            "{{\"now_us\":{},\"series\":{},\"body_bytes\":{},\"tailscaled\":{{\"scrapes\":{},\"connections\":{},\"scrape_us\":[",
            micros(SystemTime::now()),
            self.body.series,
            self.body_bytes.load(Ordering::SeqCst),
            scrapes.len(),
            self.connections.load(Ordering::SeqCst),
        );
        for (i, t) in scrapes.iter().enumerate() {
            let _ = write!(out, "{}{t}", if i == 0 { "" } else { "," });
        }
        out.push_str("]},\"cloudwatch\":");
        sink_status(
            &mut out,
            self.cloudwatch.connections(),
            &self.cloudwatch.arrivals(),
        );
        out.push_str(",\"gcm\":");
        sink_status(&mut out, self.gcm.connections(), &self.gcm.arrivals());
        out.push_str("}\n");
        out
    }
}

/// `{"connections": c, "requests": [[at_us, points, accepted, newest_us], …]}`.
fn sink_status(out: &mut String, connections: u64, arrivals: &[Arrival]) {
    let _ = write!(out, "{{\"connections\":{connections},\"requests\":[");
    for (i, a) in arrivals.iter().enumerate() {
        let newest = a
            .newest
            .map_or_else(|| "null".to_owned(), |t| micros(t).to_string());
        let _ = write!(
            out,
            "{}[{},{},{},{newest}]",
            if i == 0 { "" } else { "," },
            micros(a.at),
            a.points,
            u8::from(a.accepted),
        );
    }
    out.push_str("]}");
}

async fn answer(world: &World, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/metrics" => {
            let scrape = {
                let mut scrapes = world.scrapes.lock().unwrap_or_else(PoisonError::into_inner);
                scrapes.push(micros(SystemTime::now()));
                scrapes.len() as u64
            };
            let body = world.body.render(scrape);
            world.body_bytes.store(body.len() as u64, Ordering::SeqCst);
            Response::builder()
                .header(CONTENT_TYPE, DEFAULT_CONTENT_TYPE)
                .header("Tailscale-Version", DEFAULT_VERSION)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
        "/status" => Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(world.status())))
            .unwrap(),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"404 page not found\n")))
            .unwrap(),
    }
}

fn series_arg() -> usize {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => 50,
        [flag, n] if flag == "--series" => n.parse().expect("--series takes a number"),
        _ => panic!("usage: fakes [--series N]"),
    }
}

fn main() {
    let series = series_arg();
    let cloudwatch = FakeCloudWatch::start();
    cloudwatch.set_keep_accepted(false);
    let gcm = FakeMetricService::start();
    gcm.set_keep_history(false);
    let body = Body::new(series);
    let body_bytes = body.render(0).len() as u64;
    let world = Arc::new(World {
        body,
        scrapes: Mutex::new(Vec::new()),
        connections: AtomicU64::new(0),
        body_bytes: AtomicU64::new(body_bytes),
        cloudwatch,
        gcm,
    });
    let metrics = loopback();
    let status = loopback();
    let (metrics_addr, status_addr) = (metrics.local_addr().unwrap(), status.local_addr().unwrap());
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "{{\"metrics\":\"http://{metrics_addr}/metrics\",\"status\":\"http://{status_addr}/status\",\"cloudwatch\":\"{}\",\"gcm\":\"{}\",\"series\":{},\"published\":{},\"body_bytes\":{body_bytes}}}",
            world.cloudwatch.endpoint(),
            world.gcm.endpoint(),
            world.body.series,
            world.body.published,
        )
        .unwrap();
        stdout.flush().unwrap();
    }
    // Serves until standard input closes (the harness ends, or closes it).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = stop.send(());
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tokio::select! {
            _ = stopped => {}
            () = serve(metrics, Arc::clone(&world), true) => {}
            () = serve(status, world, false) => {}
        }
    });
}

fn loopback() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Accepts on `listener` (counting the connections of the metrics one, which the agent
/// under test opens; the status one is the harness's own).
async fn serve(listener: std::net::TcpListener, world: Arc<World>, count: bool) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    while let Ok((stream, _)) = listener.accept().await {
        if count {
            world.connections.fetch_add(1, Ordering::SeqCst);
        }
        let world = Arc::clone(&world);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let world = Arc::clone(&world);
                async move { Ok::<_, Infallible>(answer(&world, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
