-- The wall: what the provisioner's migration creates in a database of schema or shared tenants.
-- Run as a superuser (or the database owner with CREATEROLE) once per database, idempotent:
--   psql -v wall_owner=<owner role> -v app=<app login> -f install.sql
-- Prototype names: wall_owner = wallp_<rand>_wall, app = wallp_<rand>_app (see docs/wall.md).
--
-- Objects:
--   role :wall_owner          NOLOGIN, owns everything below, member of pg_read_all_stats only
--                             (so its functions can read the caller's backend_start)
--   schema wall               the API: USAGE for the app login, EXECUTE on its four functions
--     wall.session_id()       (pid, backend_start in µs): what the app signs, asked once per connection
--     wall.enter(tenant, nonce, key_id, proof) -> boolean
--                             SECURITY DEFINER: verifies the proof, keeps the verdict
--     wall.leave()            SECURITY DEFINER: forgets the verdict (keeps the nonce floor)
--     wall.tenant() -> uuid   invoker sql: the verified tenant of this session, or NULL
--     wall.sessions           UNLOGGED, one row per backend pid: backend_start, token, tenant,
--                             nonce; the app login reads (pid, token, tenant) of its own row only
--     wall.session_token      sequence: the app login may read currval() only
--   schema wall_private       no USAGE for anyone but :wall_owner
--     pgcrypto                (hmac, digest), installed here so no other schema can shadow it
--     wall_private.keys       key_id, secret, valid_from, valid_until: two rows during rotation
--
-- Proof (hex of HMAC-SHA256 under keys.secret) over the UTF-8 text
--   '<tenant uuid, lower case>|<pid>|<backend_start µs since epoch>|<nonce>'
-- The nonce is a per-connection counter: enter() accepts only a nonce above the last accepted
-- one of this backend, so an earlier checkout's proof is refused on the same connection, and
-- pid + backend_start refuse it on every other connection. Policies check the verdict through
-- the session token (see WALL_TENANT below), never through a setting.

\set ON_ERROR_STOP on
BEGIN;

SELECT format('CREATE ROLE %I NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'wall_owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'wall_owner') \gexec
-- NOINHERIT would hide pg_read_all_stats: the owner needs its privileges, so INHERIT here.
SELECT format('ALTER ROLE %I INHERIT', :'wall_owner') \gexec
SELECT format('GRANT pg_read_all_stats TO %I', :'wall_owner') \gexec

CREATE SCHEMA IF NOT EXISTS wall_private;
SELECT format('ALTER SCHEMA wall_private OWNER TO %I', :'wall_owner') \gexec
REVOKE ALL ON SCHEMA wall_private FROM PUBLIC;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA wall_private;

CREATE SCHEMA IF NOT EXISTS wall;
SELECT format('ALTER SCHEMA wall OWNER TO %I', :'wall_owner') \gexec
REVOKE ALL ON SCHEMA wall FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA wall TO %I', :'app') \gexec

CREATE TABLE IF NOT EXISTS wall_private.keys (
    key_id      integer     PRIMARY KEY,
    secret      bytea       NOT NULL CHECK (length(secret) >= 32),
    valid_from  timestamptz NOT NULL DEFAULT now(),
    valid_until timestamptz,
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);
-- The verdicts: one row per backend pid, written only by wall.enter()/wall.leave() (definer).
-- token is this session's value of the sequence wall.session_token, drawn by enter() with
-- nextval(): the app login may read currval() (SELECT) but never draw or set a value (no USAGE,
-- no UPDATE), and a fresh backend has no currval at all. So "token = currval()" proves the row
-- was written in this very session: no pid reuse, no other session's row, no forgery.
CREATE SEQUENCE IF NOT EXISTS wall.session_token;
CREATE UNLOGGED TABLE IF NOT EXISTS wall.sessions (
    pid           integer     PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    token         bigint      NOT NULL,   -- not indexed: updates stay HOT
    tenant        uuid,
    nonce         bigint      NOT NULL
) WITH (fillfactor = 50);   -- room for HOT updates: one update per tenant switch
SELECT format('ALTER TABLE wall_private.keys OWNER TO %I', :'wall_owner') \gexec
SELECT format('ALTER TABLE wall.sessions OWNER TO %I', :'wall_owner') \gexec
SELECT format('ALTER SEQUENCE wall.session_token OWNER TO %I', :'wall_owner') \gexec
REVOKE ALL ON wall_private.keys, wall.sessions, wall.session_token FROM PUBLIC;
-- The app login sees only its own session's row (pid, token, tenant), and may read currval().
ALTER TABLE wall.sessions ENABLE ROW LEVEL SECURITY;   -- not FORCE: the owner (definer) writes
DROP POLICY IF EXISTS own_session ON wall.sessions;
CREATE POLICY own_session ON wall.sessions FOR SELECT
    USING (token OPERATOR(pg_catalog.=) pg_catalog.currval('wall.session_token'::pg_catalog.regclass));
SELECT format('GRANT SELECT (pid, token, tenant) ON wall.sessions TO %I', :'app') \gexec
SELECT format('GRANT SELECT ON SEQUENCE wall.session_token TO %I', :'app') \gexec

-- This backend's identity, as the app signs it (run as the definer, so it reads backend_start
-- exactly as enter() does).
CREATE OR REPLACE FUNCTION wall.session_id(OUT pid integer, OUT backend_start_us bigint)
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, (extract(epoch FROM a.backend_start) * 1000000)::bigint
    FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) AS a
