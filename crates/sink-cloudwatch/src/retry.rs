//! Error classification, and nothing else: what a failed PutMetricData means for the driver.
//! The SDK's own retries are off (see `client.rs`); the driver retries, once, for everyone.

use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use tailship_sink::{Rejection, SinkError};

/// Codes that mean the request's content is wrong: retrying the same datums cannot help.
const REJECTED: &[(&str, &str)] = &[
    ("InvalidParameterValue", "invalid_parameter"),
    (
        "InvalidParameterCombination",
        "invalid_parameter_combination",
    ),
    ("MissingParameter", "missing_parameter"),
    ("InvalidParameterInput", "invalid_parameter"),
    ("ValidationError", "validation"),
    ("SerializationException", "serialization"),
    ("MalformedInput", "malformed_input"),
];

/// Codes that mean the caller is not who it says or may not do this.
const AUTH: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "NotAuthorized",
    "UnrecognizedClient",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
];

/// Where the default credentials chain looks, for messages.
pub(crate) const CHAIN: &str = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared profile \
(AWS_PROFILE), IRSA web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), the ECS \
container endpoint, EC2 instance metadata (IMDSv2)";

/// Classifies a failed call. `namespace` goes into the permission hint.
pub(crate) fn classify(
    err: &SdkError<PutMetricDataError, HttpResponse>,
    namespace: &str,
) -> SinkError {
    if let Some(c) = credentials_error(err) {
        return SinkError::Auth(format!(
            "no usable AWS credentials ({}); tailship looks in {CHAIN}",
            chain_text(c)
        ));
    }
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let inner = e.err();
            service_error(status, inner.code(), inner.message(), namespace)
        }
        // The request may have been written: the driver must know (a delta may count twice).
        SdkError::TimeoutError(_) => SinkError::Uncertain(format!(
            "no answer within [sinks.cloudwatch] timeout: {}",
            chain_text(err)
        )),
        SdkError::DispatchFailure(d) if d.is_timeout() => SinkError::Uncertain(format!(
            "no answer within [sinks.cloudwatch] timeout: {}",
            chain_text(err)
        )),
        SdkError::DispatchFailure(d) if d.is_user() => SinkError::Config(format!(
            "the request could not be sent: {}; check [sinks.cloudwatch] endpoint and region",
            chain_text(err)
        )),
        SdkError::DispatchFailure(_) => {
            SinkError::Transient(format!("connection failed: {}", chain_text(err)))
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let text = format!("unreadable answer (HTTP {status}): {}", chain_text(err));
            if (200..300).contains(&status) {
                SinkError::Uncertain(text)
            } else if (400..500).contains(&status) {
                SinkError::Config(format!(
                    "{text}; is [sinks.cloudwatch] endpoint CloudWatch?"
                ))
            } else {
                SinkError::Transient(text)
            }
        }
        SdkError::ConstructionFailure(_) => SinkError::Config(format!(
            "the request could not be built: {}",
            chain_text(err)
        )),
        _ => SinkError::Transient(chain_text(err)),
    }
}

/// An error code and status from CloudWatch, classified.
pub(crate) fn service_error(
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    namespace: &str,
) -> SinkError {
    let code_text = code.unwrap_or("no error code");
    let detail = format!(
        "{code_text} (HTTP {status}): {}",
        message.unwrap_or("no message")
    );
    let code = code.unwrap_or_default();
    if THROTTLING_ERRORS.contains(&code) || status == 429 {
        return SinkError::Throttled {
            retry_after: None,
            detail,
        };
    }
    if AUTH.contains(&code) || status == 401 || status == 403 {
        return SinkError::Auth(format!(
            "{detail}; the credentials need cloudwatch:PutMetricData allowed for the namespace \
             {namespace:?} (IAM condition cloudwatch:namespace), see the README's IAM policy"
        ));
    }
    if TRANSIENT_ERRORS.contains(&code) || status >= 500 {
        return SinkError::Transient(detail);
    }
    if let Some((_, reason)) = REJECTED.iter().find(|(c, _)| *c == code) {
        return SinkError::Rejected(Rejection { reason, detail });
    }
    if status == 413 {
        return SinkError::Rejected(Rejection {
            reason: "request_too_large",
            detail,
        });
    }
    // An unknown 4xx (a wrong endpoint's 404, an unknown operation): keep the points and
    // say where to look, rather than drop data on a guess.
    SinkError::Config(format!(
        "{detail}; check [sinks.cloudwatch] endpoint and region"
    ))
}

fn credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CredentialsError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        next = e.source();
    }
    None
}

/// An error and its sources, `: `-joined, without repeats.
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, code: &str, expected: &str) {
        let got = match service_error(status, Some(code), Some("msg"), "Tailscale") {
            SinkError::Rejected(r) => format!("rejected {}", r.reason),
            other => other.kind().to_owned(),
        };
        assert_eq!(got, expected, "{status} {code}");
    }

    #[test]
    fn codes_and_statuses() {
        check(400, "Throttling", "throttled");
        check(400, "ThrottlingException", "throttled");
        check(400, "RequestLimitExceeded", "throttled");
        check(429, "", "throttled");
        check(500, "InternalServiceError", "transient");
        check(503, "ServiceUnavailable", "transient");
        check(400, "RequestTimeout", "transient");
        check(400, "InvalidParameterValue", "rejected invalid_parameter");
        check(
            400,
            "InvalidParameterCombination",
            "rejected invalid_parameter_combination",
        );
        check(400, "MissingParameter", "rejected missing_parameter");
        check(413, "", "rejected request_too_large");
        check(403, "AccessDenied", "auth");
        check(400, "AccessDenied", "auth");
        check(403, "UnrecognizedClient", "auth");
        check(403, "InvalidClientTokenId", "auth");
        check(400, "ExpiredToken", "auth");
        check(404, "UnknownOperationException", "config");
        check(400, "SomethingNew", "config");
    }

    #[test]
    fn auth_names_the_permission_and_the_namespace() {
        let err = service_error(
            403,
            Some("AccessDenied"),
            Some("not authorized"),
            "Tailscale",
        );
        let text = err.to_string();
        assert!(text.contains("cloudwatch:PutMetricData"), "{text}");
        assert!(text.contains("cloudwatch:namespace"), "{text}");
        assert!(text.contains("\"Tailscale\""), "{text}");
        assert!(text.contains("not authorized"), "{text}");
    }
}
