#!/usr/bin/env bash
# End-to-end bench of the request path: the reference server's tenant routes in Postgres + Redis
# mode (schema tenants on the shared pool, rate limiting on) against `baseline-server`, a
# single-tenant peer serving the same routes over one plain sqlx PgPool (the same company
# statements, schema-qualified against one schema; no authentication, no tenancy), on the same
# machine in the same run (BENCHMARKS.md, "End to end: reference server vs a single-tenant
# baseline"). Usage:
#   e2e-bench.sh BIN_DIR [ROUNDS] [SECONDS]
# BIN_DIR holds release builds of `reference-server`, `tenant-cli` and `baseline-server` (this
# script builds nothing: `cargo build --release -p reference-server --bins`).
#
# One fresh deployment (global database, shared database, storage prefix and Redis key prefix
# of its own, plus the baseline's database) on the Postgres and Redis of 127.0.0.1. For each
# tenant count of $TENANTS (default "20 1000"): `tenant-cli loadtest` registers that many
# organisations on the reference server and drives $WARMUP seconds of warm-up traffic (saving
# the tenants' tokens), the baseline gets the same warm-up; then ROUNDS (default 3) rounds of
# SECONDS (default 10) of the load test's mix (60% list, 25% create, 10% get tenant, 5% get
# company; $CONCURRENCY clients, default 64) against each server, the order alternating per
# round. With more tenants than clients every request goes to the next tenant, so all of them
# get traffic. Around each run the transaction counts (xact_commit + xact_rollback) of each
# server's databases are read from pg_stat_database once published (backends publish when
# idle, within about 10 s: the script waits for that, then until the counts stop moving) and
# divided by the requests the run sent.
#
# RATE_LIMIT_MAX_REQUESTS=10000000 per 15 minutes: the limiter runs (one Redis round trip per
# request) but never refuses; the 429 column shows it. Raw results go to $OUT (default
# /tmp/e2e-bench); everything created is dropped on exit.
set -euo pipefail
BIN=$(cd "$1" && pwd); ROUNDS=${2:-3}; SECS=${3:-10}
TENANTS=${TENANTS:-"20 1000"}; CONCURRENCY=${CONCURRENCY:-64}; WARMUP=${WARMUP:-5}
OUT=${OUT:-/tmp/e2e-bench}; mkdir -p "$OUT"
for b in reference-server tenant-cli baseline-server; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b is missing: cargo build --release -p reference-server --bins"; exit 2; }
done
PSQL="psql -h 127.0.0.1 -U postgres -qAt"
R=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n'); P=b$R
REF_PORT=${REF_PORT:-3931}; BASE_PORT=${BASE_PORT:-3932}
REF=http://127.0.0.1:$REF_PORT; BASE=http://127.0.0.1:$BASE_PORT
DBS="${P}_global ${P}_shared ${P}_baseline"
RESULTS=$OUT/results-$R.tsv; : > "$RESULTS"

