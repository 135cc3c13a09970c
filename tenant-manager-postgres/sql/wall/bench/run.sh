#!/usr/bin/env bash
# One pgbench run as the app login: run.sh <db> <prefix> <a|b|c|d|co> <prepared|simple> <seconds> [clients]
# Variants: see bench_setup.sql and docs/wall.md section 4. The tenant is ...01 throughout.
here=$(cd "$(dirname "$0")" && pwd)
DB=$1; P=$2; v=$3; m=$4; T=$5; C=${6:-16}
A=00000000-0000-4000-8000-000000000001
case $v in
  a) opts="-c search_path=bench_a";;
  b) opts="-c search_path=bench_b -c app.tenant_id=$A";;
  c|co) opts="-c search_path=shared";;
  d) opts="-c search_path=bench_d -c app.tenant_id=$A";;
esac
PGOPTIONS="$opts" pgbench -n -h 127.0.0.1 -U "${P}app" -c "$C" -j 2 -T "$T" -M "$m" \
  -D entered=0 -D n=0 -f "$here/$v.sql" "$DB" 2>&1
