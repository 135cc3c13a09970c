//! User statements of the registry.

use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;

use tenant_manager_core::{
    Email, Entity, NewUser, PasswordHash, Result, Role, TenantId, User, UserId,
};

use super::rows::{USER_COLUMNS, UserRow};
use crate::pg::SqlxResultExt;

/// Inserts a user; a missing tenant is `NotFound` (foreign key), a taken e-mail `Conflict`.
pub(crate) async fn insert(conn: &mut PgConnection, user: NewUser) -> Result<User> {
    let user = user.into_user(OffsetDateTime::now_utc());
    let sql = format!(
        "INSERT INTO tm_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING {USER_COLUMNS}"
    );
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(user.id.as_uuid())
        .bind(user.tenant_id.as_uuid())
        .bind(user.email.as_str())
        .bind(user.role.as_str())
        .bind(user.password_hash.as_phc())
        .bind(user.created_at)
        .fetch_one(conn)
        .await
        .map_db(Entity::User)?
        .try_into()
}

/// The user with this id, if any.
pub(crate) async fn by_id(conn: &mut PgConnection, id: UserId) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM tm_users WHERE id = $1");
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?
        .map(User::try_from)
        .transpose()
}

/// The oldest user with this e-mail (stored lowercased), if any.
pub(crate) async fn by_email(conn: &mut PgConnection, email: &Email) -> Result<Option<User>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM tm_users WHERE email = $1 ORDER BY created_at, id LIMIT 1"
    );
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(email.as_str())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?
        .map(User::try_from)
        .transpose()
}

/// A tenant's users, oldest first.
pub(crate) async fn of_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<User>> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM tm_users WHERE tenant_id = $1 ORDER BY created_at, id");
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(tenant.as_uuid())
        .fetch_all(conn)
        .await
        .map_db(Entity::User)?
        .into_iter()
        .map(User::try_from)
        .collect()
}

/// Sets a user's password hash to `new` if it is still `current`; `None` when no row matched
/// (no such user, or another hash stored meanwhile).
pub(crate) async fn replace_password_hash(
    conn: &mut PgConnection,
    id: UserId,
    current: &PasswordHash,
    new: &PasswordHash,
) -> Result<Option<User>> {
    let sql = format!(
        "UPDATE tm_users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 \
         RETURNING {USER_COLUMNS}"
    );
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .bind(current.as_phc())
        .bind(new.as_phc())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?
        .map(User::try_from)
        .transpose()
}

/// Every user with this e-mail, oldest first.
pub(crate) async fn all_by_email(conn: &mut PgConnection, email: &Email) -> Result<Vec<User>> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM tm_users WHERE email = $1 ORDER BY created_at, id");
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(email.as_str())
        .fetch_all(conn)
        .await
        .map_db(Entity::User)?
        .into_iter()
        .map(User::try_from)
        .collect()
}

/// Locks the tenant's row until the end of the transaction (serialising seat counts, owner
/// counts and acceptances of one tenant); its status, or `None` for an unknown tenant.
pub(crate) async fn lock_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<String>> {
    sqlx::query_scalar::<_, String>("SELECT status FROM tm_tenants WHERE id = $1 FOR UPDATE")
        .bind(tenant.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Tenant)
}

/// The role of a user of `tenant`, if it is one of its users.
async fn role_in(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> Result<Option<Role>> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM tm_users WHERE id = $1 AND tenant_id = $2")
            .bind(user.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(conn)
            .await
            .map_db(Entity::User)?;
    role.map(|r| r.parse()).transpose()
}

/// Refuses when `user` is `tenant`'s only owner. Run with the tenant's row locked.
async fn keep_an_owner(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> Result<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tm_users WHERE tenant_id = $1 AND role = 'owner' AND id <> $2",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .fetch_one(conn)
    .await
    .map_db(Entity::User)?;
    if others == 0 {
        return Err(last_owner());
    }
    Ok(())
}

/// The refusal of demoting or removing a tenant's last owner.
fn last_owner() -> tenant_manager_core::Error {
    tenant_manager_core::Error::conflict(
        Entity::User,
        "role",
        "a tenant keeps at least one owner: promote another user first",
    )
}

/// Sets a user's role, keeping an owner. Run in a transaction.
pub(crate) async fn set_role(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<User> {
    let not_found = || tenant_manager_core::Error::not_found(Entity::User, user);
    lock_tenant(conn, tenant).await?.ok_or_else(not_found)?;
    let current = role_in(conn, tenant, user).await?.ok_or_else(not_found)?;
    if current == Role::Owner && role != Role::Owner {
        keep_an_owner(conn, tenant, user).await?;
    }
    let sql = format!(
        "UPDATE tm_users SET role = $3 WHERE id = $1 AND tenant_id = $2 RETURNING {USER_COLUMNS}"
    );
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .bind(role.as_str())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?
        .ok_or_else(not_found)?
        .try_into()
}

/// Deletes a user, keeping an owner. Run in a transaction.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<User> {
    let not_found = || tenant_manager_core::Error::not_found(Entity::User, user);
    lock_tenant(conn, tenant).await?.ok_or_else(not_found)?;
    let current = role_in(conn, tenant, user).await?.ok_or_else(not_found)?;
    if current == Role::Owner {
        keep_an_owner(conn, tenant, user).await?;
    }
    let sql =
        format!("DELETE FROM tm_users WHERE id = $1 AND tenant_id = $2 RETURNING {USER_COLUMNS}");
    sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?
        .ok_or_else(not_found)?
        .try_into()
}

/// Advisory lock class of new organisations' owner e-mails (the two-key form: its own key
/// space, apart from the one-key locks of provisioning).
const OWNER_EMAIL_LOCK: i32 = 0x746d_6f65;

/// Refuses a new organisation's owner e-mail that any user has; holds a transaction lock on
/// the e-mail so that racing registrations of one e-mail have one winner. Run in a
/// transaction.
pub(crate) async fn claim_owner_email(conn: &mut PgConnection, email: &Email) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(OWNER_EMAIL_LOCK)
        .bind(email.as_str())
        .execute(&mut *conn)
        .await
        .map_db(Entity::User)?;
    let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tm_users WHERE email = $1 LIMIT 1")
        .bind(email.as_str())
        .fetch_optional(conn)
        .await
        .map_db(Entity::User)?;
    match taken {
        Some(_) => Err(tenant_manager_core::Error::conflict(
            Entity::User,
            "email",
            format!("email {email} is taken"),
        )),
        None => Ok(()),
    }
}
