//! The fake's server thread: HTTP/1.1 on loopback, answering the way CloudWatch answers
//! the Smithy RPC v2 CBOR protocol (errors as CBOR maps with `__type`, plus the awsQuery
//! compatible `x-amzn-query-error` header the SDK reads the code from).

use std::convert::Infallible;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::rules::{Refusal, judge};
use super::{FakeCloudWatch, Fault, PUT_METRIC_DATA_PATH, PutRequest, Shared};
use crate::Arrival;

pub(super) fn run(tcp: std::net::TcpListener, shared: Arc<Shared>, stopped: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fake CloudWatch's runtime");
    runtime.block_on(async move {
        let tcp = tokio::net::TcpListener::from_std(tcp).expect("register the listener");
        let accept = async {
            while let Ok((stream, _)) = tcp.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(answer(&shared, request).await) }
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

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST || request.uri().path() != PUT_METRIC_DATA_PATH {
        let message = format!(
            "no operation at {} {}",
            request.method(),
            request.uri().path()
        );
        return refuse(&Refusal {
            status: 404,
            code: "UnknownOperationException",
            message,
        });
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let at = SystemTime::now();
    let headers = request.headers().clone();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("smithy-protocol") != "rpc-v2-cbor"
        || header(CONTENT_TYPE.as_str()) != "application/cbor"
    {
        let message =
            "expected smithy-protocol: rpc-v2-cbor and Content-Type: application/cbor".to_owned();
        return record(
            shared,
            at,
            Refusal {
                status: 400,
                code: "MalformedInput",
                message,
            },
        );
    }
    // SigV4 for the `monitoring` service; the signature itself is not verified.
    let auth = header(AUTHORIZATION.as_str());
    if !(auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        && auth.contains("/monitoring/aws4_request"))
    {
        let message = "Request is missing Authentication Token".to_owned();
        return record(
            shared,
            at,
            Refusal {
                status: 403,
                code: "MissingAuthenticationToken",
                message,
            },
        );
    }
    let (fault, now) = {
        let mut state = shared.state();
        (
            state.next.pop_front().or(state.outage),
            state.now.unwrap_or_else(SystemTime::now),
        )
    };
    let body = match request.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return refuse(&Refusal {
                status: 400,
                code: "MalformedInput",
                message: "body".into(),
            });
        }
    };
    if let Some(fault) = fault {
        let refusal = match fault {
            Fault::Throttling => Refusal { status: 400, code: "Throttling", message: "Rate exceeded".into() },
            Fault::InternalError => Refusal { status: 500, code: "InternalServiceError", message: "Internal error".into() },
            Fault::Hang => {
                tokio::time::sleep(FakeCloudWatch::HANG).await;
                Refusal { status: 500, code: "InternalServiceError", message: "hung".into() }
            }
            Fault::InvalidParameterValue => Refusal {
                status: 400,
                code: "InvalidParameterValue",
                message: "The value for parameter MetricData.member.1.Value is invalid (injected)".into(),
            },
            Fault::AccessDenied => Refusal {
                status: 403,
                code: "AccessDenied",
                message: "User: arn:aws:iam::000000000000:user/test is not authorized to perform: cloudwatch:PutMetricData".into(),
            },
        };
        return record(shared, at, refusal);
    }
    let gzip = header(CONTENT_ENCODING.as_str())
        .split(',')
        .any(|e| e.trim() == "gzip");
    let cbor = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            let message = "Content-Encoding: gzip, but the body is not gzip".to_owned();
            return record(
                shared,
                at,
                Refusal {
                    status: 400,
                    code: "MalformedInput",
                    message,
                },
            );
        }
        out
    } else {
        body.to_vec()
    };
    match judge(&cbor, now) {
        Ok((namespace, datums, diagnostic)) => {
            let newest = datums
                .iter()
                .filter_map(|d| d.timestamp)
                .reduce(f64::max)
                .and_then(|t| Duration::try_from_secs_f64(t).ok())
                .map(|t| UNIX_EPOCH + t);
            let answer_delay = {
                let mut state = shared.state();
                let answer_delay = state.answer_delay;
                state.arrivals.push(Arrival {
                    at,
                    points: datums.len(),
                    accepted: true,
                    newest,
                });
                if !state.forget_accepted {
                    state.accepted.push(PutRequest {
                        namespace,
                        datums,
                        gzip,
                        wire_bytes: body.len(),
                        cbor_bytes: cbor.len(),
                        diagnostic,
                        answer_delay,
                    });
                }
                answer_delay
            };
            if !answer_delay.is_zero() {
                tokio::time::sleep(answer_delay).await;
            }
            Response::builder()
                .header(CONTENT_TYPE, "application/cbor")
                .header("smithy-protocol", "rpc-v2-cbor")
                .body(Full::new(Bytes::from_static(&[0xa0])))
                .expect("static headers are valid")
        }
        Err(refusal) => record(shared, at, refusal),
    }
}

/// Keeps a refusal (and the request's arrival), then answers it.
fn record(shared: &Shared, at: SystemTime, refusal: Refusal) -> Response<Full<Bytes>> {
    let mut state = shared.state();
    state.arrivals.push(Arrival {
        at,
        points: 0,
        accepted: false,
        newest: None,
    });
    state.refused.push((
        refusal.status,
        refusal.code.to_owned(),
        refusal.message.clone(),
    ));
    drop(state);
    refuse(&refusal)
}

/// The error answer: a CBOR map with `__type` (the modeled shape where there is one) and
/// `message`, and `x-amzn-query-error: Code;Sender|Receiver`.
fn refuse(r: &Refusal) -> Response<Full<Bytes>> {
    let shape = match r.code {
        "InvalidParameterValue" => "com.amazonaws.cloudwatch#InvalidParameterValueException",
        "InvalidParameterCombination" => {
            "com.amazonaws.cloudwatch#InvalidParameterCombinationException"
        }
        "MissingParameter" => "com.amazonaws.cloudwatch#MissingRequiredParameterException",
        "InternalServiceError" => "com.amazonaws.cloudwatch#InternalServiceFault",
        other => other,
    };
    let fault = if r.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let body = ciborium::Value::Map(vec![
        ("__type".into(), shape.into()),
        ("message".into(), r.message.as_str().into()),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&body, &mut bytes).expect("writing CBOR to memory");
    Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST))
        .header(CONTENT_TYPE, "application/cbor")
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("x-amzn-query-error", format!("{};{fault}", r.code))
        .body(Full::new(Bytes::from(bytes)))
        .expect("static headers are valid")
}
