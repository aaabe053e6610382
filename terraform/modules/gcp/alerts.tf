# The alert policies, equivalent to the CloudWatch alarms of terraform/modules/aws, built
# from the conditions in metrics.tf. Each notifies var.notification_channels.

resource "google_monitoring_alert_policy" "egress_anomaly" {
  project               = var.project_id
  display_name          = "${var.name}: egress anomaly"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "Bytes sent over Tailscale (all nodes) are more than ${var.egress_anomaly_sigmas} standard deviations above their mean of the last day: a new traffic pattern, or data leaving that should not."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = "bytes sent above the band"
    condition_prometheus_query_language {
      query               = local.promql_conditions.egress_anomaly
      duration            = "${var.egress_anomaly_duration_seconds}s"
      evaluation_interval = "60s"
    }
  }
}

resource "google_monitoring_alert_policy" "derp_share" {
  project               = var.project_id
  display_name          = "${var.name}: traffic through DERP relays"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "More than ${var.derp_share_percent}% of the bytes sent and received over Tailscale go through DERP relays: direct connections are failing (UDP blocked, NAT, firewall)."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = "share of bytes through DERP"
    condition_prometheus_query_language {
      query               = local.promql_conditions.derp_share
      duration            = "${var.derp_share_duration_seconds}s"
      evaluation_interval = "60s"
    }
  }
}

resource "google_monitoring_alert_policy" "dropped_packets" {
  project               = var.project_id
  display_name          = "${var.name}: dropped packets"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "tailscaled dropped more than ${var.dropped_packets_threshold} packets in ${var.period_seconds}s in one direction (every reason, all nodes)."
    mime_type = "text/markdown"
  }

  dynamic "conditions" {
    for_each = { for k, c in local.threshold_conditions : k => c if startswith(k, "dropped_") }
    content {
      display_name = conditions.value.display_name
      condition_threshold {
        filter          = conditions.value.filter
        comparison      = "COMPARISON_GT"
        threshold_value = var.dropped_packets_threshold
        duration        = "0s"
        aggregations {
          alignment_period     = "${var.period_seconds}s"
          per_series_aligner   = conditions.value.per_series_aligner
          cross_series_reducer = conditions.value.cross_series_reducer
        }
        trigger {
          count = 1
        }
      }
    }
  }
}

resource "google_monitoring_alert_policy" "health" {
  project               = var.project_id
  display_name          = "${var.name}: tailscaled health warnings"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "tailscaled reports health messages on a node (tailscale.health.messages > 0): run `tailscale status` there. The resource labels name the pod or instance."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = local.threshold_conditions.health.display_name
    condition_threshold {
      filter          = local.threshold_conditions.health.filter
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "${var.health_duration_seconds}s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = local.threshold_conditions.health.per_series_aligner
        cross_series_reducer = local.threshold_conditions.health.cross_series_reducer
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "silent" {
  project               = var.project_id
  display_name          = "${var.name}: tailship silent"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "A pod or instance that published Tailscale metrics has sent none for ${var.silent_duration_seconds}s: tailship, tailscaled or the credentials are down there."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = local.absent_conditions.silent.display_name
    condition_absent {
      filter   = local.absent_conditions.silent.filter
      duration = "${var.silent_duration_seconds}s"
      aggregations {
        alignment_period   = "${var.period_seconds}s"
        per_series_aligner = local.absent_conditions.silent.per_series_aligner
      }
      trigger {
        count = 1
      }
    }
  }
}
