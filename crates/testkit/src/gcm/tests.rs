//! The fake keeps Cloud Monitoring's rules: each rule broken once, through a real gRPC client.

use std::time::{SystemTime, UNIX_EPOCH};

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google::monitoring::v3::{
    CreateTimeSeriesRequest, CreateTimeSeriesSummary, GetMonitoredResourceDescriptorRequest, Point,
    TimeInterval, TimeSeries, TypedValue, typed_value,
};
use gcloud_sdk::google::rpc::Status as RpcStatus;
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::prost_types::Timestamp;
use gcloud_sdk::tonic::Status;

use super::*;

/// One instant for the whole test binary, so that "50 s ago" means the same in every call.
fn now() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

fn stamp(ms: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ms / 1000,
        nanos: (ms % 1000 * 1_000_000) as i32,
    })
}

/// A cumulative INT64 point of `name{path=p}` over (start, end] in ms before now.
fn cumulative(name: &str, path: &str, start_ago: i64, end_ago: i64, v: i64) -> TimeSeries {
    let now = now();
    TimeSeries {
        metric: Some(Metric {
            r#type: format!("workload.googleapis.com/{name}"),
            labels: [("path".to_owned(), path.to_owned())].into(),
        }),
        resource: Some(MonitoredResource {
            r#type: "global".into(),
            labels: [("project_id".to_owned(), "p".to_owned())].into(),
        }),
        metric_kind: MetricKind::Cumulative as i32,
        value_type: ValueType::Int64 as i32,
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: stamp(now - start_ago),
                end_time: stamp(now - end_ago),
            }),
            value: Some(TypedValue {
                value: Some(typed_value::Value::Int64Value(v)),
            }),
        }],
        unit: "By".into(),
        ..TimeSeries::default()
    }
}

async fn send(fake: &FakeMetricService, series: Vec<TimeSeries>) -> Result<(), Status> {
    let mut client = MetricServiceClient::connect(fake.endpoint())
        .await
        .expect("connect");
    let req = CreateTimeSeriesRequest {
        name: "projects/p".into(),
        time_series: series,
    };
    client.create_time_series(req).await.map(|_| ())
}

fn summary(status: &Status) -> CreateTimeSeriesSummary {
    let rpc = RpcStatus::decode(status.details()).expect("google.rpc.Status details");
    CreateTimeSeriesSummary::decode(rpc.details[0].value.as_slice()).expect("a summary")
}

/// Sends one request and says what came back: `ok`, or the code, the summary's counts and
/// the first error's message.
async fn check(fake: &FakeMetricService, series: Vec<TimeSeries>, expected: &str) {
    let got = match send(fake, series).await {
        Ok(()) => "ok".to_owned(),
        Err(s) if s.code() == Code::InvalidArgument && !s.details().is_empty() => {
            let sum = summary(&s);
            let first = sum.errors[0]
                .status
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            format!(
                "partial {}/{} {first}",
                sum.success_point_count, sum.total_point_count
            )
        }
        Err(s) => format!("{:?} {}", s.code(), s.message()),
    };
    assert!(
        got.starts_with(expected),
        "got {got:?}, expected {expected:?}"
    );
}

#[tokio::test]
async fn every_rule_is_enforced_and_the_valid_rest_is_written() {
    let fake = FakeMetricService::start();
    let x = "tailscale.bytes.sent.total";
    check(&fake, vec![cumulative(x, "derp", 60_000, 50_000, 10)], "ok").await;
    // Not newer than the last point, then closer than 10 s to it.
    check(
        &fake,
        vec![cumulative(x, "derp", 60_000, 50_000, 11)],
        "partial 0/1 Points must be written in order",
    )
    .await;
    check(
        &fake,
        vec![cumulative(x, "derp", 60_000, 45_000, 11)],
        "partial 0/1 One or more points were written more frequently",
    )
    .await;
    // A cumulative value going down under the same start; a new start inside the last interval.
    check(
        &fake,
        vec![cumulative(x, "derp", 60_000, 40_000, 9)],
        "partial 0/1 The cumulative value of a point went down",
    )
    .await;
    check(
        &fake,
        vec![cumulative(x, "derp", 55_000, 40_000, 1)],
        "partial 0/1 The new start time",
    )
    .await;
    // An older start; a zero-length interval; an end 26 h old; one series twice.
    check(
        &fake,
        vec![cumulative(x, "derp", 70_000, 40_000, 20)],
        "partial 0/1 Points must be written in order",
    )
    .await;
    check(
        &fake,
        vec![cumulative(x, "direct", 1_000, 1_000, 1)],
        "partial 0/1 The start time must be before the end time",
    )
    .await;
    check(
        &fake,
        vec![cumulative(x, "old", 26 * 3_600_000 + 1, 26 * 3_600_000, 1)],
        "partial 0/1 Field timeSeries[].points[0].interval.end_time had an invalid value",
    )
    .await;
    let twice = vec![
        cumulative(x, "a", 9_000, 8_000, 1),
        cumulative(x, "a", 9_000, 7_000, 2),
    ];
    check(
        &fake,
        twice,
        "partial 1/2 Field timeSeries[1] had an invalid value: Duplicate",
    )
    .await;
    // A gauge on a cumulative metric type; the valid point beside it is written.
    let mut gauge = cumulative(x, "b", 0, 0, 1);
    gauge.metric_kind = MetricKind::Gauge as i32;
    gauge.points[0].interval = Some(TimeInterval {
        start_time: None,
        end_time: stamp(now()),
    });
    check(
        &fake,
        vec![gauge, cumulative(x, "c", 9_000, 8_000, 4)],
        "partial 1/2 The metric kind of the point (GAUGE)",
    )
    .await;
    // A new start after the last end, and 201 series at once.
    check(&fake, vec![cumulative(x, "derp", 39_000, 20_000, 3)], "ok").await;
    let many = (0..201)
        .map(|i| cumulative(x, &i.to_string(), 9_000, 8_000, 1))
        .collect();
    check(
        &fake,
        many,
        "InvalidArgument Field timeSeries had an invalid value: the request holds 201",
    )
    .await;

    let stored = fake.stored();
    let derp = stored
        .keys()
        .find(|s| s.labels["path"] == "derp")
        .expect("derp stored");
    assert_eq!(stored[derp].len(), 2);
    assert_eq!(fake.rejections().len(), 9);
    // Read as Cloud Monitoring reads it: 10 under the first start, 3 under the second.
    assert_eq!(fake.increase()[derp], 13);
    let d = &fake.descriptors()["workload.googleapis.com/tailscale.bytes.sent.total"];
    assert_eq!(
        d,
        &("CUMULATIVE".to_owned(), "INT64".to_owned(), "By".to_owned())
    );
    let last = fake.requests().pop().expect("requests");
    assert_eq!(
        (last.series, last.written, last.code),
        (201, 0, Code::InvalidArgument)
    );
}

