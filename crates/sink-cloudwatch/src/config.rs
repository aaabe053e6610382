//! `[sinks.cloudwatch]`: what the operator writes, its defaults, and pure validation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::limits::{self, MAX_DIMENSIONS};

/// The CloudWatch sink's configuration.
///
/// Every counter and gauge is published as its dimensionless catalog aggregate; `breakdowns`
/// names the metrics that are also published per catalog dimension (e.g. per `path`). Every
/// datum also carries the static `dimensions` and, if configured, the node dimension.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The CloudWatch namespace (default `Tailscale`).
    pub namespace: String,
    /// The AWS region; unset, the default chain decides (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Another endpoint than the region's (a VPC endpoint, an emulator), e.g.
    /// `https://monitoring.eu-west-1.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Seconds per datum: 60 (standard) or 1 (high resolution, billed higher).
    pub storage_resolution: u32,
    /// Catalog names also published per dimension; `"*"` for all of them.
    pub breakdowns: Vec<String>,
    /// A dimension naming this node, added to every datum (off by default: each node then
    /// makes its own set of custom metrics).
    pub node: Option<NodeDimension>,
    /// Dimensions added to every datum, e.g. `{ cluster = "prod" }`.
    pub dimensions: BTreeMap<String, String>,
    /// How long one PutMetricData call may take, connection included.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

