//! What to tell the operator, per kind of source: the part of each error after the colon.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::SourceSpec;

/// Who may open `path`, as far as `stat` tells (it fails when a directory above is closed).
fn owner(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!(
        "uid {}, gid {}, mode {:o}",
        meta.uid(),
        meta.gid(),
        meta.mode() & 0o7777
    ))
}

pub(super) fn permission(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::LocalApi { socket } => match owner(socket) {
            Some(owner) => format!(
                "the socket has {owner}: run tailship as a user or group that may write to it \
                 (in Kubernetes: runAsUser / runAsGroup / fsGroup of the shared volume); \
                 tailscaled creates it mode 666 by default"
            ),
            None => "tailship's user cannot reach it: every directory above the socket must be \
                     searchable (x) by that user"
                .to_owned(),
        },
        SourceSpec::File { path } => match owner(path) {
            Some(owner) => format!(
                "the file has {owner}: make it readable by tailship's user (chmod / chgrp), or \
                 write it into a directory that user can read"
            ),
            None => "tailship's user cannot reach it: every directory above the file must be \
                     searchable (x) by that user"
                .to_owned(),
        },
        SourceSpec::Http { .. } => "the system refused the connection: a firewall or security \
                                    policy (seccomp, SELinux, network policy) blocks tailship"
            .to_owned(),
    }
}

pub(super) fn connect(spec: &SourceSpec) -> &'static str {
    match spec {
        SourceSpec::LocalApi { .. } => {
            "the socket exists but nothing accepts connections on it: tailscaled is not running \
             (a stale socket) or this is not tailscaled's socket"
        }
        _ => {
            "is tailscaled up and serving metrics at that address? 100.100.100.100 answers only \
             on the node itself while tailscale is up; containers serve :9002/metrics only with \
             TS_ENABLE_METRICS=true"
        }
    }
}

pub(super) fn forbidden(spec: &SourceSpec) -> &'static str {
    match spec {
        SourceSpec::LocalApi { .. } => {
            "tailscaled refused the request; the LocalAPI rejects requests that carry an Origin \
             or Referer header or a Host other than local-tailscaled.sock, which tailship never \
             sends, so something between tailship and tailscaled may be rewriting it"
        }
        _ => {
            "a proxy or an authenticating gateway may be in the way; point [source] at \
             tailscaled's own endpoint (http://100.100.100.100/metrics, or :9002/metrics with \
             TS_ENABLE_METRICS=true)"
        }
    }
}

pub(super) fn not_found(spec: &SourceSpec) -> &'static str {
    match spec {
        SourceSpec::LocalApi { .. } => {
            "tailscaled is too old (usermetrics needs v1.78 or newer) or was built without \
             usermetrics; upgrade tailscaled"
        }
        _ => {
            "is the path /metrics? tailscaled serves it from v1.78 on, and in containers only \
             with TS_ENABLE_METRICS=true"
        }
    }
}