#[tokio::test]
async fn faults_are_injected_once_each() {
    let fake = FakeMetricService::start();
    let x = "tailscale.packets.sent.total";
    fake.inject(GcmFault::Status(Code::Unavailable));
    fake.inject(GcmFault::Status(Code::ResourceExhausted));
    fake.inject(GcmFault::Partial {
        refuse: 1,
        message: "injected refusal".into(),
    });
    check(
        &fake,
        vec![cumulative(x, "a", 9_000, 8_000, 1)],
        "Unavailable",
    )
    .await;
    let s = send(&fake, vec![cumulative(x, "a", 9_000, 8_000, 1)])
        .await
        .expect_err("throttled");
    assert_eq!(s.code(), Code::ResourceExhausted);
    let rpc = RpcStatus::decode(s.details()).expect("details");
    assert_eq!(
        rpc.details[0].type_url,
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    check(
        &fake,
        vec![
            cumulative(x, "a", 9_000, 8_000, 1),
            cumulative(x, "b", 9_000, 8_000, 2),
        ],
        "partial 1/2 injected refusal",
    )
    .await;
    check(&fake, vec![cumulative(x, "a", 9_000, 8_000, 1)], "ok").await;
    let written: Vec<usize> = fake.requests().iter().map(|r| r.written).collect();
    assert_eq!(written, vec![0, 0, 1, 1]);
}

#[tokio::test]
async fn resource_descriptors_are_served() {
    let fake = FakeMetricService::start();
    let mut client = MetricServiceClient::connect(fake.endpoint())
        .await
        .expect("connect");
    let get = |name: &str| GetMonitoredResourceDescriptorRequest { name: name.into() };
    let d = client
        .get_monitored_resource_descriptor(get(
            "projects/p/monitoredResourceDescriptors/generic_node",
        ))
        .await
        .expect("generic_node")
        .into_inner();
    let keys: Vec<&str> = d.labels.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["project_id", "location", "namespace", "node_id"]);
    let missing = client
        .get_monitored_resource_descriptor(get("projects/p/monitoredResourceDescriptors/vm"))
        .await
        .expect_err("vm");
    assert_eq!(missing.code(), Code::NotFound);
    fake.inject(GcmFault::Status(Code::PermissionDenied));
    let denied = client
        .get_monitored_resource_descriptor(get("projects/p/monitoredResourceDescriptors/global"))
        .await
        .expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn arrivals_and_connections_are_counted_and_history_may_be_let_go() {
    let fake = FakeMetricService::start();
    let x = "tailscale.bytes.sent.total";
    let request = |series| CreateTimeSeriesRequest {
        name: "projects/p".into(),
        time_series: series,
    };
    let mut client = MetricServiceClient::connect(fake.endpoint())
        .await
        .expect("connect");
    let two = vec![
        cumulative(x, "derp", 60_000, 50_000, 10),
        cumulative(x, "direct_ipv4", 60_000, 50_000, 1),
    ];
    client.create_time_series(request(two)).await.expect("both");
    fake.set_keep_history(false);
    let newer = vec![cumulative(x, "derp", 60_000, 30_000, 20)];
    client
        .create_time_series(request(newer))
        .await
        .expect("newer");
    // A second connection, and a point older than the newest kept: still refused.
    check(
        &fake,
        vec![cumulative(x, "derp", 60_000, 40_000, 30)],
        "partial 0/1",
    )
    .await;

    assert_eq!(fake.connections(), 2);
    let arrivals = fake.arrivals();
    let ago = |ms: i64| Some(UNIX_EPOCH + std::time::Duration::from_millis((now() - ms) as u64));
    let seen: Vec<_> = arrivals
        .iter()
        .map(|a| (a.points, a.accepted, a.newest))
        .collect();
    assert_eq!(
        seen,
        [
            (2, true, ago(50_000)),
            (1, true, ago(30_000)),
            (1, false, ago(40_000))
        ]
    );
    assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
    let counts: Vec<usize> = fake.stored().values().map(Vec::len).collect();
    assert_eq!(
        counts,
        [1, 1],
        "only the newest point of each series is kept"
    );
}
