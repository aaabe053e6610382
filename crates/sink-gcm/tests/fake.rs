//! The production client against the fake `MetricService` over real gRPC on 127.0.0.1:
//! batching through the driver, every answer class, `check`, and resource detection
//! against a fake metadata server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gcloud_sdk::tonic::Code;
use tailship_model::{CounterPoint, Dimensions, GaugePoint, Series, Timestamp, Unit};
use tailship_sink::{Driver, DriverConfig, Sink, SinkError};
use tailship_sink_gcm::{Config, GcmSink, ResourceConfig};
use tailship_testkit::{
    Ec2Identity, FakeInstanceMetadata, FakeMetricService, GceIdentity, GcmFault,
};

const PROJECT: &str = "test-project";

fn config(fake: &FakeMetricService, resource: bool) -> Config {
    Config {
        project_id: Some(PROJECT.into()),
        endpoint: fake.endpoint(),
        breakdowns: vec!["*".into()],
        resource: resource.then(|| ResourceConfig {
            kind: "generic_node".into(),
            labels: BTreeMap::from([
                ("location".into(), "test".into()),
                ("namespace".into(), "e2e".into()),
                ("node_id".into(), "n1".into()),
            ]),
        }),
        ..Config::default()
    }
}

/// Only loopback fakes are ever asked: every metadata address points at `meta`.
fn env(meta: &FakeInstanceMetadata, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::from([
        ("GCE_METADATA_HOST".into(), meta.host()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), meta.url()),
    ]);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    move |k| vars.get(k).cloned()
}

async fn sink(fake: &FakeMetricService) -> GcmSink {
    let none = FakeInstanceMetadata::start(None, None);
    GcmSink::new(config(fake, true), env(&none, &[]), BTreeMap::new())
        .await
        .unwrap()
}

fn counters(n: usize, end: Timestamp) -> Vec<CounterPoint> {
    (0..n)
        .map(|i| CounterPoint {
            series: Arc::new(Series {
                name: "tailscale.packets.sent.total".into(),
                dimensions: Dimensions::new([("path", format!("p{i}"))]),
                unit: Unit::Count,
            }),
            start: Timestamp::from_millis(end.as_millis() - 60_000),
            end,
            delta: i as u64,
            cumulative: 1_000 + i as u64,
        })
        .collect()
}

/// 450 series go in the fewest requests, all written, and read back as sent.
#[tokio::test]
async fn a_flush_takes_the_fewest_requests() {
    let fake = FakeMetricService::start();
    let sink = sink(&fake).await;
    let mut driver = Driver::new(
        &sink,
        DriverConfig {
            max_in_flight: 8,
            ..DriverConfig::default()
        },
    );
    let now = Timestamp::now();
    let gauge = GaugePoint {
        series: Arc::new(Series {
            name: "tailscale.routes.advertised".into(),
            dimensions: Dimensions::none(),
            unit: Unit::Count,
        }),
        at: now,
        value: 2.0,
    };
    driver.push(&sink, &counters(449, now), &[gauge], now);
    let mut sends = Vec::new();
    while let Some(batch) = driver.take_batch(&sink, now, false) {
        sends.push((batch.id, sink.send(batch.points)));
    }
    for (id, send) in sends {
        let result = send.await;
        driver.complete(id, result, now);
    }
    let sizes: Vec<(usize, usize)> = fake
        .requests()
        .iter()
        .map(|r| (r.series, r.written))
        .collect();
    assert_eq!(sizes, [(200, 200), (200, 200), (50, 50)]);
    assert_eq!(driver.stats().points_sent, 450);
    assert!(fake.rejections().is_empty());
    let totals: u64 = fake.increase().values().sum();
    assert_eq!(totals, (0..449).map(|i| 1_000 + i).sum::<u64>());
    let d = fake.descriptors();
    assert_eq!(
        d["workload.googleapis.com/tailscale.packets.sent.total"],
        ("CUMULATIVE".into(), "INT64".into(), "1".into())
    );
    assert_eq!(
        d["workload.googleapis.com/tailscale.routes.advertised"],
        ("GAUGE".into(), "DOUBLE".into(), "1".into())
    );
}

