#!/usr/bin/env bash
# The attack suite of issue 11 against the prototype built by setup.sh, driving psql as the app
# login. Tenant A = schema t_01 + shared rows of ...01; tenant B = schema t_02 + shared rows of ...02.
#
#   attacks.sh <db> <role prefix> on    every case against the wall: all must PASS
#   attacks.sh <db> <role prefix> off   every case with the one defence it tests switched off
#                                       (printed per case): each must FAIL, so it can fail
#
# A case PASSes when the attacker read zero rows of B (counted by the case: rows returned,
# rows changed, rows smuggled out through COPY, NOTIFY, advisory locks, temp objects or a
# poisoned prepared statement) AND B's rows are byte-for-byte unchanged (md5 of B's rows,
# taken as the superuser before and after). INFO lines report what the catalogs show.
# The key (hex) is read from $WALL_KEY_FILE (default /tmp/wall_key_hex): the harness is the app.
set -uo pipefail
DB=$1; P=$2; MODE=${3:-on}
[[ $P == wallp_*_ ]] || { echo "refusing prefix $P" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
KEY=$(cat "${WALL_KEY_FILE:-/tmp/wall_key_hex}")
APP=${P}app
A=00000000-0000-4000-8000-000000000001
B=00000000-0000-4000-8000-000000000002
work=$(mktemp -d /tmp/wall_attacks.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The resets: the wall's (engine RESET of today + DEALLOCATE ALL) and degraded ones for "off".
cat > "$work/reset_on.psql" <<'EOF'
CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all() AS unlocked \gset
DISCARD TEMP; DISCARD SEQUENCES; DEALLOCATE ALL;
EOF
grep -v '^DISCARD' "$work/reset_on.psql" > "$work/reset_no_discard_temp.psql"
echo "DISCARD SEQUENCES; DEALLOCATE ALL;" >> "$work/reset_no_discard_temp.psql"
sed 's/ DEALLOCATE ALL;//' "$work/reset_on.psql" > "$work/reset_no_deallocate.psql"

su() { psql -X -q -At -h 127.0.0.1 -U postgres -d "$DB" -v ON_ERROR_STOP=1 "$@"; }
app() { # app <script file> [reset file]: one session of the app login
  psql -X -q -At -h 127.0.0.1 -U "$APP" -d "$DB" -v key="$KEY" -v nonce=0 -v A="$A" -v B="$B" \
       -v P="$P" -v reset_file="${2:-$work/reset_on.psql}" -f "$1" 2>&1
}
b_state() {
  su -c "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
           SELECT c::text AS x FROM t_02.companies c
           UNION ALL SELECT c::text FROM shared.companies c WHERE tenant_id = '$B') s"
}

# Restores the wall and the data after an "off" case (idempotent scripts of the migration).
restore() {
  su >/dev/null 2>&1 <<EOF
ALTER ROLE "$APP" RESET ALL;
DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_auth_members WHERE roleid = '"${P}t_02"'::regrole AND member = '"$APP"'::regrole)
  THEN REVOKE "${P}t_02" FROM "$APP"; END IF; END \$\$;
REVOKE ALL ON SCHEMA wall_private FROM "$APP";
REVOKE ALL ON wall_private.keys FROM "$APP";
DROP TRIGGER IF EXISTS trap ON t_02.companies; DROP TRIGGER IF EXISTS trap ON shared.companies;
DROP FUNCTION IF EXISTS t_02.trap(); DROP VIEW IF EXISTS t_02.trap_v;
DROP POLICY IF EXISTS trap ON shared.companies;
EOF
  su -v wall_owner="${P}wall" -v app="$APP" -f "$here/install.sql" >/dev/null 2>&1
  su -v shared_owner="${P}shared" -v app="$APP" -f "$here/shared_tables.sql" >/dev/null 2>&1
  for i in 01 02; do
    su -v tenant_role="${P}t_$i" -v schema="t_$i" -v tenant_id="00000000-0000-4000-8000-0000000000$i" \
       -v app="$APP" -f "$here/tenant_schema.sql" >/dev/null 2>&1
  done
  su >/dev/null <<'EOF'
BEGIN;
TRUNCATE t_01.companies, t_02.companies, shared.companies;
INSERT INTO t_01.companies SELECT * FROM wall_bak.t_01;
INSERT INTO t_02.companies SELECT * FROM wall_bak.t_02;
INSERT INTO shared.companies SELECT * FROM wall_bak.shared;
COMMIT;
ANALYZE t_01.companies; ANALYZE t_02.companies; ANALYZE shared.companies;
EOF
}

