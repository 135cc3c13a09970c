//! The tenant wall: a verified tenant context for connections shared by tenants.
//!
//! Schema- and row-isolated tenants share pooled connections logged in as the app login. The
//! wall makes Postgres itself keep them apart, even from SQL injected into a tenant's session:
//!
//! - Every table of a tenant schema and every shared table has `FORCE ROW LEVEL SECURITY` and
//!   one policy, [`WALL_POLICY`], admitting only rows of the session's *verified* tenant
//!   ([`VERIFIED_TENANT`]; for a schema tenant the schema's own id is a constant of its
//!   policy). The migrator puts new tables behind it and refuses what would bypass it (views
//!   without `security_invoker`, materialized views, foreign tables, `SECURITY DEFINER`
//!   functions, other permissive policies, objects the app login owns or may create).
//! - The verdict is a row of `wall.sessions` stamped with this session's value of a sequence
//!   only the wall's owner may draw: only `wall.enter(tenant, nonce, key_id, proof)`, a
//!   `SECURITY DEFINER` function with a pinned `search_path`, writes it, and only for a proof
//!   it verifies: HMAC-SHA256 over `tenant|pid|backend_start_us|nonce` under a key in
//!   `wall_private.keys`, which the app login cannot read. The nonce must rise on each backend,
//!   so an earlier proof cannot be replayed on the same connection, and the pid and backend
//!   start bind it to one backend. A failed proof clears the verdict.
//! - The app login is a member of no tenant role, owns nothing, may create nothing outside
//!   its temporary schema, and holds table privileges directly; the pool's reset (`DISCARD
//!   TEMP`, `DISCARD SEQUENCES`, ...) drops whatever a tenant left before another is entered.
//!
//! The application holds the signing key ([`WallKeys`], derived from the master secret);
//! [`crate::PgTenantConnector::with_wall`] signs each checkout, [`crate::TenantStorage::with_wall`]
//! lets migrations, seeds and shared backups enter a tenant's context. [`WallAdmin`] installs
//! the wall in existing deployments, rotates keys and checks every database.
//!
//! Database-isolated tenants keep their own databases and login roles: the wall is not
//! needed there. `docs/wall.md` has the design, the attack suite and the measured price.

mod admin;
mod check;
mod databases;
mod enter;
mod grants;
mod install;
mod secure;

pub use admin::{WallAdmin, WallReport};
pub use check::{WallCheck, WallKeyState};
pub use enter::{WallSession, enter, session_id};
pub use secure::{VERIFIED_TENANT, WALL_POLICY};

// The signing key lives with the other secrets derived from the master.
pub use crate::credentials::{MIN_WALL_KEY_LEN, WallKeys};

pub(crate) use admin::{install_in, wall_schema_tenant};
pub(crate) use databases::databases;
pub(crate) use enter::{enter_statement, refused};
pub(crate) use grants::{
    app_login_marked, ensure_app_login_role, grant_database, grant_schema_direct, grant_shared,
    grant_shared_database, revoke_schema_tenant,
};
pub(crate) use install::{ensure_roles, grant_owner_role, install};
pub(crate) use secure::{Guard, secure_schema};
