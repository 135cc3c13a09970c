#!/usr/bin/env bash
# The scale run of BENCHMARKS.md ("Scale: 10,000 tenants on two Postgres servers"), repeated.
# Usage:
#   scale-run.sh BIN_DIR [RUNS] [-- tenant-cli scale options...]
# BIN_DIR holds release builds of `reference-server` and `tenant-cli` (this script builds
# nothing: `cargo build --release -p reference-server --bins`). Each run is one
# `tenant-cli scale` (defaults: 10,000 tenants, 20 of them with their own database, every
# 10th of the others shared, the rest schema tenants; 32 clients, 30 s per load phase; budget
# of 20 tenant connections; see `tenant-cli scale --help`): it starts its own second Postgres
# cluster, its own server and global database on $SCALE_ADMIN_URL (default the shared
# Postgres of 127.0.0.1:5432), and drops everything it created when it ends, also on failure
# and on Ctrl-C. Reports go to $OUT (default /tmp/scale-run): one JSON and one table per run,
# with the machine's load average sampled every 10 s next to them.
set -euo pipefail
BIN=$(cd "$1" && pwd); RUNS=${2:-1}; shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
OUT=${OUT:-/tmp/scale-run}; mkdir -p "$OUT"
for b in reference-server tenant-cli; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b is missing: cargo build --release -p reference-server --bins"; exit 2; }
done
for run in $(seq 1 "$RUNS"); do
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  ( while sleep 10; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$OUT/load-$stamp.txt" &
  sampler=$!
  status=0
  "$BIN/tenant-cli" scale --server-bin "$BIN/reference-server" --output "$OUT/scale-$stamp.json" "$@" \
    | tee "$OUT/scale-$stamp.txt" || status=$?
  kill "$sampler" 2>/dev/null || true
  echo "run $run of $RUNS: exit $status; $OUT/scale-$stamp.json; load average $(awk '{print $2}' "$OUT/load-$stamp.txt" | sort -n | sed -n '1p;$p' | tr '\n' ' ')"
done
