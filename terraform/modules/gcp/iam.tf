# The Google service account tailship runs as: it may write time series (and read metric
# descriptors, which `tailship check` does), nothing else.
resource "google_service_account" "tailship" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "tailship"
  description  = "tailship: writes Tailscale client metrics to Cloud Monitoring"
}

resource "google_project_iam_member" "metric_writer" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.tailship.email}"
}

# GKE Workload Identity: the pod's Kubernetes service account may act as it.
locals {
  workload_identity_pool   = coalesce(var.workload_identity_pool, "${var.project_id}.svc.id.goog")
  workload_identity_member = "serviceAccount:${local.workload_identity_pool}[${var.k8s_namespace}/${var.k8s_service_account}]"
}

resource "google_service_account_iam_member" "workload_identity" {
  count = var.workload_identity ? 1 : 0

  service_account_id = google_service_account.tailship.name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.workload_identity_member
}
