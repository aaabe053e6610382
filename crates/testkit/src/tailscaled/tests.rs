use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::*;

/// The status line and headers (lowercased names) and body of a raw HTTP/1.1 answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET path` with `extra` header lines over `stream` and reads the whole answer. The
/// requests are written by hand so that tests control exactly which headers are present.
async fn get<S>(mut stream: S, path: &str, extra: &[&str]) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status: status.expect("a status"),
        headers,
        body: body.to_owned(),
    }
}

async fn unix(fake: &FakeTailscaled, path: &str, extra: &[&str]) -> Answer {
    let stream = UnixStream::connect(fake.socket_path())
        .await
        .expect("connect to the fake socket");
    get(stream, path, extra).await
}

async fn tcp(fake: &FakeTailscaled, path: &str, extra: &[&str]) -> Answer {
    let stream = TcpStream::connect(fake.addr())
        .await
        .expect("connect to the fake port");
    get(stream, path, extra).await
}

const HOST: &str = "Host: local-tailscaled.sock";

#[tokio::test]
async fn localapi_enforces_host_origin_and_referer() {
    let fake = FakeTailscaled::start();
    let cases: &[(&[&str], u16)] = &[
        (&[HOST], 200),
        (&[], 200), // no Host at all is accepted, like tailscaled
        (&["Host: localhost"], 403),
        (&["Host: 127.0.0.1:41112"], 403),
        (&[HOST, "Origin: http://evil.example"], 403),
        (&[HOST, "Referer: http://evil.example/page"], 403),
    ];
    for (headers, status) in cases {
        let answer = unix(&fake, USERMETRICS_PATH, headers).await;
        assert_eq!(answer.status, *status, "{headers:?}: {answer:?}");
        if *status == 403 {
            assert_eq!(answer.body, "invalid localapi request\n");
            assert_eq!(
                answer.header("tailscale-version"),
                None,
                "refused before the version"
            );
        }
    }
    assert_eq!(fake.requests(), cases.len() as u64);
}

#[tokio::test]
async fn serves_the_same_body_on_both_listeners() {
    let fake = FakeTailscaled::start();
    let mut node = SimNode::new();
    node.send("derp", 1234, 5);
    node.set_version("1.104.2-tabc");
    fake.serve(&node);
    let local = unix(&fake, USERMETRICS_PATH, &[HOST]).await;
    let http = tcp(&fake, "/metrics", &["Host: 127.0.0.1"]).await;
    for answer in [&local, &http] {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, node.render());
        assert_eq!(answer.header("content-type"), Some(DEFAULT_CONTENT_TYPE));
        assert_eq!(answer.header("tailscale-version"), Some("1.104.2-tabc"));
    }
    assert!(fake.url().starts_with("http://127.0.0.1:") && fake.url().ends_with("/metrics"));
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let fake = FakeTailscaled::start();
    assert_eq!(
        unix(&fake, "/localapi/v0/status", &[HOST]).await.status,
        404
    );
    assert_eq!(unix(&fake, "/metrics", &[HOST]).await.status, 404);
    let answer = tcp(&fake, "/", &[]).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, "404 page not found\n")
    );
}

#[tokio::test]
async fn controls_shape_the_answer() {
    let fake = FakeTailscaled::start();
    fake.set_status(500);
    fake.set_body("boom");
    fake.set_content_type(Some("text/html"));
    fake.set_version(None);
    let answer = tcp(&fake, "/metrics", &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (500, "boom"));
    assert_eq!(answer.header("content-type"), Some("text/html"));
    assert_eq!(answer.header("tailscale-version"), None);

    fake.set_content_type(None);
    assert_eq!(
        unix(&fake, USERMETRICS_PATH, &[HOST])
            .await
            .header("content-type"),
        None
    );

    fake.set_status(200);
    fake.set_delay(Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(unix(&fake, USERMETRICS_PATH, &[HOST]).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(fake.requests(), 3);
    assert_eq!(fake.connections(), 3);
}

#[tokio::test]
async fn chunked_answers_carry_no_length() {
    let fake = FakeTailscaled::start();
    let plain = tcp(&fake, "/metrics", &[]).await;
    assert!(plain.header("content-length").is_some());
    fake.set_chunked(true);
    let chunked = tcp(&fake, "/metrics", &[]).await;
    assert_eq!(chunked.header("content-length"), None);
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn drop_stops_serving_and_removes_the_socket() {
    let fake = FakeTailscaled::start();
    let (socket, addr) = (fake.socket_path().to_owned(), fake.addr());
    // From a plain thread, no runtime: the fake serves on its own.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    std::io::Write::write_all(
        &mut stream,
        b"GET /localapi/v0/usermetrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    drop(fake);
    assert!(!socket.exists());
    assert!(std::net::TcpStream::connect(addr).is_err(), "port closed");
}
