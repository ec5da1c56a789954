# The Cloudflare side: Access (GitHub login) in front of every preview,
# the control plane's own tunnel and hostname, and the workers' scoped API
# token. Written for the v4 provider (resource names zero_trust_*).
terraform {
  required_version = ">= 1.6"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 4.52"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

# The token Terraform runs with (CLOUDFLARE_API_TOKEN in the environment)
# needs more than the workers' token: docs/deploy.md lists it.
provider "cloudflare" {}

locals {
  zone                   = var.zone
  control_plane_hostname = "${var.control_plane_label}.${var.zone}"
}
