# tailship on GKE: the Google service account for the sidecar of deploy/k8s/overlays/gke
# (Workload Identity), the alert policies (to an email channel) and the dashboard.
#
#   terraform init && terraform apply -var project_id=my-project
#   terraform output service_account_email   # -> deploy/k8s/overlays/gke/serviceaccount-patch.yaml

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.10"
    }
  }
}

provider "google" {
  project = var.project_id
}

variable "project_id" {
  description = "The project of the GKE cluster (Workload Identity enabled) and of the metrics."
  type        = string
}

variable "notification_email" {
  description = "An address notified by the alert policies. Null: no notification channel."
  type        = string
  default     = null
}

resource "google_monitoring_notification_channel" "email" {
  count = var.notification_email == null ? 0 : 1

  project      = var.project_id
  display_name = "tailship alerts"
  type         = "email"
  labels = {
    email_address = var.notification_email
  }
}

module "tailship" {
  source = "../../modules/gcp"

  project_id = var.project_id
  # [sinks.gcm] metric_prefix in deploy/k8s/overlays/gke/tailship.toml, and the resource the
  # sidecar detects with the downward-API env of deploy/k8s/overlays/gke.
  metric_prefix = "workload.googleapis.com/"
  resource_type = "k8s_container"
  # The pod's service account (deploy/k8s/base/serviceaccount.yaml, namespace tailscale).
  k8s_namespace       = "tailscale"
  k8s_service_account = "tailscale"

  notification_channels = google_monitoring_notification_channel.email[*].id
}

output "service_account_email" {
  description = "Set as iam.gke.io/gcp-service-account in deploy/k8s/overlays/gke/serviceaccount-patch.yaml."
  value       = module.tailship.service_account_email
}

output "dashboard_id" {
  description = "The Cloud Monitoring dashboard."
  value       = module.tailship.dashboard_id
}
