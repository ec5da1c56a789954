#!/usr/bin/env bash
# image.sh - builds the stand-in connector image (tests only) with no
# registry: the static tests/connector/connector.c in a rootfs FROM
# scratch, run as uid 65532 like the official cloudflared image, imported
# with `docker import`. Prints the image name. Rebuilt when the source
# changes (the tag carries its hash).
set -euo pipefail
cd "$(dirname "$0")"
hash=$(sha256sum connector.c | cut -c1-12)
IMAGE=ephemera/cf-connector-standin:$hash
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/etc "$root"/run/cf "$root"/tmp
# -static: FROM scratch has no libc. getaddrinfo in a static glibc binary
# still resolves through the container's resolv.conf (Docker's DNS).
cc -static -O2 -Wall -Wextra -Werror -Wno-error=unused-result \
	-o "$root/connector" connector.c 2>/dev/null
echo 'nonroot:x:65532:65532::/:/connector' >"$root/etc/passwd"
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
tar -C "$root" --numeric-owner -cf - . |
	docker import -c 'USER 65532:65532' -c 'ENTRYPOINT ["/connector"]' \
		- "$IMAGE" >/dev/null
echo "$IMAGE"
