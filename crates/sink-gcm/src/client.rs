//! The only file that touches the network: the gRPC client (gcloud-sdk over tonic, with
//! credentials from google-cloud-auth), and the metadata reads behind resource detection.

use std::collections::BTreeMap;
use std::time::Duration;

use gcloud_sdk::google::api::MonitoredResourceDescriptor;
use gcloud_sdk::google::monitoring::v3::GetMonitoredResourceDescriptorRequest;
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google_cloud_auth::credentials::anonymous;
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::prost::bytes::BufMut as _;
use gcloud_sdk::tonic::client::Grpc;
use gcloud_sdk::tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use gcloud_sdk::tonic::codegen::http::uri::PathAndQuery;
use gcloud_sdk::tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use gcloud_sdk::tonic::{GrpcMethod, Request, Status};
use gcloud_sdk::{GoogleAuthHeaders, GoogleAuthMiddleware, RequestTimeouts};

use crate::resource::{Ec2, Facts, Gce};

/// The metadata server's host when `GCE_METADATA_HOST` does not name another, as Google's
/// client libraries do.
const GCE_METADATA_HOST: &str = "metadata.google.internal";
/// The EC2 instance metadata service when `AWS_EC2_METADATA_SERVICE_ENDPOINT` does not name
/// another, as the AWS SDKs do.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// How long one metadata answer may take: off the clouds, nothing answers at all.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The environment variables detection reads, looked up once by the caller.
pub(crate) const ENV_VARS: &[&str] = &[
    "GCE_METADATA_HOST",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "GOOGLE_CLOUD_PROJECT",
    "KUBERNETES_SERVICE_HOST",
    "POD_NAME",
    "POD_NAMESPACE",
    "CONTAINER_NAME",
    "HOSTNAME",
];

pub(crate) type Env = BTreeMap<&'static str, String>;

/// A `MetricService` client: the same type in production and against the test fake.
#[derive(Clone)]
pub(crate) struct Client {
    api: MetricServiceClient<GoogleAuthMiddleware>,
    /// The same service, for `CreateTimeSeries` with a body `encode.rs` has encoded already.
    grpc: Grpc<GoogleAuthMiddleware>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `endpoint`; connects on first use, so that a network still coming up
    /// does not stop tailship from starting. An `https://` endpoint authenticates with the
    /// Application Default Credentials; an `http://` one (an emulator, a test fake) with none.
    pub async fn new(endpoint: &str, timeout: Duration) -> Result<Self, String> {
        // google-cloud-auth and tonic both sign and encrypt with rustls; ring is the one
        // provider compiled in. Installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ep = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("endpoint = {endpoint:?}: {e}"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20));
        let headers = if let Some(rest) = endpoint.strip_prefix("https://") {
            let host = rest.split(['/', ':']).next().unwrap_or(rest);
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(gcloud_sdk::CERTIFICATES))
                .domain_name(host);
            ep = ep
                .tls_config(tls)
                .map_err(|e| format!("endpoint = {endpoint:?}: {e}"))?;
            GoogleAuthHeaders::from_adc()
                .await
                .map_err(|e| format!("the Application Default Credentials cannot be used: {e}"))?
        } else {
            GoogleAuthHeaders::from(anonymous::Builder::new().build())
        };
        let service = GoogleAuthMiddleware::new(ep.connect_lazy(), headers, None)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            api: MetricServiceClient::new(service.clone()),
            grpc: Grpc::new(service),
            timeout,
        })
    }

    fn request<T>(&self, body: T) -> Request<T> {
        let mut req = Request::new(body);
        req.extensions_mut()
            .insert(RequestTimeouts::new().with_total(self.timeout));
        req
    }

    /// `body` is an encoded `CreateTimeSeriesRequest`. Sent as the generated
    /// `MetricServiceClient::create_time_series` sends the message: the same readiness
    /// check, path and method extension, only the codec differs.
    pub async fn create_time_series(&self, body: Vec<u8>) -> Result<(), Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
        let path =
            PathAndQuery::from_static("/google.monitoring.v3.MetricService/CreateTimeSeries");
        let mut req = self.request(body);
        req.extensions_mut().insert(GrpcMethod::new(
            "google.monitoring.v3.MetricService",
            "CreateTimeSeries",
        ));
        grpc.unary(req, path, Encoded).await.map(|_| ())
    }

    /// Allowed by `roles/monitoring.metricWriter` (`monitoring.monitoredResourceDescriptors.get`);
    /// writes nothing.
    pub async fn resource_descriptor(
        &self,
        name: String,
    ) -> Result<MonitoredResourceDescriptor, Status> {
        let req = self.request(GetMonitoredResourceDescriptorRequest { name });
        self.api
            .clone()
            .get_monitored_resource_descriptor(req)
            .await
            .map(|r| r.into_inner())
    }
}

