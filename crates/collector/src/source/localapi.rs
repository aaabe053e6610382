//! tailscaled's LocalAPI: `GET /localapi/v0/usermetrics` over its unix socket, plus who
//! answered (`SO_PEERCRED` and `/proc`).

use std::future::{Future, poll_fn};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use http::Request;
use http::header::{HOST, USER_AGENT};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{Fetched, SourceError, SourceOptions, SourceSpec, USER_AGENT_VALUE, response};
use crate::TargetInfo;

/// The endpoint; tailscaled ≥ 1.78 serves it.
const PATH: &str = "/localapi/v0/usermetrics";

/// The `Host` the LocalAPI accepts (`apitype.LocalAPIHost`); any other gets 403.
const HOST_VALUE: &str = "local-tailscaled.sock";

/// Reads the socket of one tailscaled. Holds no connection: each fetch dials afresh, so the
/// peer credentials always describe the tailscaled that answered.
#[derive(Debug)]
pub(super) struct LocalApi {
    socket: PathBuf,
    boot_id: Option<String>,
}

impl LocalApi {
    pub(super) fn new(socket: &Path) -> Self {
        // Read once: a reboot restarts tailship too.
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
        let boot_id = boot_id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        LocalApi {
            socket: socket.to_owned(),
            boot_id,
        }
    }

    pub(super) async fn fetch(
        &self,
        spec: &SourceSpec,
        options: &SourceOptions,
    ) -> Result<Fetched, SourceError> {
        let protocol = |source: hyper::Error| SourceError::Protocol {
            endpoint: spec.describe(),
            source: source.into(),
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| SourceError::from_io(spec, e))?;
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|&pid| pid != 0);
        let process_start = match pid {
            Some(pid) => process_start(pid).await,
            None => None,
        };
        let target = TargetInfo {
            version: None,
            pid,
            process_start,
            boot_id: self.boot_id.clone(),
            ..TargetInfo::default()
        };

        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(super::READ_BUFFER)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(protocol)?;
        let request = Request::get(PATH)
            .header(HOST, HOST_VALUE)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(Empty::<Bytes>::new())
            .expect("a constant request is valid");
        let exchange = async {
            let answer = sender.send_request(request).await.map_err(protocol)?;
            response::read(spec, options, answer, target).await
        };
        drive(connection, exchange).await
    }
}

/// Polls `connection` (hyper's I/O task) alongside `exchange` until the exchange is done,
/// without spawning, so it runs on any runtime flavour and never outlives the fetch: when
/// the exchange ends (or the caller's timeout drops this future), the socket is closed.
async fn drive<C, E, T>(connection: C, exchange: E) -> T
where
    C: Future<Output = Result<(), hyper::Error>>,
    E: Future<Output = T>,
{
    let mut connection = pin!(connection);
    let mut exchange = pin!(exchange);
    let mut connection_done = false;
    poll_fn(|cx| {
        if !connection_done && let Poll::Ready(result) = connection.as_mut().poll(cx) {
            connection_done = true;
            if let Err(error) = result {
                // The exchange sees the same failure and reports it.
                tracing::debug!(error = %error, "localapi connection ended");
            }
        }
        exchange.as_mut().poll(cx)
    })
    .await
}

/// The start time of `pid` in clock ticks after boot, or `None` if `/proc/<pid>/stat` is not
/// readable (the PID is not visible in this PID namespace, or the process is gone).
async fn process_start(pid: u32) -> Option<u64> {
    let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
        .await
        .ok()?;
    parse_start_time(&stat)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`. Field 2 is the command name in parentheses
/// and may itself contain spaces and parentheses, so fields are counted after the last `)`:
/// the first one there is field 3.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_after_the_last_paren() {
        let tail = "S 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 4242 1000000 500";
        let cases = [
            (format!("1234 (tailscaled) {tail}"), Some(4242)),
            (format!("1234 (a b) c) (d) {tail}"), Some(4242)),
            (format!("1234 ()) {tail}"), Some(4242)),
            ("1234 (tailscaled) S 1 1".to_owned(), None),
            ("garbage".to_owned(), None),
            (String::new(), None),
        ];
        for (stat, expected) in cases {
            assert_eq!(parse_start_time(&stat), expected, "{stat}");
        }
    }

    #[test]
    fn start_time_of_this_process() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        let field22 = stat.split_whitespace().nth(21).and_then(|f| f.parse().ok());
        assert!(field22.is_some());
        assert_eq!(parse_start_time(&stat), field22);
    }
}
