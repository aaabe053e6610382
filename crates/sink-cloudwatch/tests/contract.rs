//! The sink against the CloudWatch contract fake, over real HTTP: the exact request (a
//! snapshot of the CBOR body the SDK sends), gzip, error classification, `check`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{counter, gauge, series, sink};
use tailship_model::Unit;
use tailship_sink::{Sink, SinkError};
use tailship_sink_cloudwatch::{Config, MAX_REQUEST_BYTES};
use tailship_testkit::Fault;

/// Compares `actual` with the committed file `tests/snapshots/NAME`; `UPDATE_SNAPSHOTS=1`
/// rewrites it instead.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs (UPDATE_SNAPSHOTS=1 rewrites it)"
    );
}

#[tokio::test]
async fn the_request_the_sdk_sends() {
    let fake = common::fake_at_t();
    let sink = sink(&fake, |c| {
        c.dimensions.insert("cluster".into(), "prod".into());
    })
    .await;
    let derp = series(
        "tailscale.bytes.sent.total",
        &[("path", "derp")],
        Unit::Bytes,
    );
    let points = [
        counter(
            series("tailscale.bytes.sent.total", &[], Unit::Bytes),
            &[1200],
        ),
        counter(derp, &[700, 0, 500]),
        gauge(
            series("tailscale.derp.home_region", &[], Unit::None),
            &[7.0],
        ),
        gauge(
            series(
                "tailscale.health.messages",
                &[("type", "warning")],
                Unit::Count,
            ),
            &[0.0, 2.0],
        ),
    ];
    sink.send(&points).await.unwrap();
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(!accepted[0].gzip, "a small request goes uncompressed");
    snapshot("put_metric_data.txt", &accepted[0].diagnostic);
}

#[tokio::test]
async fn large_requests_are_gzipped_and_the_size_bound_holds() {
    let fake = common::fake_at_t();
    let sink = sink(&fake, |c| c.breakdowns = vec!["*".into()]).await;
    let points: Vec<_> = (0..1000)
        .map(|i| {
            let reason = format!("reason-{i:04}-{}", "x".repeat(i % 97));
            counter(
                series(
                    "tailscale.packets.received.dropped.total",
                    &[("reason", &reason)],
                    Unit::Count,
                ),
                &[i as u64, 1],
            )
        })
        .collect();
    sink.send(&points).await.unwrap();
    let sent = &fake.accepted()[0];
    assert!(sent.gzip, "{} bytes should be gzipped", sent.cbor_bytes);
    assert!(sent.wire_bytes < sent.cbor_bytes / 2);
    assert_eq!(sent.datums.len(), 1000);
    let bound: usize = points.iter().map(|p| sink.encoded_size(p)).sum();
    let overhead = MAX_REQUEST_BYTES - sink.limits().max_bytes;
    assert!(
        sent.cbor_bytes <= bound + overhead,
        "{} > {bound} + {overhead}",
        sent.cbor_bytes
    );
    assert!(
        bound < sent.cbor_bytes * 2,
        "the bound is not absurdly loose"
    );
}

