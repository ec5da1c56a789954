# The environment image every preview instance boots from: Debian 12 with
# Docker Engine, the compose plugin, cloudflared, the SSM agent and
# Ephemera's host scripts, every version pinned. It boots ready: nothing is
# installed at boot, and the apt timers are off so no upgrade runs under a
# build. `make ami-build` runs `packer build` on this file.

packer {
  required_version = ">= 1.10.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.3.4"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance" {
  type        = string
  default     = "eph"
  description = "environments.instance; tags the image."
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "amd64 for the default t3.small previews, arm64 for t4g."
}

variable "build_instance_type" {
  type    = string
  default = "t3.small"
}

# Pinned versions. Docker's and Cloudflare's apt repositories are signed;
# the SSM agent comes from AWS's regional bucket at an exact version.
variable "docker_version" {
  type    = string
  default = "5:27.5.1-1~debian.12~bookworm"
}

variable "compose_version" {
  type    = string
  default = "2.32.4-1~debian.12~bookworm"
}

variable "cloudflared_version" {
  type        = string
  default     = "2025.10.1"
  description = "At least 2025.4.0: the connector reads its token with --token-file."
}

variable "ssm_agent_version" {
  type    = string
  default = "3.3.1957.0"
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "environment" {
  region        = var.region
  instance_type = var.build_instance_type
  ami_name      = "ephemera-${var.instance}-environment-${var.arch}-${local.stamp}"
  ssh_username  = "admin"
  encrypt_boot  = true

  source_ami_filter {
    owners      = ["136693071363"] # Debian
    most_recent = true
    filters = {
      name                = "debian-12-${var.arch}-*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  # ephemera:installation, not ephemera:instance: that tag is what the
  # workers' sweep owns.
  tags = {
    "ephemera:image"        = "environment"
    "ephemera:installation" = var.instance
    docker                  = var.docker_version
    compose                 = var.compose_version
    cloudflared             = var.cloudflared_version
    ssm_agent               = var.ssm_agent_version
  }
}

build {
  sources = ["source.amazon-ebs.environment"]

  provisioner "file" {
    source      = "${path.root}/../host/"
    destination = "/tmp/ephemera-host"
  }

  provisioner "shell" {
    execute_command = "sudo -E bash '{{ .Path }}'"
    environment_vars = [
      "ARCH=${var.arch}",
      "REGION=${var.region}",
      "DOCKER_VERSION=${var.docker_version}",
      "COMPOSE_VERSION=${var.compose_version}",
      "CLOUDFLARED_VERSION=${var.cloudflared_version}",
      "SSM_AGENT_VERSION=${var.ssm_agent_version}",
    ]
    script = "${path.root}/provision.sh"
  }
}
