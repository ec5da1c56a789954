# The control-plane host: nginx, the FastCGI app, the workers and (unless
# use_rds) MariaDB, installed by scripts/control-plane.sh from source_ref.
# Measured footprint (docs/deploy.md) fits the smallest Graviton type.

data "aws_ami" "debian" {
  owners      = ["136693071363"] # Debian's official cloud images
  most_recent = true
  filter {
    name   = "name"
    values = ["debian-12-${var.control_plane_arch}-*"]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_instance" "control_plane" {
  ami                    = data.aws_ami.debian.id
  instance_type          = var.control_plane_instance_type
  subnet_id              = aws_subnet.public[0].id
  vpc_security_group_ids = [aws_security_group.control_plane.id]
  iam_instance_profile   = aws_iam_instance_profile.control_plane.name
  user_data = templatefile("${path.module}/control-plane-init.sh.tftpl", {
    source_url      = var.source_url
    source_ref      = var.source_ref
    region          = var.region
    secret_prefix   = local.control_ssm_prefix
    database_host   = var.use_rds ? aws_db_instance.main[0].address : ""
    database_secret = var.use_rds ? aws_db_instance.main[0].master_user_secret[0].secret_arn : ""
  })
  user_data_replace_on_change = false

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size = var.control_plane_volume_gb
    volume_type = "gp3"
    encrypted   = true
  }

  credit_specification {
    cpu_credits = "standard"
  }

  tags = {
    Name            = "${local.name}-control-plane"
    "ephemera:role" = "control-plane"
  }

  lifecycle {
    # A newer Debian image must not replace a running host; `make deploy`
    # updates Ephemera in place.
    ignore_changes = [ami, user_data]
  }
}

# Optional: MariaDB on RDS instead of on the host.
resource "aws_db_subnet_group" "main" {
  count      = var.use_rds ? 1 : 0
  name       = local.name
  subnet_ids = aws_subnet.public[*].id
}

resource "aws_security_group" "database" {
  count       = var.use_rds ? 1 : 0
  name        = "${local.name}-database"
  description = "Ephemera MariaDB: from the control plane only"
  vpc_id      = aws_vpc.main.id
  ingress {
    description     = "MariaDB from the control plane"
    from_port       = 3306
    to_port         = 3306
    protocol        = "tcp"
    security_groups = [aws_security_group.control_plane.id]
  }
  tags = { Name = "${local.name}-database" }
}

resource "aws_db_instance" "main" {
  count                       = var.use_rds ? 1 : 0
  identifier                  = local.name
  engine                      = "mariadb"
  engine_version              = "10.11"
  instance_class              = var.rds_instance_class
  allocated_storage           = 20
  storage_type                = "gp3"
  storage_encrypted           = true
  db_name                     = "ephemera"
  username                    = "ephemera"
  manage_master_user_password = true # in Secrets Manager, never in state
  db_subnet_group_name        = aws_db_subnet_group.main[0].name
  vpc_security_group_ids      = [aws_security_group.database[0].id]
  publicly_accessible         = false
  backup_retention_period     = 7
  skip_final_snapshot         = false
  final_snapshot_identifier   = "${local.name}-final"
}
