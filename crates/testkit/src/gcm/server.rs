//! The fake's gRPC plumbing: tonic's server building blocks over gcloud-sdk's messages
//! (gcloud-sdk ships client stubs only).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gcloud_sdk::google::api::{LabelDescriptor, MonitoredResourceDescriptor};
use gcloud_sdk::google::monitoring::v3::create_time_series_summary::Error as SummaryError;
use gcloud_sdk::google::monitoring::v3::{
    CreateTimeSeriesRequest, CreateTimeSeriesSummary, GetMonitoredResourceDescriptorRequest,
};
use gcloud_sdk::google::rpc::{RetryInfo, Status as RpcStatus};
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::prost_types::{Any, Duration as ProtoDuration};
use gcloud_sdk::tonic::body::Body;
use gcloud_sdk::tonic::codegen::tokio_stream::StreamExt as _;
use gcloud_sdk::tonic::codegen::{Bytes, Service, http};
use gcloud_sdk::tonic::server::{Grpc, NamedService, UnaryService};
use gcloud_sdk::tonic::transport::Server;
use gcloud_sdk::tonic::transport::server::TcpIncoming;
use gcloud_sdk::tonic::{Code, Request, Response, Status};
use tokio::sync::oneshot;
use tonic_prost::ProstCodec;

use super::rules;
use super::{GcmFault, GcmRequest, State};
use crate::Arrival;

type Shared = Arc<Mutex<State>>;

pub(super) fn run(listener: std::net::TcpListener, state: Shared, stopped: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fake MetricService's runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
        // Not a graceful shutdown: that would wait for clients to hang up, and a client on
        // a test's runtime cannot while the test drops the fake. Dropping the runtime ends
        // every connection.
        let incoming = TcpIncoming::from(listener).map({
            let state = Arc::clone(&state);
            move |accepted| {
                if accepted.is_ok() {
                    lock(&state).connections += 1;
                }
                accepted
            }
        });
        let serve = Server::builder().serve_with_incoming(MetricService(state), incoming);
        tokio::select! {
            _ = stopped => {}
            _ = serve => {}
        }
    });
}

#[derive(Clone)]
struct MetricService(Shared);

impl NamedService for MetricService {
    const NAME: &'static str = "google.monitoring.v3.MetricService";
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for MetricService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> BoxFuture {
        let state = Arc::clone(&self.0);
        match req.uri().path() {
            "/google.monitoring.v3.MetricService/CreateTimeSeries" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<(), CreateTimeSeriesRequest>::default());
                Ok(grpc.unary(Create(state), req).await)
            }),
            "/google.monitoring.v3.MetricService/GetMonitoredResourceDescriptor" => {
                Box::pin(async move {
                    let mut grpc = Grpc::new(ProstCodec::<
                        MonitoredResourceDescriptor,
                        GetMonitoredResourceDescriptorRequest,
                    >::default());
                    Ok(grpc.unary(Describe(state), req).await)
                })
            }
            path => {
                let status = Status::unimplemented(format!("the fake does not serve {path}"));
                Box::pin(ready(Ok(status.into_http())))
            }
        }
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A status with `details` packed the way Google APIs pack them (a `google.rpc.Status`).
fn with_details(code: Code, message: String, details: Vec<Any>) -> Status {
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details,
    };
    Status::with_details(code, message, Bytes::from(rpc.encode_to_vec()))
}

fn injected(code: Code) -> Status {
    let details = if code == Code::ResourceExhausted {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 1,
                nanos: 0,
            }),
        };
        vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }]
    } else {
        Vec::new()
    };
    with_details(code, format!("injected {code:?}"), details)
}

struct Create(Shared);

impl UnaryService<CreateTimeSeriesRequest> for Create {
    type Response = ();
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Status>> + Send>>;

    fn call(&mut self, request: Request<CreateTimeSeriesRequest>) -> Self::Future {
        let at = SystemTime::now();
        let request = request.into_inner();
        let newest = request
            .time_series
            .iter()
            .flat_map(|ts| &ts.points)
            .filter_map(|p| p.interval.as_ref()?.end_time.as_ref())
            .filter_map(|t| {
                let since =
                    Duration::new(u64::try_from(t.seconds).ok()?, u32::try_from(t.nanos).ok()?);
                Some(UNIX_EPOCH + since)
            })
            .max();
        let points = request.time_series.len();
        let (answer, delay) = {
            let mut state = lock(&self.0);
            let delay = state.answer_delay;
            let answer = create(&mut state, request);
            let accepted = state.requests.last().is_some_and(|r| r.code == Code::Ok);
            state.arrivals.push(Arrival {
                at,
                points,
                accepted,
                newest,
            });
            (answer, delay)
        };
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            answer.into_inner()
        })
    }
}

