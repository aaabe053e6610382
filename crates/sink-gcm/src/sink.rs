//! `GcmSink`: the [`Sink`] the driver runs. Builds once (project, resource, client), then
//! per batch encodes, sends through `client.rs` and classifies through `retry.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gcloud_sdk::tonic::Code;
use tailship_model::Series;
use tailship_sink::{
    CheckFuture, Limits, Point, Rejection, Report, SendFuture, Sink, SinkError, Values,
};

use crate::client::{self, Client, ENV_VARS, Env};
use crate::encode::{self, Encoder};
use crate::resource::{self, Resource};
use crate::retry::{self, ROLE};
use crate::{Config, ConfigError};

/// Why the sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "[sinks.gcm] project_id: not set, GOOGLE_CLOUD_PROJECT not set, and no GCE metadata server answered at {0}; set project_id"
    )]
    NoProject(String),
    #[error("[sinks.gcm] {0}")]
    Client(String),
}

/// Publishes points to Google Cloud Monitoring with `CreateTimeSeries`: counters as
/// `CUMULATIVE` INT64 running totals, gauges as `GAUGE` DOUBLE.
#[derive(Debug)]
pub struct GcmSink {
    limits: Limits,
    project: String,
    resource: Resource,
    config: Config,
    encoder: Arc<Encoder>,
    client: Client,
}

impl GcmSink {
    /// Resolves the project and the monitored resource (asking the metadata servers only
    /// for what the config leaves out) and builds the client; sends nothing.
    ///
    /// `env` looks up environment variables (the binary passes the process environment);
    /// `descriptions` maps catalog names to the text of auto-created metric descriptors.
    pub async fn new(
        config: Config,
        env: impl Fn(&str) -> Option<String>,
        descriptions: BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let env: Env = ENV_VARS
            .iter()
            .filter_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| (*k, v)))
            .collect();
        let mut project = config
            .project_id
            .clone()
            .or_else(|| env.get("GOOGLE_CLOUD_PROJECT").cloned());
        let resource = match &config.resource {
            Some(r) => {
                if project.is_none() {
                    project = client::gce(&env).await.map(|g| g.project_id);
                }
                let project = project
                    .as_deref()
                    .ok_or_else(|| Error::NoProject(client::gce_root(&env)))?;
                resource::configured(r, project)
            }
            None => {
                let facts = client::facts(&env).await;
                if project.is_none() {
                    project = facts.gce.as_ref().map(|g| g.project_id.clone());
                }
                let project = project
                    .as_deref()
                    .ok_or_else(|| Error::NoProject(client::gce_root(&env)))?;
                let chosen = resource::choose(&facts, project);
                for g in &chosen.guesses {
                    tracing::warn!(sink = "gcm", "monitored resource: {g}");
                }
                chosen.resource
            }
        };
        let project = project.unwrap_or_default();
        let client = Client::new(&config.endpoint, config.timeout)
            .await
            .map_err(Error::Client)?;
        tracing::info!(sink = "gcm", %project, %resource, endpoint = %config.endpoint, prefix = %config.metric_prefix, "publishing to Cloud Monitoring");
        let encoder = Encoder::new(
            &project,
            &config.metric_prefix,
            &resource,
            Arc::new(descriptions),
        );
        Ok(Self {
            limits: Limits {
                max_points: encode::MAX_SERIES_PER_REQUEST,
                max_bytes: encode::MAX_REQUEST_BYTES,
                many_points_per_series: false,
                bucket: None,
                max_buckets: 1,
                min_spacing: encode::MIN_SPACING,
                max_age: encode::MAX_AGE,
                max_future: encode::MAX_FUTURE,
            },
            project,
            resource,
            config,
            encoder: Arc::new(encoder),
            client,
        })
    }

    /// The monitored resource every point is written against.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    pub fn project(&self) -> &str {
        &self.project
    }
}

impl Sink for GcmSink {
    fn name(&self) -> &str {
        "gcm"
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn values(&self) -> Values {
        Values::Totals
    }

    fn selects(&self, series: &Series) -> bool {
        series.dimensions.is_empty() || self.config.breaks_down(&series.name)
    }

    fn admit(&self, series: &Series) -> Result<(), Rejection> {
        encode::admit(series)
    }

    fn encoded_size(&self, point: &Point) -> usize {
        self.encoder.encoded_size(point)
    }

    fn send(&self, points: &[Point]) -> SendFuture {
        let encoded = self.encoder.encode(points);
        let client = self.client.clone();
        let project = self.project.clone();
        Box::pin(async move {
            let mut report = Report {
                rejected: encoded.refused,
                rejected_unattributed: Vec::new(),
            };
            let mut written = false;
            let mut requests = encoded.requests.into_iter();
            while let Some((body, indexes)) = requests.next() {
                let n = indexes.len();
                match client.create_time_series(body).await {
                    Ok(()) => written = true,
                    Err(status) => match retry::classify(&status, &project, n) {
                        Ok(partial) => {
                            written = true;
                            report
                                .rejected_unattributed
                                .extend(partial.rejected_unattributed);
                        }
                        // Nothing written yet: the whole batch can be retried as it is.
                        Err(e) if !written => return Err(e),
                        // Part of the batch is written (only with more than one request,
                        // which the limits given to the driver prevent): the rest cannot be
                        // retried without resending what was written, so it is counted.
                        Err(e) => {
                            let rest = indexes
                                .into_iter()
                                .chain(requests.by_ref().flat_map(|(_, ix)| ix));
                            let rejection = Rejection {
                                reason: "unsent",
                                detail: format!("a later request of the batch failed: {e}"),
                            };
                            report.rejected.extend(rest.map(|i| (i, rejection.clone())));
                            break;
                        }
                    },
                }
            }
            Ok(report)
        })
    }

    /// Gets the descriptor of the monitored resource type: a read that
    /// `roles/monitoring.metricWriter` allows and that needs a token, the project and the
    /// API enabled; and it tells whether the labels tailship writes are the type's labels.
    fn check(&self) -> CheckFuture {
        let client = self.client.clone();
        let (project, resource) = (self.project.clone(), self.resource.clone());
        let name = format!(
            "projects/{project}/monitoredResourceDescriptors/{}",
            resource.kind
        );
        Box::pin(async move {
            let descriptor = match client.resource_descriptor(name).await {
                Ok(d) => d,
                Err(s) if s.code() == Code::NotFound => {
                    return Err(SinkError::Config(format!(
                        "project {project} or resource type {} not found: check [sinks.gcm] project_id and resource ({})",
                        resource.kind,
                        s.message()
                    )));
                }
                Err(s) => {
                    return Err(retry::classify(&s, &project, 0)
                        .err()
                        .unwrap_or_else(|| SinkError::Transient(s.message().to_owned())));
                }
            };
            let mut expected: Vec<&str> =
                descriptor.labels.iter().map(|l| l.key.as_str()).collect();
            expected.sort_unstable();
            let have: Vec<&str> = resource.labels.keys().map(String::as_str).collect();
            if expected != have {
                return Err(SinkError::Config(format!(
                    "resource {resource}: Cloud Monitoring's {} has the labels {}: fix [sinks.gcm] resource",
                    resource.kind,
                    expected.join(", ")
                )));
            }
            Ok(format!(
                "project {project} reachable with these credentials (a writer needs {ROLE}); resource {resource}"
            ))
        })
    }
}