/// Every answer class through the real client.
#[tokio::test]
async fn answers_are_classified() {
    let fake = FakeMetricService::start();
    let sink = sink(&fake).await;
    let now = Timestamp::now();
    let mut driver = Driver::new(&sink, DriverConfig::default());
    driver.push(&sink, &counters(5, now), &[], now);
    let points = driver
        .take_batch(&sink, now, false)
        .unwrap()
        .points
        .to_vec();

    fake.inject(GcmFault::Status(Code::Unavailable));
    assert!(matches!(
        sink.send(&points).await,
        Err(SinkError::Transient(_))
    ));
    fake.inject(GcmFault::Status(Code::ResourceExhausted));
    match sink.send(&points).await {
        Err(SinkError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("{other:?}"),
    }
    fake.inject(GcmFault::Status(Code::PermissionDenied));
    match sink.send(&points).await {
        Err(SinkError::Auth(m)) => assert!(m.contains("roles/monitoring.metricWriter"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Two refused with Cloud Monitoring's ordering message, three written.
    fake.inject(GcmFault::Partial {
        refuse: 2,
        message: "Points must be written in order. One or more of the points specified had an older start time than the most recent point.".into(),
    });
    let report = sink.send(&points).await.unwrap();
    assert!(report.rejected.is_empty());
    assert_eq!(report.rejected_unattributed.len(), 1);
    assert_eq!(report.rejected_unattributed[0].0, 2);
    assert_eq!(report.rejected_unattributed[0].1.reason, "out_of_order");
    assert_eq!(fake.stored().len(), 3);
    // Sending the same points again breaks the ordering rule for the three written.
    let report = sink.send(&points).await.unwrap();
    let reasons: Vec<(usize, &str)> = report
        .rejected_unattributed
        .iter()
        .map(|(n, r)| (*n, r.reason))
        .collect();
    assert_eq!(reasons, [(3, "out_of_order")]);
}

#[tokio::test]
async fn check_verifies_without_writing() {
    let fake = FakeMetricService::start();
    let sink = sink(&fake).await;
    let ok = sink.check().await.unwrap();
    assert!(ok.contains("project test-project reachable"), "{ok}");
    assert!(
        ok.contains("generic_node{location=test,namespace=e2e,node_id=n1,project_id=test-project}"),
        "{ok}"
    );
    fake.inject(GcmFault::Status(Code::PermissionDenied));
    match sink.check().await {
        Err(SinkError::Auth(m)) => assert!(m.contains("roles/monitoring.metricWriter"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.requests().is_empty(), "check wrote nothing");
}

/// GKE pod, GCE instance, EC2 instance, anything else: each gets its resource, and the
/// project comes from the metadata server when not configured.
#[tokio::test]
async fn the_resource_is_detected() {
    let fake = FakeMetricService::start();
    let gke = FakeInstanceMetadata::start(
        Some(GceIdentity {
            project_id: "meta-project".into(),
            instance_id: "4242".into(),
            zone: "europe-west1-b".into(),
            cluster_name: Some("prod".into()),
            cluster_location: Some("europe-west1".into()),
        }),
        None,
    );
    let mut c = config(&fake, false);
    c.project_id = None;
    let pod = [
        ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ("POD_NAME", "ts-0"),
        ("POD_NAMESPACE", "tailscale"),
        ("CONTAINER_NAME", "tailship"),
    ];
    let s = GcmSink::new(c.clone(), env(&gke, &pod), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(s.project(), "meta-project");
    assert_eq!(
        s.resource().to_string(),
        "k8s_container{cluster_name=prod,container_name=tailship,location=europe-west1,namespace_name=tailscale,pod_name=ts-0,project_id=meta-project}"
    );
    let s = GcmSink::new(c.clone(), env(&gke, &[]), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        s.resource().to_string(),
        "gce_instance{instance_id=4242,project_id=meta-project,zone=europe-west1-b}"
    );

    let ec2 = FakeInstanceMetadata::start(
        None,
        Some(Ec2Identity {
            instance_id: "i-0abc".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }),
    );
    // Off Google Cloud the project must be given.
    let err = GcmSink::new(c.clone(), env(&ec2, &[]), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("[sinks.gcm] project_id"), "{err}");
    let s = GcmSink::new(
        c.clone(),
        env(&ec2, &[("GOOGLE_CLOUD_PROJECT", "env-project")]),
        BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.resource().to_string(),
        "aws_ec2_instance{aws_account=123456789012,instance_id=i-0abc,project_id=env-project,region=aws:us-east-1}"
    );
    let s = GcmSink::new(
        config(&fake, false),
        env(&ec2, &[("AWS_EC2_METADATA_DISABLED", "true")]),
        BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(s.resource().kind, "generic_node");
    assert!(!s.resource().labels["node_id"].is_empty());
}
