#!/usr/bin/env bash
# The booking benchmark, in one go on this machine:
#   (a) PostgreSQL alone doing what one booking does (bench/book.sql through pgbench), and
#   (b) the booking service (release build) on the same PostgreSQL, booking through HTTP with
#       bearer tokens, driven by the smoke-test's open-loop load mode,
# then prints both rates, their ratio, the latency at half the service's maximum rate and the
# service's peak resident memory.
#
# Usage: bench/run.sh            (see the variables below; PostgreSQL at 127.0.0.1:5432 by default)
# Needs: cargo, psql, pgbench, jq. Creates a scratch database and drops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL=${BENCH_ADMIN_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
DURATION=${BENCH_DURATION:-20}          # seconds per measurement
CLIENTS=${BENCH_CLIENTS:-16}            # pgbench clients = the service's pool size
POOL=${DATABASE_POOL_SIZE:-16}
IN_FLIGHT=${BENCH_IN_FLIGHT:-64}        # load generator connections
PORT=${BENCH_PORT:-18080}
OUT=${BENCH_OUT:-reports/bench-$(date +%s)}
DB=booking_bench_$(date +%s)_$$
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

mkdir -p "$OUT"
log() { printf '\n==> %s\n' "$*" >&2; }
db_url() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$ADMIN_URL" "$DB"; }
URL=$(db_url)

SERVICE_PID=
cleanup() {
  if [ -n "$SERVICE_PID" ]; then kill "$SERVICE_PID" 2>/dev/null || true; wait "$SERVICE_PID" 2>/dev/null || true; fi
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "building the service and the load generator (release)"
cargo build --release -q -p booking-service -p smoke-test

log "scratch database $DB; the service creates the schema (its migrations) at start-up"
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB"
# The load comes from one token subject, which the per-subject rate limit would cap at a few
# hundred requests a minute: the benchmark measures the booking path, so the limit is off.
DATABASE_URL=$URL JWT_SECRET=$SECRET BIND_ADDR=127.0.0.1:$PORT DATABASE_POOL_SIZE=$POOL \
  RUST_LOG=${RUST_LOG:-warn} MAIL_DIR="$OUT/mail" SMS_DIR="$OUT/sms" RATE_LIMIT_PER_MINUTE=0 \
  target/release/booking-service >"$OUT/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$OUT/service.log"; echo "the service did not start" >&2; exit 2; }

log "(a) pgbench: $CLIENTS clients, ${DURATION}s, prepared statements, bench/book.sql"
ORG=00000000-0000-0000-0000-00000000b0b0
psql -q "$URL" <<SQL
INSERT INTO organizations (id, name, timezone, created_at) VALUES ('$ORG', 'pgbench', 'UTC', now());
INSERT INTO providers (id, org_id, name, appointment_minutes, created_at, updated_at)
SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, '$ORG', 'p' || g, 30, now(), now()
  FROM generate_series(1, 16) g;
SQL
pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -D k=0 -D org="$ORG" -f bench/book.sql "$URL" >"$OUT/pgbench.txt" 2>&1 \
  || { cat "$OUT/pgbench.txt"; exit 2; }
PG_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$OUT/pgbench.txt" | head -n 1)
PG_LAT=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$OUT/pgbench.txt")
grep -E 'failed|aborted' "$OUT/pgbench.txt" >&2 || true
echo "pgbench: $PG_TPS bookings/s (average latency $PG_LAT ms)" >&2

smoke() {
  target/release/smoke-test --target "http://127.0.0.1:$PORT" --jwt-secret "$SECRET" \
    --max-in-flight "$IN_FLIGHT" --providers 32 --budget-ms 50 --quiet "$@" >&2 || true
}

# The offered rate for the maximum: above what PostgreSQL alone managed, so the service saturates.
OFFER=$(python3 -c "print(max(50, round(float('$PG_TPS') * 1.2)))")
log "(b1) service maximum: offering $OFFER bookings/s for ${DURATION}s (open loop, $IN_FLIGHT connections)"
smoke --rate "$OFFER" --duration "${DURATION}s" --report "$OUT/service-max.json"
SVC_MAX=$(jq '.load.success_rate' "$OUT/service-max.json")

HALF=$(python3 -c "print(max(1, round(float('$SVC_MAX') / 2)))")
log "(b2) service at half its maximum: $HALF bookings/s for ${DURATION}s"
smoke --rate "$HALF" --duration "${DURATION}s" --report "$OUT/service-half.json"

# The floor under the service's latency: PostgreSQL alone at the same constant rate, timed from
# each transaction's scheduled start (pgbench -R), on slots the first run did not use.
log "(a2) pgbench at the same $HALF/s, for the latency PostgreSQL alone gives at that rate"
pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -R "$HALF" -D k=5000000 -D org="$ORG" -f bench/book.sql \
  -l --log-prefix="$OUT/pglog" "$URL" >"$OUT/pgbench-rate.txt" 2>&1 || { cat "$OUT/pgbench-rate.txt"; exit 2; }
cat "$OUT"/pglog.* | awk '{print $3}' | sort -n >"$OUT/pgbench-rate-latencies-us.txt"

RSS_KB=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVICE_PID/status")

python3 - "$PG_TPS" "$OUT/service-max.json" "$OUT/service-half.json" "$RSS_KB" "$OUT/pgbench-rate-latencies-us.txt" <<'PY' | tee "$OUT/summary.txt"
import json, sys
pg = float(sys.argv[1]); top = json.load(open(sys.argv[2])); half = json.load(open(sys.argv[3])); rss = int(sys.argv[4]) / 1024
pgl = [int(x) for x in open(sys.argv[5]) if x.strip()]
pq = lambda q: pgl[min(len(pgl) - 1, int(q * len(pgl)))] / 1000 if pgl else float("nan")
smax = top["load"]["success_rate"]; ratio = smax / pg if pg else 0
lat = half["latency"]["from_intended"]; ms = lambda us: us / 1000
errs = half["load"]["errors_by_class"]
print(f"pgbench (PostgreSQL alone, same statements): {pg:.0f} bookings/s")
print(f"service maximum (HTTP + JWT, {top['load']['target_rate']:.0f}/s offered): {smax:.0f} bookings/s, errors {top['load']['errors_by_class']}")
print(f"ratio service / pgbench: {ratio:.0%}  (target >= 60%: {'PASS' if ratio >= 0.6 else 'FAIL'})")
print(f"at half the maximum ({half['load']['target_rate']:.0f}/s): p50 {ms(lat['p50']):.1f} ms, p95 {ms(lat['p95']):.1f} ms, p99 {ms(lat['p99']):.1f} ms, max {ms(lat['max']):.1f} ms,"
      f" {half['load']['late']} late sends, errors {errs}  (target p99 < 50 ms: {'PASS' if ms(lat['p99']) < 50 else 'FAIL'})")
print(f"pgbench alone at the same rate: p50 {pq(0.5):.1f} ms, p95 {pq(0.95):.1f} ms, p99 {pq(0.99):.1f} ms ({len(pgl)} transactions)")
print(f"service peak RSS (VmHWM): {rss:.1f} MB  (target < 64 MB: {'PASS' if rss < 64 else 'FAIL'})")
PY
echo "raw outputs in $OUT" >&2