wait_ready() { # url log
  for _ in $(seq 1 60); do curl -sf "$1/health" >/dev/null && return 0; sleep 1; done
  echo "$1 did not become ready"; cat "$2"; return 1
}
start_reference() {
  $PSQL -c "CREATE DATABASE ${P}_global" postgres
  (
    export APP_ENV=development PORT=$REF_PORT BIND_ADDRESS=127.0.0.1 \
      GLOBAL_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/${P}_global \
      POSTGRES_ADMIN_USER=postgres POSTGRES_ADMIN_HOST=127.0.0.1 POSTGRES_ADMIN_PORT=5432 \
      TENANT_STORAGE_PREFIX=$P TENANT_SHARED_DATABASE=${P}_shared \
      TENANT_DB_SECRET=bench-master-secret-$R-0123456789abcdef0123 \
      REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$P: \
      MAX_TOTAL_CONNECTIONS=20 MAX_CONNECTIONS_PER_TENANT=20 GLOBAL_POOL_SIZE=10 \
      ENABLE_RATE_LIMITING=true RATE_LIMIT_MAX_REQUESTS=10000000 \
      ACCESS_TOKEN_TTL_SECONDS=86400 PASSWORD_HASHING=fast RUST_LOG=warn LOG_LEVEL=warn
    "$BIN/tenant-cli" migrate global >/dev/null
    nohup "$BIN/reference-server" > "$OUT/reference-$R.log" 2>&1 &
    echo $! > "$OUT/reference-$R.pid"
  )
  wait_ready "$REF" "$OUT/reference-$R.log"
}
start_baseline() {
  $PSQL -c "CREATE DATABASE ${P}_baseline" postgres
  BASELINE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/${P}_baseline \
    BASELINE_BIND=127.0.0.1:$BASE_PORT BASELINE_POOL_SIZE=20 \
    nohup "$BIN/baseline-server" > "$OUT/baseline-$R.log" 2>&1 &
  echo $! > "$OUT/baseline-$R.pid"
  wait_ready "$BASE" "$OUT/baseline-$R.log"
}
cleanup() {
  for s in reference baseline; do
    [ -f "$OUT/$s-$R.pid" ] && kill "$(cat "$OUT/$s-$R.pid")" 2>/dev/null || true
  done
  sleep 2
  rm -f "$OUT"/sessions-$R-*.json
  for db in $($PSQL -c "SELECT datname FROM pg_database WHERE datname LIKE '${P}%'" postgres); do
    $PSQL -c "DROP DATABASE \"$db\" WITH (FORCE)" postgres || true
  done
  for role in $($PSQL -c "SELECT rolname FROM pg_roles WHERE rolname LIKE '${P}%'" postgres); do
    $PSQL -c "DROP ROLE \"$role\"" postgres || true
  done
  redis-cli --scan --pattern "$P:*" | xargs -r redis-cli del >/dev/null || true
}
trap cleanup EXIT

# "db=count ..." of the deployment's databases, as published right now.
counts() {
  local list; list=$(printf "'%s'," $DBS); list=${list%,}
  $PSQL -c "SELECT pg_stat_clear_snapshot()" \
    -c "SELECT string_agg(datname || '=' || (xact_commit + xact_rollback), ' ' ORDER BY datname)
        FROM pg_stat_database WHERE datname IN ($list)" postgres | tail -1
}
# The counts once every idle backend has published: Postgres' idle interval (10 s), then
# until two readings a second apart agree (at most 20 s more).
settled() {
  sleep 11
  local last now; last=$(counts)
  for _ in $(seq 1 20); do
    sleep 1; now=$(counts)
    [ "$now" = "$last" ] && break
    last=$now
  done
  echo "$last"
}

start_reference
start_baseline
echo "deployment $P: reference $REF, baseline $BASE; load $(cut -d' ' -f1-3 /proc/loadavg)"
for T in $TENANTS; do
  echo "== $T tenants: sign-up and ${WARMUP} s warm-up $(date -u +%H:%M:%S)"
  started=$(date +%s)
  "$BIN/tenant-cli" loadtest --url "$REF" --tenants "$T" --concurrency "$CONCURRENCY" \
    --duration "$WARMUP" --ready-timeout 600 --save-sessions "$OUT/sessions-$R-$T.json" --json \
    > "$OUT/setup-$R-reference-$T.json"
  echo "   reference: $T organisations registered and warmed in $(( $(date +%s) - started )) s"
  "$BIN/tenant-cli" loadtest --url "$BASE" --baseline --tenants "$T" \
    --concurrency "$CONCURRENCY" --duration "$WARMUP" --json > "$OUT/setup-$R-baseline-$T.json"
  before=$(settled)
  for i in $(seq 1 "$ROUNDS"); do
    order="reference baseline"; [ $((i % 2)) -eq 0 ] && order="baseline reference"
    for s in $order; do
      load0=$(cut -d' ' -f1 /proc/loadavg)
      json=$OUT/run-$R-$s-$T-$i.json
      if [ "$s" = reference ]; then
        "$BIN/tenant-cli" loadtest --url "$REF" --sessions "$OUT/sessions-$R-$T.json" \
          --concurrency "$CONCURRENCY" --duration "$SECS" --json > "$json" || true
      else
        "$BIN/tenant-cli" loadtest --url "$BASE" --baseline --tenants "$T" \
          --concurrency "$CONCURRENCY" --duration "$SECS" --json > "$json" || true
      fi
      load1=$(cut -d' ' -f1 /proc/loadavg)
      after=$(settled)
      python3 - "$s" "$T" "$i" "$json" "$before" "$after" "$load0" "$load1" "$P" >> "$RESULTS" <<'EOF'
