//! Failures: answers that are not metrics, limits, timeouts, and nobody listening.

use std::time::Duration;

use tailship_testkit::FakeTailscaled;

use super::*;

#[tokio::test]
async fn answers_that_are_not_metrics() {
    type Setup = fn(&FakeTailscaled);
    let cases: &[(&str, Setup, Via, &str, &[&str])] = &[
        (
            "403 local",
            |f| f.set_status(403),
            Via::Unix,
            "forbidden",
            &["403", "Origin or Referer"],
        ),
        (
            "403 http",
            |f| f.set_status(403),
            Via::Http,
            "forbidden",
            &["403", "proxy"],
        ),
        (
            "404 local",
            |f| f.set_status(404),
            Via::Unix,
            "not_found",
            &["(tailscaled 1.102.0", "v1.78"],
        ),
        (
            "404 http",
            |f| f.set_status(404),
            Via::Http,
            "not_found",
            &["TS_ENABLE_METRICS=true", "/metrics?"],
        ),
        (
            "500",
            |f| {
                f.set_status(500);
                f.set_body("no backend\nmore");
            },
            Via::Unix,
            "status",
            &[
                "answered 500 Internal Server Error (\"no backend\")",
                "logs",
            ],
        ),
        (
            "503",
            |f| {
                f.set_status(503);
                f.set_body("");
            },
            Via::Http,
            "status",
            &["503 Service Unavailable: "],
        ),
        (
            "502 from a proxy, long html",
            |f| {
                f.set_status(502);
                f.set_content_type(Some("text/html"));
                f.set_body(format!("\n<html>\n{}", "x".repeat(5000)));
            },
            Via::Http,
            "status",
            &["502 Bad Gateway (\"<html>\")"],
        ),
        (
            "html",
            |f| f.set_content_type(Some("text/html; charset=utf-8")),
            Via::Http,
            "wrong_content",
            &["\"text/html; charset=utf-8\"", "login page"],
        ),
        (
            "json",
            |f| f.set_content_type(Some("application/json")),
            Via::Unix,
            "wrong_content",
            &["application/json"],
        ),
    ];
    for (name, setup, via, kind, fragments) in cases {
        let fake = FakeTailscaled::start();
        setup(&fake);
        let result = Source::new(spec(&fake, *via), SourceOptions::default())
            .fetch()
            .await;
        let endpoint = match via {
            Via::Unix => fake.socket_path().display().to_string(),
            Via::Http => fake.url(),
        };
        check_error(
            result,
            kind,
            &[fragments, &[endpoint.as_str()][..]].concat(),
        );
        assert_eq!(fake.requests(), 1, "{name}");
    }
}

#[tokio::test]
async fn a_wrong_http_path_is_404() {
    let fake = FakeTailscaled::start();
    let url = fake.url().replace("/metrics", "/debug/vars");
    let source = Source::new(
        SourceSpec::Http {
            url: url.parse().expect("url"),
        },
        SourceOptions::default(),
    );
    check_error(
        source.fetch().await,
        "not_found",
        &[&url, "is the path /metrics?"],
    );
}

#[tokio::test]
async fn bodies_over_the_limit() {
    let fake = FakeTailscaled::start();
    fake.set_body(vec![b'#'; 1001]);
    for chunked in [false, true] {
        fake.set_chunked(chunked);
        for via in [Via::Unix, Via::Http] {
            let result = Source::new(spec(&fake, via), options(5000, 1000))
                .fetch()
                .await;
            check_error(result, "too_large", &["exceeds 1000 bytes", "max_body"]);
            let fetched = Source::new(spec(&fake, via), options(5000, 1001))
                .fetch()
                .await;
            assert_eq!(
                fetched.expect("exactly at the limit").body.len(),
                1001,
                "{via:?} {chunked}"
            );
        }
    }
}

#[tokio::test]
async fn slow_answers_time_out() {
    let fake = FakeTailscaled::start();
    fake.set_delay(Duration::from_secs(5));
    for via in [Via::Unix, Via::Http] {
        let started = std::time::Instant::now();
        let result = Source::new(spec(&fake, via), options(200, 1 << 20))
            .fetch()
            .await;
        check_error(result, "timeout", &["within 200ms", "[source] timeout"]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{via:?}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn nobody_there() {
    let missing = temp_path("missing-dir").join("tailscaled.sock");
    let stale = temp_path("stale.sock");
    let _ = std::fs::remove_file(&stale);
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");

    let cases: Vec<(SourceSpec, &str, Vec<String>)> = vec![
        (
            SourceSpec::LocalApi {
                socket: missing.clone(),
            },
            "socket_missing",
            vec![
                missing.display().to_string(),
                "is tailscaled running?".into(),
                "TS_SOCKET".into(),
            ],
        ),
        (
            SourceSpec::LocalApi {
                socket: stale.clone(),
            },
            "connect",
            vec![
                stale.display().to_string(),
                "connection refused".into(),
                "stale socket".into(),
            ],
        ),
        (
            SourceSpec::Http {
                url: format!("http://{closed_port}/metrics")
                    .parse()
                    .expect("url"),
            },
            "connect",
            vec![
                format!("http://{closed_port}/metrics"),
                "connection refused".into(),
            ],
        ),
    ];
    for (spec, kind, fragments) in cases {
        let fragments: Vec<&str> = fragments.iter().map(String::as_str).collect();
        check_error(
            Source::new(spec, SourceOptions::default()).fetch().await,
            kind,
            &fragments,
        );
    }
    let _ = std::fs::remove_file(&stale);
}

#[tokio::test]
async fn a_socket_that_does_not_speak_http() {
    let path = temp_path("garbage.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"SSH-2.0-OpenSSH_9.6\r\n")
            .await
            .expect("write");
    });
    let source = Source::new(
        SourceSpec::LocalApi {
            socket: path.clone(),
        },
        SourceOptions::default(),
    );
    check_error(
        source.fetch().await,
        "protocol",
        &["HTTP exchange", &path.display().to_string()],
    );
    server.await.expect("server");
    let _ = std::fs::remove_file(&path);
}
