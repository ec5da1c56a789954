# The AWS side of an Ephemera installation: network, IAM, the preview
# launch template, the Parameter Store path and the control-plane host.
# State is local by default (terraform.tfstate next to this file, never
# committed); put a backend "s3" block here for a team.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.region
  # Not ephemera:instance: that tag marks what the workers own and their
  # sweep may terminate or delete (previews); Terraform's resources, the
  # control plane first, must never look like an orphaned preview.
  default_tags {
    tags = {
      "ephemera:installation" = var.instance
      "ephemera:managed"      = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = slice(data.aws_availability_zones.available.names, 0, var.az_count)
  # environments.instance names everything; AWS names get a readable prefix.
  name = "ephemera-${var.instance}"
  # Parameter Store: previews read /<instance>/<slug>/... (issue 10); the
  # control plane's own secrets live outside that tree, so no preview
  # policy pattern can ever reach them.
  ssm_prefix         = "/${var.instance}/"
  control_ssm_prefix = "/ephemera-control/${var.instance}/"
}