su >/dev/null <<'EOF'
CREATE SCHEMA IF NOT EXISTS wall_bak;
REVOKE ALL ON SCHEMA wall_bak FROM PUBLIC;
CREATE TABLE IF NOT EXISTS wall_bak.t_01 AS SELECT * FROM t_01.companies;
CREATE TABLE IF NOT EXISTS wall_bak.t_02 AS SELECT * FROM t_02.companies;
CREATE TABLE IF NOT EXISTS wall_bak.shared AS SELECT * FROM shared.companies;
EOF
restore

# B's rows as the attacker sees them (schema and shared).
# Each count on its own, so one refused read does not hide the other.
PROBE="\\set p1 0
\\set p2 0
SELECT count(*) AS p1 FROM t_02.companies \\gset
SELECT count(*) AS p2 FROM shared.companies WHERE tenant_id = '$B' \\gset
SELECT :p1 + :p2 AS leak \\gset"
# A's checkout as the engine does it, then the attacker's SQL.
CHECKOUT_A="\\set tenant $A
\\i $here/checkout.psql
\\set leak 0"

passes=0; fails=0
verdict() { # verdict <case> <leak> <B before> <B after> <off-switch text>
  local name=$1 leak=$2 before=$3 after=$4 note=$5 changed=""
  [[ $before != "$after" ]] && changed=" B-CHANGED"
  [[ $leak =~ ^[0-9]+$ ]] || leak="?($leak)"
  if [[ $leak == 0 && -z $changed ]]; then
    echo "PASS $name: 0 rows of B read, B unchanged${note:+  [$note]}"; passes=$((passes+1))
  else
    echo "FAIL $name: leak=$leak$changed${note:+  [$note]}"; fails=$((fails+1))
  fi
}
result() { grep -o "RESULT $1 .*" <<<"$2" | tail -1 | awk '{print $3}'; }

run_case() { # run_case <name> <off sql or ""> <off description> <function producing the leak>
  local name=$1 off_sql=$2 off_desc=$3 fn=$4 before after leak
  if [[ $MODE == off ]]; then
    [[ -n $off_sql ]] && su -c "$off_sql" >/dev/null
  else off_desc=""; fi
  before=$(b_state)
  leak=$($fn)
  after=$(b_state)
  verdict "$name" "$leak" "$before" "$after" "${off_desc:+off: $off_desc}"
  [[ $MODE == off ]] && restore
}

OFF_ENTER_NOVERIFY="CREATE OR REPLACE FUNCTION wall.enter(p_tenant uuid, p_nonce bigint, p_key_id integer, p_proof text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS \$f\$
BEGIN
  INSERT INTO wall.sessions AS s (pid, backend_start, token, tenant, nonce)
  VALUES (pg_backend_pid(), now(), nextval('wall.session_token'), p_tenant, p_nonce)
  ON CONFLICT (pid) DO UPDATE SET token = EXCLUDED.token, tenant = EXCLUDED.tenant, nonce = EXCLUDED.nonce;
  RETURN true;
END \$f\$;"

