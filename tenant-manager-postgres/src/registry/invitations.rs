//! Invitation statements of the registry: seats counted and invitations accepted under the
//! tenant's row lock.

use std::time::Duration;

use sqlx::{AssertSqlSafe, FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use tenant_manager_core::{
    Email, Entity, Error, Invitation, InvitationId, InvitationState, NewInvitation, NewUser,
    PasswordHash, Result, TenantId, TokenDigest, User, UserId,
};

use super::users;
use crate::pg::SqlxResultExt;

/// Columns of `tm_invitations`, in the order [`InvitationRow`] reads them.
const INVITATION_COLUMNS: &str = "id, tenant_id, email, role, invited_by, token_digest, \
     created_at, expires_at, accepted_at, revoked_at";

/// What counts as an open invitation at `$now` (the parameter number varies).
const PENDING: &str = "accepted_at IS NULL AND revoked_at IS NULL";

/// One row of `tm_invitations`.
#[derive(Debug, FromRow)]
struct InvitationRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: String,
    invited_by: Option<Uuid>,
    token_digest: Vec<u8>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    accepted_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = Error;

    fn try_from(row: InvitationRow) -> Result<Self> {
        let corrupt = |what: &'static str, e: Error| {
            Error::internal_with(format!("corrupt invitation row: {what}"), e)
        };
        let mut invitation = NewInvitation::new(
            InvitationId::from_uuid(row.id),
            TenantId::from_uuid(row.tenant_id),
            Email::new(&row.email).map_err(|e| corrupt("email", e))?,
            row.role.parse().map_err(|e| corrupt("role", e))?,
            row.invited_by.map(UserId::from_uuid),
            TokenDigest::from_slice(&row.token_digest)?,
            row.expires_at,
        )
        .into_invitation(row.created_at);
        invitation.accepted_at = row.accepted_at;
        invitation.revoked_at = row.revoked_at;
        Ok(invitation)
    }
}

async fn fetch(
    conn: &mut PgConnection,
    id: InvitationId,
    lock: bool,
) -> Result<Option<Invitation>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {INVITATION_COLUMNS} FROM tm_invitations WHERE id = $1{lock}");
    sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Invitation)?
        .map(Invitation::try_from)
        .transpose()
}

/// The invitation with this id.
pub(crate) async fn by_id(conn: &mut PgConnection, id: InvitationId) -> Result<Invitation> {
    fetch(conn, id, false)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Invitation, id))
}

/// A tenant's pending invitations, oldest first.
pub(crate) async fn pending(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<Invitation>> {
    let sql = format!(
        "SELECT {INVITATION_COLUMNS} FROM tm_invitations WHERE tenant_id = $1 AND {PENDING} \
         AND expires_at > $2 ORDER BY created_at, id"
    );
    sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(sql))
        .bind(tenant.as_uuid())
        .bind(OffsetDateTime::now_utc())
        .fetch_all(conn)
        .await
        .map_db(Entity::Invitation)?
        .into_iter()
        .map(Invitation::try_from)
        .collect()
}

/// Users plus pending invitations of a tenant.
pub(crate) async fn seats(conn: &mut PgConnection, tenant: TenantId) -> Result<u64> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM tm_users WHERE tenant_id = $1) \
              + (SELECT count(*) FROM tm_invitations WHERE tenant_id = $1 AND {PENDING} \
                 AND expires_at > $2)"
    );
    let seats: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(tenant.as_uuid())
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await
        .map_db(Entity::Invitation)?;
    Ok(u64::try_from(seats).unwrap_or_default())
}

fn check_live(status: Option<String>, tenant: TenantId) -> Result<()> {
    match status.as_deref() {
        None => Err(Error::not_found(Entity::Tenant, tenant)),
        Some("deleting" | "deleted") => {
            Err(Error::invalid("tenant_id", "the tenant is being deleted"))
        }
        Some(_) => Ok(()),
    }
}

/// Records an invitation within the seats. Run in a transaction.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    invitation: NewInvitation,
    max_users: u64,
) -> Result<Invitation> {
    let tenant = invitation.tenant_id;
    check_live(users::lock_tenant(conn, tenant).await?, tenant)?;
    let now = OffsetDateTime::now_utc();
    let member: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM tm_users WHERE tenant_id = $1 AND email = $2")
            .bind(tenant.as_uuid())
            .bind(invitation.email.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_db(Entity::User)?;
    if member.is_some() {
        return Err(Error::conflict(
            Entity::User,
            "email",
            "a user of this tenant has this e-mail",
        ));
    }
    let expire = format!(
        "UPDATE tm_invitations SET revoked_at = $3 WHERE tenant_id = $1 AND email = $2 \
         AND {PENDING} AND expires_at <= $3"
    );
    sqlx::query(AssertSqlSafe(expire))
        .bind(tenant.as_uuid())
        .bind(invitation.email.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_db(Entity::Invitation)?;
    if seats(conn, tenant).await? >= max_users {
        return Err(Error::QuotaExceeded {
            quota: "users".into(),
            limit: max_users,
            retry_after: Duration::ZERO,
        });
    }
    let record = invitation.into_invitation(now);
    let sql = format!(
        "INSERT INTO tm_invitations ({INVITATION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL) RETURNING {INVITATION_COLUMNS}"
    );
    sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(sql))
        .bind(record.id.as_uuid())
        .bind(tenant.as_uuid())
        .bind(record.email.as_str())
        .bind(record.role.as_str())
        .bind(record.invited_by.map(|u| *u.as_uuid()))
        .bind(record.token_digest.as_bytes().as_slice())
        .bind(record.created_at)
        .bind(record.expires_at)
        .fetch_one(conn)
        .await
        .map_db(Entity::Invitation)?
        .try_into()
}

/// Revokes a pending invitation of `tenant`.
pub(crate) async fn revoke(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: InvitationId,
) -> Result<Invitation> {
    let sql = format!(
        "UPDATE tm_invitations SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 \
         AND {PENDING} AND expires_at > $3 RETURNING {INVITATION_COLUMNS}"
    );
    sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .bind(tenant.as_uuid())
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Invitation)?
        .ok_or_else(|| Error::not_found(Entity::Invitation, id))?
        .try_into()
}

/// Accepts a pending invitation: creates its user and marks it accepted. Run in a transaction.
pub(crate) async fn accept(
    conn: &mut PgConnection,
    id: InvitationId,
    digest: &TokenDigest,
    password_hash: PasswordHash,
) -> Result<User> {
    let unusable = || Error::not_found(Entity::Invitation, id);
    let tenant = by_id(conn, id).await?.tenant_id;
    check_live(users::lock_tenant(conn, tenant).await?, tenant).map_err(|_| unusable())?;
    let invitation = fetch(conn, id, true).await?.ok_or_else(unusable)?;
    let now = OffsetDateTime::now_utc();
    // The digest is compared whatever the state, so that timing tells nothing either.
    let matches = invitation.token_digest.ct_eq(digest);
    if !matches || invitation.state(now) != InvitationState::Pending {
        return Err(unusable());
    }
    sqlx::query("UPDATE tm_invitations SET accepted_at = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_db(Entity::Invitation)?;
    let user = NewUser::new(tenant, invitation.email, invitation.role, password_hash);
    users::insert(conn, user).await
}
