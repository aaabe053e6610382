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
//! The body is [`tailship_testkit::bodies`]'s, the one the `track` benchmark reads: the
//! families of a v1.102 node, grown with per-Service Serve byte counters, each a published
//! series of its own under `breakdowns = ["*"]`. At 50 series it is about 5.6 KB, the size
//! of a real usermetrics body. Every counter grows by a step of its own at every scrape.
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
use tailship_testkit::bodies::GeneratedBody;
use tailship_testkit::{
    Arrival, DEFAULT_CONTENT_TYPE, DEFAULT_VERSION, FakeCloudWatch, FakeMetricService,
};

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What the metrics endpoint saw, and the fakes behind the status endpoint.
struct World {
    body: GeneratedBody,
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
            self.body.series(),
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
    let body = GeneratedBody::new(series);
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
            world.body.series(),
            world.body.published(),
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
