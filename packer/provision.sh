#!/usr/bin/env bash
# provision.sh - runs once, inside Packer's build instance, as root. Every
# version comes from environment.pkr.hcl; apt refuses anything else.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends ca-certificates curl gnupg git jq

# Docker's and Cloudflare's signed apt repositories.
install -d -m 755 /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/debian/gpg |
	gpg --dearmor -o /etc/apt/keyrings/docker.gpg
echo "deb [arch=$ARCH signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable" \
	>/etc/apt/sources.list.d/docker.list
curl -fsSL https://pkg.cloudflare.com/cloudflare-main.gpg \
	-o /etc/apt/keyrings/cloudflare-main.gpg
echo "deb [signed-by=/etc/apt/keyrings/cloudflare-main.gpg] https://pkg.cloudflare.com/cloudflared bookworm main" \
	>/etc/apt/sources.list.d/cloudflared.list
apt-get update -q
apt-get install -y -q --no-install-recommends \
	"docker-ce=$DOCKER_VERSION" "docker-ce-cli=$DOCKER_VERSION" containerd.io \
	"docker-compose-plugin=$COMPOSE_VERSION" "cloudflared=$CLOUDFLARED_VERSION"
apt-mark hold docker-ce docker-ce-cli docker-compose-plugin cloudflared

# The SSM agent at an exact version from AWS's regional bucket.
deb=/tmp/amazon-ssm-agent.deb
curl -fsSL -o "$deb" \
	"https://s3.$REGION.amazonaws.com/amazon-ssm-$REGION/$SSM_AGENT_VERSION/debian_$ARCH/amazon-ssm-agent.deb"
dpkg -i "$deb"
rm -f "$deb"
systemctl enable amazon-ssm-agent docker

# Ephemera's host scripts, where user-data and SSM commands call them.
install -d -m 755 /opt/ephemera/host
install -m 755 /tmp/ephemera-host/ephemera-host /opt/ephemera/host/ephemera-host
rm -rf /tmp/ephemera-host

# Boots ready: no upgrades or package lists fetched under a build.
systemctl disable apt-daily.timer apt-daily-upgrade.timer || true
apt-get purge -y -q unattended-upgrades || true
apt-get clean
rm -rf /var/lib/apt/lists/*

# Record what the image holds (the tests' and operators' look-up).
{
	echo "docker=$(dpkg-query -W -f='${Version}' docker-ce)"
	echo "compose=$(dpkg-query -W -f='${Version}' docker-compose-plugin)"
	echo "cloudflared=$(dpkg-query -W -f='${Version}' cloudflared)"
	echo "ssm_agent=$(dpkg-query -W -f='${Version}' amazon-ssm-agent)"
} >/etc/ephemera-image
cloud-init clean --logs
