# Every metric this module reads, as data: the alarms (alarms.tf) and the dashboard
# (dashboard.tf) are built from these locals and name no metric themselves.
#
# They are what tailship publishes with [sinks.cloudwatch] in deploy/k8s/overlays/eks:
# every metric as its aggregate with NO dimension (no `dimensions`, no `node` configured),
# and bytes sent / received also by `path`. deploy/tests/test_consistency.py evaluates these
# locals with `terraform console` (this file and variables.tf need no provider) and checks
# every namespace, metric name and dimension set against
# `tailship catalog --config deploy/k8s/overlays/eks/tailship.toml --format json`.

locals {
  # One metric of the namespace: name, dimensions, statistic.
  bytes_sent        = { namespace = var.namespace, metric_name = "tailscale.bytes.sent.total", dimensions = {}, stat = "Sum", period = var.period }
  bytes_received    = { namespace = var.namespace, metric_name = "tailscale.bytes.received.total", dimensions = {}, stat = "Sum", period = var.period }
  derp_sent         = { namespace = var.namespace, metric_name = "tailscale.bytes.sent.total", dimensions = { path = "derp" }, stat = "Sum", period = var.period }
  derp_received     = { namespace = var.namespace, metric_name = "tailscale.bytes.received.total", dimensions = { path = "derp" }, stat = "Sum", period = var.period }
  dropped_sent      = { namespace = var.namespace, metric_name = "tailscale.packets.sent.dropped.total", dimensions = {}, stat = "Sum", period = var.period }
  dropped_received  = { namespace = var.namespace, metric_name = "tailscale.packets.received.dropped.total", dimensions = {}, stat = "Sum", period = var.period }
  health_messages   = { namespace = var.namespace, metric_name = "tailscale.health.messages", dimensions = {}, stat = "Maximum", period = var.period }
  routes_advertised = { namespace = var.namespace, metric_name = "tailscale.routes.advertised", dimensions = {}, stat = "SampleCount", period = var.period }

  # The metric queries of each alarm (a metric, or an expression over the others).
  alarm_queries = {
    # Bytes sent above CloudWatch's anomaly detection band (a model trained on the metric's
    # own history: a new traffic pattern, or data leaving that should not).
    egress_anomaly = [
      { id = "band", expression = "ANOMALY_DETECTION_BAND(sent, ${var.egress_anomaly_band_width})", label = "bytes sent, expected", return_data = true, metric = null },
      { id = "sent", expression = null, label = "bytes sent", return_data = true, metric = local.bytes_sent },
    ]
    # Share of all bytes relayed through DERP: the path breakdown's derp over the aggregates.
    # A missing derp datum counts as 0; below derp_min_bytes the share is 0 (not judged).
    derp_share = [
      { id = "share", expression = "IF(total > ${var.derp_min_bytes}, 100 * (FILL(derp_sent, 0) + FILL(derp_received, 0)) / total, 0)", label = "% of bytes through DERP", return_data = true, metric = null },
      { id = "total", expression = "FILL(sent, 0) + FILL(received, 0)", label = "bytes sent and received", return_data = false, metric = null },
      { id = "derp_sent", expression = null, label = "bytes sent through DERP", return_data = false, metric = local.derp_sent },
      { id = "derp_received", expression = null, label = "bytes received through DERP", return_data = false, metric = local.derp_received },
      { id = "sent", expression = null, label = "bytes sent", return_data = false, metric = local.bytes_sent },
      { id = "received", expression = null, label = "bytes received", return_data = false, metric = local.bytes_received },
    ]
    # Packets dropped, both directions, every reason. The metrics appear with the first drop.
    dropped_packets = [
      { id = "dropped", expression = "FILL(dropped_sent, 0) + FILL(dropped_received, 0)", label = "packets dropped", return_data = true, metric = null },
      { id = "dropped_sent", expression = null, label = "packets dropped sending", return_data = false, metric = local.dropped_sent },
      { id = "dropped_received", expression = null, label = "packets dropped receiving", return_data = false, metric = local.dropped_received },
    ]
    # tailscaled reports health messages (warnings) on some node.
    health = [
      { id = "health", expression = null, label = "health messages (max over nodes)", return_data = true, metric = local.health_messages },
    ]
    # tailship itself is silent: no datum of a gauge every scrape publishes.
    silent = [
      { id = "datums", expression = null, label = "datums of tailscale.routes.advertised", return_data = true, metric = local.routes_advertised },
    ]
  }

  # The dashboard: one graph per catalog metric family, aggregates (no dimension).
  dashboard_graphs = [
    { title = "Bytes (sum per period)", stat = "Sum", metrics = ["tailscale.bytes.sent.total", "tailscale.bytes.received.total"] },
    { title = "Packets (sum per period)", stat = "Sum", metrics = ["tailscale.packets.sent.total", "tailscale.packets.received.total"] },
    { title = "Dropped packets (sum per period)", stat = "Sum", metrics = ["tailscale.packets.sent.dropped.total", "tailscale.packets.received.dropped.total"] },
    { title = "Health messages (max)", stat = "Maximum", metrics = ["tailscale.health.messages"] },
    { title = "Routes (max)", stat = "Maximum", metrics = ["tailscale.routes.advertised", "tailscale.routes.approved"] },
    { title = "Home DERP region (max)", stat = "Maximum", metrics = ["tailscale.derp.home_region"] },
    { title = "Peer relay: forwarded (sum per period)", stat = "Sum", metrics = ["tailscale.peer_relay.bytes.forwarded.total", "tailscale.peer_relay.packets.forwarded.total"] },
    { title = "Peer relay: endpoints (max)", stat = "Maximum", metrics = ["tailscale.peer_relay.endpoints"] },
    { title = "Serve: bytes (sum per period)", stat = "Sum", metrics = ["tailscale.serve.bytes.sent.total", "tailscale.serve.bytes.received.total"] },
    { title = "Socket statistics, debug endpoint (sum per period)", stat = "Sum", metrics = ["tailscale.sockstats.bytes.sent.total", "tailscale.sockstats.bytes.received.total", "tailscale.sockstats.cellular.bytes.sent.total", "tailscale.sockstats.cellular.bytes.received.total"] },
  ]

  # Metrics graphed by `path` (the breakdowns configured in [sinks.cloudwatch]).
  dashboard_by_path = ["tailscale.bytes.sent.total", "tailscale.bytes.received.total"]

  # The dashboard's widgets, without the region (added in dashboard.tf).
  dashboard_widgets = concat(
    [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Share of bytes through DERP relays (%)"
          view   = "timeSeries"
          stat   = "Sum"
          period = var.period
          metrics = concat(
            [for q in local.alarm_queries.derp_share : [{ expression = q.expression, id = q.id, label = q.label, visible = q.return_data }] if q.metric == null],
            [for q in local.alarm_queries.derp_share : concat([q.metric.namespace, q.metric.metric_name], flatten([for k, v in q.metric.dimensions : [k, v]]), [{ id = q.id, visible = false }]) if q.metric != null],
          )
        }
      },
    ],
    [
      for i, name in local.dashboard_by_path : {
        type = "metric", x = 12 * ((i + 1) % 2), y = 6 * floor((i + 1) / 2), width = 12, height = 6
        properties = {
          title   = "${name} by path (sum per period)"
          view    = "timeSeries"
          stat    = "Sum"
          period  = var.period
          metrics = [[{ expression = "SEARCH('{${var.namespace},path} MetricName=\"${name}\"', 'Sum', ${var.period})", id = "e${i}" }]]
        }
      }
    ],
    [
      for i, graph in local.dashboard_graphs : {
        type = "metric", x = 12 * ((i + 1 + length(local.dashboard_by_path)) % 2), y = 6 * floor((i + 1 + length(local.dashboard_by_path)) / 2), width = 12, height = 6
        properties = {
          title   = graph.title
          view    = "timeSeries"
          stat    = graph.stat
          period  = var.period
          metrics = [for m in graph.metrics : [var.namespace, m]]
        }
      }
    ],
  )
}
