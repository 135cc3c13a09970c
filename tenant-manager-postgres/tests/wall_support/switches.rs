//! The database defences of the wall, each one switched off by the admin for an off run
//! ([`super::world::World::restore`] puts them all back).

use tenant_manager_postgres::{quote_ident, quote_literal};

use super::world::World;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The app login is a member of B's role again (as before the wall).
    MemberOfB,
    /// B's table does not force row-level security on its owner.
    NoForceB,
    /// Row-level security disabled on B's table and the shared table.
    RlsOffB,
    /// The policies of B's table and the shared table read the plain setting
    /// `app.tenant_id` (as before the wall).
    PoliciesOnSetting,
    /// `wall.enter()` accepts any proof.
    EnterNoVerify,
    /// `wall.enter()` accepts a proof made for any live backend, not only this one.
    EnterAnyBackend,
    /// `wall.enter()` checks the proof but not that the nonce rises.
    NoNonceFloor,
    /// The app login may read the key table.
    KeysReadable,
}

impl Switch {
    pub async fn apply(self, world: &World) {
        world.admin_sql(&self.sql(world)).await;
    }

    fn sql(self, world: &World) -> String {
        let (app, sb, shared) = (world.app_q(), &world.sb, &world.shared);
        match self {
            Switch::MemberOfB => format!("GRANT {} TO {app}", quote_ident(&world.rb)),
            Switch::NoForceB => format!("ALTER TABLE {sb}.companies NO FORCE ROW LEVEL SECURITY"),
            Switch::RlsOffB => format!(
                "ALTER TABLE {sb}.companies DISABLE ROW LEVEL SECURITY; \
                 ALTER TABLE {shared}.companies DISABLE ROW LEVEL SECURITY"
            ),
            Switch::PoliciesOnSetting => {
                let setting = "nullif(current_setting('app.tenant_id', true), '')::uuid";
                let own = format!("{setting} = '{}'::uuid", world.b.id);
                let row = format!("tenant_id = {setting}");
                format!(
                    "ALTER POLICY tenant_wall ON {sb}.companies USING ({own}) WITH CHECK ({own}); \
                     ALTER POLICY tenant_wall ON {shared}.companies USING ({row}) WITH CHECK ({row})"
                )
            }
            Switch::EnterNoVerify => enter_replaced(
                "BEGIN \
                   INSERT INTO wall.sessions AS s (pid, backend_start, token, tenant, nonce) \
                   VALUES (pg_backend_pid(), now(), nextval('wall.session_token'::regclass), \
                           p_tenant, coalesce(p_nonce, 0)) \
                   ON CONFLICT (pid) DO UPDATE SET token = EXCLUDED.token, \
                       tenant = EXCLUDED.tenant, nonce = EXCLUDED.nonce; \
                   RETURN true; \
                 END",
            ),
            Switch::EnterAnyBackend => enter_replaced(
                "DECLARE v_pid integer := pg_backend_pid(); v_last bigint; v_ok boolean; \
                 BEGIN \
                   SELECT s.nonce INTO v_last FROM wall.sessions s WHERE s.pid = v_pid; \
                   SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a, wall_private.keys k \
                     WHERE k.key_id = p_key_id AND a.backend_start IS NOT NULL \
                       AND (v_last IS NULL OR p_nonce > v_last) \
                       AND encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to( \
                             concat_ws('|', p_tenant::text, a.pid::text, \
                               (extract(epoch FROM a.backend_start) * 1000000)::bigint::text, \
                               p_nonce::text), 'UTF8'))), 'hex') = lower(p_proof)) INTO v_ok; \
                   INSERT INTO wall.sessions AS s (pid, backend_start, token, tenant, nonce) \
                   VALUES (v_pid, now(), nextval('wall.session_token'::regclass), \
                           CASE WHEN v_ok THEN p_tenant END, \
                           CASE WHEN v_ok THEN p_nonce ELSE coalesce(v_last, 0) END) \
                   ON CONFLICT (pid) DO UPDATE SET token = EXCLUDED.token, \
                       tenant = EXCLUDED.tenant, nonce = EXCLUDED.nonce; \
                   RETURN v_ok; \
                 END",
            ),
            Switch::NoNonceFloor => {
                let floor = "AND (v_last IS NULL OR p_nonce OPERATOR(pg_catalog.>) v_last)";
                assert!(
                    world.enter_def().contains(floor),
                    "wall.enter has no nonce floor"
                );
                world.enter_def().replace(floor, "AND true")
            }
            Switch::KeysReadable => format!(
                "GRANT USAGE ON SCHEMA wall_private TO {app}; \
                 GRANT SELECT ON wall_private.keys TO {app}"
            ),
        }
    }
}

/// `wall.enter` with another body (owner and grants stay: CREATE OR REPLACE keeps them).
fn enter_replaced(body: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION wall.enter(p_tenant uuid, p_nonce bigint, p_key_id integer, \
           p_proof text) RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER \
         SET search_path = pg_catalog, pg_temp AS {}",
        quote_literal(body)
    )
}
