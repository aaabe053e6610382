//! ministack and the AWS SDK for the tests that read CloudWatch data back: included with
//! `#[path = "common/aws.rs"] mod aws;` by the tests that need it, so the others do not
//! build the SDK's client code.

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use crate::common::{temp_dir, wait_until};

/// ministack on a free loopback port, started from the project's `.venv`, killed on drop.
pub struct Ministack {
    child: Child,
    pub endpoint: String,
}

impl Ministack {
    pub fn start() -> Self {
        let bin = std::env::var_os("TAILSHIP_MINISTACK").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/ministack"),
            PathBuf::from,
        );
        assert!(
            bin.exists(),
            "ministack is not installed at {}: run ./scripts/test, which installs it into .venv \
             (or set TAILSHIP_MINISTACK to a ministack executable)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = temp_dir("ministack").join("ministack.log");
        let child = Command::new(&bin)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("LOG_LEVEL", "WARNING")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(log.with_extension("err")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        wait_until("ministack to answer", Duration::from_secs(60), || {
            healthy(port)
        });
        eprintln!("ministack ready in {:?} on {endpoint}", started.elapsed());
        Self { child, endpoint }
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether ministack's health endpoint answers 200.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /_ministack/health HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// `Sum` of one metric over the last hours, read back through the SDK.
pub fn read_sum(
    rt: &tokio::runtime::Runtime,
    cw: &aws_sdk_cloudwatch::Client,
    ns: &str,
    name: &str,
    dims: &[(String, String)],
) -> f64 {
    let now = std::time::SystemTime::now();
    let dims: Vec<Dimension> = dims
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect();
    let out = rt
        .block_on(
            cw.get_metric_statistics()
                .namespace(ns)
                .metric_name(name)
                .set_dimensions(Some(dims))
                .start_time(DateTime::from(now - Duration::from_secs(3 * 3600)))
                .end_time(DateTime::from(now + Duration::from_secs(3600)))
                .period(60)
                .statistics(Statistic::Sum)
                .send(),
        )
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}

pub fn reader(endpoint: &str) -> (tokio::runtime::Runtime, aws_sdk_cloudwatch::Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTAILSHIPTEST",
            "test",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    (rt, aws_sdk_cloudwatch::Client::from_conf(config))
}

/// `name{k=v,…}` (the truth's key) → catalog name and dimensions.
pub fn split_key(key: &str) -> (String, Vec<(String, String)>) {
    let Some((name, dims)) = key.split_once('{') else {
        return (key.to_owned(), Vec::new());
    };
    let dims = dims.trim_end_matches('}').split(',').map(|kv| {
        let (k, v) = kv.split_once('=').unwrap();
        (k.to_owned(), v.to_owned())
    });
    (name.to_owned(), dims.collect())
}