#[tokio::test]
async fn every_failure_is_classified() {
    let fake = common::fake_at_t();
    let sink = sink(&fake, |c| c.timeout = Duration::from_secs(1)).await;
    let points = [counter(
        series("tailscale.bytes.sent.total", &[], Unit::Bytes),
        &[1],
    )];
    let cases = [
        (Fault::Throttling, "throttled"),
        (Fault::InternalError, "transient"),
        (Fault::Hang, "uncertain"),
        (Fault::InvalidParameterValue, "rejected"),
        (Fault::AccessDenied, "auth"),
    ];
    for (fault, expected) in cases {
        fake.fail_next(fault, 1);
        let err = sink.send(&points).await.unwrap_err();
        assert_eq!(err.kind(), expected, "{fault:?}: {err}");
        if let SinkError::Rejected(r) = &err {
            assert_eq!(r.reason, "invalid_parameter");
            assert!(r.detail.contains("InvalidParameterValue"), "{r}");
        }
        if let SinkError::Auth(text) = &err {
            assert!(
                text.contains("cloudwatch:PutMetricData") && text.contains("\"Tailscale\""),
                "{text}"
            );
        }
    }
    // One attempt per send: the SDK does not retry behind the driver's back.
    assert_eq!(fake.requests(), cases.len() as u64);
    assert!(fake.accepted().is_empty());
    sink.send(&points).await.unwrap();
    assert_eq!(fake.datums().len(), 1);

    // Nobody listening; a path that is not CloudWatch.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = common::sink_at(format!("http://{closed}"), |_| {}).await;
    assert_eq!(nobody.send(&points).await.unwrap_err().kind(), "transient");
    let elsewhere = common::sink_at(format!("{}/not-cloudwatch", fake.endpoint()), |_| {}).await;
    assert_eq!(elsewhere.send(&points).await.unwrap_err().kind(), "config");
}

#[tokio::test]
async fn missing_credentials_are_an_auth_error_naming_the_chain() {
    let fake = common::fake_at_t();
    let sink = common::sink_without_credentials(&fake).await;
    let points = [counter(
        series("tailscale.bytes.sent.total", &[], Unit::Bytes),
        &[1],
    )];
    let err = sink.send(&points).await.unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
    assert!(
        err.to_string().contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{err}"
    );
    let err = sink.check().await.unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn check_verifies_without_writing() {
    let fake = common::fake_at_t();
    let sink = sink(&fake, |_| {}).await;
    let text = sink.check().await.unwrap();
    assert!(
        text.contains("region us-east-1") && text.contains("namespace \"Tailscale\""),
        "{text}"
    );
    assert!(text.contains("refused as empty"), "{text}");
    assert_eq!(fake.requests(), 1);
    assert!(fake.datums().is_empty());
    fake.fail_next(Fault::AccessDenied, 1);
    let err = sink.check().await.unwrap_err();
    assert_eq!(err.kind(), "auth");
    assert!(err.to_string().contains("cloudwatch:namespace"), "{err}");
}

#[tokio::test]
async fn a_point_cloudwatch_cannot_take_is_refused_alone() {
    let fake = common::fake_at_t();
    let sink = sink(&fake, |_: &mut Config| {}).await;
    let points = [
        counter(series("tailscale.bytes.sent.total", &[], Unit::Bytes), &[5]),
        gauge(series("tailscale.x", &[], Unit::None), &[f64::NAN]),
    ];
    let report = sink.send(&points).await.unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(
        (report.rejected[0].0, report.rejected[0].1.reason),
        (1, "invalid_value")
    );
    assert_eq!(fake.sums().get("tailscale.bytes.sent.total"), Some(&5.0));
}

#[tokio::test]
async fn selection_is_the_aggregates_and_the_configured_breakdowns() {
    let fake = common::fake_at_t();
    let default = sink(&fake, |_| {}).await;
    let all = sink(&fake, |c| c.breakdowns = vec!["*".into()]).await;
    let none = sink(&fake, |c| c.breakdowns = Vec::new()).await;
    let cases = [
        (
            series("tailscale.bytes.sent.total", &[], Unit::Bytes),
            [true, true, true],
        ),
        (
            series(
                "tailscale.bytes.sent.total",
                &[("path", "derp")],
                Unit::Bytes,
            ),
            [true, true, false],
        ),
        (
            series(
                "tailscale.packets.received.dropped.total",
                &[("reason", "acl")],
                Unit::Count,
            ),
            [false, true, false],
        ),
        (
            series("tailscale.routes.advertised", &[], Unit::Count),
            [true, true, true],
        ),
    ];
    for (s, expected) in cases {
        let got = [default.selects(&s), all.selects(&s), none.selects(&s)];
        assert_eq!(got, expected, "{s}");
    }
}
