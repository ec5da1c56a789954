# What every preview instance starts from. The workers pass the instance
# type (ec2.instance_types, with fallbacks), subnet, security group and
# user-data in RunInstances, and tag each instance and volume with
# ephemera:instance and ephemera:env (= its slug); the template adds what
# never varies.

data "aws_ami" "preview" {
  owners      = ["self"]
  most_recent = true
  filter {
    name   = var.preview_ami_id != "" ? "image-id" : "tag:ephemera:image"
    values = [var.preview_ami_id != "" ? var.preview_ami_id : "environment"]
  }
  # Our own images: built by `make ami-build` for this installation.
  dynamic "filter" {
    for_each = var.preview_ami_id == "" ? [var.instance] : []
    content {
      name   = "tag:ephemera:installation"
      values = [filter.value]
    }
  }
}

resource "aws_launch_template" "preview" {
  name                                 = "${local.name}-preview"
  description                          = "Ephemera preview environment (packer/environment.pkr.hcl image)"
  image_id                             = data.aws_ami.preview.id
  instance_type                        = var.preview_instance_types[0]
  instance_initiated_shutdown_behavior = "stop"
  update_default_version               = true

  iam_instance_profile {
    name = aws_iam_instance_profile.instance.name
  }

  # IMDSv2 only. Hop limit 2: a token PUT from a container on Docker's
  # bridge network crosses one more hop; with 1 the answer is dropped.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = data.aws_ami.preview.root_device_name
    ebs {
      volume_size           = var.preview_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  # Burst credits capped: a runaway build cannot run up "unlimited" charges.
  credit_specification {
    cpu_credits = "standard"
  }

  # ephemera:env (the slug) differs per preview: RunInstances adds it.
  tag_specifications {
    resource_type = "instance"
    tags          = { "ephemera:instance" = var.instance }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { "ephemera:instance" = var.instance }
  }

  tags = { Name = "${local.name}-preview" }
}

# The Parameter Store tree previews read from: /<instance>/<slug>/...,
# written and deleted by the workers (ec2.ssm_parameter_prefix). This
# record of it lives in the control plane's own tree, so nothing under the
# previews' prefix is Terraform's and no sweep can take it for a preview's.
resource "aws_ssm_parameter" "prefix" {
  name        = "${local.control_ssm_prefix}parameter-prefix"
  description = "Ephemera instance ${var.instance}: environments' secrets live under this prefix"
  type        = "String"
  value       = local.ssm_prefix
}
