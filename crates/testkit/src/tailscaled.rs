//! A fake tailscaled: the LocalAPI usermetrics endpoint on a real unix socket, and the same
//! body over HTTP on `127.0.0.1`, with every part of the answer under the test's control.

mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::oneshot;

use crate::SimNode;
use server::{Reply, Shared};

/// The content type tailscaled's usermetrics handler sends.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The debug endpoint's path (`tailscaled --debug=ADDR:PORT`).
pub const DEBUG_PATH: &str = "/debug/metrics";

/// The LocalAPI path tailship reads.
pub const USERMETRICS_PATH: &str = "/localapi/v0/usermetrics";

/// A fake tailscaled serving usermetrics on a unix socket (LocalAPI rules: `Host` must be
/// `local-tailscaled.sock` or empty, any `Origin` or `Referer` gets 403) and on
/// `http://127.0.0.1:PORT/metrics`.
///
/// It runs on its own thread and tokio runtime, so it serves async tests in this process
/// and a tailship binary started as a child process alike. Dropping it stops the server and
/// removes the socket. Controls take `&self` and apply from the next request on.
#[derive(Debug)]
pub struct FakeTailscaled {
    shared: Arc<Shared>,
    dir: PathBuf,
    socket: PathBuf,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeTailscaled {
    /// Starts serving a fresh [`SimNode`] (all counters 0) on a new socket in the temp
    /// directory and on an ephemeral loopback port. Both accept connections on return.
    pub fn start() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tailship-fake-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fake tailscaled's socket directory");
        let socket = dir.join("tailscaled.sock");
        let unix = std::os::unix::net::UnixListener::bind(&socket).expect("bind the fake socket");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake HTTP port");
        let addr = tcp.local_addr().expect("the fake HTTP port's address");
        unix.set_nonblocking(true)
            .expect("nonblocking unix listener");
        tcp.set_nonblocking(true).expect("nonblocking tcp listener");

        let node = SimNode::new();
        let shared = Arc::new(Shared {
            reply: Mutex::new(Reply {
                body: node.render().into(),
                status: StatusCode::OK,
                content_type: Some(DEFAULT_CONTENT_TYPE.to_owned()),
                version: Some(node.version().to_owned()),
                delay: Duration::ZERO,
                chunked: false,
                debug_body: node.render_debug().into(),
            }),
            requests: AtomicU64::new(0),
            debug_requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-tailscaled".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || server::run(unix, tcp, shared, stopped)
            })
            .expect("spawn the fake tailscaled thread");
        FakeTailscaled {
            shared,
            dir,
            socket,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The LocalAPI socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The HTTP metrics URL, `http://127.0.0.1:PORT/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// The HTTP listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `node`: its rendered exposition and its version header.
    pub fn serve(&self, node: &SimNode) {
        let mut reply = self.reply();
        reply.body = node.render().into();
        reply.debug_body = node.render_debug().into();
        reply.version = Some(node.version().to_owned());
    }

    /// The debug endpoint on the HTTP listener (`tailscaled --debug`), which serves
    /// [`SimNode::render_debug`] of the node last given to [`FakeTailscaled::serve`].
    pub fn debug_url(&self) -> String {
        format!("http://{}/debug/metrics", self.addr)
    }

    /// The body of every answer.
    pub fn set_body(&self, body: impl Into<Bytes>) {
        self.reply().body = body.into();
    }

    /// The status of metrics answers (default 200).
    pub fn set_status(&self, status: u16) {
        self.reply().status = StatusCode::from_u16(status).expect("a valid HTTP status");
    }

    /// The `Content-Type` of metrics answers; `None` sends none.
    pub fn set_content_type(&self, content_type: Option<&str>) {
        self.reply().content_type = content_type.map(str::to_owned);
    }

    /// The `Tailscale-Version` header; `None` sends none.
    pub fn set_version(&self, version: Option<&str>) {
        self.reply().version = version.map(str::to_owned);
    }

    /// How long to wait before answering (to provoke timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.reply().delay = delay;
    }

    /// Sends metrics bodies chunked, without `Content-Length`, so that a client learns the
    /// size only by reading.
    pub fn set_chunked(&self, chunked: bool) {
        self.reply().chunked = chunked;
    }

    /// Connections accepted so far, on both listeners.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far, answered or refused, on both listeners (the debug
    /// endpoint's apart).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests for the debug endpoint received so far.
    pub fn debug_requests(&self) -> u64 {
        self.shared.debug_requests.load(Ordering::SeqCst)
    }

    fn reply(&self) -> MutexGuard<'_, Reply> {
        self.shared
            .reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeTailscaled {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests;
