#!/usr/bin/env bash
# Builds the prototype in a fresh database: the wall, 20 schema tenants and the shared tables
# (20 tenants x 50 rows each), a key, and the app login. Usage: setup.sh <db> <role prefix>
set -euo pipefail
DB=$1; P=$2
here=$(cd "$(dirname "$0")" && pwd)
PSQL=(psql -X -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d "$DB" -v app="${P}app" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'app') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
-- CONNECT, and TEMPORARY: the app keeps its session temp schema (discarded by the reset).
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'app') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
"${PSQL[@]}" -d "$DB" -v wall_owner="${P}wall" -v app="${P}app" -f "$here/install.sql"
"${PSQL[@]}" -d "$DB" -v shared_owner="${P}shared" -v app="${P}app" -f "$here/shared_tables.sql"
for i in $(seq -w 1 20); do
  tid=$(printf '00000000-0000-4000-8000-0000000000%s' "$i")
  "${PSQL[@]}" -d "$DB" -v tenant_role="${P}t_$i" -v schema="t_$i" -v tenant_id="$tid" -v app="${P}app" -f "$here/tenant_schema.sql"
done
# Key 1 (the harness is the "app": it keeps the same secret to sign proofs).
"${PSQL[@]}" -d "$DB" -v key_hex="$(cat "${WALL_KEY_FILE:-/tmp/wall_key_hex}")" <<'SQL'
INSERT INTO wall_private.keys (key_id, secret) VALUES (1, decode(:'key_hex', 'hex'))
ON CONFLICT (key_id) DO UPDATE SET secret = EXCLUDED.secret;
-- Data, as the superuser (bypasses RLS): 50 rows per tenant in each schema and in shared.
DO $$
DECLARE i int; tid uuid;
BEGIN
  FOR i IN 1..20 LOOP
    tid := format('00000000-0000-4000-8000-0000000000%s', lpad(i::text, 2, '0'))::uuid;
    EXECUTE format('INSERT INTO %I.companies (name, domain, created_at)
                    SELECT ''t%s company '' || g, ''c'' || g || ''.t%s.example'', now() - g * interval ''1 day''
                    FROM generate_series(1, 50) g', 't_' || lpad(i::text, 2, '0'), i, i);
    INSERT INTO shared.companies (tenant_id, name, domain, created_at)
    SELECT tid, 't' || i || ' company ' || g, 'c' || g || '.t' || i || '.example', now() - g * interval '1 day'
    FROM generate_series(1, 50) g;
  END LOOP;
END $$;
ANALYZE;
SQL
echo "setup done: $DB"
