variable "region" {
  description = "AWS region for everything (aws.region)."
  type        = string
  default     = "us-east-1"
}

variable "instance" {
  description = "environments.instance: names and tags every resource (ephemera:instance); [a-z0-9-], at most 20 characters."
  type        = string
  default     = "eph"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,19}$", var.instance))
    error_message = "instance must be 1-20 characters of [a-z0-9-], starting with a letter or digit."
  }
}

variable "vpc_cidr" {
  description = "The VPC's address range; each public subnet takes a /20 of it."
  type        = string
  default     = "10.42.0.0/16"
}

variable "az_count" {
  description = "Public subnets, one per availability zone (more zones: more capacity to fall back on)."
  type        = number
  default     = 2
}

variable "preview_ami_id" {
  description = "The environment image built by `make ami-build`; empty: the newest image of this account tagged ephemera:image = environment."
  type        = string
  default     = ""
}

variable "preview_instance_types" {
  description = "ec2.instance_types: first preferred, the rest are capacity fallbacks."
  type        = list(string)
  default     = ["t3.small", "t3a.small", "t2.small"]
}

variable "preview_volume_gb" {
  description = "Root volume of a preview instance (gp3, encrypted)."
  type        = number
  default     = 16
}

variable "control_plane_instance_type" {
  description = "The control-plane host. Measured (docs/deploy.md): nginx, the FastCGI app and the workers 49 MB resident, MariaDB 112 MB before config/mariadb.cnf and 68-77 MB with it (bench/footprint); Debian, the SSM agent and cloudflared come on top (estimated under 0.5 GB in all), so 1 GiB (t4g.micro) fits and 0.5 GiB (t4g.nano) is too tight."
  type        = string
  default     = "t4g.micro"
}

variable "control_plane_arch" {
  description = "arm64 for Graviton types (t4g), amd64 for t3/t3a."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "amd64"], var.control_plane_arch)
    error_message = "control_plane_arch is arm64 or amd64."
  }
}

variable "control_plane_volume_gb" {
  description = "Root volume of the control plane (MariaDB lives here unless use_rds)."
  type        = number
  default     = 16
}

variable "source_url" {
  description = "Git URL the control plane builds Ephemera from (your fork)."
  type        = string
  default     = "https://github.com/ephemera-dev/ephemera.git"
}

variable "source_ref" {
  description = "Branch, tag or commit the control plane runs; `make deploy REF=...` moves it later."
  type        = string
  default     = "main"
}

variable "use_rds" {
  description = "true: MariaDB on RDS (db.t4g.micro, about $12/month more) instead of on the control-plane host."
  type        = bool
  default     = false
}

variable "rds_instance_class" {
  description = "RDS instance class when use_rds."
  type        = string
  default     = "db.t4g.micro"
}

variable "instance_role_name" {
  description = "The preview instances' role. worker-policy.json allows iam:PassRole on this one role only, so keep the two in step."
  type        = string
  default     = "ephemera-preview"
}

variable "create_worker_user" {
  description = "true: also an IAM user with worker-policy.json, for workers that do not run on the control-plane host (create its access key with the AWS CLI, never in Terraform state)."
  type        = bool
  default     = false
}