/// One `CreateTimeSeries` against the stored state.
fn create(state: &mut State, req: CreateTimeSeriesRequest) -> Ready<Result<Response<()>, Status>> {
    {
        let n = req.time_series.len();
        if let Some(code) = state.outage {
            state.requests.push(GcmRequest {
                series: n,
                written: 0,
                code,
            });
            return ready(Err(injected(code)));
        }
        let (refuse, message) = match state.faults.pop_front() {
            Some(GcmFault::Status(code)) => {
                state.requests.push(GcmRequest {
                    series: n,
                    written: 0,
                    code,
                });
                return ready(Err(injected(code)));
            }
            Some(GcmFault::Partial { refuse, message }) => (refuse, message),
            None => (0, String::new()),
        };
        if let Err(message) = rules::check_request(&req) {
            state.requests.push(GcmRequest {
                series: n,
                written: 0,
                code: Code::InvalidArgument,
            });
            return ready(Err(Status::invalid_argument(message)));
        }
        let outcome = rules::apply(state, &req, refuse, &message);
        let code = if outcome.refused.is_empty() {
            Code::Ok
        } else {
            Code::InvalidArgument
        };
        state.requests.push(GcmRequest {
            series: n,
            written: outcome.written,
            code,
        });
        if outcome.refused.is_empty() {
            return ready(Ok(Response::new(())));
        }
        // Cloud Monitoring counts the failures per error, without saying which points.
        let mut by_message: BTreeMap<&str, i32> = BTreeMap::new();
        for (_, m) in &outcome.refused {
            *by_message.entry(m.as_str()).or_default() += 1;
        }
        let summary = CreateTimeSeriesSummary {
            total_point_count: i32::try_from(n).unwrap_or(i32::MAX),
            success_point_count: i32::try_from(outcome.written).unwrap_or(i32::MAX),
            errors: by_message
                .iter()
                .map(|(m, count)| SummaryError {
                    status: Some(RpcStatus {
                        code: Code::InvalidArgument as i32,
                        message: (*m).to_owned(),
                        details: Vec::new(),
                    }),
                    point_count: *count,
                })
                .collect(),
        };
        let (first, first_message) = &outcome.refused[0];
        let status = with_details(
            Code::InvalidArgument,
            format!(
                "One or more TimeSeries could not be written: {first_message}: timeSeries[{first}]"
            ),
            vec![Any {
                type_url: "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary".into(),
                value: summary.encode_to_vec(),
            }],
        );
        ready(Err(status))
    }
}

/// The labels of the resource types user-defined metrics may be written against
/// (<https://cloud.google.com/monitoring/api/resources>).
fn resource_labels(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "k8s_container" => &[
            "project_id",
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ],
        "gce_instance" => &["project_id", "instance_id", "zone"],
        "aws_ec2_instance" => &["project_id", "instance_id", "region", "aws_account"],
        "generic_node" => &["project_id", "location", "namespace", "node_id"],
        "generic_task" => &["project_id", "location", "namespace", "job", "task_id"],
        "global" => &["project_id"],
        _ => return None,
    })
}

struct Describe(Shared);

impl UnaryService<GetMonitoredResourceDescriptorRequest> for Describe {
    type Response = MonitoredResourceDescriptor;
    type Future = Ready<Result<Response<MonitoredResourceDescriptor>, Status>>;

    fn call(&mut self, request: Request<GetMonitoredResourceDescriptorRequest>) -> Self::Future {
        if let Some(GcmFault::Status(code)) = lock(&self.0).faults.pop_front() {
            return ready(Err(injected(code)));
        }
        let name = request.into_inner().name;
        let kind = name
            .strip_prefix("projects/")
            .and_then(|rest| rest.split_once("/monitoredResourceDescriptors/"))
            .map(|(_, kind)| kind);
        let Some((kind, labels)) = kind.and_then(|k| Some((k, resource_labels(k)?))) else {
            return ready(Err(Status::not_found(format!(
                "The resource descriptor {name} does not exist."
            ))));
        };
        ready(Ok(Response::new(MonitoredResourceDescriptor {
            name: name.clone(),
            r#type: kind.to_owned(),
            labels: labels
                .iter()
                .map(|k| LabelDescriptor {
                    key: (*k).to_owned(),
                    ..LabelDescriptor::default()
                })
                .collect(),
            ..MonitoredResourceDescriptor::default()
        })))
    }
}
