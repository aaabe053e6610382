output "policy_arn" {
  description = "The IAM policy allowing cloudwatch:PutMetricData into var.namespace only; attach it to roles of your own if needed."
  value       = aws_iam_policy.put_metric_data.arn
}

output "irsa_role_arn" {
  description = "For the eks.amazonaws.com/role-arn annotation of the tailscale service account (deploy/k8s/overlays/eks/serviceaccount-patch.yaml). Null unless create_irsa_role."
  value       = one(aws_iam_role.irsa[*].arn)
}

output "instance_profile_name" {
  description = "The EC2 instance profile for tailship as a host agent (attach it to the instance). Null unless create_instance_profile."
  value       = one(aws_iam_instance_profile.ec2[*].name)
}

output "namespace" {
  description = "The CloudWatch namespace: [sinks.cloudwatch] namespace in tailship.toml must be this."
  value       = var.namespace
}

output "alarm_arns" {
  description = "The alarms, by name."
  value = {
    egress_anomaly  = aws_cloudwatch_metric_alarm.egress_anomaly.arn
    derp_share      = aws_cloudwatch_metric_alarm.derp_share.arn
    dropped_packets = aws_cloudwatch_metric_alarm.dropped_packets.arn
    health          = aws_cloudwatch_metric_alarm.health.arn
    silent          = aws_cloudwatch_metric_alarm.silent.arn
  }
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of the catalog."
  value       = aws_cloudwatch_dashboard.tailship.dashboard_name
}