/// The default breakdowns: bytes by path, so that the share of bytes through DERP relays
/// can be alarmed on. Ten custom metrics besides the aggregates.
pub const DEFAULT_BREAKDOWNS: [&str; 2] = [
    "tailscale.bytes.sent.total",
    "tailscale.bytes.received.total",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: "Tailscale".to_owned(),
            region: None,
            endpoint: None,
            storage_resolution: 60,
            breakdowns: DEFAULT_BREAKDOWNS.map(str::to_owned).to_vec(),
            node: None,
            dimensions: BTreeMap::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `node = { name = "InstanceId", from = "ec2-instance-id" }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDimension {
    /// The dimension's name (default `Node`).
    #[serde(default = "default_node_name")]
    pub name: String,
    /// Where its value comes from.
    pub from: NodeSource,
}

fn default_node_name() -> String {
    "Node".to_owned()
}

/// Where the node dimension's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSource {
    /// `"ec2-instance-id"`: the instance id from the EC2 instance metadata (IMDSv2).
    Ec2InstanceId,
    /// `"env:NAME"`: an environment variable, e.g. `env:NODE_NAME` set from the pod's
    /// `spec.nodeName`.
    Env(String),
}

impl fmt::Display for NodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSource::Ec2InstanceId => f.write_str("ec2-instance-id"),
            NodeSource::Env(name) => write!(f, "env:{name}"),
        }
    }
}

impl<'de> Deserialize<'de> for NodeSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix("env:") {
            Some(name) if !name.is_empty() => Ok(NodeSource::Env(name.to_owned())),
            _ if s == "ec2-instance-id" => Ok(NodeSource::Ec2InstanceId),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?}: write \"ec2-instance-id\" or \"env:NAME\" (e.g. \"env:NODE_NAME\")"
            ))),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("{e}: write a duration such as \"30s\"")))
}

/// A configuration value that cannot work, with the key to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("[sinks.cloudwatch] {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn bad(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ns = &self.namespace;
        let key = format!("namespace = {ns:?}");
        if ns.is_empty() || ns.len() > limits::MAX_NAMESPACE_LEN {
            return Err(bad(key, "must be 1 to 255 characters"));
        }
        if !limits::printable_ascii(ns) || ns.starts_with(':') {
            return Err(bad(
                key,
                "ASCII without control characters, not starting with ':'",
            ));
        }
        if ns.starts_with("AWS/") {
            return Err(bad(key, "the AWS/ prefix is reserved for AWS services"));
        }
        if let Some(region) = &self.region {
            let ok = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(bad(
                    format!("region = {region:?}"),
                    "write a region code such as \"eu-west-1\"",
                ));
            }
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(bad(
                format!("endpoint = {endpoint:?}"),
                "must be an https:// (or, for an emulator, http://) URL",
            ));
        }
        if !matches!(self.storage_resolution, 1 | 60) {
            return Err(bad(
                format!("storage_resolution = {}", self.storage_resolution),
                "must be 60 (standard) or 1 (high resolution)",
            ));
        }
        if let Some(b) = self.breakdowns.iter().find(|b| b.trim().is_empty()) {
            return Err(bad(
                format!("breakdowns entry {b:?}"),
                "write a catalog name (see `tailship catalog`) or \"*\"",
            ));
        }
        let extra = self.dimensions.len() + usize::from(self.node.is_some());
        if extra > MAX_DIMENSIONS {
            return Err(bad(
                "dimensions",
                format!("{extra} dimensions with the node's; CloudWatch allows {MAX_DIMENSIONS}"),
            ));
        }
        for (name, value) in &self.dimensions {
            limits::check_dimension(name, value)
                .map_err(|p| bad(format!("dimensions.{name} = {value:?}"), p))?;
        }
        if let Some(node) = &self.node {
            limits::check_dimension(&node.name, "x")
                .map_err(|p| bad(format!("node.name = {:?}", node.name), p))?;
            if self.dimensions.contains_key(&node.name) {
                return Err(bad(
                    format!("node.name = {:?}", node.name),
                    "is also a static dimension; rename one",
                ));
            }
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return Err(bad(
                format!("timeout = {:?}", self.timeout),
                "must be above 0 and at most 5m",
            ));
        }
        Ok(())
    }

    /// Whether a catalog name is published per dimension too.
    pub fn breaks_down(&self, name: &str) -> bool {
        self.breakdowns.iter().any(|b| b == "*" || b == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `[sinks.cloudwatch]` table body and validates it.
    fn check(toml_body: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(toml_body).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults() {
        let c = check("").unwrap();
        assert_eq!(c.namespace, "Tailscale");
        assert_eq!(c.storage_resolution, 60);
        assert!(c.breaks_down("tailscale.bytes.sent.total"));
        assert!(!c.breaks_down("tailscale.packets.sent.dropped.total"));
        assert_eq!(c.node, None);
        assert_eq!(c.timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_full_table() {
        let c = check(
            r#"namespace = "Tailscale/Prod"
region = "eu-west-1"
endpoint = "http://127.0.0.1:4566"
storage_resolution = 1
breakdowns = ["*"]
node = { name = "InstanceId", from = "ec2-instance-id" }
dimensions = { cluster = "prod" }
timeout = "5s""#,
        )
        .unwrap();
        assert!(c.breaks_down("tailscale.anything"));
        assert_eq!(
            c.node.unwrap(),
            NodeDimension {
                name: "InstanceId".into(),
                from: NodeSource::Ec2InstanceId
            }
        );
        let n = check("node = { from = \"env:NODE_NAME\" }")
            .unwrap()
            .node
            .unwrap();
        assert_eq!(
            (n.name.as_str(), n.from.to_string().as_str()),
            ("Node", "env:NODE_NAME")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let long = format!("dimensions = {{ x = \"{}\" }}", "v".repeat(1025));
        let many: String = (0..31).map(|i| format!("d{i} = \"v\"\n")).collect();
        let many = format!("[dimensions]\n{many}");
        let cases: &[(&str, &str)] = &[
            (
                "namespace = \"AWS/EC2\"",
                "[sinks.cloudwatch] namespace = \"AWS/EC2\"",
            ),
            ("namespace = \"\"", "namespace"),
            ("namespace = \":x\"", "namespace"),
            ("region = \"EU West\"", "[sinks.cloudwatch] region"),
            (
                "endpoint = \"monitoring.local\"",
                "[sinks.cloudwatch] endpoint",
            ),
            (
                "storage_resolution = 30",
                "[sinks.cloudwatch] storage_resolution = 30",
            ),
            ("breakdowns = [\"\"]", "breakdowns"),
            ("dimensions = { \"\" = \"v\" }", "dimensions."),
            ("dimensions = { x = \" \" }", "dimensions.x"),
            ("dimensions = { x = \"é\" }", "dimensions.x"),
            (&long, "dimensions.x"),
            (&many, "CloudWatch allows 30"),
            ("node = { from = \"hostname\" }", "env:NAME"),
            ("node = { from = \"env:\" }", "env:NAME"),
            (
                "node = { name = \"cluster\", from = \"env:N\" }\ndimensions = { cluster = \"a\" }",
                "node.name",
            ),
            ("timeout = \"0s\"", "[sinks.cloudwatch] timeout"),
            ("timeout = \"soon\"", "duration"),
            ("namespaces = \"x\"", "unknown field `namespaces`"),
        ];
        for (text, expected) in cases {
            let err = check(text).expect_err(text);
            assert!(
                err.contains(expected),
                "{text:?}: {err:?} lacks {expected:?}"
            );
        }
    }
}