# ---------------------------------------------------------------------------------------------
c_set_role() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
SET ROLE "${P}t_02";
$PROBE
\echo RESULT set_role :leak
EOF
  result set_role "$(app "$work/s.sql")"
}
c_set_config() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
SELECT set_config('app.tenant_id', '$B', false), set_config('search_path', 't_02, shared', false);
SELECT set_config('role', '${P}t_02', false);
SELECT set_config('wall.tenant', '$B', false), set_config('app.wall_proof', 'x', false);
$PROBE
\set p3 0
SELECT count(*) AS p3 FROM companies \gset
SELECT :leak + :p3 AS leak \gset
\echo RESULT set_config :leak
EOF
  result set_config "$(app "$work/s.sql")"
}
c_forged_proof() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
\set a_proof :proof
SELECT wall.enter(:'B', :nonce + 1, 1, encode(sha256('guess'::bytea), 'hex'));
SELECT wall.enter(:'B', :nonce + 2, 1, :'a_proof');           -- A's valid proof, B's id
SELECT wall.enter(:'B', :nonce + 3, 2, :'a_proof');           -- unknown key id
SELECT wall.enter(:'B', :nonce + 4, 1, NULL);
SELECT wall.enter(:'B', :nonce + 5, 1, 'zz-not-hex');
$PROBE
\echo RESULT forged_proof :leak
EOF
  result forged_proof "$(app "$work/s.sql")"
}
c_replay_other_session() {
  # Victim session: checked out for B, then idle; its last statement (the enter() call with
  # B's proof as a literal) stays visible in pg_stat_activity to every session of the same role.
  cat > "$work/v.sql" <<EOF
\set tenant $B
\i $here/checkout.psql
\! sleep 4
EOF
  app "$work/v.sql" >/dev/null &
  local victim=$!
  sleep 1.5
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
\set stolen 0
SELECT m[1] AS s_tenant, m[2] AS s_nonce, m[3] AS s_key, m[4] AS s_proof, 1 AS stolen
  FROM pg_stat_activity, regexp_match(query, 'wall.enter\(''([0-9a-f-]+)'', (\d+), (\d+), ''([0-9a-f]{64})''\)') m
 WHERE pid <> pg_backend_pid() AND m IS NOT NULL LIMIT 1 \gset
\echo INFO replay_other_session: proof of another session visible in pg_stat_activity: :stolen
\if :stolen
SELECT wall.enter(:'s_tenant', :s_nonce, :s_key, :'s_proof');
SELECT wall.enter(:'s_tenant', :nonce + 1, :s_key, :'s_proof');
\endif
$PROBE
\echo RESULT replay_other_session :leak
EOF
  local out; out=$(app "$work/s.sql"); wait $victim
  grep '^INFO' <<<"$out" >&2
  result replay_other_session "$out"
}
c_replay_earlier_checkout() {
  cat > "$work/s.sql" <<EOF
\set tenant $B
\i $here/checkout.psql
\set b_proof :proof
\set b_nonce :nonce
$CHECKOUT_A
SELECT wall.enter(:'B', :b_nonce, 1, :'b_proof');
$PROBE
\echo RESULT replay_earlier_checkout :leak
EOF
  result replay_earlier_checkout "$(app "$work/s.sql")"
}
c_schema_qualified() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
$PROBE
\set r :leak
\set u1 0
\set u2 0
\set u3 0
WITH u AS (UPDATE t_02.companies SET name = name || ' pwned' RETURNING 1) SELECT count(*) AS u1 FROM u \gset
WITH u AS (DELETE FROM shared.companies WHERE tenant_id = '$B' RETURNING 1) SELECT count(*) AS u2 FROM u \gset
WITH u AS (UPDATE shared.companies SET name = 'pwned' WHERE tenant_id = '$B' RETURNING 1) SELECT count(*) AS u3 FROM u \gset
INSERT INTO t_02.companies (name) VALUES ('planted by A');
INSERT INTO shared.companies (tenant_id, name) VALUES ('$B', 'planted by A');
UPDATE shared.companies SET tenant_id = '$B' WHERE tenant_id = '$A';
SELECT :r + :u1 + :u2 + :u3 AS leak \gset
\echo RESULT schema_qualified :leak
EOF
  result schema_qualified "$(app "$work/s.sql")"
}
c_catalog_probes() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
SELECT count(*) AS leak FROM pg_stats WHERE schemaname IN ('t_02', 'shared') AND tablename = 'companies' \gset
SELECT count(*) AS ext FROM pg_stats_ext WHERE schemaname IN ('t_02', 'shared') \gset
SELECT string_agg(nspname, ',' ORDER BY nspname) AS schemas FROM pg_namespace WHERE nspname LIKE 't\_%' \gset
SELECT c.reltuples::int AS reltuples, pg_relation_size(c.oid) AS relsize FROM pg_class c WHERE c.oid = 't_02.companies'::regclass \gset
SELECT n_live_tup AS live, n_tup_ins AS ins, seq_scan AS scans FROM pg_stat_user_tables WHERE relid = 't_02.companies'::regclass \gset
CREATE FUNCTION pg_temp.est(q text) RETURNS int LANGUAGE plpgsql AS \$f\$
DECLARE j json; BEGIN EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j; RETURN (j->0->'Plan'->>'Plan Rows')::int; END \$f\$;
SELECT pg_temp.est(\$q\$SELECT * FROM shared.companies WHERE name = 't2 company 1'\$q\$) AS est_b,
       pg_temp.est(\$q\$SELECT * FROM shared.companies WHERE name = 'no such name'\$q\$) AS est_none,
       pg_temp.est(\$q\$SELECT * FROM shared.companies WHERE tenant_id = '$B'\$q\$) AS est_tb,
       pg_temp.est(\$q\$SELECT * FROM t_02.companies\$q\$) AS est_t02 \gset
