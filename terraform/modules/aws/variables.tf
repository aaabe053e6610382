variable "name" {
  description = "Prefix of every resource this module creates (IAM policy and roles, alarms, dashboard)."
  type        = string
  default     = "tailship"
}

variable "namespace" {
  description = "The CloudWatch namespace tailship publishes to: [sinks.cloudwatch] namespace in tailship.toml. The IAM policy allows PutMetricData into this namespace only, and the alarms and dashboard read it."
  type        = string
  default     = "Tailscale"

  validation {
    condition     = length(var.namespace) > 0 && !startswith(var.namespace, "AWS/")
    error_message = "The namespace must not be empty nor start with AWS/ (reserved for AWS services); tailship refuses it too."
  }
}

variable "create_irsa_role" {
  description = "Create an IAM role for the Kubernetes service account of the tailship sidecar (EKS IRSA). Its ARN is the output irsa_role_arn, for the eks.amazonaws.com/role-arn annotation in deploy/k8s/overlays/eks."
  type        = bool
  default     = false
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID). Required when create_irsa_role is true."
  type        = string
  default     = null
}

variable "oidc_provider_url" {
  description = "The EKS cluster's OIDC issuer URL (https://oidc.eks.REGION.amazonaws.com/id/ID; the https:// prefix is optional). Required when create_irsa_role is true."
  type        = string
  default     = null
}

variable "service_account_namespace" {
  description = "Namespace of the Kubernetes service account the IRSA role trusts (deploy/k8s/base: tailscale)."
  type        = string
  default     = "tailscale"
}

variable "service_account_name" {
  description = "Name of the Kubernetes service account the IRSA role trusts (deploy/k8s/base: tailscale)."
  type        = string
  default     = "tailscale"
}

variable "create_instance_profile" {
  description = "Create an EC2 role and instance profile with the PutMetricData policy, for tailship as a host agent (deploy/systemd). Its name is the output instance_profile_name."
  type        = bool
  default     = false
}

variable "sns_topic_arn" {
  description = "SNS topic notified when an alarm fires and when it recovers. Null: alarms without actions (visible in the console and on the dashboard only)."
  type        = string
  default     = null
}

variable "period" {
  description = "Seconds per alarm evaluation period and dashboard datapoint. A multiple of 60 (tailship's default storage_resolution)."
  type        = number
  default     = 300

  validation {
    condition     = var.period >= 60 && var.period % 60 == 0
    error_message = "The period must be a multiple of 60 seconds."
  }
}

variable "egress_anomaly_band_width" {
  description = "Width of the anomaly detection band on bytes sent, in standard deviations: the egress alarm fires when bytes sent rise above the band."
  type        = number
  default     = 3
}

variable "egress_anomaly_periods" {
  description = "Consecutive periods above the band before the egress alarm fires."
  type        = number
  default     = 3
}

variable "derp_share_percent" {
  description = "The DERP alarm fires when more than this percentage of all bytes (sent and received) went through DERP relays: direct connectivity is failing."
  type        = number
  default     = 50
}

variable "derp_min_bytes" {
  description = "Below this many bytes per period (sent and received) the DERP share is not judged: a few keepalives over DERP are normal."
  type        = number
  default     = 10485760
}

variable "derp_share_periods" {
  description = "Consecutive periods above derp_share_percent before the DERP alarm fires."
  type        = number
  default     = 3
}

variable "dropped_packets_threshold" {
  description = "The dropped-packets alarm fires when more packets than this were dropped (sent and received, every reason) in one period."
  type        = number
  default     = 100
}

variable "health_periods" {
  description = "Consecutive periods with a tailscaled health message before the health alarm fires."
  type        = number
  default     = 2
}

variable "silent_periods" {
  description = "Consecutive periods without any datum from tailship before the silence alarm fires. Without a node dimension this is fleet-wide: it fires when no node publishes."
  type        = number
  default     = 3
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
