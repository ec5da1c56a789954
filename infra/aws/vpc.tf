# Public subnets and no inbound rules (README, "AWS setup"): a private
# subnet without NAT has no way out to GitHub, the image registries or
# Cloudflare's edge, and a NAT gateway costs about $33 a month idle, which
# breaks the scale-to-zero goal. A public IP with a security group that
# admits nothing is as closed from the outside: previews are reached only
# through their outbound Cloudflare Tunnel and driven only through SSM.

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = local.name }
}

resource "aws_subnet" "public" {
  count                   = length(local.azs)
  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = true
  tags                    = { Name = "${local.name}-public-${local.azs[count.index]}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }
  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Previews: no ingress block at all, egress anywhere (git, registries,
# Cloudflare, the SSM endpoints).
resource "aws_security_group" "previews" {
  name        = "${local.name}-previews"
  description = "Ephemera previews: no inbound; reached through Cloudflare Tunnel, driven through SSM"
  vpc_id      = aws_vpc.main.id
  egress {
    description = "outbound only"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = { Name = "${local.name}-previews" }
}

# The control plane: no inbound either; GitHub's webhooks arrive through
# its own tunnel (infra/cloudflare), operators come in through SSM.
resource "aws_security_group" "control_plane" {
  name        = "${local.name}-control-plane"
  description = "Ephemera control plane: no inbound; webhooks through Cloudflare Tunnel"
  vpc_id      = aws_vpc.main.id
  egress {
    description = "outbound only"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = { Name = "${local.name}-control-plane" }
}