$$;

-- Verifies a proof and keeps the verdict for this backend. Never raises on a bad proof: a
-- failure writes "no tenant" (so a failed switch cannot leave the previous tenant in place)
-- and returns false; the engine then discards the connection.
CREATE OR REPLACE FUNCTION wall.enter(p_tenant uuid, p_nonce bigint, p_key_id integer, p_proof text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pid   integer := pg_catalog.pg_backend_pid();
    v_start timestamptz;
    v_key   bytea;
    v_last  bigint;
    v_ok    boolean := false;
BEGIN
    SELECT a.backend_start INTO v_start
      FROM pg_catalog.pg_stat_get_activity(v_pid) AS a;
    SELECT k.secret INTO v_key
      FROM wall_private.keys AS k
     WHERE k.key_id = p_key_id
       AND k.valid_from OPERATOR(pg_catalog.<=) pg_catalog.now()
       AND (k.valid_until IS NULL OR k.valid_until OPERATOR(pg_catalog.>) pg_catalog.now());
    SELECT s.nonce INTO v_last
      FROM wall.sessions AS s
     WHERE s.pid = v_pid AND s.backend_start = v_start;
    IF v_start IS NOT NULL AND v_key IS NOT NULL AND p_tenant IS NOT NULL
       AND p_nonce IS NOT NULL AND p_proof IS NOT NULL
       AND (v_last IS NULL OR p_nonce > v_last) THEN
        -- Compare digests of both sides, so the comparison's timing says nothing about the proof.
        v_ok := wall_private.digest(
                    pg_catalog.encode(wall_private.hmac(pg_catalog.convert_to(
                        pg_catalog.concat_ws('|', p_tenant::text, v_pid::text,
                            (extract(epoch FROM v_start) * 1000000)::bigint::text,
                            p_nonce::text), 'UTF8'), v_key, 'sha256'), 'hex'), 'sha256')
                OPERATOR(pg_catalog.=)
                wall_private.digest(pg_catalog.lower(p_proof), 'sha256');
    END IF;
    INSERT INTO wall.sessions AS s (pid, backend_start, token, tenant, nonce)
    VALUES (v_pid, v_start, pg_catalog.nextval('wall.session_token'::pg_catalog.regclass),
            CASE WHEN v_ok THEN p_tenant END,
            CASE WHEN v_ok THEN p_nonce ELSE COALESCE(v_last, 0) END)
    ON CONFLICT (pid) DO UPDATE
       SET backend_start = EXCLUDED.backend_start, token = EXCLUDED.token,
           tenant = EXCLUDED.tenant, nonce = EXCLUDED.nonce;
    RETURN v_ok;
END
$$;

CREATE OR REPLACE FUNCTION wall.leave()
RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE wall.sessions SET tenant = NULL WHERE pid = pg_catalog.pg_backend_pid()
$$;

-- The verified tenant of this session (NULL before any enter(); an ERROR "currval ... not yet
-- defined in this session" on a fresh or DISCARDed session: fails closed either way).
-- A convenience for hosts and column defaults. Policies do NOT call it: they embed the same
-- scalar subquery, WALL_TENANT below, which the planner turns into one InitPlan per statement
-- with no function call at all (a plpgsql SECURITY DEFINER call costs ~13 us per statement,
-- and a SECURITY DEFINER sql function is re-planned on every call).
--   WALL_TENANT = (SELECT s.tenant FROM wall.sessions s
--                  WHERE s.pid = pg_catalog.pg_backend_pid()
--                    AND s.token = pg_catalog.currval('wall.session_token'::pg_catalog.regclass))
-- (the pid finds the row through the primary key; the token proves it is this session's).
CREATE OR REPLACE FUNCTION wall.tenant()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT (SELECT s.tenant FROM wall.sessions AS s
             WHERE s.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
               AND s.token OPERATOR(pg_catalog.=) pg_catalog.currval('wall.session_token'::pg_catalog.regclass))
$$;

SELECT format('ALTER FUNCTION %s OWNER TO %I', f, :'wall_owner')
FROM unnest(ARRAY['wall.session_id()', 'wall.enter(uuid, bigint, integer, text)',
                  'wall.leave()', 'wall.tenant()']) AS f \gexec
REVOKE ALL ON FUNCTION wall.session_id(), wall.enter(uuid, bigint, integer, text),
                       wall.leave(), wall.tenant() FROM PUBLIC;
SELECT format('GRANT EXECUTE ON FUNCTION wall.session_id(), wall.enter(uuid, bigint, integer, text), wall.leave(), wall.tenant() TO %I', :'app') \gexec

COMMIT;
