#!/usr/bin/env bash
# scripts/docker-userns.sh - `make docker-userns`: turns on Docker's user
# namespace remapping on a preview host (README "Defence in depth"), so
# root in a preview's container is an unprivileged user on the host.
#
#   scripts/docker-userns.sh [--check]
#
# --check only says whether it is on (exit 0) or not (exit 1). Otherwise,
# with no daemon.json yet, it writes one holding only the setting; an
# existing daemon.json is never rewritten (its other settings are the
# admin's): the line to add is printed instead. Docker must then be
# restarted, which this script does not do on its own: every running
# container stops, and images and volumes made before are not visible
# under the remapped root.
set -euo pipefail

conf=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

configured() {
	[ -f "$conf" ] && grep -Eq '"userns-remap"[[:space:]]*:[[:space:]]*"[^"]+"' "$conf"
}

if [ "${1:-}" = --check ]; then
	if configured; then
		echo "docker-userns: on ($conf)"
		exit 0
	fi
	echo "docker-userns: off; \`sudo make docker-userns\` turns it on"
	exit 1
fi
if configured; then
	echo "docker-userns: already on in $conf"
	exit 0
fi
if [ -e "$conf" ]; then
	echo "docker-userns: $conf exists; add this setting to it, then" \
		"restart Docker:" >&2
	echo '  "userns-remap": "default"' >&2
	exit 1
fi
mkdir -p "$(dirname "$conf")"
umask 022
printf '{ "userns-remap": "default" }\n' >"$conf.tmp"
mv "$conf.tmp" "$conf"
echo "docker-userns: wrote $conf; restart Docker to apply it" \
	"(systemctl restart docker: running containers stop)"
