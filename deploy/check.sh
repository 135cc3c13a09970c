#!/usr/bin/env bash
# Validates the deploy files with the tools this machine has; installs nothing.
#   nginx -t on nginx/nginx.conf          (Debian package nginx)
#   promtool check config / check rules / test rules on monitoring/  (package prometheus)
#   promtool check metrics on a live /metrics of the reference server
#   YAML and JSON syntax and shape of compose, k8s and Grafana files (python3 + PyYAML)
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "deploy/check.sh: '$1' not found (Debian package: $2)" >&2
    exit 1
  fi
}
need nginx nginx
need promtool prometheus
need openssl openssl
need curl curl
need python3 python3

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== nginx -t"
# The config names compose hosts (tenant-manager-N) that resolve only inside the compose
# network, and certificates that live outside the repository: the copy under test points
# the upstreams at loopback and the TLS stanza at a throw-away self-signed pair.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" >/dev/null 2>&1
sed -e "s#/etc/nginx/certs/#$tmp/#g" \
    -e 's#server tenant-manager-\([0-9]*\):3001#server 127.0.0.\1:3001#' \
    -e "s#^pid .*#pid $tmp/nginx.pid;#" \
    nginx/nginx.conf > "$tmp/nginx.conf"
nginx -t -q -p "$tmp/" -c "$tmp/nginx.conf"

echo "== promtool"
promtool check config monitoring/prometheus.yml
promtool check rules monitoring/alerts.yml
promtool test rules monitoring/alerts.test.yml

echo "== compose, k8s and grafana files"
python3 - <<'PY'
import json, sys, yaml
compose = yaml.safe_load(open("docker-compose.enterprise.yml"))
need = {"tenant-manager-1", "tenant-manager-2", "postgres", "postgres-2", "redis", "nginx", "prometheus", "grafana"}
missing = need - set(compose["services"])
assert not missing, f"compose lacks services {missing}"
# Two Postgres servers of tenants: TENANT_SERVERS names both, each on a compose service.
for app in ("tenant-manager-1", "tenant-manager-2"):
    servers = compose["services"][app]["environment"]["TENANT_SERVERS"].split()
    hosts = {entry.split("@", 1)[1].split(":", 1)[0] for entry in servers}
    assert hosts == {"postgres", "postgres-2"}, (app, hosts)
secret = next(yaml.safe_load_all(open("k8s/templates/secret.yaml")))
assert len(secret["stringData"]["TENANT_SERVERS"].split()) == 2, "k8s secret: two servers"
kinds = set()
for name in ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "templates/secret.yaml"]:
    for doc in yaml.safe_load_all(open("k8s/" + name)):
        assert doc["apiVersion"] and doc["metadata"]["name"], name
        kinds.add(doc["kind"])
assert kinds >= {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"}, kinds
for name in ["monitoring/grafana/provisioning/datasources/prometheus.yml",
             "monitoring/grafana/provisioning/dashboards/dashboards.yml"]:
    yaml.safe_load(open(name))
dash = json.load(open("monitoring/grafana-dashboards/tenant-manager.json"))
assert dash["panels"], "empty dashboard"
print("ok")
PY

echo "== promtool check metrics on a live server"
bin="$root/target/debug/reference-server"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build -q -p reference-server --bin reference-server)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
env -i PATH="$PATH" APP_ENV=test PORT="$port" BIND_ADDRESS=127.0.0.1 LOG_LEVEL=warn \
  PASSWORD_HASHING=fast ENABLE_ASYNC_PROVISIONING=true BACKUP_DIR="$tmp/backups" \
  "$bin" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null
curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null
curl -sS "http://127.0.0.1:$port/no-such-route" >/dev/null
# Exercise the API so request, login, provisioning and quota series exist.
api="http://127.0.0.1:$port/api"
token=$(curl -fsS -H 'content-type: application/json' \
  -d '{"organization_name":"Check","admin_email":"check@check.example.com","admin_password":"Test123!"}' \
  "$api/auth/register-organization" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fsS -H 'content-type: application/json' \
  -d '{"email":"check@check.example.com","password":"Test123!"}' "$api/auth/login" >/dev/null
for _ in $(seq 1 50); do
  curl -fsS -H "authorization: Bearer $token" "$api/companies" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Acme"}' "$api/companies" >/dev/null
curl -fsS "http://127.0.0.1:$port/metrics" > "$tmp/metrics.txt"
promtool check metrics < "$tmp/metrics.txt"
for series in active_tenants api_requests_total api_response_time_seconds \
              database_connections_total database_connections cache_hit_rate \
              tenant_manager_top_tenant_requests tenant_manager_top_tenant_latency_seconds; do
  grep -q "^# HELP $series " "$tmp/metrics.txt" || { echo "missing series $series"; exit 1; }
done
echo "deploy/check.sh: all checks passed"
