#!/usr/bin/env bash
# deps.sh - makes sure this Debian/Ubuntu machine has what Ephemera needs.
#   scripts/deps.sh          packages to build and run
#   scripts/deps.sh --test   also what the tests need
# As root, installs what is missing; otherwise prints the one apt-get line.
set -euo pipefail

run_pkgs=(gcc make pkg-config git curl ca-certificates
	mariadb-server mariadb-client nginx-light
	libfcgi-dev libjson-c-dev libconfig-dev libmariadb-dev
	libcurl4-openssl-dev libssl-dev libyaml-dev libxml2-dev zlib1g-dev busybox-static
	docker-compose)
test_pkgs=(clang clang-format shellcheck valgrind iproute2 procps psmisc
	chromium python3-flask python3-cryptography wrk libclang-rt-14-dev
	debootstrap socat)

pkgs=("${run_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
	pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "ephemera: missing packages; install them with:" >&2
	echo "  sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "ephemera: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Debian's packages start their services on install; we run our own
# private instances, so keep the system ones from starting.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	created_policy=true
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if $created_policy; then rm -f "$policy"; fi
