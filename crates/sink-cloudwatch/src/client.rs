//! The only file that touches the AWS SDK's network side: configuration loading (the
//! default credentials chain and region), the HTTP client, PutMetricData, the EC2 instance
//! metadata, and the check probe.

use std::future::Future;
use std::time::Duration;

use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_cloudwatch::config::SharedHttpClient;
use aws_sdk_cloudwatch::types::MetricDatum;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tailship_sink::{Rejection, SinkError};

use crate::retry::{self, CHAIN};
use crate::{Config, Error, limits};

/// A CloudWatch client set up for the driver: SDK retries off, timeouts from the config,
/// gzip request compression on.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    cw: aws_sdk_cloudwatch::Client,
    sdk: SdkConfig,
    namespace: String,
    region: String,
    endpoint: String,
}

/// rustls with ring (the one crypto provider in the workspace) and the system's roots.
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn timeouts(config: &Config) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .operation_attempt_timeout(config.timeout)
        .operation_timeout(config.timeout)
        .build()
}

/// Loads the shared configuration through the default chain: environment, profile, IRSA
/// web identity, ECS, IMDSv2 for credentials; `region`, else the chain, for the region.
/// Credentials are resolved lazily, on the first request (or by `check`).
pub(crate) async fn load(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(config));
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

impl Client {
    /// A client for `sdk`'s region and credentials, with this sink's settings on top.
    pub(crate) fn new(config: &Config, sdk: &SdkConfig) -> Result<Self, Error> {
        let region = sdk.region().map(ToString::to_string).ok_or_else(|| {
            Error::Region(
                "no AWS region: set [sinks.cloudwatch] region, AWS_REGION, a profile region, \
                 or run where instance metadata answers"
                    .to_owned(),
            )
        })?;
        let mut builder = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .http_client(http_client())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts(config))
            .disable_request_compression(false)
            .request_min_compression_size_bytes(limits::GZIP_FROM_BYTES);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| format!("the {region} endpoint"));
        Ok(Self {
            cw: aws_sdk_cloudwatch::Client::from_conf(builder.build()),
            sdk: sdk.clone(),
            namespace: config.namespace.clone(),
            region,
            endpoint,
        })
    }

    /// One PutMetricData call, built now and sent when polled.
    pub(crate) fn put(
        &self,
        datums: Vec<MetricDatum>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send + 'static {
        let request = self
            .cw
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(datums));
        let namespace = self.namespace.clone();
        async move {
            request
                .send()
                .await
                .map(|_| ())
                .map_err(|e| retry::classify(&e, &namespace))
        }
    }

    /// Resolves the credentials and probes PutMetricData with no datum: authentication,
    /// region and endpoint are verified; nothing is written.
    pub(crate) async fn check(&self) -> Result<String, SinkError> {
        let provider = self.sdk.credentials_provider().ok_or_else(|| {
            SinkError::Auth(format!(
                "no credentials provider configured; tailship looks in {CHAIN}"
            ))
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            SinkError::Auth(format!(
                "no usable AWS credentials ({}); tailship looks in {CHAIN}",
                retry::chain_text(&e)
            ))
        })?;
        let key = credentials.access_key_id();
        let key = format!("…{}", &key[key.len().saturating_sub(4)..]);
        let probe = self.put(Vec::new()).await;
        let verdict = match probe {
            Ok(()) => "accepted".to_owned(),
            // CloudWatch refuses the empty request only once it has authenticated it.
            Err(SinkError::Rejected(Rejection { detail, .. })) => {
                format!("refused as empty ({detail})")
            }
            Err(e) => return Err(e),
        };
        Ok(format!(
            "credentials (access key {key}) and region {} verified at {}: a PutMetricData to namespace {:?} with no datum was {verdict}",
            self.region, self.endpoint, self.namespace
        ))
    }

    /// This EC2 instance's id, from the instance metadata (IMDSv2).
    pub(crate) async fn ec2_instance_id(&self) -> Result<String, Error> {
        let provider = ProviderConfig::default().with_http_client(http_client());
        let imds = aws_config::imds::Client::builder()
            .configure(&provider)
            .build();
        imds.get("/latest/meta-data/instance-id")
            .await
            .map(|id| id.as_ref().to_owned())
            .map_err(|e| {
                Error::Node(format!(
                    "node.from = \"ec2-instance-id\": the instance metadata did not answer ({}); \
                     off EC2, use \"env:NAME\"",
                    retry::chain_text(&e)
                ))
            })
    }
}
