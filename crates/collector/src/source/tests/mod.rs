//! Every source against the fake tailscaled (in this process, on its own thread), a file, or
//! an endpoint that is not there. Tests run on tokio's current-thread runtime, as tailship does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tailship_testkit::{DEFAULT_CONTENT_TYPE, DEFAULT_VERSION, FakeTailscaled, SimNode};

use super::*;

mod failures;

#[derive(Clone, Copy, Debug)]
enum Via {
    Unix,
    Http,
}

fn spec(fake: &FakeTailscaled, via: Via) -> SourceSpec {
    match via {
        Via::Unix => SourceSpec::LocalApi {
            socket: fake.socket_path().to_owned(),
        },
        Via::Http => SourceSpec::Http {
            url: fake.url().parse().expect("fake url"),
        },
    }
}

fn options(timeout_ms: u64, max_body: usize) -> SourceOptions {
    SourceOptions {
        timeout: Duration::from_millis(timeout_ms),
        max_body,
    }
}

/// The one place that checks a failure: its `kind()` label and what the message names.
fn check_error(result: Result<Fetched, SourceError>, kind: &str, fragments: &[&str]) {
    let err = result.expect_err(kind);
    let msg = err.to_string();
    assert_eq!(err.kind(), kind, "{msg}");
    for fragment in fragments {
        assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
    }
    assert!(!msg.ends_with('.'), "{msg}");
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tailship-source-{}-{name}", std::process::id()))
}

/// Field 22 of `/proc/self/stat`, read independently of the code under test (this test
/// binary's command name has no spaces).
fn own_start_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat.split_whitespace().nth(21)?.parse().ok()
}

#[tokio::test]
async fn localapi_reads_body_and_who_answered() {
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.send("derp", 5684, 46);
    fake.serve(&node);
    let source = Source::new(spec(&fake, Via::Unix), SourceOptions::default());
    let fetched = source.fetch().await.expect("fetch over the socket");

    assert_eq!(fetched.body, node.render().as_bytes());
    assert_eq!(fetched.content_type.as_deref(), Some(DEFAULT_CONTENT_TYPE));
    let target = &fetched.target;
    assert_eq!(target.version.as_deref(), Some(DEFAULT_VERSION));
    // The fake runs in this process, so the peer is us.
    assert_eq!(target.pid, Some(std::process::id()));
    assert_eq!(target.process_start, own_start_time());
    assert!(target.process_start.is_some());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id");
    assert_eq!(target.boot_id.as_deref(), Some(boot_id.trim()));

    // A fresh connection per fetch: the credentials always describe the current tailscaled.
    source.fetch().await.expect("second fetch");
    assert_eq!((fake.requests(), fake.connections()), (2, 2));
}

#[tokio::test]
async fn http_reads_body_and_version_and_keeps_the_connection() {
    let fake = FakeTailscaled::start();
    fake.set_version(Some("1.96.3-tdeadbeef0-gcafebabe1"));
    let source = Source::new(spec(&fake, Via::Http), SourceOptions::default());
    let fetched = source.fetch().await.expect("fetch over HTTP");

    assert_eq!(fetched.body, SimNode::new().render().as_bytes());
    let expected = TargetInfo {
        version: Some("1.96.3-tdeadbeef0-gcafebabe1".into()),
        ..Default::default()
    };
    assert_eq!(fetched.target, expected);

    source.fetch().await.expect("second fetch");
    assert_eq!(
        (fake.requests(), fake.connections()),
        (2, 1),
        "the pooled connection is reused"
    );
}

#[tokio::test]
async fn accepted_content_types() {
    let fake = FakeTailscaled::start();
    for content_type in [
        None,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ] {
        fake.set_content_type(content_type);
        for via in [Via::Unix, Via::Http] {
            let fetched = Source::new(spec(&fake, via), SourceOptions::default())
                .fetch()
                .await;
            let fetched = fetched.unwrap_or_else(|e| panic!("{via:?} {content_type:?}: {e}"));
            assert_eq!(fetched.content_type.as_deref(), content_type);
        }
    }
}

fn write_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = temp_path(name);
    std::fs::write(&path, contents).expect("write the metrics file");
    path
}

async fn fetch_file(path: &Path, max_body: usize) -> Result<Fetched, SourceError> {
    Source::new(
        SourceSpec::File {
            path: path.to_owned(),
        },
        options(5000, max_body),
    )
    .fetch()
    .await
}

#[tokio::test]
async fn files() {
    let body = SimNode::new().render();
    let path = write_file("metrics.prom", body.as_bytes());
    let fetched = fetch_file(&path, 1 << 20).await.expect("read the file");
    assert_eq!(fetched.body, body.as_bytes());
    assert_eq!(
        (fetched.target, fetched.content_type),
        (TargetInfo::default(), None)
    );

    let len = body.len();
    assert_eq!(
        fetch_file(&path, len)
            .await
            .expect("exactly at the limit")
            .body
            .len(),
        len
    );
    check_error(
        fetch_file(&path, len - 1).await,
        "too_large",
        &[&path.display().to_string(), "max_body"],
    );
    std::fs::remove_file(&path).expect("remove");

    check_error(
        fetch_file(&path, len).await,
        "file_missing",
        &["tailscale metrics write"],
    );
    let dir = std::env::temp_dir();
    check_error(fetch_file(&dir, len).await, "io", &["is a directory"]);
}
