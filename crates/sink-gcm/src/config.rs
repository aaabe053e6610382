//! `[sinks.gcm]`: what the operator writes, its defaults, and pure validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::encode::{MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, valid_label_key};

/// Where Cloud Monitoring's gRPC API is served.
pub const DEFAULT_ENDPOINT: &str = "https://monitoring.googleapis.com";

/// The metric type prefix of workload metrics (billed like custom metrics, shown under
/// "Workload" in Metrics Explorer).
pub const DEFAULT_METRIC_PREFIX: &str = "workload.googleapis.com/";

/// The `[sinks.gcm]` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The project written to; detected when absent (`GOOGLE_CLOUD_PROJECT`, then the
    /// metadata server).
    #[serde(default)]
    pub project_id: Option<String>,
    /// Put before every catalog name to make the metric type.
    #[serde(default = "default_prefix")]
    pub metric_prefix: String,
    /// The API's URL. An `http://` URL (an emulator, a test fake) gets no credentials:
    /// tokens never travel in clear text.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The monitored resource, instead of detecting it.
    #[serde(default)]
    pub resource: Option<ResourceConfig>,
    /// Catalog names also published per dimension (e.g. bytes per `path`); `"*"` for all.
    /// The same key and default as `[sinks.cloudwatch] breakdowns`.
    #[serde(default = "default_breakdowns")]
    pub breakdowns: Vec<String>,
    /// How long one request may take, token included.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            project_id: None,
            metric_prefix: default_prefix(),
            endpoint: default_endpoint(),
            resource: None,
            breakdowns: default_breakdowns(),
            timeout: default_timeout(),
        }
    }
}

/// `resource = { type = "generic_node", labels = { location = "…", … } }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource's labels; `project_id` is filled in when left out.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The default breakdowns: bytes by path, so that the share of bytes through DERP relays
/// can be alarmed on.
pub const DEFAULT_BREAKDOWNS: [&str; 2] = [
    "tailscale.bytes.sent.total",
    "tailscale.bytes.received.total",
];

fn default_breakdowns() -> Vec<String> {
    DEFAULT_BREAKDOWNS.map(str::to_owned).to_vec()
}

fn default_prefix() -> String {
    DEFAULT_METRIC_PREFIX.to_owned()
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        de::Error::custom(format!(
            "{e}: write a duration such as \"30s\" or \"500ms\""
        ))
    })
}

/// A `[sinks.gcm]` value that cannot work; the message names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("[sinks.gcm] {0}")]
pub struct ConfigError(String);

impl Config {
    /// Checks every value without touching the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if let Some(p) = &self.project_id
            && !valid_project_id(p)
        {
            return bad(format!(
                "project_id = {p:?}: not a project id (6 to 30 lowercase letters, digits and hyphens, starting with a letter) or project number"
            ));
        }
        let prefix = &self.metric_prefix;
        let domain = prefix.split('/').next().unwrap_or_default();
        if !prefix.ends_with('/') || !domain.contains('.') || prefix.contains(char::is_whitespace) {
            return bad(format!(
                "metric_prefix = {prefix:?}: must end with a domain and '/', e.g. \"workload.googleapis.com/\" or \"custom.googleapis.com/tailship/\""
            ));
        }
        match self.endpoint.split_once("://") {
            Some(("https" | "http", rest)) if !rest.is_empty() && !rest.contains(' ') => {}
            _ => {
                return bad(format!(
                    "endpoint = {:?}: must be an https:// URL (or http:// for an emulator), e.g. {DEFAULT_ENDPOINT:?}",
                    self.endpoint
                ));
            }
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(600) {
            return bad(format!(
                "timeout = {:?}: must be between 100ms and 10m",
                self.timeout
            ));
        }
        if let Some(r) = &self.resource {
            validate_resource(r).map_err(ConfigError)?;
        }
        for n in &self.breakdowns {
            let name = !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b));
            if !name && n != "*" {
                return bad(format!(
                    "breakdowns: {n:?} is not a catalog name (see `tailship catalog`) or \"*\""
                ));
            }
        }
        Ok(())
    }

    /// Whether a catalog name is published per dimension too.
    pub fn breaks_down(&self, name: &str) -> bool {
        self.breakdowns.iter().any(|b| b == "*" || b == name)
    }
}

/// A project id (`my-project-123`) or number.
pub(crate) fn valid_project_id(p: &str) -> bool {
    let id = (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    // Older projects may carry a domain (`example.com:my-project`).
    let scoped = p
        .split_once(':')
        .is_some_and(|(domain, id)| domain.contains('.') && valid_project_id(id));
    let number = !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
    id || scoped || number
}

/// The labels every known resource type requires (besides `project_id`), from
/// <https://cloud.google.com/monitoring/api/resources>.
pub(crate) fn required_labels(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "k8s_container" => &[
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ],
        "gce_instance" => &["instance_id", "zone"],
        "aws_ec2_instance" => &["instance_id", "region", "aws_account"],
        "generic_node" => &["location", "namespace", "node_id"],
        "generic_task" => &["location", "namespace", "job", "task_id"],
        "global" => &[],
        _ => return None,
    })
}

fn validate_resource(r: &ResourceConfig) -> Result<(), String> {
    let Some(required) = required_labels(&r.kind) else {
        return Err(format!(
            "resource.type = {:?}: use one of k8s_container, gce_instance, aws_ec2_instance, generic_node, generic_task, global (the types Cloud Monitoring accepts for user-defined metrics that tailship knows)",
            r.kind
        ));
    };
    for key in required {
        if r.labels.get(*key).is_none_or(|v| v.is_empty()) {
            return Err(format!(
                "resource.labels: {:?} needs the label {key:?} (it needs {})",
                r.kind,
                required.join(", ")
            ));
        }
    }
    for (k, v) in &r.labels {
        if *k != "project_id" && !required.contains(&k.as_str()) {
            return Err(format!(
                "resource.labels.{k}: {:?} has no such label (it has {})",
                r.kind,
                required.join(", ")
            ));
        }
        if !valid_label_key(k)
            || k.len() > MAX_LABEL_KEY_LEN
            || v.chars().count() > MAX_LABEL_VALUE_LEN
        {
            return Err(format!(
                "resource.labels.{k}: key or value too long or malformed"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