import json, sys
server, tenants, rnd, path, before, after, load0, load1, p = sys.argv[1:]
t = json.load(open(path))['total']
parse = lambda s: {k: int(v) for k, v in (kv.split('=') for kv in s.split())}
b, a = parse(before), parse(after)
dbs = [p + '_global', p + '_shared'] if server == 'reference' else [p + '_baseline']
delta = {d[len(p) + 1:]: a.get(d, 0) - b.get(d, 0) for d in dbs}
req = max(t['requests'], 1)
split = ' '.join(f'{k} {v / req:.2f}' for k, v in delta.items())
print('\t'.join(map(str, [server, tenants, rnd, round(t['throughput_rps']), t['p50_ms'], t['p99_ms'],
      t['requests'], t['errors'], t['rate_limited'], f'{sum(delta.values()) / req:.2f}', split,
      load0, load1])))
EOF
      tail -1 "$RESULTS" | awk -F'\t' '{printf "   round %s %-9s %6s req/s  p50 %.1f ms  p99 %.1f ms  errors %s  429 %s  xact/req %s (%s)  load %s-%s\n", $3, $1, $4, $5, $6, $8, $9, $10, $11, $12, $13}'
      before=$after
    done
  done
done

python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
print('\n| server | tenants | round | req/s | p50 ms | p99 ms | errors | 429 | transactions/request | load (1 min) |')
print('|---|---|---|---|---|---|---|---|---|---|')
for r in rows:
    print(f'| {r[0]} | {r[1]} | {r[2]} | {int(r[3]):,} | {float(r[4]):.1f} | {float(r[5]):.1f} | {r[7]} | {r[8]} '
          f'| {r[9]} ({r[10]}) | {r[11]}-{r[12]} |')
by = {(r[0], r[1], r[2]): r for r in rows}
print('\n| tenants | round | reference / baseline: req/s | p50 | p99 |')
print('|---|---|---|---|---|')
notes = []
for t in dict.fromkeys(r[1] for r in rows):
    ratios = []
    for rnd in dict.fromkeys(r[2] for r in rows if r[1] == t):
        ref, base = by.get(('reference', t, rnd)), by.get(('baseline', t, rnd))
        if not ref or not base:
            continue
        q = int(ref[3]) / max(int(base[3]), 1)
        ratios.append(q)
        print(f'| {t} | {rnd} | {q:.2f} | {float(ref[4]) / max(float(base[4]), 1e-9):.2f} | '
              f'{float(ref[5]) / max(float(base[5]), 1e-9):.2f} |')
    for s in ('reference', 'baseline'):
        v = [int(r[3]) for r in rows if r[0] == s and r[1] == t]
        if v:
            m = statistics.median(v)
            notes.append(f'{t} tenants, {s}: median {m:,.0f} req/s, spread {min(v):,}-{max(v):,} '
                         f'({(max(v) - min(v)) / m * 100:.0f}% of the median)')
    if ratios:
        notes.append(f'{t} tenants, reference / baseline: median {statistics.median(ratios):.2f}, '
                     f'spread {min(ratios):.2f}-{max(ratios):.2f}')
print()
print('\n'.join(notes))
EOF
echo "raw results: $RESULTS"
