#!/usr/bin/env bash
# schemathesis over /api/openapi.json of a debug reference-server on the local Postgres and
# Redis: every documented operation, generated and stateful (OpenAPI links) requests, with a
# valid bearer token and the admin key. Fails on any server error (any 5xx answer), on an
# error the server logged (every 500 is logged at error level), and on a server that stops.
#
# The deployment is private to the run: a fresh global database, Redis key prefix, storage
# prefix, shared database and app login, all carrying one tag; the tenants the run created
# are deleted through the admin API, then everything carrying the tag is dropped.
#
# Environment: PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432 postgres, trust or PGPASSWORD),
# REDIS_HOST/REDIS_PORT (127.0.0.1:6379), ST_MAX_EXAMPLES (25), ST_MAX_TIME (seconds, 240),
# ST_SEED (random), ST_KEEP_REPORT (keep the report directory).
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
MAX_TIME=${ST_MAX_TIME:-240}

# --- schemathesis from PyPI, when missing -----------------------------------------------
if ! command -v st >/dev/null 2>&1 || ! st --version >/dev/null 2>&1; then
  echo "installing schemathesis"
  python3 -m pip install -q schemathesis
fi
st --version

# --- the server binary (debug) ----------------------------------------------------------
cargo build -q -p reference-server --bin reference-server
target_dir=${CARGO_TARGET_DIR:-target}
server_bin="$target_dir/debug/reference-server"

# --- a private deployment --------------------------------------------------------------
tag="st$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
global_db="${tag}_global"
work=$(mktemp -d -t "tm-schemathesis-XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
server_pid=""

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

cleanup() {
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    # Tenants the run created: deleted (storage dropped) by the server itself.
    python3 - "$base" "$admin_key" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
def call(method, path):
    req = urllib.request.Request(base + path, method=method, headers={"X-Admin-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except Exception:
        return None
after = None
ids = []
while True:
    page = call("GET", "/api/admin/tenants?limit=500" + (f"&after={after}" if after else ""))
    if not page:
        break
    ids += [t["id"] for t in page["items"] if t["status"] != "deleted"]
    after = page.get("next")
    if not after:
        break
for tenant in ids:
    call("DELETE", f"/api/admin/tenants/{tenant}")
print(f"deleted {len(ids)} tenants")
PY
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
  fi
  # Whatever carries the tag: the global and shared databases, templates, logins.
  for db in $(psql_admin -At -c "SELECT datname FROM pg_database WHERE strpos(datname, '$tag') > 0"); do
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  done
  for role in $(psql_admin -At -c "SELECT rolname FROM pg_roles WHERE strpos(rolname, '$tag') > 0"); do
    psql_admin -c "DROP ROLE IF EXISTS \"$role\""
  done
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "${tag}*" \
    | xargs -r -n 100 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null
  if [ -z "${ST_KEEP_REPORT:-}" ]; then rm -rf "$work"; else echo "report kept in $work"; fi
}
trap cleanup EXIT

psql_admin -c "CREATE DATABASE \"$global_db\""

env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  APP_ENV=test BIND_ADDRESS=127.0.0.1 PORT="$port" LOG_FORMAT=json LOG_LEVEL=warn \
  GLOBAL_DATABASE_URL="postgres://$PGUSER${PGPASSWORD:+:$PGPASSWORD}@$PGHOST:$PGPORT/$global_db" \
  REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT" REDIS_KEY_PREFIX="$tag" \
  TENANT_STORAGE_PREFIX="$tag" TENANT_SHARED_DATABASE="${tag}_shared" \
  TENANT_DB_SECRET="schemathesis-tenant-secret-$tag-0123456789" \
  JWT_SECRET="schemathesis-jwt-secret-$tag-0123456789abcdef" SUPER_ADMIN_KEY="$admin_key" \
  PASSWORD_HASHING=fast RATE_LIMIT_MAX_REQUESTS=10000000 ENABLE_METRICS=true \
  GLOBAL_POOL_SIZE=4 MAX_TOTAL_CONNECTIONS=8 MAX_CONNECTIONS_PER_TENANT=4 \
  BACKUP_DIR="$work/backups" \
  "$server_bin" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "the server exited"; exit 1; }
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null

# --- a valid bearer token: register an organisation -------------------------------------
token=$(curl -fsS -X POST "$base/api/auth/register-organization" \
  -H 'content-type: application/json' \
  -d "{\"organization_name\":\"Schemathesis $tag\",\"admin_email\":\"owner@$tag.example.com\",\"admin_password\":\"Schemathesis-$tag-1\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# --- the run ------------------------------------------------------------------------------
# Two passes, each with half the time: the tenant's and the public routes first, then the
# admin API (which may suspend, delete or throttle the token's tenant, and would leave the
# first pass only 403s and 429s to look at).
status=0
run_pass() {
  local name=$1
  shift
  echo "=== schemathesis: $name"
  # From the work directory: schemathesis keeps its cache (`.schemathesis/`) where it runs.
  (cd "$work" && st run "$base/api/openapi.json" \
    --checks not_a_server_error \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$((MAX_TIME / 2))" \
    --workers 1 \
    --request-timeout 30 \
    ${ST_SEED:+--seed "$ST_SEED"} \
    -H "Authorization: Bearer $token" \
    -H "X-Admin-Key: $admin_key" \
    --report junit --report-dir "$work/report-$name" \
    "$@") \
    || status=$?
}
run_pass tenant --exclude-tag admin --exclude-path /metrics
run_pass admin --include-tag admin

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server stopped during the run"
  tail -50 "$work/server.log"
  status=1
fi
if grep -q '"level":"ERROR"' "$work/server.log"; then
  echo "the server logged errors:"
  grep '"level":"ERROR"' "$work/server.log" | tail -20
  status=1
fi
exit "$status"
