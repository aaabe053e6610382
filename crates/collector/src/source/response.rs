//! Turning an HTTP answer (LocalAPI or plain HTTP) into a [`Fetched`] body or a [`SourceError`].

use std::pin::pin;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;

use super::error::BoxError;
use super::{Fetched, SourceError, SourceOptions, SourceSpec, hint};
use crate::TargetInfo;

/// The header tailscaled puts on every LocalAPI answer (and the metrics endpoints copy).
const VERSION_HEADER: &str = "tailscale-version";

/// How much of an error body to quote in the error message.
const EXCERPT_CHARS: usize = 200;

/// Reads `response` within `options.max_body`, after checking its status and content type.
pub(super) async fn read<B>(
    spec: &SourceSpec,
    options: &SourceOptions,
    response: Response<B>,
    mut target: TargetInfo,
) -> Result<Fetched, SourceError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let endpoint = || spec.describe();
    target.version = header(&parts.headers, VERSION_HEADER);
    let content_type = header(&parts.headers, CONTENT_TYPE.as_str());

    if !parts.status.is_success() {
        return Err(status_error(spec, parts.status, target.version, body).await);
    }
    if let Some(content_type) = content_type.as_deref().filter(|ct| !is_metrics_text(ct)) {
        let content_type = content_type.to_owned();
        return Err(SourceError::WrongContent {
            endpoint: endpoint(),
            content_type,
        });
    }
    let declared = header(&parts.headers, CONTENT_LENGTH.as_str()).and_then(|l| l.parse().ok());
    if declared.is_some_and(|len: u64| len > options.max_body as u64) {
        return Err(SourceError::TooLarge {
            endpoint: endpoint(),
            limit: options.max_body,
        });
    }
    // Read into one buffer of the declared length, each frame copied as it comes and
    // dropped: joining the frames at the end held them all (hyper's read buffers) and then a
    // copy, twice the body, allocated afresh every scrape.
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0));
    let mut buf = Vec::with_capacity(capacity);
    let mut body = pin!(Limited::new(body, options.max_body));
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
            }
            Err(err) if err.is::<LengthLimitError>() => {
                return Err(SourceError::TooLarge {
                    endpoint: endpoint(),
                    limit: options.max_body,
                });
            }
            Err(source) => {
                return Err(SourceError::Protocol {
                    endpoint: endpoint(),
                    source,
                });
            }
        }
    }
    let body = Bytes::from(buf);
    Ok(Fetched {
        body,
        target,
        content_type,
        debug: None,
    })
}

/// Whether a `Content-Type` is one a metrics endpoint sends: Prometheus text 0.0.4 is
/// `text/plain; version=0.0.4`, OpenMetrics is `application/openmetrics-text; …`.
fn is_metrics_text(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    ["text/plain", "application/openmetrics-text"]
        .iter()
        .any(|m| media.eq_ignore_ascii_case(m))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The error for a non-2xx answer, quoting the start of its body (tailscaled explains itself
/// in one line, e.g. "invalid localapi request").
async fn status_error<B>(
    spec: &SourceSpec,
    status: StatusCode,
    version: Option<String>,
    body: B,
) -> SourceError
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let endpoint = spec.describe();
    match status {
        StatusCode::FORBIDDEN => {
            let hint = hint::forbidden(spec);
            SourceError::Forbidden {
                endpoint,
                body: excerpt(body).await,
                hint,
            }
        }
        StatusCode::NOT_FOUND => SourceError::NotFound {
            endpoint,
            version,
            hint: hint::not_found(spec),
        },
        status => SourceError::Status {
            endpoint,
            status,
            body: excerpt(body).await,
        },
    }
}

/// The first line of an error body, cut to [`EXCERPT_CHARS`]; empty when unreadable. Reads
/// only the start of the body: a proxy's HTML page can be long.
async fn excerpt<B>(body: B) -> String
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut start = Vec::new();
    while start.len() < 4 * EXCERPT_CHARS {
        match body.frame().await {
            Some(Ok(frame)) => start.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
            Some(Err(_)) | None => break,
        }
    }
    let text = String::from_utf8_lossy(&start);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    line.unwrap_or_default()
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_content_types() {
        let cases = [
            ("text/plain; version=0.0.4; charset=utf-8", true),
            ("text/plain;version=0.0.4;charset=utf-8", true),
            ("Text/Plain", true),
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                true,
            ),
            ("text/html; charset=utf-8", false),
            ("application/json", false),
            ("text/plainx", false),
            ("", false),
        ];
        for (content_type, ok) in cases {
            assert_eq!(is_metrics_text(content_type), ok, "{content_type}");
        }
    }
}
