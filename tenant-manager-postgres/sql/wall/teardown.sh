#!/usr/bin/env bash
# Drops the prototype database and every role with the prototype's prefix. Usage: teardown.sh <db> <prefix>
set -euo pipefail
DB=$1; P=$2
[[ $P == wallp_*_ ]] || { echo "refusing prefix $P" >&2; exit 1; }
psql -X -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)"
psql -X -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -v p="$P" <<'SQL'
SELECT format('DROP ROLE %I', rolname) FROM pg_roles WHERE starts_with(rolname, :'p') ORDER BY rolname \gexec
SQL
