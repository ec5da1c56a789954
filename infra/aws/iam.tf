# The two policies are written and tested elsewhere (issue 10: the moto
# suite runs with exactly these files) and read here as they are, byte for
# byte: tests/infra checks that no other policy text is deployed.

locals {
  worker_policy   = file("${path.module}/iam/worker-policy.json")
  instance_policy = file("${path.module}/iam/instance-policy.json")
}

resource "aws_iam_policy" "worker" {
  name        = "${local.name}-worker"
  description = "Ephemera workers: least privilege (infra/aws/iam/worker-policy.json)"
  policy      = local.worker_policy
}

# Preview instances run pull-request code: they get instance-policy.json
# (their own environment's parameters, the SSM agent) and nothing else.
resource "aws_iam_role" "instance" {
  name = var.instance_role_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "instance" {
  name   = "ephemera-instance"
  role   = aws_iam_role.instance.id
  policy = local.instance_policy
}

resource "aws_iam_instance_profile" "instance" {
  name = var.instance_role_name
  role = aws_iam_role.instance.name
}

# The control-plane host runs the workers: its role carries the worker
# policy, plus what its own SSM agent needs and read access to its own
# secrets (the GitHub App key, webhook secret, Cloudflare token).
resource "aws_iam_role" "control_plane" {
  name = "${local.name}-control-plane"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "control_plane_worker" {
  role       = aws_iam_role.control_plane.name
  policy_arn = aws_iam_policy.worker.arn
}

resource "aws_iam_role_policy" "control_plane_host" {
  name = "control-plane-host"
  role = aws_iam_role.control_plane.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "SsmAgent"
        Effect = "Allow"
        Action = [
          "ssm:UpdateInstanceInformation",
          "ssmmessages:CreateControlChannel",
          "ssmmessages:CreateDataChannel",
          "ssmmessages:OpenControlChannel",
          "ssmmessages:OpenDataChannel",
          "ec2messages:AcknowledgeMessage",
          "ec2messages:DeleteMessage",
          "ec2messages:FailMessage",
          "ec2messages:GetEndpoint",
          "ec2messages:GetMessages",
          "ec2messages:SendReply",
        ]
        Resource = "*"
      },
      {
        Sid      = "OwnSecrets"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter", "ssm:GetParametersByPath"]
        Resource = "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${local.control_ssm_prefix}*"
      },
      {
        Sid      = "DecryptOwnSecrets"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = "*"
        Condition = {
          StringEquals = { "kms:ViaService" = "ssm.${var.region}.amazonaws.com" }
        }
      },
    ]
  })
}

# RDS only: the MariaDB password RDS keeps in Secrets Manager.
resource "aws_iam_role_policy" "control_plane_database" {
  count = var.use_rds ? 1 : 0
  name  = "control-plane-database"
  role  = aws_iam_role.control_plane.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = aws_db_instance.main[0].master_user_secret[0].secret_arn
    }]
  })
}

resource "aws_iam_instance_profile" "control_plane" {
  name = "${local.name}-control-plane"
  role = aws_iam_role.control_plane.name
}

# Workers elsewhere (a team's own server): a user with the same policy.
# Its access key is made with `aws iam create-access-key` so that the
# secret never lands in Terraform state.
resource "aws_iam_user" "worker" {
  count = var.create_worker_user ? 1 : 0
  name  = "${local.name}-worker"
}

resource "aws_iam_user_policy_attachment" "worker" {
  count      = var.create_worker_user ? 1 : 0
  user       = aws_iam_user.worker[0].name
  policy_arn = aws_iam_policy.worker.arn
}
