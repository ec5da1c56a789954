#!/usr/bin/env bash
# control-plane.sh install - runs on the control-plane host as root, from
# its checkout in /opt/ephemera/src: first from user-data, then for every
# `make deploy`. Builds and installs Ephemera, sets up MariaDB (unless
# RDS), fetches the configuration and secrets from Parameter Store into
# /etc/ephemera (mode 0600, owned by the ephemera user), runs the control
# plane's own tunnel, and (re)starts ephemera.target. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "${1:-}" = install ] || { echo "usage: control-plane.sh install" >&2; exit 2; }
# shellcheck source=/dev/null
. /opt/ephemera/host.env
export DEBIAN_FRONTEND=noninteractive
CLOUDFLARED_VERSION=2025.10.1 # as packer/environment.pkr.hcl
say() { echo "control-plane: $*"; }

scripts/deps.sh
apt-get install -y -q --no-install-recommends awscli jq gnupg >/dev/null
make -s -j2 all
make -s install PREFIX=/usr/local
systemd-sysusers

# Configuration and secrets: what deploy.sh put in Parameter Store.
fetched=0
for name in ephemera.conf github.conf repos.conf github-app.pem webhook-secret \
	cloudflare-token tunnel-token; do
	tmp=$(mktemp /etc/ephemera/.fetch.XXXXXX)
	if aws ssm get-parameter --region "$EPH_REGION" --with-decryption \
		--name "$EPH_SECRET_PREFIX$name" --query Parameter.Value \
		--output text >"$tmp" 2>/dev/null; then
		chown ephemera:ephemera "$tmp"
		chmod 600 "$tmp"
		mv "$tmp" "/etc/ephemera/$name"
		fetched=$((fetched + 1))
	else
		rm -f "$tmp"
		say "no $EPH_SECRET_PREFIX$name yet (make deploy puts it there)"
	fi
done
if [ -n "${EPH_DATABASE_SECRET_ARN:-}" ]; then
	(umask 077 && aws secretsmanager get-secret-value --region "$EPH_REGION" \
		--secret-id "$EPH_DATABASE_SECRET_ARN" --query SecretString --output text |
		jq -r .password >/etc/ephemera/database-password)
	chown ephemera:ephemera /etc/ephemera/database-password
fi

if [ -z "${EPH_DATABASE_HOST:-}" ]; then
	# The server settings `make run` uses, sized for this 1 GB host
	# (config/mariadb.cnf), read after Debian's 50-server.cnf; MariaDB
	# restarts only when they changed (it resizes its redo log itself).
	cnf=/etc/mysql/mariadb.conf.d/60-ephemera.cnf
	if ! cmp -s /usr/local/share/ephemera/mariadb.cnf "$cnf"; then
		install -m 644 /usr/local/share/ephemera/mariadb.cnf "$cnf"
		systemctl restart mariadb
	fi
	systemctl enable --now mariadb
	mariadb -e "CREATE DATABASE IF NOT EXISTS ephemera;
		CREATE USER IF NOT EXISTS ephemera@localhost IDENTIFIED VIA unix_socket;
		GRANT ALL ON ephemera.* TO ephemera@localhost;"
fi

# The control plane's own tunnel: cloudflared from Cloudflare's signed
# repository at a pinned version, token read from a file (not argv).
if ! dpkg-query -W -f='${Version}' cloudflared 2>/dev/null | grep -qx "$CLOUDFLARED_VERSION"; then
	install -d -m 755 /etc/apt/keyrings
	curl -fsSL https://pkg.cloudflare.com/cloudflare-main.gpg -o /etc/apt/keyrings/cloudflare-main.gpg
	echo "deb [signed-by=/etc/apt/keyrings/cloudflare-main.gpg] https://pkg.cloudflare.com/cloudflared bookworm main" \
		>/etc/apt/sources.list.d/cloudflared.list
	apt-get update -q >/dev/null
	apt-get install -y -q --allow-downgrades "cloudflared=$CLOUDFLARED_VERSION" >/dev/null
fi
cat >/etc/systemd/system/ephemera-tunnel.service <<'UNIT'
[Unit]
Description=Ephemera: the control plane's Cloudflare Tunnel (webhooks, status page)
Wants=network-online.target
After=network-online.target ephemera-nginx.service

[Service]
User=ephemera
Group=ephemera
ExecStart=/usr/bin/cloudflared tunnel --no-autoupdate run --token-file /etc/ephemera/tunnel-token
Restart=on-failure
RestartSec=5s
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
if [ "$fetched" -lt 7 ]; then
	say "configuration incomplete ($fetched of 7 parameters): not starting; run make deploy"
	exit 0
fi
systemctl enable ephemera.target ephemera-tunnel.service
systemctl restart ephemera.target
systemctl restart ephemera-tunnel.service
for _ in $(seq 60); do
	if curl -sf http://127.0.0.1:8080/healthz >/dev/null; then
		say "healthy at $(git rev-parse --short HEAD)"
		exit 0
	fi
	sleep 1
done
say "not healthy after 60 s: journalctl -u 'ephemera-*'"
exit 1
