#!/usr/bin/env bash
# Starts (or stops) a local PgBouncer in transaction pooling mode in front of a PostgreSQL server,
# the way .ci/run tests the service through it. For development and CI, listening on 127.0.0.1
# only; docs/OPERATIONS.md shows a production setup. Against a server that trusts local
# connections (no password in UPSTREAM_URL) clients are trusted too; otherwise clients log in with
# SCRAM, and PgBouncer looks each role up in the server (auth_query) and logs in to it with the
# client's SCRAM keys, so roles created later (a test's) work without being listed here.
#
#   deploy/pgbouncer/pgbouncer.sh start [UPSTREAM_URL]   # default postgres://postgres@127.0.0.1:5432/postgres
#   deploy/pgbouncer/pgbouncer.sh stop
#
# `start` prints the URL to give the service (DATABASE_URL) or the tests (TEST_PGBOUNCER_URL): the
# same role and database through PgBouncer, with sqlx's statement cache off
# (`statement-cache-capacity=0`), which PgBouncer before 1.21 needs (see docs/OPERATIONS.md).
# Environment: PGBOUNCER_PORT (6432), PGBOUNCER_DIR (config, log and pid; a folder under /tmp).
set -euo pipefail

port="${PGBOUNCER_PORT:-6432}"
dir="${PGBOUNCER_DIR:-/tmp/booking-pgbouncer-$port}"
action="${1:-}"
upstream="${2:-postgres://postgres@127.0.0.1:5432/postgres}"

stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    local pid
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/pgbouncer.pid"
  fi
}

case "$action" in
  start) ;;
  stop) stop; exit 0 ;;
  *) echo "usage: $0 start [UPSTREAM_URL] | stop" >&2; exit 2 ;;
esac

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "installing Debian's pgbouncer" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq pgbouncer >/dev/null
fi
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

# postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?...]: the parts PgBouncer needs.
rest="${upstream#*://}"
rest="${rest%%\?*}"
database="${rest#*/}"
[ "$database" = "$rest" ] && database=postgres
authority="${rest%%/*}"
credentials=""
hostport="$authority"
if [[ "$authority" == *@* ]]; then
  credentials="${authority%@*}"
  hostport="${authority##*@}"
fi
user="${credentials%%:*}"
user="${user:-postgres}"
password=""
[[ "$credentials" == *:* ]] && password="${credentials#*:}"
host="${hostport%%:*}"
upstream_port=5432
[[ "$hostport" == *:* ]] && upstream_port="${hostport##*:}"

stop
if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null || [ $? -eq 1 ]; then
  echo "something already listens on 127.0.0.1:$port (Debian's own pgbouncer service?): stop it or set PGBOUNCER_PORT" >&2
  exit 1
fi
mkdir -p "$dir"
auth_type=trust
[ -n "$password" ] && auth_type=scram-sha-256
# Every database by name to the upstream server, as the client's role.
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$upstream_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
pool_mode = transaction
auth_type = $auth_type
auth_file = $dir/userlist.txt
auth_user = $user
admin_users = $user
max_client_conn = 2000
default_pool_size = 20
; sqlx sends it at start-up; PgBouncer would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits
; Before 1.21 PgBouncer does not track prepared statements: the service turns sqlx's statement
; cache off, and every named statement a transaction prepared is dropped when the transaction
; gives its server connection back, so no other client meets it there.
server_reset_query = DEALLOCATE ALL
server_reset_query_always = 1
INI
printf '"%s" "%s"\n' "$user" "$password" >"$dir/userlist.txt"
chmod 600 "$dir/userlist.txt"

run_as=()
if [ "$(id -u)" = 0 ]; then
  # PgBouncer refuses to run as root.
  chown -R postgres "$dir"
  run_as=(-u postgres)
fi
"$pgbouncer" -d "${run_as[@]}" "$dir/pgbouncer.ini"
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" -U "$user" -d "$database" 2>/dev/null && break
  sleep 0.1
done
if ! pg_isready -q -h 127.0.0.1 -p "$port" -U "$user" -d "$database"; then
  # It may still be running, retrying to listen: stop it rather than leave it behind.
  stop
  echo "PgBouncer did not start; see $dir/pgbouncer.log" >&2
  exit 1
fi

userinfo="$user"
[ -n "$password" ] && userinfo="$user:$password"
echo "postgres://$userinfo@127.0.0.1:$port/$database?statement-cache-capacity=0"
