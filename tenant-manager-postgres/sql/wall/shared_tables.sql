-- The shared tables behind the wall. Run as a superuser after install.sql:
--   psql -v shared_owner=<role> -v app=<app login> -f shared_tables.sql
-- The NOLOGIN shared owner owns schema `shared` and its tables (as today); every table has a
-- tenant_id column defaulting to the verified tenant, FORCE ROW LEVEL SECURITY, and the policy
--   USING (tenant_id = (SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval('wall.session_token'::pg_catalog.regclass))) WITH CHECK (same)
-- (the subquery makes the call an InitPlan: once per statement, and an index condition).
-- The app login gets USAGE and table privileges directly, never ownership, no CREATE.
\set ON_ERROR_STOP on
BEGIN;
SELECT format('CREATE ROLE %I NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'shared_owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'shared_owner') \gexec
CREATE SCHEMA IF NOT EXISTS shared;
SELECT format('ALTER SCHEMA shared OWNER TO %I', :'shared_owner') \gexec
REVOKE ALL ON SCHEMA shared FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA wall TO %I', :'shared_owner') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION wall.tenant(), wall.enter(uuid, bigint, integer, text), wall.session_id() TO %I', :'shared_owner') \gexec
SELECT format('GRANT SELECT (pid, token, tenant) ON wall.sessions TO %I', :'shared_owner') \gexec
SELECT format('GRANT SELECT ON SEQUENCE wall.session_token TO %I', :'shared_owner') \gexec

SELECT format('SET LOCAL ROLE %I', :'shared_owner') \gexec
SET LOCAL search_path = shared;
CREATE TABLE IF NOT EXISTS companies (
    tenant_id   uuid        NOT NULL DEFAULT wall.tenant(),
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    domain      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS wall ON companies;
CREATE POLICY wall ON companies
    USING (tenant_id = (SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval('wall.session_token'::pg_catalog.regclass)))
    WITH CHECK (tenant_id = (SELECT s.tenant FROM wall.sessions s WHERE s.pid = pg_catalog.pg_backend_pid() AND s.token = pg_catalog.currval('wall.session_token'::pg_catalog.regclass)));
RESET ROLE;

SELECT format('GRANT USAGE ON SCHEMA shared TO %I', :'app') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shared TO %I', :'app') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA shared TO %I', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA shared GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', :'shared_owner', :'app') \gexec
COMMIT;