/// The codec of a request encoded beforehand: its bytes go out as they are; the answer,
/// `google.protobuf.Empty`, is decoded as the generated client's prost codec decodes it.
#[derive(Clone, Copy, Debug)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for Encoded {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, body: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&body);
        Ok(())
    }
}

impl Decoder for Encoded {
    type Item = ();
    type Error = Status;

    /// Skips whatever fields the answer has; a malformed one is `INTERNAL`, as with prost.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        <()>::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// Reads what resource detection needs: the environment (given), the metadata servers,
/// the host name. The GCE metadata server is asked first; EC2's only when it did not answer.
pub(crate) async fn facts(env: &Env) -> Facts {
    let kubernetes = env.contains_key("KUBERNETES_SERVICE_HOST");
    let namespace = match env.get("POD_NAMESPACE") {
        Some(ns) => Some(ns.clone()),
        None if kubernetes => tokio::fs::read_to_string(NAMESPACE_FILE)
            .await
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        None => None,
    };
    let hostname = tokio::fs::read_to_string("/proc/sys/kernel/hostname")
        .await
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| env.get("HOSTNAME").cloned());
    let gce = gce(env).await;
    let imds_off = env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ec2 = if gce.is_none() && !imds_off {
        ec2(env).await
    } else {
        None
    };
    Facts {
        gce,
        ec2,
        kubernetes,
        pod_name: env
            .get("POD_NAME")
            .cloned()
            .or_else(|| kubernetes.then(|| env.get("HOSTNAME").cloned()).flatten()),
        namespace,
        container_name: env.get("CONTAINER_NAME").cloned(),
        hostname,
    }
}

fn http() -> Option<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(METADATA_TIMEOUT)
        .connect_timeout(METADATA_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| tracing::debug!(error = %e, "no HTTP client for the metadata servers"))
        .ok()
}

/// The metadata server's URL, `GCE_METADATA_HOST` honoured.
pub(crate) fn gce_root(env: &Env) -> String {
    let host = env
        .get("GCE_METADATA_HOST")
        .map_or(GCE_METADATA_HOST, String::as_str);
    format!("http://{host}/computeMetadata/v1")
}

pub(crate) async fn gce(env: &Env) -> Option<Gce> {
    let client = http()?;
    let root = gce_root(env);
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), format!("{root}/{path}"));
        async move {
            let r = client
                .get(&url)
                .header("Metadata-Flavor", "Google")
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(%url, error = %e, "no GCE metadata server answered");
                    return None;
                }
            };
            // Only an answer that says it is the metadata server counts (not a captive portal).
            let flavor = r
                .headers()
                .get("Metadata-Flavor")
                .is_some_and(|v| v == "Google");
            if !r.status().is_success() || !flavor {
                return None;
            }
            r.text().await.ok().map(|t| t.trim().to_owned())
        }
    };
    let instance_id = get("instance/id").await?;
    let project_id = get("project/project-id").await?;
    let zone = get("instance/zone").await?;
    Some(Gce {
        project_id,
        instance_id,
        // `projects/123/zones/europe-west1-b`.
        zone: zone.rsplit('/').next().unwrap_or(&zone).to_owned(),
        cluster_name: get("instance/attributes/cluster-name").await,
        cluster_location: get("instance/attributes/cluster-location").await,
    })
}

/// IMDSv2: a session token first, then the instance identity document.
async fn ec2(env: &Env) -> Option<Ec2> {
    let client = http()?;
    let root = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .map_or(IMDS_ENDPOINT, String::as_str)
        .trim_end_matches('/');
    let token = client
        .put(format!("{root}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .map_err(|e| tracing::debug!(error = %e, "no EC2 instance metadata service answered"))
        .ok()?;
    if !token.status().is_success() {
        return None;
    }
    let token = token.text().await.ok()?;
    let doc = client
        .get(format!("{root}/latest/dynamic/instance-identity/document"))
        .header("X-aws-ec2-metadata-token", token.trim())
        .send()
        .await
        .ok()?;
    if !doc.status().is_success() {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_str(&doc.text().await.ok()?).ok()?;
    let field = |k: &str| doc.get(k)?.as_str().map(str::to_owned);
    Some(Ec2 {
        instance_id: field("instanceId")?,
        region: field("region")?,
        account_id: field("accountId")?,
    })
}
