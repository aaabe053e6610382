# A dashboard of the catalog in PromQL (local.dashboard in metrics.tf).
resource "google_monitoring_dashboard" "tailship" {
  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)
}
