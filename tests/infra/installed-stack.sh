#!/usr/bin/env bash
# installed-stack.sh DESTDIR WORK - runs an installed Ephemera the way its
# systemd units would, without systemd (this machine's PID 1 is not
# systemd): meant to run under `unshare --mount --net`, so its mounts and
# its loopback (port 8080 of the installed config) are its own.
#
# DESTDIR (from `make install DESTDIR=...`) becomes a temp root: the host's
# /usr (but not /usr/local, which is the installed one) and the few /etc
# files a program needs are bound in read-only, the whole root is
# read-only (ProtectSystem=strict), and only what the units make writable
# is: /var/lib/ephemera (StateDirectory), a private /tmp (PrivateTmp), and
# /run/mysqld for the database this host would run. Every ExecStartPre and
# ExecStart line of the installed units runs, in unit order, as the
# dedicated user (User=ephemera, here uid $EPH_UID from a passwd of the root's own).
# Then it waits for /healthz and leaves the stack running for the caller's
# commands ($3..., run inside the root as root), then stops everything.
set -euo pipefail
DEST=$(realpath "$1")
WORK=$(realpath "$2")
shift 2
R=$WORK/root
EPH_UID=${EPH_UID:-61999}
UNITS=/usr/local/lib/systemd/system

say() { echo "installed-stack: $*" >&2; }

mkdir -p "$R"
mount -t tmpfs -o mode=755 tmpfs "$R"
for d in usr/bin usr/sbin usr/lib usr/lib64 usr/share usr/libexec; do
	[ -d "/$d" ] || continue
	mkdir -p "$R/$d"
	mount --bind "/$d" "$R/$d"
done
ln -s usr/bin "$R/bin"
ln -s usr/sbin "$R/sbin"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"
mkdir -p "$R/usr/local"
mount --bind "$DEST/usr/local" "$R/usr/local"
mkdir -p "$R/etc" "$R/dev" "$R/proc" "$R/tmp" "$R/run/mysqld" "$R/var/lib/ephemera"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
for f in nsswitch.conf hosts resolv.conf ld.so.cache ld.so.conf localtime \
	mime.types; do
	[ -e "/etc/$f" ] && cp -L "/etc/$f" "$R/etc/$f"
done
for d in ld.so.conf.d nginx ssl alternatives; do
	[ -d "/etc/$d" ] && cp -a "/etc/$d" "$R/etc/$d"
done
cp -a "$DEST/etc/ephemera" "$R/etc/ephemera"
# The dedicated user: what dist/sysusers.conf makes at boot.
grep -E '^(root|nobody|nogroup):' /etc/passwd >"$R/etc/passwd"
echo "ephemera:x:$EPH_UID:$EPH_UID:Ephemera:/var/lib/ephemera:/usr/sbin/nologin" >>"$R/etc/passwd"
grep -E '^(root|nogroup):' /etc/group >"$R/etc/group"
echo "ephemera:x:$EPH_UID:" >>"$R/etc/group"
chown -R "$EPH_UID:$EPH_UID" "$R/var/lib/ephemera" "$R/etc/ephemera"
chmod 750 "$R/var/lib/ephemera"
# Secrets and configuration the caller put in place are the user's.
find "$R/etc/ephemera" -type f -exec chmod go-rwx {} +

# ProtectSystem=strict: everything read-only but the state dir, /tmp
# (PrivateTmp), /run/mysqld (the database, not ours) and the API mounts.
mount --rbind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mkdir -p "$R/run/mysqld"
mount --bind "$WORK/state" "$R/var/lib/ephemera" 2>/dev/null || {
	mkdir -p "$WORK/state"
	mount --bind "$WORK/state" "$R/var/lib/ephemera"
}
chown "$EPH_UID:$EPH_UID" "$WORK/state"
chmod 750 "$WORK/state"
ip link set lo up

inroot() { chroot "$R" "$@"; }
# User=ephemera, a clean environment (systemd passes none of ours).
# shellcheck disable=SC2034 # used by the eval in run_unit
asuser=(chroot --userspec="$EPH_UID:$EPH_UID" "$R" env -i
	HOME=/var/lib/ephemera PATH=/usr/local/bin:/usr/bin:/usr/sbin)

