# tailship on EKS: the IRSA role for the sidecar of deploy/k8s/overlays/eks, an instance
# profile for host agents on EC2, the alarms (to an SNS topic) and the dashboard.
#
#   terraform init && terraform apply -var cluster_name=prod -var region=eu-west-1
#   terraform output irsa_role_arn   # -> deploy/k8s/overlays/eks/serviceaccount-patch.yaml

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "The AWS region of the cluster; tailship publishes there (the pod identity webhook sets AWS_REGION)."
  type        = string
}

variable "cluster_name" {
  description = "The EKS cluster whose pods run the tailship sidecar; its IAM OIDC provider must exist."
  type        = string
}

variable "alarm_email" {
  description = "An address subscribed to the alarms' SNS topic (it must confirm the subscription). Null: no subscription."
  type        = string
  default     = null
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_sns_topic" "alarms" {
  name              = "tailship-alarms"
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

module "tailship" {
  source = "../../modules/aws"

  # [sinks.cloudwatch] namespace in deploy/k8s/overlays/eks/tailship.toml.
  namespace = "Tailscale"

  create_irsa_role  = true
  oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
  oidc_provider_url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
  # The pod's service account (deploy/k8s/base/serviceaccount.yaml, namespace tailscale).
  service_account_namespace = "tailscale"
  service_account_name      = "tailscale"

  create_instance_profile = true
  sns_topic_arn           = aws_sns_topic.alarms.arn
}

output "irsa_role_arn" {
  description = "Set as eks.amazonaws.com/role-arn in deploy/k8s/overlays/eks/serviceaccount-patch.yaml."
  value       = module.tailship.irsa_role_arn
}

output "instance_profile_name" {
  description = "Attach to EC2 instances running tailship as a host agent (deploy/systemd)."
  value       = module.tailship.instance_profile_name
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.tailship.dashboard_name
}
