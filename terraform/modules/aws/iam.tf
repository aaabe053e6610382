# PutMetricData into var.namespace, nothing else. CloudWatch has no resource-level
# permissions for it: the cloudwatch:namespace condition is what scopes the grant.
data "aws_iam_policy_document" "put_metric_data" {
  #checkov:skip=CKV_AWS_356:cloudwatch:PutMetricData supports no resource ARN, so the resource must be "*"; the cloudwatch:namespace condition limits it to one namespace
  statement {
    sid       = "PutTailscaleMetrics"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.namespace]
    }
  }
}

resource "aws_iam_policy" "put_metric_data" {
  name        = "${var.name}-put-metric-data"
  description = "tailship: cloudwatch:PutMetricData into the ${var.namespace} namespace only"
  policy      = data.aws_iam_policy_document.put_metric_data.json
  tags        = var.tags
}

# IRSA: the Kubernetes service account's web identity token, and nothing else, may assume it.
locals {
  oidc_issuer = var.oidc_provider_url == null ? null : trimprefix(var.oidc_provider_url, "https://")
}

data "aws_iam_policy_document" "irsa_trust" {
  count = var.create_irsa_role ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.service_account_namespace}:${var.service_account_name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  count = var.create_irsa_role ? 1 : 0

  name                 = "${var.name}-irsa"
  description          = "tailship sidecar (${var.service_account_namespace}/${var.service_account_name}): PutMetricData into ${var.namespace}"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust[0].json
  max_session_duration = 3600
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.oidc_provider_arn != null && var.oidc_provider_url != null
      error_message = "create_irsa_role needs oidc_provider_arn and oidc_provider_url (the EKS cluster's IAM OIDC provider)."
    }
  }
}

resource "aws_iam_role_policy_attachment" "irsa" {
  count = var.create_irsa_role ? 1 : 0

  role       = aws_iam_role.irsa[0].name
  policy_arn = aws_iam_policy.put_metric_data.arn
}

# EC2 host agent: the instance profile's role (tailship reads it through IMDSv2).
data "aws_iam_policy_document" "ec2_trust" {
  count = var.create_instance_profile ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ec2" {
  count = var.create_instance_profile ? 1 : 0

  name               = "${var.name}-ec2"
  description        = "tailship host agent: PutMetricData into ${var.namespace}"
  assume_role_policy = data.aws_iam_policy_document.ec2_trust[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ec2" {
  count = var.create_instance_profile ? 1 : 0

  role       = aws_iam_role.ec2[0].name
  policy_arn = aws_iam_policy.put_metric_data.arn
}

resource "aws_iam_instance_profile" "ec2" {
  count = var.create_instance_profile ? 1 : 0

  name = "${var.name}-ec2"
  role = aws_iam_role.ec2[0].name
  tags = var.tags
}
