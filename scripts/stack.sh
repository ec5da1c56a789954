#!/usr/bin/env bash
# stack.sh - the private local stack under var_dir: MariaDB, migrations,
# fcgi-app, workers and nginx. Used by `make run` and by the tests.
#
#   CONFIG=file scripts/stack.sh up|down|db-start|db-stop|status
#
# EPHEMERA_BIN selects the binaries (default bin/; the tests use the ASan
# build). The private MariaDB's server settings are config/mariadb.cnf,
# the file an installed host uses too (EPHEMERA_MARIADB_CNF names another:
# bench/footprint's comparison). EPHEMERA_MARIADB_ARGS adds server options
# after it (benches trying a setting, the tests' TCP, TLS and connection
# limit; not for durability switches). Every daemon is started in its
# own session (setsid) so a Ctrl-C in the terminal reaches only run.sh,
# which then stops them in order.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$(realpath "${CONFIG:-$ROOT/config/example.conf}")
BIN=$(realpath "${EPHEMERA_BIN:-$ROOT/bin}")
cd "$ROOT"

cfg() { "$BIN/ephemera" -c "$CONFIG" config get "$1"; }

VAR=$(realpath -m "$(cfg var_dir)")
PORT=$(cfg http.port)
DB_SOCKET=$(cfg database.socket)
DB_HOST=$(cfg database.host)
DB_NAME=$(cfg database.name)
FCGI_SOCKET=$(cfg fcgi.socket)
[ -n "$FCGI_SOCKET" ] || FCGI_SOCKET=$VAR/run/fcgi.sock
# The private MariaDB serves a configuration without a database, and one
# whose database.host is that server's TCP port when EPHEMERA_PRIVATE_DB=1
# (the tests' TLS stack; its port and certificates come through
# EPHEMERA_MARIADB_ARGS). Its own socket stays the admin's way in.
PRIVATE_DB=false
if [ -z "$DB_SOCKET" ] && { [ -z "$DB_HOST" ] || [ "${EPHEMERA_PRIVATE_DB:-}" = 1 ]; }; then
	PRIVATE_DB=true
	DB_SOCKET=$VAR/run/mysqld.sock
fi
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
MARIADB_CNF=$(realpath "${EPHEMERA_MARIADB_CNF:-$ROOT/config/mariadb.cnf}")
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say() { echo "stack: $*" >&2; }

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then return 1; fi
		sleep 0.1
	done
}

