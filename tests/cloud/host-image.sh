#!/usr/bin/env bash
# host-image.sh - the emulated preview host's image: Debian 12 made by
# debootstrap and `docker import`ed (no registry is reachable here), with
# what packer/provision.sh puts on the real AMI that a test can run: bash,
# git, the AWS CLI, the Docker CLI and compose, and ephemera-host where
# user-data calls it. Built once per content of this file and of
# host/ephemera-host: the tag carries their hash.
#
# Prints the image's tag on stdout; progress on stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
hash=$(cat "$0" "$root/host/ephemera-host" | sha256sum | cut -c1-12)
tag="ephemera-test/instance-host:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag"
	exit 0
fi
started=$(date +%s)
work=$(mktemp -d /var/tmp/eph-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
mirror=${EPH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The packages are those of the real image, from Debian's archive:
# docker.io and docker-compose stand in for Docker's docker-ce-cli and
# compose plugin (ephemera-host runs either compose), awscli for the
# SSM agent's environment (the agent itself is the emulator, outside);
# debootstrap does not resolve virtual packages, so awscli's cffi backend
# is named.
debootstrap --variant=minbase \
	--include=ca-certificates,git,awscli,python3-cffi-backend,docker.io,docker-compose,socat,procps,iproute2 \
	bookworm "$work/rootfs" "$mirror" >&2 || {
	tail -n 40 "$work/rootfs/debootstrap/debootstrap.log" >&2
	exit 1
}
install -d -m 755 "$work/rootfs/opt/ephemera/host"
install -m 755 "$root/host/ephemera-host" "$work/rootfs/opt/ephemera/host/ephemera-host"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . |
	docker import --change 'CMD ["/bin/sleep", "infinity"]' - "$tag" >&2
echo "host image $tag built in $(($(date +%s) - started)) s" >&2
echo "$tag"
