//! A fake of the instance metadata servers on `127.0.0.1`: Compute Engine's (as
//! `GCE_METADATA_HOST` points at it) and EC2's IMDSv2 (as
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` does).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// What the GCE metadata server tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GceIdentity {
    pub project_id: String,
    pub instance_id: String,
    /// The short zone name; served as `projects/NUMBER/zones/ZONE`.
    pub zone: String,
    /// Set on GKE nodes.
    pub cluster_name: Option<String>,
    pub cluster_location: Option<String>,
}

/// What the EC2 instance identity document tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ec2Identity {
    pub instance_id: String,
    pub region: String,
    pub account_id: String,
}

const TOKEN: &str = "fake-imds-token";

#[derive(Debug)]
struct Shared {
    gce: Option<GceIdentity>,
    ec2: Option<Ec2Identity>,
    requests: AtomicU64,
}

/// Serves GCE metadata, or IMDSv2, or neither (404 to everything), on its own thread.
#[derive(Debug)]
pub struct FakeInstanceMetadata {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeInstanceMetadata {
    pub fn start(gce: Option<GceIdentity>, ec2: Option<Ec2Identity>) -> Self {
        let shared = Arc::new(Shared {
            gce,
            ec2,
            requests: AtomicU64::new(0),
        });
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake metadata server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener
            .local_addr()
            .expect("the fake metadata server's address");
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-metadata".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("the fake metadata server's runtime");
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .expect("register the listener");
                        let accept = async {
                            while let Ok((stream, _)) = listener.accept().await {
                                let shared = Arc::clone(&shared);
                                tokio::spawn(async move {
                                    let service = service_fn(move |r| {
                                        let shared = Arc::clone(&shared);
                                        async move { Ok::<_, Infallible>(answer(&shared, &r)) }
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        };
                        tokio::select! {
                            _ = stopped => {}
                            () = accept => {}
                        }
                    });
                }
            })
            .expect("spawn the fake metadata thread");
        Self {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, for `GCE_METADATA_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeInstanceMetadata {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reply(status: StatusCode, body: String, google: bool) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    if google {
        r = r.header("Metadata-Flavor", "Google");
    }
    r.body(Full::new(Bytes::from(body)))
        .expect("a valid metadata response")
}

fn answer(shared: &Shared, r: &Request<Incoming>) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let path = r.uri().path();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok());
    if let (Some(gce), Some(p)) = (&shared.gce, path.strip_prefix("/computeMetadata/v1/")) {
        if header("Metadata-Flavor") != Some("Google") {
            return reply(
                StatusCode::FORBIDDEN,
                "Missing Metadata-Flavor:Google header.".into(),
                true,
            );
        }
        let value = match p {
            "project/project-id" => Some(gce.project_id.clone()),
            "instance/id" => Some(gce.instance_id.clone()),
            "instance/zone" => Some(format!("projects/123456789/zones/{}", gce.zone)),
            "instance/attributes/cluster-name" => gce.cluster_name.clone(),
            "instance/attributes/cluster-location" => gce.cluster_location.clone(),
            _ => None,
        };
        return match value {
            Some(v) => reply(StatusCode::OK, v, true),
            None => reply(StatusCode::NOT_FOUND, "Not Found".into(), true),
        };
    }
    if let Some(ec2) = &shared.ec2 {
        if r.method() == Method::PUT && path == "/latest/api/token" {
            return match header("X-aws-ec2-metadata-token-ttl-seconds") {
                Some(_) => reply(StatusCode::OK, TOKEN.into(), false),
                None => reply(StatusCode::BAD_REQUEST, String::new(), false),
            };
        }
        if r.method() == Method::GET && path == "/latest/dynamic/instance-identity/document" {
            if header("X-aws-ec2-metadata-token") != Some(TOKEN) {
                return reply(StatusCode::UNAUTHORIZED, String::new(), false);
            }
            let doc = format!(
                r#"{{"accountId":"{}","instanceId":"{}","region":"{}","availabilityZone":"{}a"}}"#,
                ec2.account_id, ec2.instance_id, ec2.region, ec2.region
            );
            return reply(StatusCode::OK, doc, false);
        }
    }
    reply(StatusCode::NOT_FOUND, String::new(), false)
}
