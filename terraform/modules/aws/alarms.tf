# The alarms, built from local.alarm_queries (metrics.tf). Every alarm notifies
# var.sns_topic_arn when it fires and when it recovers.

locals {
  alarm_actions = var.sns_topic_arn == null ? [] : [var.sns_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "egress_anomaly" {
  alarm_name          = "${var.name}-egress-anomaly"
  alarm_description   = "Bytes sent over Tailscale (tailscale.bytes.sent.total, all nodes) rose above the anomaly detection band for ${var.egress_anomaly_periods} periods of ${var.period}s: a new traffic pattern, or data leaving that should not."
  comparison_operator = "GreaterThanUpperThreshold"
  evaluation_periods  = var.egress_anomaly_periods
  datapoints_to_alarm = var.egress_anomaly_periods
  threshold_metric_id = "band"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  dynamic "metric_query" {
    for_each = local.alarm_queries.egress_anomaly
    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          period      = metric.value.period
          stat        = metric.value.stat
        }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "derp_share" {
  alarm_name          = "${var.name}-derp-share"
  alarm_description   = "More than ${var.derp_share_percent}% of the bytes sent and received over Tailscale went through DERP relays for ${var.derp_share_periods} periods of ${var.period}s: direct connections are failing (UDP blocked, NAT, firewall)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.derp_share_percent
  evaluation_periods  = var.derp_share_periods
  datapoints_to_alarm = var.derp_share_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  dynamic "metric_query" {
    for_each = local.alarm_queries.derp_share
    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          period      = metric.value.period
          stat        = metric.value.stat
        }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "dropped_packets" {
  alarm_name          = "${var.name}-dropped-packets"
  alarm_description   = "tailscaled dropped more than ${var.dropped_packets_threshold} packets (sent and received, every reason) in ${var.period}s."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.dropped_packets_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  dynamic "metric_query" {
    for_each = local.alarm_queries.dropped_packets
    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          period      = metric.value.period
          stat        = metric.value.stat
        }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "health" {
  alarm_name          = "${var.name}-health-warnings"
  alarm_description   = "tailscaled reports health messages (tailscale.health.messages > 0) on some node for ${var.health_periods} periods of ${var.period}s: run `tailscale status` there."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = var.health_periods
  datapoints_to_alarm = var.health_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  dynamic "metric_query" {
    for_each = local.alarm_queries.health
    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          period      = metric.value.period
          stat        = metric.value.stat
        }
      }
    }
  }
}

# Missing data is the condition itself: breaching.
resource "aws_cloudwatch_metric_alarm" "silent" {
  alarm_name          = "${var.name}-silent"
  alarm_description   = "No datum from tailship in namespace ${var.namespace} for ${var.silent_periods} periods of ${var.period}s: tailship, tailscaled or the credentials are down (fleet-wide without a node dimension)."
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = var.silent_periods
  datapoints_to_alarm = var.silent_periods
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  dynamic "metric_query" {
    for_each = local.alarm_queries.silent
    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          period      = metric.value.period
          stat        = metric.value.stat
        }
      }
    }
  }
}
