data "aws_region" "current" {}

# A dashboard of the catalog: the DERP share, bytes by path, and one graph per metric family
# (local.dashboard_widgets in metrics.tf), in the provider's region.
resource "aws_cloudwatch_dashboard" "tailship" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      for w in local.dashboard_widgets : merge(w, {
        properties = merge(w.properties, { region = data.aws_region.current.name })
      })
    ]
  })
}