# The database the units expect (mariadb.service): Debian's layout, socket
# /run/mysqld/mysqld.sock, the ephemera user by unix_socket, no password.
mkdir -p "$WORK/mysql"
mount --bind "$WORK/mysql" "$R/run/mysqld"
mkdir -p "$R/run/mysqld/data"
# Its settings are the installed mariadb.cnf, which control-plane.sh puts
# in /etc/mysql/mariadb.conf.d/ on a real host (none here).
cnf=/usr/local/share/ephemera/mariadb.cnf
inroot mariadb-install-db --defaults-file=$cnf --datadir=/run/mysqld/data --user=root \
	--auth-root-authentication-method=socket --skip-test-db >"$WORK/mariadb-install.log" 2>&1
inroot setsid mariadbd --defaults-file=$cnf --datadir=/run/mysqld/data --user=root \
	--socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
	--skip-networking --tmpdir=/tmp \
	--log-error=/run/mysqld/error.log </dev/null >/dev/null 2>&1 &
for _ in $(seq 300); do
	inroot mariadb-admin --no-defaults -uroot --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1 && break
	sleep 0.1
done
inroot mariadb --no-defaults -uroot --socket=/run/mysqld/mysqld.sock -e \
	"CREATE DATABASE ephemera; CREATE USER ephemera@localhost IDENTIFIED VIA unix_socket; GRANT ALL ON ephemera.* TO ephemera@localhost;"

# Exec lines of a unit: ExecStartPre then ExecStart, in file order.
execs() { sed -n "s/^$2=//p" "$R$UNITS/$1"; }
pids=()
run_unit() {
	local unit=$1 line d
	# StateDirectory=: systemd makes each, owned by User=, before starting.
	local dirs=()
	read -ra dirs < <(sed -n 's/^StateDirectory=//p' "$R$UNITS/$unit")
	for d in "${dirs[@]}"; do
		inroot install -d -o "$EPH_UID" -g "$EPH_UID" -m 750 "/var/lib/$d"
	done
	while IFS= read -r line; do
		say "$unit: $line"
		eval "\"\${asuser[@]}\" $line" >>"$WORK/$unit.log" 2>&1 || { say "$unit: ExecStartPre failed"; return 1; }
	done < <(execs "$unit" ExecStartPre)
	while IFS= read -r line; do
		say "$unit: $line"
		if grep -q '^Type=oneshot' "$R$UNITS/$unit"; then
			eval "\"\${asuser[@]}\" $line" >>"$WORK/$unit.log" 2>&1 || { say "$unit failed"; return 1; }
		else
			# exec: $! is then the service's main process itself (setsid,
			# chroot and env all exec), as systemd's MainPID would be.
			eval "exec setsid \"\${asuser[@]}\" $line" >>"$WORK/$unit.log" 2>&1 </dev/null &
			pids+=($!)
		fi
	done < <(execs "$unit" ExecStart)
}

# shellcheck disable=SC2317 # called by the trap
stop_all() {
	local p f
	# The main processes, and what their pidfiles name (the same, unless
	# one was restarted): TERM, wait, KILL, as systemd stops a unit.
	for f in "$WORK"/state/run/*.pid; do
		[ -s "$f" ] && pids+=("$(cat "$f")")
	done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	# Whatever is still running inside this temp root (a child whose
	# supervisor was killed) goes too; nothing outside it is touched.
	for f in /proc/[0-9]*; do
		[ "$(readlink "$f/root" 2>/dev/null)" = "$R" ] || continue
		[ "$(cat "$R/run/mysqld/mysqld.pid" 2>/dev/null)" = "${f#/proc/}" ] && continue
		kill -KILL "${f#/proc/}" 2>/dev/null || true
	done
	[ -s "$R/run/mysqld/mysqld.pid" ] && kill -TERM "$(cat "$R/run/mysqld/mysqld.pid")" 2>/dev/null
	for _ in $(seq 100); do [ -s "$R/run/mysqld/mysqld.pid" ] || break; sleep 0.1; done
}
trap stop_all EXIT

# The order systemd derives from the units' After=/Requires=.
for unit in ephemera-migrate.service ephemera-fcgi.service \
	ephemera-workers.service ephemera-nginx.service; do
	run_unit "$unit"
done
for _ in $(seq 300); do
	inroot curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
	sleep 0.1
done
say "healthz: $(inroot curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/healthz)"
rc=0
if [ $# -gt 0 ]; then
	inroot "$@" || rc=$?
fi
# What each unit wrote to its stderr (the journal, under systemd).
for f in "$WORK"/*.log; do echo "==> $f"; tail -5 "$f"; done >&2
exit $rc
