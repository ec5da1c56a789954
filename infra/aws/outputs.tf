# Terraform output names cannot contain dots, so the settings Ephemera
# reads are one map whose keys are exactly its config keys; `make tf-apply`
# renders it into the control plane's cloud.conf (scripts/tf-config.sh).

output "config" {
  description = "Ephemera configuration keys and their values for this installation."
  value = {
    "compute.provider"         = "ec2"
    "environments.instance"    = var.instance
    "aws.region"               = var.region
    "ec2.launch_template"      = aws_launch_template.preview.name
    "ec2.instance_types"       = var.preview_instance_types
    "ec2.subnet_ids"           = aws_subnet.public[*].id
    "ec2.security_group_ids"   = [aws_security_group.previews.id]
    "ec2.instance_profile"     = aws_iam_instance_profile.instance.name
    "ec2.ssm_parameter_prefix" = local.ssm_prefix
  }
}

output "control_plane_instance_id" {
  description = "The control-plane host (make deploy sends its commands here through SSM)."
  value       = aws_instance.control_plane.id
}

output "control_plane_secret_prefix" {
  description = "Where scripts/control-plane-secrets.sh puts the control plane's secrets (SecureString)."
  value       = local.control_ssm_prefix
}

output "database_host" {
  description = "RDS only: the MariaDB endpoint (database.host); empty with MariaDB on the host."
  value       = var.use_rds ? aws_db_instance.main[0].address : ""
}

output "database_secret_arn" {
  description = "RDS only: the Secrets Manager secret holding the MariaDB password."
  value       = var.use_rds ? aws_db_instance.main[0].master_user_secret[0].secret_arn : ""
}

output "worker_user" {
  description = "The IAM user for workers off the control plane (create_worker_user), or empty."
  value       = var.create_worker_user ? aws_iam_user.worker[0].name : ""
}
