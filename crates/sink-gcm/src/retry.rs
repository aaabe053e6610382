//! What a Cloud Monitoring answer means for the driver. Classification only: the driver
//! decides what to do with each class.

use std::time::Duration;

use gcloud_sdk::google::monitoring::v3::CreateTimeSeriesSummary;
use gcloud_sdk::google::rpc::{RetryInfo, Status as RpcStatus};
use gcloud_sdk::prost::Message as _;
use gcloud_sdk::tonic::{Code, Status};
use tailship_sink::{Rejection, Report, SinkError};

/// The role whose `monitoring.timeSeries.create` permission tailship needs.
pub const ROLE: &str = "roles/monitoring.metricWriter";

const SUMMARY_TYPE: &str = "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary";
const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// Classifies a failed `CreateTimeSeries` of `points` points to project `project`.
///
/// `INVALID_ARGUMENT` with a `CreateTimeSeriesSummary` is a partial success: the rest of the
/// request was written, so it must not be sent again; the summary counts the failures per
/// error, without saying which points.
pub(crate) fn classify(status: &Status, project: &str, points: usize) -> Result<Report, SinkError> {
    let message = status.message();
    match status.code() {
        Code::InvalidArgument => match summary(status) {
            Some(s) => Ok(partial(&s, points)),
            None => Err(SinkError::Rejected(Rejection {
                reason: reason(Code::InvalidArgument, message),
                detail: message.to_owned(),
            })),
        },
        Code::Unavailable | Code::Internal | Code::Aborted => Err(SinkError::Transient(format!(
            "{:?}: {message}",
            status.code()
        ))),
        // No answer in time: the points may have been written (the driver then spaces the
        // next running total as if they had been).
        Code::DeadlineExceeded | Code::Cancelled => Err(SinkError::Uncertain(format!(
            "{:?}: {message}",
            status.code()
        ))),
        Code::ResourceExhausted => Err(SinkError::Throttled {
            retry_after: retry_after(status),
            detail: message.to_owned(),
        }),
        Code::PermissionDenied
            if message.contains("has not been used") || message.contains("is disabled") =>
        {
            Err(SinkError::Config(format!(
                "the Cloud Monitoring API is not enabled in project {project}: enable monitoring.googleapis.com ({message})"
            )))
        }
        Code::PermissionDenied | Code::Unauthenticated => Err(SinkError::Auth(format!(
            "{:?} writing to project {project}: grant {ROLE} on the project to the service account tailship runs as ({message})",
            status.code()
        ))),
        Code::NotFound => Err(SinkError::Config(format!(
            "project {project} not found: check [sinks.gcm] project_id ({message})"
        ))),
        Code::Unimplemented => Err(SinkError::Config(format!(
            "the endpoint does not serve google.monitoring.v3.MetricService: check [sinks.gcm] endpoint ({message})"
        ))),
        Code::Unknown => Err(unknown(status)),
        code => Err(SinkError::Rejected(Rejection {
            reason: reason(code, message),
            detail: message.to_owned(),
        })),
    }
}

/// `Unknown` is what tonic makes of errors below gRPC: a token that could not be had, a
/// connection that failed.
fn unknown(status: &Status) -> SinkError {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<gcloud_sdk::error::Error>() {
            use gcloud_sdk::error::ErrorKind;
            return match e.kind() {
                ErrorKind::Credentials(c) if c.is_transient() => {
                    SinkError::Transient(format!("getting a token: {c}"))
                }
                ErrorKind::Credentials(_)
                | ErrorKind::CredentialsBuild(_)
                | ErrorKind::CryptoProviderMissing => SinkError::Auth(format!(
                    "no usable credentials ({e}): give tailship Application Default Credentials (Workload Identity, the instance's service account, or GOOGLE_APPLICATION_CREDENTIALS) with {ROLE}"
                )),
                _ => SinkError::Transient(e.to_string()),
            };
        }
        source = e.source();
    }
    SinkError::Transient(status.message().to_owned())
}

/// The `CreateTimeSeriesSummary` in a status' details, if there is one.
pub(crate) fn summary(status: &Status) -> Option<CreateTimeSeriesSummary> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|a| a.type_url == SUMMARY_TYPE)
        .and_then(|a| CreateTimeSeriesSummary::decode(a.value.as_slice()).ok())
}

fn retry_after(status: &Status) -> Option<Duration> {
    let details = RpcStatus::decode(status.details()).ok()?;
    let info = details
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE)
        .and_then(|a| RetryInfo::decode(a.value.as_slice()).ok())?;
    let d = info.retry_delay?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    Some(Duration::new(secs, nanos))
}

/// The points the summary says failed, counted per error; the others were written.
fn partial(s: &CreateTimeSeriesSummary, points: usize) -> Report {
    let count = |n: i32| usize::try_from(n).unwrap_or(0);
    let mut rejected_unattributed: Vec<(usize, Rejection)> = s
        .errors
        .iter()
        .filter(|e| e.point_count > 0)
        .map(|e| {
            let (code, message) = e.status.as_ref().map_or((Code::Unknown, ""), |st| {
                (Code::from(st.code), st.message.as_str())
            });
            (
                count(e.point_count),
                Rejection {
                    reason: reason(code, message),
                    detail: message.to_owned(),
                },
            )
        })
        .collect();
    // Failures the errors do not account for still failed: count them, never lose them.
    let failed = points.saturating_sub(count(s.success_point_count));
    let explained: usize = rejected_unattributed.iter().map(|(n, _)| n).sum();
    if failed > explained {
        rejected_unattributed.push((
            failed - explained,
            Rejection {
                reason: "unexplained",
                detail: format!(
                    "{} of {} points written, the summary explains {explained} failures",
                    s.success_point_count, s.total_point_count
                ),
            },
        ));
    }
    Report {
        rejected: Vec::new(),
        rejected_unattributed,
    }
}

/// A short stable label for a refused point, from Cloud Monitoring's message.
pub(crate) fn reason(code: Code, message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("written in order") || m.contains("older") && m.contains("point") {
        "out_of_order"
    } else if m.contains("more frequently than the maximum sampling period") {
        "too_frequent"
    } else if m.contains("in the past") {
        "too_old"
    } else if m.contains("in the future") {
        "too_new"
    } else if m.contains("duplicate") || m.contains("only one point") {
        "duplicate"
    } else if m.contains("metric kind") || m.contains("value type") {
        "kind_mismatch"
    } else if m.contains("start time") || m.contains("end time") || m.contains("interval") {
        "bad_interval"
    } else if m.contains("label") {
        "invalid_labels"
    } else {
        match code {
            Code::InvalidArgument => "invalid_argument",
            Code::FailedPrecondition => "failed_precondition",
            Code::OutOfRange => "out_of_range",
            Code::AlreadyExists => "already_exists",
            _ => "rejected",
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
