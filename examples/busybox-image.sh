#!/usr/bin/env bash
# busybox-image.sh - makes the local base image `ephemera/busybox:1` that
# the examples build FROM, with no registry: a rootfs holding Debian's
# static busybox (busybox-static), imported with `docker import`.
set -euo pipefail
IMAGE=ephemera/busybox:1
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
[ -x /bin/busybox ] || { echo "busybox-image: install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,www}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" -cf - . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "busybox-image: built $IMAGE" >&2
