//! Each answer Cloud Monitoring gives, and the class it gets.

use gcloud_sdk::google::monitoring::v3::create_time_series_summary::Error as SummaryError;
use gcloud_sdk::google::rpc::Status as RpcStatus;
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::prost_types::{Any, Duration as ProtoDuration};
use gcloud_sdk::tonic::codegen::Bytes;

use super::*;

fn status(code: Code, message: &str, details: Vec<Any>) -> Status {
    let rpc = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details,
    };
    Status::with_details(code, message, Bytes::from(rpc.encode_to_vec()))
}

fn summary_any(total: i32, success: i32, errors: &[(Code, &str, i32)]) -> Any {
    let s = CreateTimeSeriesSummary {
        total_point_count: total,
        success_point_count: success,
        errors: errors
            .iter()
            .map(|(code, msg, n)| SummaryError {
                status: Some(RpcStatus {
                    code: *code as i32,
                    message: (*msg).to_owned(),
                    details: Vec::new(),
                }),
                point_count: *n,
            })
            .collect(),
    };
    Any {
        type_url: SUMMARY_TYPE.to_owned(),
        value: s.encode_to_vec(),
    }
}

fn check(status: Status, points: usize, expected: &str) {
    let got = match classify(&status, "proj-1", points) {
        Ok(r) => format!(
            "partial {:?}",
            r.rejected_unattributed
                .iter()
                .map(|(n, r)| format!("{n} {}", r.reason))
                .collect::<Vec<_>>()
        ),
        Err(e) => format!("{}: {e}", e.kind()),
    };
    assert!(
        got.starts_with(expected),
        "{status:?}\n  got {got:?}\n  expected {expected:?}"
    );
}

#[test]
fn a_summary_is_a_partial_success_counted_per_error() {
    let s = status(
        Code::InvalidArgument,
        "One or more TimeSeries could not be written",
        vec![summary_any(
            10,
            7,
            &[
                (
                    Code::InvalidArgument,
                    "Points must be written in order. One or more of the points specified had an older start time than the most recent point.",
                    2,
                ),
                (
                    Code::InvalidArgument,
                    "One or more points were written more frequently than the maximum sampling period configured for the metric.",
                    1,
                ),
            ],
        )],
    );
    check(s, 10, r#"partial ["2 out_of_order", "1 too_frequent"]"#);
    // Failures the summary's errors leave out are still counted.
    let s = status(
        Code::InvalidArgument,
        "x",
        vec![summary_any(
            10,
            5,
            &[(
                Code::InvalidArgument,
                "Field timeSeries[3].metric.labels had an invalid value",
                2,
            )],
        )],
    );
    check(s, 10, r#"partial ["2 invalid_labels", "3 unexplained"]"#);
    // A summary where every point failed is still an answer: nothing to resend.
    let s = status(
        Code::InvalidArgument,
        "x",
        vec![summary_any(
            2,
            0,
            &[(
                Code::InvalidArgument,
                "Value type for metric workload.googleapis.com/x must be DOUBLE, but is INT64.",
                2,
            )],
        )],
    );
    check(s, 2, r#"partial ["2 kind_mismatch"]"#);
}

#[test]
fn every_other_answer_gets_its_class() {
    check(
        status(
            Code::InvalidArgument,
            "Request was missing field name.",
            vec![],
        ),
        3,
        "rejected: rejected: invalid_argument",
    );
    for code in [Code::Unavailable, Code::Internal] {
        check(status(code, "try later", vec![]), 3, "transient");
    }
    for code in [Code::DeadlineExceeded, Code::Cancelled] {
        check(status(code, "no answer", vec![]), 3, "uncertain");
    }
    let retry = Any {
        type_url: RETRY_INFO_TYPE.to_owned(),
        value: RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 5,
                nanos: 0,
            }),
        }
        .encode_to_vec(),
    };
    let s = status(Code::ResourceExhausted, "Quota exceeded", vec![retry]);
    assert_eq!(
        classify(&s, "p", 1),
        Err(SinkError::Throttled {
            retry_after: Some(Duration::from_secs(5)),
            detail: "Quota exceeded".into()
        })
    );
    check(
        status(Code::ResourceExhausted, "Quota exceeded", vec![]),
        1,
        "throttled",
    );
    check(
        status(
            Code::PermissionDenied,
            "Permission monitoring.timeSeries.create denied",
            vec![],
        ),
        1,
        "auth: not authorized: PermissionDenied writing to project proj-1: grant roles/monitoring.metricWriter",
    );
    check(
        status(
            Code::Unauthenticated,
            "Request had invalid authentication credentials.",
            vec![],
        ),
        1,
        "auth",
    );
    check(
        status(
            Code::PermissionDenied,
            "Cloud Monitoring API has not been used in project 123 before or it is disabled.",
            vec![],
        ),
        1,
        "config: misconfigured: the Cloud Monitoring API is not enabled in project proj-1",
    );
    check(
        status(Code::NotFound, "Project not found", vec![]),
        1,
        "config: misconfigured: project proj-1 not found",
    );
    check(status(Code::Unimplemented, "", vec![]), 1, "config");
    check(Status::unknown("transport error"), 1, "transient");
}

/// Cloud Monitoring's messages (and the fake's, which copy them) get stable reasons.
#[test]
fn reasons_from_messages() {
    let cases = [
        (
            "Points must be written in order. One or more of the points specified had an older start time than the most recent point.",
            "out_of_order",
        ),
        (
            "One or more points were written more frequently than the maximum sampling period configured for the metric.",
            "too_frequent",
        ),
        (
            "Field timeSeries[0].points[0].interval.end_time had an invalid value of \"2026-11-20T00:00:00Z\": Data points cannot be written more than 25h in the past.",
            "too_old",
        ),
        (
            "Field timeSeries[0].points[0].interval.end_time had an invalid value: Data points cannot be written more than 5m in the future.",
            "too_new",
        ),
        (
            "Field timeSeries[1] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.",
            "duplicate",
        ),
        (
            "The metric kind of the point (GAUGE) does not match the metric kind of x (CUMULATIVE).",
            "kind_mismatch",
        ),
        (
            "The start time must be before the end time (1, 1) for the non-gauge metric x.",
            "bad_interval",
        ),
        (
            "Field timeSeries[0].metric.labels[2] had an invalid value",
            "invalid_labels",
        ),
        ("Request was missing field name.", "invalid_argument"),
    ];
    for (message, expected) in cases {
        assert_eq!(
            reason(Code::InvalidArgument, message),
            expected,
            "{message}"
        );
    }
}
