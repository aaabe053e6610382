output "service_account_email" {
  description = "For the iam.gke.io/gcp-service-account annotation of the tailscale service account (deploy/k8s/overlays/gke/serviceaccount-patch.yaml), or --service-account of a GCE instance running the host agent."
  value       = google_service_account.tailship.email
}

output "workload_identity_member" {
  description = "The Kubernetes service account allowed to act as the Google service account (when workload_identity is true)."
  value       = var.workload_identity ? local.workload_identity_member : null
}

output "metric_prefix" {
  description = "[sinks.gcm] metric_prefix in tailship.toml must be this."
  value       = var.metric_prefix
}

output "alert_policy_ids" {
  description = "The alert policies, by name."
  value = {
    egress_anomaly  = google_monitoring_alert_policy.egress_anomaly.id
    derp_share      = google_monitoring_alert_policy.derp_share.id
    dropped_packets = google_monitoring_alert_policy.dropped_packets.id
    health          = google_monitoring_alert_policy.health.id
    silent          = google_monitoring_alert_policy.silent.id
  }
}

output "dashboard_id" {
  description = "The Cloud Monitoring dashboard of the catalog."
  value       = google_monitoring_dashboard.tailship.id
}
