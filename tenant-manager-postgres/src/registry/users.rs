//! User statements of the registry.

use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;

use tenant_manager_core::{Email, Entity, NewUser, PasswordHash, Result, TenantId, User, UserId};

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

/// The user with this e-mail (stored lowercased, unique), if any.
pub(crate) async fn by_email(conn: &mut PgConnection, email: &Email) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM tm_users WHERE email = $1");
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
