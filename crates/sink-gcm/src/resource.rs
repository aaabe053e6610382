//! Which monitored resource the points are written against: chosen from facts that
//! `client.rs` gathers (the metadata servers, the environment), or taken from the config.
//! Pure: no I/O here.

use std::collections::BTreeMap;
use std::fmt;

use crate::ResourceConfig;

/// A monitored resource: its type and labels, `project_id` included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub kind: String,
    pub labels: BTreeMap<String, String>,
}

impl fmt::Display for Resource {
    /// `gce_instance{instance_id=123,project_id=p,zone=europe-west1-b}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        f.write_str("{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

/// What the Compute Engine metadata server says (GCE, GKE).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gce {
    pub project_id: String,
    pub instance_id: String,
    /// The zone's short name, `europe-west1-b`.
    pub zone: String,
    /// Set on GKE nodes.
    pub cluster_name: Option<String>,
    pub cluster_location: Option<String>,
}

/// What the EC2 instance identity document says (IMDSv2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ec2 {
    pub instance_id: String,
    pub region: String,
    pub account_id: String,
}

/// Everything detection looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub gce: Option<Gce>,
    pub ec2: Option<Ec2>,
    /// `KUBERNETES_SERVICE_HOST` is set: tailship runs in a pod.
    pub kubernetes: bool,
    /// `POD_NAME`, else `HOSTNAME` in a pod (the downward API's pod name).
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`, else the service account's namespace file.
    pub namespace: Option<String>,
    /// `CONTAINER_NAME`.
    pub container_name: Option<String>,
    /// The host name, for `generic_node`.
    pub hostname: Option<String>,
}

/// The container name assumed when `CONTAINER_NAME` is not set: the sidecar's name in the
/// manifests under `deploy/k8s/`.
pub const DEFAULT_CONTAINER: &str = "tailship";

/// The resource chosen, and anything guessed on the way (to log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chosen {
    pub resource: Resource,
    pub guesses: Vec<String>,
}

/// The configured resource with `project_id` filled in.
pub(crate) fn configured(r: &ResourceConfig, project: &str) -> Resource {
    let mut labels = r.labels.clone();
    labels
        .entry("project_id".to_owned())
        .or_insert_with(|| project.to_owned());
    Resource {
        kind: r.kind.clone(),
        labels,
    }
}

/// `k8s_container` on GKE, `gce_instance` on Compute Engine, `aws_ec2_instance` on EC2,
/// else `generic_node` named after the host.
pub(crate) fn choose(facts: &Facts, project: &str) -> Chosen {
    let mut guesses = Vec::new();
    let mut labels = BTreeMap::from([("project_id".to_owned(), project.to_owned())]);
    let mut set = |k: &str, v: &str| {
        labels.insert(k.to_owned(), v.to_owned());
    };
    let kind = match (&facts.gce, &facts.ec2) {
        (Some(gce), _) => match (&gce.cluster_name, facts.kubernetes) {
            (Some(cluster), true) => {
                set("cluster_name", cluster);
                set(
                    "location",
                    gce.cluster_location.as_deref().unwrap_or(&gce.zone),
                );
                let pod = facts.pod_name.clone().unwrap_or_else(|| {
                    guesses.push("pod_name unknown: set POD_NAME from the downward API".to_owned());
                    gce.instance_id.clone()
                });
                set("pod_name", &pod);
                let namespace = facts.namespace.clone().unwrap_or_else(|| {
                    guesses.push("namespace_name unknown, \"default\" assumed: set POD_NAMESPACE from the downward API".to_owned());
                    "default".to_owned()
                });
                set("namespace_name", &namespace);
                let container = facts.container_name.clone().unwrap_or_else(|| {
                    guesses.push(format!(
                        "container_name unknown, {DEFAULT_CONTAINER:?} assumed: set CONTAINER_NAME"
                    ));
                    DEFAULT_CONTAINER.to_owned()
                });
                set("container_name", &container);
                "k8s_container"
            }
            _ => {
                set("instance_id", &gce.instance_id);
                set("zone", &gce.zone);
                "gce_instance"
            }
        },
        (None, Some(ec2)) => {
            set("instance_id", &ec2.instance_id);
            set("region", &format!("aws:{}", ec2.region));
            set("aws_account", &ec2.account_id);
            "aws_ec2_instance"
        }
        (None, None) => {
            set("location", "global");
            set("namespace", "tailship");
            let node = facts.hostname.clone().unwrap_or_else(|| {
                guesses
                    .push("no host name: node_id \"unknown\"; set [sinks.gcm] resource".to_owned());
                "unknown".to_owned()
            });
            set("node_id", &node);
            "generic_node"
        }
    };
    Chosen {
        resource: Resource {
            kind: kind.to_owned(),
            labels,
        },
        guesses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(facts: Facts, expected: &str, guesses: usize) {
        let chosen = choose(&facts, "proj-1");
        assert_eq!(chosen.resource.to_string(), expected);
        assert_eq!(chosen.guesses.len(), guesses, "{:?}", chosen.guesses);
    }

    fn gce(cluster: Option<&str>) -> Option<Gce> {
        Some(Gce {
            project_id: "proj-1".into(),
            instance_id: "4242".into(),
            zone: "europe-west1-b".into(),
            cluster_name: cluster.map(Into::into),
            cluster_location: cluster.map(|_| "europe-west1".into()),
        })
    }

    #[test]
    fn each_environment_gets_its_resource() {
        let pod = Facts {
            gce: gce(Some("prod")),
            kubernetes: true,
            pod_name: Some("ts-0".into()),
            namespace: Some("tailscale".into()),
            container_name: Some("tailship".into()),
            ..Facts::default()
        };
        check(
            pod.clone(),
            "k8s_container{cluster_name=prod,container_name=tailship,location=europe-west1,namespace_name=tailscale,pod_name=ts-0,project_id=proj-1}",
            0,
        );
        // A GKE node's host agent (no pod) is the instance.
        check(
            Facts {
                kubernetes: false,
                ..pod.clone()
            },
            "gce_instance{instance_id=4242,project_id=proj-1,zone=europe-west1-b}",
            0,
        );
        // A pod without the downward-API variables: named, guessed, and said so.
        check(
            Facts {
                pod_name: None,
                namespace: None,
                container_name: None,
                ..pod
            },
            "k8s_container{cluster_name=prod,container_name=tailship,location=europe-west1,namespace_name=default,pod_name=4242,project_id=proj-1}",
            3,
        );
        check(
            Facts {
                gce: gce(None),
                ..Facts::default()
            },
            "gce_instance{instance_id=4242,project_id=proj-1,zone=europe-west1-b}",
            0,
        );
        check(
            Facts {
                ec2: Some(Ec2 {
                    instance_id: "i-0abc".into(),
                    region: "us-east-1".into(),
                    account_id: "123456789012".into(),
                }),
                ..Facts::default()
            },
            "aws_ec2_instance{aws_account=123456789012,instance_id=i-0abc,project_id=proj-1,region=aws:us-east-1}",
            0,
        );
        check(
            Facts {
                hostname: Some("edge-7".into()),
                ..Facts::default()
            },
            "generic_node{location=global,namespace=tailship,node_id=edge-7,project_id=proj-1}",
            0,
        );
        check(
            Facts::default(),
            "generic_node{location=global,namespace=tailship,node_id=unknown,project_id=proj-1}",
            1,
        );
    }

    #[test]
    fn a_configured_resource_gets_the_project() {
        let r = ResourceConfig {
            kind: "generic_node".into(),
            labels: BTreeMap::from([
                ("location".into(), "eu".into()),
                ("namespace".into(), "lab".into()),
                ("node_id".into(), "n1".into()),
            ]),
        };
        assert_eq!(
            configured(&r, "p-123456").to_string(),
            "generic_node{location=eu,namespace=lab,node_id=n1,project_id=p-123456}"
        );
    }
}
