# Every metric this module reads, as data: the alert policies (alerts.tf) and the dashboard
# (dashboard.tf) are built from these locals and name no metric themselves.
#
# They are what tailship publishes with [sinks.gcm] in deploy/k8s/overlays/gke: metric types
# var.metric_prefix + catalog name; counters CUMULATIVE (read with ALIGN_DELTA / ALIGN_RATE,
# or PromQL rate()), gauges GAUGE; every metric as its aggregate (no metric label) and bytes
# sent / received also by `path`, under the same metric type. A query on bytes must
# therefore say which: `path=""` (PromQL: the label is absent) is the aggregate, `path="derp"`
# one path; summing both would count every byte twice. deploy/tests/test_consistency.py
# evaluates these locals with `terraform console` (this file and variables.tf need no
# provider) and checks every metric type, label, aligner and resource type against
# `tailship catalog --config deploy/k8s/overlays/gke/tailship.toml --format json`.

locals {
  # PromQL names of Cloud Monitoring metric types: the first "/" becomes ":", every other
  # character PromQL does not allow becomes "_" (workload.googleapis.com/tailscale.bytes.sent.total
  # is workload_googleapis_com:tailscale_bytes_sent_total).
  prefix_parts  = split("/", var.metric_prefix)
  promql_prefix = "${replace(local.prefix_parts[0], ".", "_")}:${replace(replace(join("/", slice(local.prefix_parts, 1, length(local.prefix_parts))), "/", "_"), ".", "_")}"
  on_resource   = "monitored_resource=\"${var.resource_type}\""
  window        = "${var.period_seconds}s"

  # Bytes per second over every path (the aggregates) and through DERP (the breakdown).
  sent_rate          = "sum(rate(${local.promql_prefix}tailscale_bytes_sent_total{${local.on_resource},path=\"\"}[${local.window}]))"
  received_rate      = "sum(rate(${local.promql_prefix}tailscale_bytes_received_total{${local.on_resource},path=\"\"}[${local.window}]))"
  derp_sent_rate     = "sum(rate(${local.promql_prefix}tailscale_bytes_sent_total{${local.on_resource},path=\"derp\"}[${local.window}]))"
  derp_received_rate = "sum(rate(${local.promql_prefix}tailscale_bytes_received_total{${local.on_resource},path=\"derp\"}[${local.window}]))"
  derp_share         = "100 * (${local.derp_sent_rate} + ${local.derp_received_rate}) / (${local.sent_rate} + ${local.received_rate})"

  # Conditions in PromQL: what needs a label's absence or statistics over time.
  promql_conditions = {
    # Bytes sent above their mean over the last day plus N standard deviations (CloudWatch's
    # anomaly band has no Cloud Monitoring counterpart; this is the usual PromQL stand-in).
    egress_anomaly = "${local.sent_rate} > (avg_over_time(${local.sent_rate}[1d:${local.window}]) + ${var.egress_anomaly_sigmas} * stddev_over_time(${local.sent_rate}[1d:${local.window}]))"
    # Share of all bytes through DERP relays, judged above a minimum rate.
    derp_share = "(${local.derp_share} > ${var.derp_share_percent}) and (${local.sent_rate} + ${local.received_rate} > ${var.derp_min_bytes_per_second})"
  }

  # Threshold conditions on one metric type each (aggregates with a single label set).
  threshold_conditions = {
    dropped_sent = {
      display_name         = "packets dropped sending (all nodes, per period)"
      filter               = "metric.type = \"${var.metric_prefix}tailscale.packets.sent.dropped.total\" AND resource.type = \"${var.resource_type}\""
      per_series_aligner   = "ALIGN_DELTA"
      cross_series_reducer = "REDUCE_SUM"
    }
    dropped_received = {
      display_name         = "packets dropped receiving (all nodes, per period)"
      filter               = "metric.type = \"${var.metric_prefix}tailscale.packets.received.dropped.total\" AND resource.type = \"${var.resource_type}\""
      per_series_aligner   = "ALIGN_DELTA"
      cross_series_reducer = "REDUCE_SUM"
    }
    health = {
      display_name         = "tailscaled health messages (per node)"
      filter               = "metric.type = \"${var.metric_prefix}tailscale.health.messages\" AND resource.type = \"${var.resource_type}\""
      per_series_aligner   = "ALIGN_MAX"
      cross_series_reducer = "REDUCE_NONE"
    }
  }

  # Absence: a gauge every scrape publishes, per monitored resource (pod or instance).
  absent_conditions = {
    silent = {
      display_name       = "no datum from tailship (per pod or instance)"
      filter             = "metric.type = \"${var.metric_prefix}tailscale.routes.advertised\" AND resource.type = \"${var.resource_type}\""
      per_series_aligner = "ALIGN_COUNT"
    }
  }

  # The dashboard: one chart per catalog metric family. `labels` are the family's catalog
  # dimensions, matched empty to read the aggregate whatever [sinks.gcm] breakdowns says.
  chart_families = [
    { title = "Bytes per second", counter = true, metrics = ["tailscale.bytes.sent.total", "tailscale.bytes.received.total"], labels = ["path"] },
    { title = "Packets per second", counter = true, metrics = ["tailscale.packets.sent.total", "tailscale.packets.received.total"], labels = ["path"] },
    { title = "Dropped packets per second", counter = true, metrics = ["tailscale.packets.sent.dropped.total", "tailscale.packets.received.dropped.total"], labels = ["reason"] },
    { title = "Health messages (max over nodes)", counter = false, metrics = ["tailscale.health.messages"], labels = ["type"] },
    { title = "Routes (max over nodes)", counter = false, metrics = ["tailscale.routes.advertised", "tailscale.routes.approved"], labels = [] },
    { title = "Home DERP region (max over nodes)", counter = false, metrics = ["tailscale.derp.home_region"], labels = [] },
    { title = "Peer relay: forwarded per second", counter = true, metrics = ["tailscale.peer_relay.bytes.forwarded.total", "tailscale.peer_relay.packets.forwarded.total"], labels = ["transport_in", "transport_out"] },
    { title = "Peer relay: endpoints (max over nodes)", counter = false, metrics = ["tailscale.peer_relay.endpoints"], labels = ["state"] },
    { title = "Serve: bytes per second", counter = true, metrics = ["tailscale.serve.bytes.sent.total", "tailscale.serve.bytes.received.total"], labels = ["service"] },
    { title = "Socket statistics, debug endpoint: bytes per second", counter = true, metrics = ["tailscale.sockstats.bytes.sent.total", "tailscale.sockstats.bytes.received.total", "tailscale.sockstats.cellular.bytes.sent.total", "tailscale.sockstats.cellular.bytes.received.total"], labels = ["label"] },
  ]

  charts = concat(
    [
      { title = "Share of bytes through DERP relays (%)", queries = [local.derp_share] },
      { title = "Bytes sent per second, by path", queries = ["sum by (path) (rate(${local.promql_prefix}tailscale_bytes_sent_total{${local.on_resource},path!=\"\"}[${local.window}]))"] },
      { title = "Bytes received per second, by path", queries = ["sum by (path) (rate(${local.promql_prefix}tailscale_bytes_received_total{${local.on_resource},path!=\"\"}[${local.window}]))"] },
    ],
    [
      for f in local.chart_families : {
        title = f.title
        queries = [
          for m in f.metrics : (f.counter
            ? format("sum(rate(%s{%s}[%s]))", "${local.promql_prefix}${replace(m, ".", "_")}", join(",", concat([local.on_resource], [for l in f.labels : "${l}=\"\""])), local.window)
            : format("max(%s{%s})", "${local.promql_prefix}${replace(m, ".", "_")}", join(",", concat([local.on_resource], [for l in f.labels : "${l}=\"\""])))
          )
        ]
      }
    ],
  )

  dashboard = {
    displayName = "${var.name}: Tailscale"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, c in local.charts : {
          xPos   = 24 * (i % 2)
          yPos   = 16 * floor(i / 2)
          width  = 24
          height = 16
          widget = {
            title = c.title
            xyChart = {
              dataSets = [
                for q in c.queries : {
                  plotType        = "LINE"
                  targetAxis      = "Y1"
                  timeSeriesQuery = { prometheusQuery = q }
                }
              ]
            }
          }
        }
      ]
    }
  }
}
