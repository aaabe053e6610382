variable "project_id" {
  description = "The Google Cloud project tailship writes to and the alert policies and dashboard live in."
  type        = string
}

variable "name" {
  description = "Prefix of the display names of the alert policies and the dashboard."
  type        = string
  default     = "tailship"
}

variable "service_account_id" {
  description = "account_id of the Google service account tailship runs as (tailship@PROJECT.iam.gserviceaccount.com by default)."
  type        = string
  default     = "tailship"
}

variable "workload_identity" {
  description = "Let the Kubernetes service account k8s_namespace/k8s_service_account impersonate the Google service account (GKE Workload Identity: roles/iam.workloadIdentityUser). The pod's service account then carries the annotation iam.gke.io/gcp-service-account = the output service_account_email."
  type        = bool
  default     = true
}

variable "workload_identity_pool" {
  description = "The cluster's workload pool; null means PROJECT.svc.id.goog (the cluster in project_id)."
  type        = string
  default     = null
}

variable "k8s_namespace" {
  description = "Namespace of the Kubernetes service account of the tailship pod (deploy/k8s/base: tailscale)."
  type        = string
  default     = "tailscale"
}

variable "k8s_service_account" {
  description = "Name of the Kubernetes service account of the tailship pod (deploy/k8s/base: tailscale)."
  type        = string
  default     = "tailscale"
}

variable "metric_prefix" {
  description = "[sinks.gcm] metric_prefix in tailship.toml: the metric types are this plus the catalog name, e.g. workload.googleapis.com/tailscale.bytes.sent.total."
  type        = string
  default     = "workload.googleapis.com/"

  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.[a-z]+/([a-z0-9_.]+/)*$", var.metric_prefix))
    error_message = "The metric prefix is a domain, then optional path segments, ending with a '/': workload.googleapis.com/ or custom.googleapis.com/tailship/."
  }
}

variable "resource_type" {
  description = "The monitored resource tailship writes against: k8s_container for the GKE sidecar (deploy/k8s/overlays/gke), gce_instance for the host agent on GCE."
  type        = string
  default     = "k8s_container"
}

variable "notification_channels" {
  description = "Notification channel IDs (projects/PROJECT/notificationChannels/ID) every alert policy notifies."
  type        = list(string)
  default     = []
}

variable "period_seconds" {
  description = "Alignment period of the alert conditions and the dashboard's rates, in seconds."
  type        = number
  default     = 300
}

variable "egress_anomaly_sigmas" {
  description = "The egress alert fires when bytes sent per second exceed their mean over the last day by this many standard deviations (the equivalent of CloudWatch's anomaly band)."
  type        = number
  default     = 3
}

variable "egress_anomaly_duration_seconds" {
  description = "How long bytes sent must stay above the band before the egress alert fires."
  type        = number
  default     = 900
}

variable "derp_share_percent" {
  description = "The DERP alert fires when more than this percentage of all bytes (sent and received) went through DERP relays: direct connectivity is failing."
  type        = number
  default     = 50
}

variable "derp_min_bytes_per_second" {
  description = "Below this rate of bytes (sent and received) the DERP share is not judged: a few keepalives over DERP are normal."
  type        = number
  default     = 35000
}

variable "derp_share_duration_seconds" {
  description = "How long the DERP share must stay above derp_share_percent before the alert fires."
  type        = number
  default     = 900
}

variable "dropped_packets_threshold" {
  description = "The dropped-packets alert fires when more packets than this were dropped in one direction, every reason, all nodes, in one period."
  type        = number
  default     = 100
}

variable "health_duration_seconds" {
  description = "How long a node must report tailscaled health messages before the health alert fires."
  type        = number
  default     = 600
}

variable "silent_duration_seconds" {
  description = "How long a monitored resource (a pod, an instance) may publish nothing before the silence alert fires for it."
  type        = number
  default     = 900
}