pid_of() { [ -s "$1" ] && cat "$1" 2>/dev/null; }
# A zombie is not alive: it has exited, and whoever reaps orphans here
# (the container's PID 1) may take its time; kill -0 still finds it, and a
# killed daemon would then never be started again.
alive() {
	local st
	[ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${st%% *}" != Z ]
}
dead() { ! alive "$1"; }

# stop NAME PIDFILE SIGNAL TIMEOUT: signal, wait, then KILL.
stop() {
	local name=$1 pidfile=$2 sig=$3 timeout=$4 pid
	pid=$(pid_of "$pidfile") || return 0
	alive "$pid" || { rm -f "$pidfile"; return 0; }
	kill "-$sig" "$pid" 2>/dev/null || true
	if ! wait_for "$timeout" dead "$pid"; then
		say "$name did not stop in ${timeout}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_for 5 dead "$pid" || true
	fi
	rm -f "$pidfile"
}

db_ping() {
	mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot \
		--connect-timeout=2 ping
}

db_start() {
	$PRIVATE_DB || return 0
	mkdir -p "$VAR/run" "$VAR/log" "$VAR/tmp"
	if [ ! -d "$VAR/mysql/mysql" ]; then
		say "initialising MariaDB in $VAR/mysql"
		# With the server's own settings: the redo log is made at the
		# size it runs with, the system tables in its character set.
		mariadb-install-db --defaults-file="$MARIADB_CNF" --datadir="$VAR/mysql" \
			--user="$(id -un)" --auth-root-authentication-method=normal \
			--skip-test-db >"$VAR/log/mariadb-install.log" 2>&1 || {
			cat "$VAR/log/mariadb-install.log" >&2
			return 1
		}
	fi
	alive "$(pid_of "$VAR/run/mysqld.pid")" && return 0
	local extra=()
	read -ra extra <<<"${EPHEMERA_MARIADB_ARGS:-}"
	# --defaults-file first (mariadbd takes it nowhere else): the file's
	# settings and nothing from /etc/mysql, this stack's paths after it.
	# skip-networking: only the private socket.
	setsid "$MARIADBD" --defaults-file="$MARIADB_CNF" --datadir="$VAR/mysql" \
		--socket="$DB_SOCKET" --pid-file="$VAR/run/mysqld.pid" \
		--skip-networking --user="$(id -un)" \
		--log-error="$VAR/log/mariadb.log" --tmpdir="$VAR/tmp" \
		"${extra[@]}" </dev/null >/dev/null 2>&1 &
	if ! wait_for 60 db_ping; then
		say "MariaDB did not start; see $VAR/log/mariadb.log"
		tail -20 "$VAR/log/mariadb.log" >&2 || true
		return 1
	fi
	mariadb --no-defaults --socket="$DB_SOCKET" -uroot -e \
		"CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`"
}

db_stop() {
	$PRIVATE_DB || return 0
	stop mariadb "$VAR/run/mysqld.pid" TERM 60
}

nginx_conf() {
	mkdir -p "$VAR/nginx/previews" "$VAR/log"
	cp /etc/nginx/fastcgi_params "$VAR/nginx/fastcgi_params"
	local user=""
	[ "$(id -u)" -eq 0 ] && user="user root;"
	sed -e "s|@VAR@|$VAR|g" -e "s|@PORT@|$PORT|g" -e "s|@USER@|$user|g" \
		-e "s|@PREVIEW_DOMAIN@|$(cfg environments.preview_domain)|g" \
		nginx/nginx.conf.tmpl >"$VAR/nginx/nginx.conf"
	sed -e "s|@FCGI_SOCKET@|$FCGI_SOCKET|g" -e "s|@WEB_DIR@|$ROOT/web|g" \
		nginx/site.conf >"$VAR/nginx/site.conf"
}

daemon() { # daemon NAME PIDFILE ARGV...
	local name=$1 pidfile=$2
	shift 2
	alive "$(pid_of "$pidfile")" && return 0
	setsid "$@" </dev/null >>"$VAR/log/$name.log" 2>&1 &
	if ! wait_for 30 test -s "$pidfile"; then
		say "$name did not start; see $VAR/log/$name.log"
		tail -20 "$VAR/log/$name.log" >&2 || true
		return 1
	fi
}

# The installation's identity: with no environments.instance configured,
# one is generated at first start and kept in var/ (like the webhook
# secret), so two clones on one Docker engine never share one. Every
# Docker object, work dir and route of this installation carries it.
instance_ensure() {
	[ -z "$(cfg environments.instance)" ] || return 0
	[ -s "$VAR/instance" ] && return 0
	mkdir -p "$VAR"
	(umask 077 && printf 'e%s\n' "$(od -An -tx1 -N5 /dev/urandom | tr -d ' \n')" \
		>"$VAR/instance.tmp" && mv -n "$VAR/instance.tmp" "$VAR/instance")
	rm -f "$VAR/instance.tmp"
	say "this installation's identity is $(cat "$VAR/instance") (kept in $VAR/instance)"
}

up() {
	mkdir -p "$VAR/run" "$VAR/log"
	instance_ensure
	db_start
	"$BIN/ephemera" -c "$CONFIG" migrate >>"$VAR/log/migrate.log" 2>&1 || {
		tail -20 "$VAR/log/migrate.log" >&2
		return 1
	}
	# Environments whose containers were stopped with the stack come back.
	"$BIN/ephemera" -c "$CONFIG" resync >>"$VAR/log/migrate.log" 2>&1
	daemon fcgi "$VAR/run/fcgi.pid" "$BIN/ephemera-fcgi" -c "$CONFIG"
	wait_for 10 test -S "$FCGI_SOCKET"
	# EPHEMERA_WORKERS=0: no worker pool (tests of the fcgi-app alone,
	# which look at jobs as the webhook left them).
	if [ "${EPHEMERA_WORKERS:-1}" != 0 ]; then
		daemon workers "$VAR/run/workers.pid" "$BIN/ephemera-workers" \
			-c "$CONFIG"
	fi
	nginx_conf
	"$NGINX" -e "$VAR/log/nginx-error.log" -p "$VAR/nginx" \
		-c "$VAR/nginx/nginx.conf" -t -q
	if ! alive "$(pid_of "$VAR/run/nginx.pid")"; then
		setsid "$NGINX" -e "$VAR/log/nginx-error.log" -p "$VAR/nginx" \
			-c "$VAR/nginx/nginx.conf" </dev/null >/dev/null \
			2>>"$VAR/log/nginx-start.log"
	fi
	if ! wait_for 30 curl -sf "http://127.0.0.1:$PORT/healthz"; then
		say "the stack did not become healthy; logs are in $VAR/log"
		return 1
	fi
}

# Stops (does not remove) this installation's preview containers: nothing
# keeps running after the stack; `up` resyncs and restarts them.
previews_stop() {
	command -v docker >/dev/null || return 0
	local ids=()
	mapfile -t ids < <(docker ps -q --filter \
		"label=io.ephemera.instance=$(cfg environments.instance)" 2>/dev/null)
	[ ${#ids[@]} -eq 0 ] || docker stop -t 10 "${ids[@]}" >/dev/null || true
}

down() {
	stop nginx "$VAR/run/nginx.pid" QUIT 10
	stop workers "$VAR/run/workers.pid" TERM \
		"$(($(cfg workers.shutdown_timeout) + 5))"
	previews_stop
	stop fcgi "$VAR/run/fcgi.pid" TERM 15
	db_stop
}

nginx_reload() {
	nginx_conf
	"$NGINX" -e "$VAR/log/nginx-error.log" -p "$VAR/nginx" \
		-c "$VAR/nginx/nginx.conf" -s reload
}

case "${1:-}" in
up) up ;;
down) down ;;
db-start) db_start ;;
db-stop) db_stop ;;
nginx-reload) nginx_reload ;;
status)
	for n in mysqld fcgi workers nginx; do
		pid=$(pid_of "$VAR/run/$n.pid" || true)
		if alive "$pid"; then echo "$n running pid=$pid"; else echo "$n stopped"; fi
	done
	;;
*)
	echo "usage: stack.sh up|down|db-start|db-stop|nginx-reload|status" >&2
	exit 2
	;;
esac
