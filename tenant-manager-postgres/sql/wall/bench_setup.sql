-- Bench-only objects (never in a deployment): run as a superuser after setup.sh, with
--   psql -v wall_owner=<wall owner> -v app=<app login> -f bench_setup.sql
-- bench_a: tenant 01's companies, no RLS                       (a) no RLS, schema-qualified
-- bench_b: the shared rows, forced RLS on a plain setting      (b)
-- shared:  the wall (install.sql + shared_tables.sql)          (c)
-- bench_d: the shared rows, forced RLS, policy verifying an HMAC of settings per statement (d)
-- wall_bench.sign(): stands in for the app's HMAC (the app login may call it ONLY in this bench).
\set ON_ERROR_STOP on
BEGIN;
DROP SCHEMA IF EXISTS bench_a, bench_b, bench_d, wall_bench CASCADE;
CREATE SCHEMA bench_a; CREATE SCHEMA bench_b; CREATE SCHEMA bench_d; CREATE SCHEMA wall_bench;
CREATE TABLE bench_a.companies (id uuid PRIMARY KEY, name text NOT NULL, domain text, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO bench_a.companies SELECT id, name, domain, created_at FROM t_01.companies;
CREATE TABLE bench_b.companies (LIKE shared.companies INCLUDING DEFAULTS INCLUDING INDEXES);
ALTER TABLE bench_b.companies ALTER tenant_id SET DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid;
INSERT INTO bench_b.companies SELECT * FROM shared.companies;
CREATE TABLE bench_d.companies (LIKE bench_b.companies INCLUDING DEFAULTS INCLUDING INDEXES);
INSERT INTO bench_d.companies SELECT * FROM shared.companies;
SELECT format('ALTER TABLE %s OWNER TO %I', t, :'wall_owner') FROM unnest(ARRAY['bench_b.companies','bench_d.companies']) t \gexec
ALTER TABLE bench_b.companies ENABLE ROW LEVEL SECURITY; ALTER TABLE bench_b.companies FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON bench_b.companies USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE bench_d.companies ENABLE ROW LEVEL SECURITY; ALTER TABLE bench_d.companies FORCE ROW LEVEL SECURITY;

-- (d): the verified tenant recomputed from settings on every statement: app.tenant_id and
-- app.wall_proof = HMAC(key 1, tenant|pid|backend_start_us).
CREATE FUNCTION wall_bench.tenant_hmac() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE t text := pg_catalog.current_setting('app.tenant_id', true);
        p text := pg_catalog.current_setting('app.wall_proof', true);
        v_start timestamptz;
BEGIN
  IF t IS NULL OR p IS NULL THEN RETURN NULL; END IF;
  SELECT a.backend_start INTO v_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a;
  IF pg_catalog.encode(wall_private.hmac(pg_catalog.convert_to(pg_catalog.concat_ws('|', t, pg_catalog.pg_backend_pid()::text,
        (extract(epoch FROM v_start) * 1000000)::bigint::text), 'UTF8'),
        (SELECT k.secret FROM wall_private.keys k WHERE k.key_id = 1), 'sha256'), 'hex') = p THEN
    RETURN t::uuid;
  END IF;
  RETURN NULL;
END $$;
CREATE POLICY p ON bench_d.companies USING (tenant_id = (SELECT wall_bench.tenant_hmac()));

-- The app's signer, for the bench only.
CREATE FUNCTION wall_bench.sign(p_tenant uuid, p_nonce bigint) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.encode(wall_private.hmac(pg_catalog.convert_to(pg_catalog.concat_ws('|', p_tenant::text, s.pid::text,
           s.backend_start_us::text, p_nonce::text), 'UTF8'),
         (SELECT k.secret FROM wall_private.keys k WHERE k.key_id = 1), 'sha256'), 'hex')
  FROM wall.session_id() s $$;
CREATE FUNCTION wall_bench.sign_stmt(p_tenant uuid) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.encode(wall_private.hmac(pg_catalog.convert_to(pg_catalog.concat_ws('|', p_tenant::text, s.pid::text,
           s.backend_start_us::text), 'UTF8'),
         (SELECT k.secret FROM wall_private.keys k WHERE k.key_id = 1), 'sha256'), 'hex')
  FROM wall.session_id() s $$;
SELECT format('ALTER FUNCTION %s OWNER TO %I', f, :'wall_owner')
  FROM unnest(ARRAY['wall_bench.tenant_hmac()','wall_bench.sign(uuid,bigint)','wall_bench.sign_stmt(uuid)']) f \gexec
SELECT format('ALTER SCHEMA wall_bench OWNER TO %I', :'wall_owner') \gexec
SELECT format('GRANT USAGE ON SCHEMA bench_a, bench_b, bench_d, wall_bench TO %I', :'app') \gexec
SELECT format('GRANT SELECT ON bench_a.companies, bench_b.companies, bench_d.companies TO %I', :'app') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION wall_bench.tenant_hmac(), wall_bench.sign(uuid,bigint), wall_bench.sign_stmt(uuid) TO %I', :'app') \gexec
COMMIT;
ANALYZE bench_a.companies; ANALYZE bench_b.companies; ANALYZE bench_d.companies;
