-- The wall of one database of schema or shared tenants (see src/wall/mod.rs). Run by
-- src/wall/install.rs as a superuser, in one transaction, with __OWNER__ (the wall owner role,
-- NOLOGIN) and __APP__ (the app login) replaced by quoted identifiers. Idempotent. The owner
-- role itself (cluster-wide, INHERIT, member of pg_read_all_stats) is ensured before, outside
-- the transaction (install.rs: ensure_roles), and so is __READER__ (NOLOGIN, no privilege
-- elsewhere): the roles that own walled tables (schema tenants' roles, the shared owner) are its
-- members, so their statements may evaluate the policies. One grant to it keeps the ACLs below
-- one entry long however many tenants the database holds (a column's or a sequence's ACL lives
-- in a catalog row without TOAST, which held about 2,400 direct grants).

CREATE SCHEMA IF NOT EXISTS wall_private;
ALTER SCHEMA wall_private OWNER TO __OWNER__;
REVOKE ALL ON SCHEMA wall_private FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS wall;
ALTER SCHEMA wall OWNER TO __OWNER__;
REVOKE ALL ON SCHEMA wall FROM PUBLIC;
GRANT USAGE ON SCHEMA wall TO __APP__, __READER__;

-- HMAC-SHA256 keys as their two padded halves (key XOR ipad, key XOR opad, 64 bytes each), so
-- the verification needs only the built-in sha256(): HMAC = sha256(outer || sha256(inner || m)).
CREATE TABLE IF NOT EXISTS wall_private.keys (
    key_id      integer     PRIMARY KEY CHECK (key_id > 0),
    inner_pad   bytea       NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad   bytea       NOT NULL CHECK (length(outer_pad) = 64),
    valid_from  timestamptz NOT NULL DEFAULT now(),
    valid_until timestamptz,
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);
ALTER TABLE wall_private.keys OWNER TO __OWNER__;
REVOKE ALL ON wall_private.keys FROM PUBLIC;

-- The verdicts: one row per backend, written only by wall.enter()/wall.leave() (definer).
-- token = nextval('wall.session_token') drawn by enter(); the app login may read currval()
-- but never draw or set a value, and a fresh backend has no currval: "token = currval()"
-- proves the row was written in this very session.
CREATE SEQUENCE IF NOT EXISTS wall.session_token;
CREATE UNLOGGED TABLE IF NOT EXISTS wall.sessions (
    pid           integer     PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    token         bigint      NOT NULL,   -- not indexed: updates stay HOT
    tenant        uuid,
    nonce         bigint      NOT NULL
) WITH (fillfactor = 50);
ALTER TABLE wall.sessions OWNER TO __OWNER__;
ALTER SEQUENCE wall.session_token OWNER TO __OWNER__;
REVOKE ALL ON wall.sessions, wall.session_token FROM PUBLIC;
ALTER TABLE wall.sessions ENABLE ROW LEVEL SECURITY;   -- not FORCE: the owner (definer) writes
DROP POLICY IF EXISTS own_session ON wall.sessions;
CREATE POLICY own_session ON wall.sessions FOR SELECT
    USING (token OPERATOR(pg_catalog.=) pg_catalog.currval('wall.session_token'::pg_catalog.regclass));
GRANT SELECT (pid, token, tenant) ON wall.sessions TO __APP__, __READER__;
GRANT SELECT ON SEQUENCE wall.session_token TO __APP__, __READER__;

CREATE OR REPLACE FUNCTION wall.session_id(OUT pid integer, OUT backend_start_us bigint)
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, (extract(epoch FROM a.backend_start) * 1000000)::bigint
    FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) AS a
$$;

-- Verifies a proof and keeps the verdict for this backend. Never raises on a bad proof: a
-- failure writes "no tenant" (so a failed switch cannot leave the previous tenant in place)
-- and returns false.
CREATE OR REPLACE FUNCTION wall.enter(p_tenant uuid, p_nonce bigint, p_key_id integer, p_proof text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pid   integer := pg_catalog.pg_backend_pid();
    v_start timestamptz;
    v_inner bytea;
    v_outer bytea;
    v_last  bigint;
    v_mac   bytea;
    v_ok    boolean := false;
BEGIN
    SELECT a.backend_start INTO v_start
      FROM pg_catalog.pg_stat_get_activity(v_pid) AS a;
    SELECT k.inner_pad, k.outer_pad INTO v_inner, v_outer
      FROM wall_private.keys AS k
     WHERE k.key_id OPERATOR(pg_catalog.=) p_key_id
       AND k.valid_from OPERATOR(pg_catalog.<=) pg_catalog.now()
       AND (k.valid_until IS NULL OR k.valid_until OPERATOR(pg_catalog.>) pg_catalog.now());
    SELECT s.nonce INTO v_last
      FROM wall.sessions AS s
     WHERE s.pid OPERATOR(pg_catalog.=) v_pid AND s.backend_start OPERATOR(pg_catalog.=) v_start;
    IF v_start IS NOT NULL AND v_inner IS NOT NULL AND p_tenant IS NOT NULL
       AND p_nonce IS NOT NULL AND p_proof IS NOT NULL
       AND (v_last IS NULL OR p_nonce OPERATOR(pg_catalog.>) v_last) THEN
        v_mac := pg_catalog.sha256(v_outer OPERATOR(pg_catalog.||) pg_catalog.sha256(
                     v_inner OPERATOR(pg_catalog.||) pg_catalog.convert_to(
                         pg_catalog.concat_ws('|', p_tenant::text, v_pid::text,
                             (extract(epoch FROM v_start) * 1000000)::bigint::text,
                             p_nonce::text), 'UTF8')));
        -- Digests of both sides are compared, so the comparison's time says nothing of the proof.
        v_ok := pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.encode(v_mac, 'hex'), 'UTF8'))
                OPERATOR(pg_catalog.=)
                pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.lower(p_proof), 'UTF8'));
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
    UPDATE wall.sessions SET tenant = NULL WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
$$;

-- The verified tenant of this session, for hosts and column defaults. Policies embed the same
-- scalar subquery instead (one InitPlan per statement, no function call).
CREATE OR REPLACE FUNCTION wall.tenant()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT (SELECT s.tenant FROM wall.sessions AS s
             WHERE s.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
               AND s.token OPERATOR(pg_catalog.=) pg_catalog.currval('wall.session_token'::pg_catalog.regclass))
$$;

ALTER FUNCTION wall.session_id() OWNER TO __OWNER__;
ALTER FUNCTION wall.enter(uuid, bigint, integer, text) OWNER TO __OWNER__;
ALTER FUNCTION wall.leave() OWNER TO __OWNER__;
ALTER FUNCTION wall.tenant() OWNER TO __OWNER__;
REVOKE ALL ON FUNCTION wall.session_id(), wall.enter(uuid, bigint, integer, text),
                       wall.leave(), wall.tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wall.session_id(), wall.enter(uuid, bigint, integer, text),
                          wall.leave(), wall.tenant() TO __APP__;
GRANT EXECUTE ON FUNCTION wall.tenant() TO __READER__;
-- Temporary objects only for the app login (the reset drops them); nobody else.
DO $temp$ BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO __APP__', current_database());
END $temp$;
-- Large objects carry no tenant and belong to their creating role: created through the app
-- login, every tenant could read them. Nobody but a superuser creates them here.
REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),
    pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_import(text),
    pg_catalog.lo_import(text, oid) FROM PUBLIC;
COMMENT ON SCHEMA wall IS 'tenant-manager:wall:v2';
