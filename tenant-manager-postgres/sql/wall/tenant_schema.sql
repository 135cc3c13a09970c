-- A schema tenant behind the wall. Run as a superuser after install.sql:
--   psql -v tenant_role=<role> -v schema=<schema> -v tenant_id=<uuid> -v app=<app login> -f tenant_schema.sql
-- Provisioning part (the provisioner's steps): the NOLOGIN tenant role owns the schema; the app
-- login is NOT a member of it (no SET ROLE left to abuse) and gets USAGE + table privileges
-- directly; nobody but the owner has CREATE on the schema.
-- Migration part (the tenant's migrations, run as the tenant role): the table, then the wall
-- block the migrator appends or checks for every table: ENABLE + FORCE ROW LEVEL SECURITY and
-- one policy whose predicate is the schema's own tenant id compared with the verified tenant:
--   USING ((SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval('wall.session_token'::pg_catalog.regclass)) = '<tenant uuid>'::uuid)
-- A constant predicate: the planner makes it a one-time filter over an InitPlan, so a query
-- pays one index lookup of its own session row, whatever the row count.
\set ON_ERROR_STOP on
BEGIN;
SELECT format('CREATE ROLE %I NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'tenant_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'tenant_role') \gexec
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'schema', :'tenant_role') \gexec
SELECT format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', :'schema') \gexec
-- The owner runs migrations under FORCE RLS too: it may read the verdict (the migrator enters
-- with a proof like the engine when a data migration must see rows).
SELECT format('GRANT USAGE ON SCHEMA wall TO %I', :'tenant_role') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION wall.tenant(), wall.enter(uuid, bigint, integer, text), wall.session_id() TO %I', :'tenant_role') \gexec
SELECT format('GRANT SELECT (pid, token, tenant) ON wall.sessions TO %I', :'tenant_role') \gexec
SELECT format('GRANT SELECT ON SEQUENCE wall.session_token TO %I', :'tenant_role') \gexec
-- No membership: take it away if an older deployment granted it.
SELECT format('REVOKE %I FROM %I', :'tenant_role', :'app')
WHERE EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = to_regrole(quote_ident(:'tenant_role'))
                                               AND m.member = to_regrole(quote_ident(:'app'))) \gexec

-- Migration (as the tenant role, search_path = the schema).
SELECT format('SET LOCAL ROLE %I', :'tenant_role') \gexec
SELECT format('SET LOCAL search_path = %I', :'schema') \gexec
CREATE TABLE IF NOT EXISTS companies (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    domain      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The wall block, per table:
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS wall ON companies;
SELECT format('CREATE POLICY wall ON companies USING ((SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval(''wall.session_token''::pg_catalog.regclass)) = %L::uuid) WITH CHECK ((SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval(''wall.session_token''::pg_catalog.regclass)) = %L::uuid)',
              :'tenant_id', :'tenant_id') \gexec
RESET ROLE;

-- The app login's direct privileges (what the provisioner grants after migrations; default
-- privileges cover tables later migrations create).
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', :'schema', :'app') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', :'schema', :'app') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', :'schema', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', :'tenant_role', :'schema', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I', :'tenant_role', :'schema', :'app') \gexec
COMMIT;