SELECT count(*) AS other_queries FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query <> '' AND query NOT LIKE '<insufficient%' \gset
SELECT count(*) AS other_locks FROM pg_locks WHERE pid <> pg_backend_pid() \gset
SELECT count(*) AS own_session_rows FROM wall.sessions \gset
SELECT count(*) AS keys_visible FROM pg_class WHERE relname = 'keys' \gset
\echo INFO catalog: tenant schemas visible: :schemas
\echo INFO catalog: t_02.companies reltuples=:reltuples size=:relsize bytes; pg_stat_user_tables n_live_tup=:live n_tup_ins=:ins seq_scan=:scans
\echo INFO catalog: EXPLAIN row estimates: shared name = a B value :est_b, = no such name :est_none, tenant_id = B :est_tb; t_02.companies :est_t02
\echo INFO catalog: query texts of other sessions in pg_stat_activity: :other_queries; locks of other sessions in pg_locks: :other_locks
\echo INFO catalog: rows of wall.sessions visible: :own_session_rows (own only); pg_stats_ext rows of B: :ext
\echo RESULT catalog_probes :leak
EOF
  local out; out=$(app "$work/s.sql"); grep '^INFO' <<<"$out" >&2
  result catalog_probes "$out"
}
c_create_objects() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
CREATE FUNCTION pg_temp.trap_fn() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN RAISE NOTICE 'caught %', NEW.name; RETURN NEW; END \$f\$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON t_02.companies FOR EACH ROW EXECUTE FUNCTION pg_temp.trap_fn();
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON shared.companies FOR EACH ROW EXECUTE FUNCTION pg_temp.trap_fn();
CREATE VIEW t_02.trap_v AS SELECT * FROM t_02.companies;
CREATE VIEW shared.trap_v AS SELECT * FROM shared.companies;
CREATE TABLE public.trap_t (x text);
CREATE FUNCTION wall.trap() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid';
CREATE POLICY trap ON shared.companies USING (true);
ALTER TABLE t_02.companies NO FORCE ROW LEVEL SECURITY;
CREATE SCHEMA trap;
-- The way a member of B's role would do it (pre-wall): SET ROLE, then the owner's DDL.
SET ROLE "${P}t_02";
CREATE FUNCTION t_02.trap() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN NEW.name := NEW.name || ' (seen by A)'; RETURN NEW; END \$f\$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON t_02.companies FOR EACH ROW EXECUTE FUNCTION t_02.trap();
CREATE VIEW t_02.trap_v AS SELECT * FROM t_02.companies;
RESET ROLE;
EOF
  app "$work/s.sql" >/dev/null
  # Objects the attacker left outside its temp schema, and RLS turned off on B's tables.
  su -c "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = 'trap')
              + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE relname LIKE 'trap%' AND nspname NOT LIKE 'pg_temp%')
              + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE proname LIKE 'trap%' AND nspname NOT LIKE 'pg_temp%')
              + (SELECT count(*) FROM pg_policy WHERE polname = 'trap')
              + (SELECT count(*) FROM pg_namespace WHERE nspname = 'trap')
              + (SELECT count(*) FROM pg_class WHERE oid IN ('t_02.companies'::regclass, 'shared.companies'::regclass)
                  AND NOT (relrowsecurity AND relforcerowsecurity))"
}
c_temp_objects() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
CREATE TEMP TABLE companies AS SELECT * FROM t_01.companies;   -- would shadow B's companies
CREATE TEMP VIEW trap_v AS SELECT now();
CREATE FUNCTION pg_temp.trap_f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE TEMP SEQUENCE trap_s;
-- The engine hands the connection to B: reset + enter(B), then B's scope (search_path).
\set tenant $B
\i $here/checkout.psql
SET search_path = t_02;
SELECT count(*) AS leak FROM pg_class WHERE relnamespace = pg_my_temp_schema() \gset
SELECT count(*) AS fns FROM pg_proc WHERE pronamespace = pg_my_temp_schema() \gset
SELECT count(*) AS shadow FROM companies WHERE name LIKE 't1 %' \gset
\echo INFO temp_objects: after the switch to B: temp relations :leak, temp functions :fns, rows of A seen by B through companies: :shadow
SELECT :leak + :fns AS leak \gset
\echo RESULT temp_objects :leak
EOF
  local out; out=$(app "$work/s.sql" "$RESET"); grep '^INFO' <<<"$out" >&2
  result temp_objects "$out"
}
listener() { # listener <channel> <seconds>: an attacker's second session, listening
  cat > "$work/l_$1.sql" <<EOF
$CHECKOUT_A
LISTEN $1;
SELECT pg_sleep($2);
SELECT 1;
EOF
  app "$work/l_$1.sql" > "$work/l_$1.out" &
}
c_prepared_poison() {
  listener trap 4; local l=$!; sleep 1
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
-- The driver's cached statement of A's checkout...
PREPARE list_companies AS SELECT id, name, domain, created_at FROM companies ORDER BY id LIMIT 50;
-- ...replaced by the attacker under the same name (names are listed in pg_prepared_statements).
DEALLOCATE list_companies;
PREPARE list_companies AS SELECT pg_notify('trap', coalesce((SELECT string_agg(name, ',') FROM t_02.companies), '')
                               || coalesce((SELECT string_agg(name, ',') FROM shared.companies WHERE tenant_id = '$B'), '')), 1, 2, 3;
-- The engine hands the connection to B; B's handler runs its cached statement.
\set tenant $B
\i $here/checkout.psql
SET search_path = t_02;
EXECUTE list_companies;
EOF
  app "$work/s.sql" "$RESET" >/dev/null; wait $l
  grep -o 't2 company [0-9]*' "$work/l_trap.out" | wc -l
}
c_copy() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
COPY t_02.companies TO STDOUT;
COPY (SELECT * FROM shared.companies WHERE tenant_id = '$B') TO STDOUT;
COPY shared.companies TO STDOUT;
COPY t_02.companies TO '/tmp/wall_trap_copy';
COPY t_02.companies (name) FROM STDIN;
copied in by A
\.
EOF
  app "$work/s.sql" | grep -c 't2 company'
}
c_listen_notify() {
  listener trap2 3; local l=$!; sleep 1
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
SELECT pg_notify('trap2', coalesce((SELECT string_agg(name, ',') FROM t_02.companies), '')
                 || coalesce((SELECT string_agg(name, ',') FROM shared.companies WHERE tenant_id = '$B'), ''));
LISTEN b_events;
\set tenant $B
\i $here/checkout.psql
SELECT count(*) AS still FROM pg_listening_channels() \gset
\echo RESULT listen_after_switch :still
EOF
  local out; out=$(app "$work/s.sql" "$RESET"); wait $l
  echo $(( $(grep -o 't2 company [0-9]*' "$work/l_trap2.out" | wc -l) + $(result listen_after_switch "$out") ))
}
c_advisory() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
SELECT count(pg_advisory_lock(hashtext(name))) FROM t_02.companies;
SELECT count(pg_advisory_lock(hashtext(name))) FROM shared.companies WHERE tenant_id = '$B';
SELECT count(*) AS smuggled FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \gset
SELECT pg_advisory_lock(42);
\set tenant $B
\i $here/checkout.psql
SELECT count(*) AS held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \gset
\echo INFO advisory: locks encoding B rows: :smuggled; advisory locks still held after the switch to B: :held
SELECT :smuggled + :held AS leak \gset
\echo RESULT advisory :leak
EOF
  local out; out=$(app "$work/s.sql" "$RESET"); grep '^INFO' <<<"$out" >&2
  result advisory "$out"
}
c_wall_state() {
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
UPDATE wall.sessions SET tenant = '$B';
INSERT INTO wall.sessions (pid, backend_start, token, tenant, nonce) VALUES (0, now(), 1, '$B', 0);
SELECT setval('wall.session_token', 1);
SELECT nextval('wall.session_token');
SELECT secret FROM wall_private.keys;
ALTER FUNCTION wall.enter(uuid, bigint, integer, text) SECURITY INVOKER;
-- With the key, B's proof is one expression away:
SELECT encode(wall_private.hmac(convert_to(concat_ws('|', '$B', s.pid, s.backend_start_us, :nonce + 1), 'UTF8'),
              (SELECT secret FROM wall_private.keys WHERE key_id = 1), 'sha256'), 'hex') AS fproof
  FROM wall.session_id() s \gset
SELECT wall.enter('$B', :nonce + 1, 1, :'fproof');
$PROBE
\echo RESULT wall_state :leak
EOF
  result wall_state "$(app "$work/s.sql")"
}
c_raw_connection() {
  # No checkout at all: a raw session of the app login (its password leaked, or a pooled
  # connection before its first checkout).
  cat > "$work/s.sql" <<EOF
\set leak 0
\set r1 0
$PROBE
\set r1 :leak
SET ROLE "${P}t_02";
SELECT set_config('app.tenant_id', '$B', false);
SELECT wall.enter('$B', 1, 1, encode(sha256('x'::bytea), 'hex'));
$PROBE
SELECT :leak + :r1 AS leak \gset
\echo RESULT raw_connection :leak
EOF
  result raw_connection "$(app "$work/s.sql")"
}
c_alter_role_self() {
  # Not a read of B: a change the app login may make to ITS OWN role's defaults (every later
  # session, every tenant). Reported, and undone by restore.
  cat > "$work/s.sql" <<EOF
$CHECKOUT_A
ALTER ROLE CURRENT_USER SET search_path = 't_02';
ALTER ROLE CURRENT_USER SET statement_timeout = '1ms';
EOF
  app "$work/s.sql" >/dev/null
  local n; n=$(su -c "SELECT count(*) FROM pg_db_role_setting WHERE setrole = '\"$APP\"'::regrole")
  echo "INFO alter_role_self: role-level settings the app login set on itself: $n" \
       "(persist into every new session; the provisioner's ensure_app_login must RESET ALL)" >&2
  su -c "ALTER ROLE \"$APP\" RESET ALL" >/dev/null
}

