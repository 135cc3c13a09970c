#!/usr/bin/env bash
# Instructions and simulated cache misses of one checkout + return (fake manager), counted by
# cachegrind: TenantPools, raw bb8 pools in a HashMap by tenant id and raw bb8 pools in a Vec,
# 1 pool and round-robin over 10,000 pools. Counts, not
# times: machine load does not move them.
#
# Each case runs with A and with B checkouts; one checkout costs (count(B) - count(A)) /
# (B - A), so building the pools and the process's start and end cancel out.
#
# Two last-level caches are simulated: 1 MiB, 16-way (the size of this machine's per-core L2:
# a miss there goes to the shared L3 or to memory) and 32 MiB, 16-way (the L3). D1 is 32 KiB,
# 8-way, the L1 data cache per core.
#
#   cargo build --release --example pool_checkout_counts
#   benches/pool/cachegrind.sh [target/release/examples/pool_checkout_counts]
set -euo pipefail

BIN=${1:-${CARGO_TARGET_DIR:-target}/release/examples/pool_checkout_counts}
A=${A:-100000}
B=${B:-200000}
POOLS=${POOLS:-10000}
# LLS (cachegrind --LL values) and ENGINES narrow the table, e.g. ENGINES=tenant-pools.
# The hashers are seeded at random and addresses move from run to run, so the miss counts vary
# by a few tenths: each case runs REPEAT times, and the table gives median (min-max).
REPEAT=${REPEAT:-3}
TMP=$(mktemp)

# Prints "Ir D1mr D1mw DLmr DLmw" summed over the whole run.
counts() {
  local ll=$1
  shift
  local out
  out=$(mktemp)
  valgrind --tool=cachegrind --cache-sim=yes --D1=32768,8,64 --I1=32768,8,64 \
    --LL="$ll" --cachegrind-out-file="$out" "$@" >/dev/null 2>&1
  # events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
  awk '/^summary:/ { print $2, $6, $9, $7, $10 }' "$out"
  rm -f "$out"
}

# Prints "median (min-max)" of the numbers on standard input.
spread() {
  sort -g | awk '{ v[NR] = $1 } END { printf "%.2f (%.2f-%.2f)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

printf '| case | LL | instructions | D1 misses | LL data misses |\n|---|---|---|---|---|\n'
for ll in ${LLS:-1048576,16,64 33554432,16,64}; do
  for engine in ${ENGINES:-tenant-pools bb8-map raw-bb8}; do
    for pools in 1 "$POOLS"; do
      : >"$TMP.i"; : >"$TMP.d"; : >"$TMP.l"
      for _ in $(seq "$REPEAT"); do
        read -r ia dra dwa lra lwa < <(counts "$ll" "$BIN" "$engine" "$pools" "$A")
        read -r ib drb dwb lrb lwb < <(counts "$ll" "$BIN" "$engine" "$pools" "$B")
        n=$((B - A))
        awk -v x=$((ib - ia)) -v n=$n 'BEGIN { print x / n }' >>"$TMP.i"
        awk -v x=$(((drb + dwb) - (dra + dwa))) -v n=$n 'BEGIN { print x / n }' >>"$TMP.d"
        awk -v x=$(((lrb + lwb) - (lra + lwa))) -v n=$n 'BEGIN { print x / n }' >>"$TMP.l"
      done
      printf '| %s, %s pool(s) | %s MiB | %.0f | %s | %s |\n' "$engine" "$pools" \
        "$((${ll%%,*} / 1048576))" "$(sort -g "$TMP.i" | head -1)" \
        "$(spread <"$TMP.d")" "$(spread <"$TMP.l")"
    done
  done
done
rm -f "$TMP" "$TMP.i" "$TMP.d" "$TMP.l"
