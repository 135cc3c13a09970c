#!/usr/bin/env bash
# Interleaved load test of two builds of the reference server, each on a fresh deployment of
# its own (global database, storage prefix, Redis key prefix) on the same Postgres and Redis:
# used to compare the release before the wall with the walled one (BENCHMARKS.md, "The wall
# end to end"). Usage:
#   wall-loadtest.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS] [SECONDS]
# where each *_BIN_DIR holds `reference-server` and `tenant-cli` (release builds). Each round
# runs `tenant-cli loadtest --tenants 20 --concurrency 64` against both, the order alternating
# per round. JSON results go to $OUT (default /tmp/wall-loadtest); everything created is dropped
# on exit.
set -euo pipefail
OUT=${OUT:-/tmp/wall-loadtest}; mkdir -p "$OUT"
OLD=$1; NEW=$2; ROUNDS=${3:-3}; SECS=${4:-20}
PSQL="psql -h 127.0.0.1 -U postgres -qAt"
R=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
start() { # variant dir port prefix
  local dir=$2 port=$3 p=$4
  $PSQL -c "CREATE DATABASE ${p}_global" postgres
  export APP_ENV=development PORT=$port BIND_ADDRESS=127.0.0.1 \
    GLOBAL_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/${p}_global \
    POSTGRES_ADMIN_USER=postgres POSTGRES_ADMIN_HOST=127.0.0.1 POSTGRES_ADMIN_PORT=5432 \
    TENANT_STORAGE_PREFIX=$p TENANT_SHARED_DATABASE=${p}_shared \
    TENANT_DB_SECRET=bench-master-secret-$R-0123456789abcdef0123 \
    REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$p: \
    MAX_TOTAL_CONNECTIONS=20 MAX_CONNECTIONS_PER_TENANT=20 GLOBAL_POOL_SIZE=10 RATE_LIMIT_MAX_REQUESTS=10000000 RUST_LOG=warn
  $dir/tenant-cli migrate global >/dev/null
  nohup $dir/reference-server > ${OUT}/rps-$p.log 2>&1 &
  echo $! > ${OUT}/rps-$p.pid
  for _ in $(seq 1 60); do curl -sf http://127.0.0.1:$port/health/ready >/dev/null && return 0; sleep 1; done
  echo "server $p did not become ready"; cat ${OUT}/rps-$p.log; return 1
}
cleanup() {
  for p in o${R} n${R}; do
    [ -f ${OUT}/rps-$p.pid ] && kill $(cat ${OUT}/rps-$p.pid) 2>/dev/null || true
  done
  sleep 2
  for db in $($PSQL -c "SELECT datname FROM pg_database WHERE datname LIKE 'o${R}%' OR datname LIKE 'n${R}%'" postgres); do
    $PSQL -c "DROP DATABASE \"$db\" WITH (FORCE)" postgres || true
  done
  for role in $($PSQL -c "SELECT rolname FROM pg_roles WHERE rolname LIKE 'o${R}%' OR rolname LIKE 'n${R}%' OR rolname LIKE 'tenant_loadtest%'" postgres); do
    $PSQL -c "DROP ROLE \"$role\"" postgres || true
  done
  redis-cli --scan --pattern "o${R}:*" | xargs -r redis-cli del >/dev/null || true
  redis-cli --scan --pattern "n${R}:*" | xargs -r redis-cli del >/dev/null || true
}
trap cleanup EXIT
start old $OLD 3911 o$R
start new $NEW 3912 n$R
for i in $(seq 1 $ROUNDS); do
  order="old:3911 new:3912"; [ $((i % 2)) -eq 0 ] && order="new:3912 old:3911"
  for v in $order; do
    name=${v%%:*}; port=${v##*:}
    echo "== round $i $name $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    $OLD/tenant-cli loadtest --url http://127.0.0.1:$port --tenants 20 --concurrency 64 --duration $SECS --json \
      > ${OUT}/rps-$R-$name-$i.json || true
    python3 -c "import json; d=json.load(open('${OUT}/rps-$R-$name-$i.json'))['total']; print('$name', round(d['throughput_rps']), d['errors'], d['p50_ms'], d['p99_ms'])" || true
  done
done