NO_FORCE_B="ALTER TABLE t_02.companies NO FORCE ROW LEVEL SECURITY; ALTER TABLE shared.companies DISABLE ROW LEVEL SECURITY"
DISABLE_B="ALTER TABLE t_02.companies DISABLE ROW LEVEL SECURITY; ALTER TABLE shared.companies DISABLE ROW LEVEL SECURITY"
MEMBER_B="GRANT \"${P}t_02\" TO \"$APP\""
NONCE_OFF="$(sed -n '/^CREATE OR REPLACE FUNCTION wall.enter/,/^\$\$;/p' "$here/install.sql" | sed 's/AND (v_last IS NULL OR p_nonce > v_last)/AND true/')"

echo "== attacks, wall $MODE, $(date -u +%FT%TZ), db $DB"
RESET=$work/reset_on.psql
# Positive control: through the same checkout, A reads all of its own rows (so a PASS below is
# the wall refusing B, not a broken checkout).
cat > "$work/ctl.sql" <<EOF
$CHECKOUT_A
SELECT (SELECT count(*) FROM t_01.companies) + (SELECT count(*) FROM shared.companies) AS own \gset
\echo CONTROL entered=:entered own=:own
EOF
echo "CONTROL A's checkout: $(app "$work/ctl.sql" | grep -o 'entered=.*') (expect entered=t own=100)"
run_case set_role "$MEMBER_B; $NO_FORCE_B" "app login member of B's role again, owner not bound by RLS (pre-wall)" c_set_role
run_case set_config "ALTER POLICY wall ON shared.companies USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid); ALTER TABLE t_02.companies DISABLE ROW LEVEL SECURITY" "policies on the plain setting app.tenant_id (pre-wall)" c_set_config
run_case forged_proof "$OFF_ENTER_NOVERIFY" "enter() does not verify the proof" c_forged_proof
run_case replay_other_session "$OFF_ENTER_NOVERIFY" "enter() does not verify the proof (binding to pid/backend_start off)" c_replay_other_session
run_case replay_earlier_checkout "$NONCE_OFF" "enter() verifies the HMAC but has no nonce floor" c_replay_earlier_checkout
run_case schema_qualified "$DISABLE_B" "row-level security disabled on B's tables (policy gone)" c_schema_qualified
run_case catalog_probes "$DISABLE_B" "row-level security disabled on B's tables" c_catalog_probes
run_case create_objects "$MEMBER_B" "app login member of B's role again (pre-wall)" c_create_objects
[[ $MODE == off ]] && RESET=$work/reset_no_discard_temp.psql
run_case temp_objects "" "reset without DISCARD TEMP" c_temp_objects
[[ $MODE == off ]] && RESET=$work/reset_no_deallocate.psql
run_case prepared_poison "" "reset without DEALLOCATE ALL (today's reset)" c_prepared_poison
RESET=$work/reset_on.psql
run_case copy "$DISABLE_B" "row-level security disabled on B's tables" c_copy
run_case listen_notify "$DISABLE_B" "row-level security disabled on B's tables" c_listen_notify
run_case advisory "$DISABLE_B" "row-level security disabled on B's tables" c_advisory
run_case wall_state "GRANT USAGE ON SCHEMA wall_private TO \"$APP\"; GRANT SELECT ON wall_private.keys TO \"$APP\"" "key table readable by the app login" c_wall_state
run_case raw_connection "$MEMBER_B; $NO_FORCE_B" "app login member of B's role again, owner not bound by RLS (pre-wall)" c_raw_connection
c_alter_role_self
echo "== wall $MODE: $passes PASS, $fails FAIL"
