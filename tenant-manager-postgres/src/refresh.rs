//! `PostgresRefreshTokens`: refresh tokens on the global database (table `tm_refresh_tokens`,
//! created by [`migrate_global`](crate::migrate_global)). A rotation locks the token's row, so
//! of racing rotations one wins; reuse revokes the family in the same transaction.

use std::fmt;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use tenant_manager_core::{
    Entity, NewRefreshToken, RefreshToken, RefreshTokenId, RefreshTokenStore, Result, Successor,
    TenantId, TokenDigest, UserId, refresh_refused,
};

use crate::pg::SqlxResultExt;

/// Columns of `tm_refresh_tokens`, in the order [`TokenRow`] reads them.
const COLUMNS: &str = "id, family_id, user_id, tenant_id, token_digest, created_at, expires_at, \
     rotated_at, revoked_at";

/// [`RefreshTokenStore`] on the global Postgres database (the registry's pool will do).
#[derive(Clone)]
pub struct PostgresRefreshTokens {
    pool: PgPool,
}

impl fmt::Debug for PostgresRefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRefreshTokens")
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresRefreshTokens {
    /// A store over a pool of the global database. Run [`migrate_global`](crate::migrate_global)
    /// first.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, FromRow)]
struct TokenRow {
    id: Uuid,
    family_id: Uuid,
    user_id: Uuid,
    tenant_id: Uuid,
    token_digest: Vec<u8>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    rotated_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<TokenRow> for RefreshToken {
    type Error = tenant_manager_core::Error;

    fn try_from(row: TokenRow) -> Result<Self> {
        let mut token = NewRefreshToken::new(
            RefreshTokenId::from_uuid(row.id),
            UserId::from_uuid(row.user_id),
            TenantId::from_uuid(row.tenant_id),
            TokenDigest::from_slice(&row.token_digest)?,
            row.expires_at,
        )
        .into_token(RefreshTokenId::from_uuid(row.family_id), row.created_at);
        token.rotated_at = row.rotated_at;
        token.revoked_at = row.revoked_at;
        Ok(token)
    }
}

async fn insert(conn: &mut PgConnection, token: RefreshToken) -> Result<RefreshToken> {
    let sql = format!(
        "INSERT INTO tm_refresh_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) \
         RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, TokenRow>(AssertSqlSafe(sql))
        .bind(token.id.as_uuid())
        .bind(token.family.as_uuid())
        .bind(token.user_id.as_uuid())
        .bind(token.tenant_id.as_uuid())
        .bind(token.token_digest.as_bytes().as_slice())
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(conn)
        .await
        .map_db(Entity::Record)?
        .try_into()
}

async fn revoke_family(conn: &mut PgConnection, family: RefreshTokenId) -> Result<u64> {
    sqlx::query(
        "UPDATE tm_refresh_tokens SET revoked_at = now() WHERE family_id = $1 \
         AND revoked_at IS NULL",
    )
    .bind(family.as_uuid())
    .execute(conn)
    .await
    .map_db(Entity::Record)
    .map(|r| r.rows_affected())
}

async fn by_id(
    conn: &mut PgConnection,
    id: RefreshTokenId,
    lock: bool,
) -> Result<Option<RefreshToken>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM tm_refresh_tokens WHERE id = $1{lock}");
    sqlx::query_as::<_, TokenRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Record)?
        .map(RefreshToken::try_from)
        .transpose()
}

#[async_trait]
impl RefreshTokenStore for PostgresRefreshTokens {
    async fn insert(&self, token: NewRefreshToken) -> Result<RefreshToken> {
        let mut conn = self.pool.acquire().await.map_db(Entity::Record)?;
        let family = token.id;
        insert(
            &mut conn,
            token.into_token(family, OffsetDateTime::now_utc()),
        )
        .await
    }

    async fn rotate(
        &self,
        id: RefreshTokenId,
        digest: &TokenDigest,
        next: Successor,
    ) -> Result<RefreshToken> {
        let mut tx = self.pool.begin().await.map_db(Entity::Record)?;
        let Some(current) = by_id(&mut tx, id, true).await? else {
            return Err(refresh_refused());
        };
        if !current.token_digest.ct_eq(digest) {
            return Err(refresh_refused());
        }
        if current.rotated_at.is_some() || current.revoked_at.is_some() {
            revoke_family(&mut tx, current.family).await?;
            tx.commit().await.map_db(Entity::Record)?;
            return Err(refresh_refused());
        }
        let now = OffsetDateTime::now_utc();
        if current.expires_at <= now {
            return Err(refresh_refused());
        }
        sqlx::query("UPDATE tm_refresh_tokens SET rotated_at = now() WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_db(Entity::Record)?;
        let created = insert(&mut tx, next.into_token(&current, now)).await?;
        tx.commit().await.map_db(Entity::Record)?;
        Ok(created)
    }

    async fn revoke_family(&self, id: RefreshTokenId, digest: &TokenDigest) -> Result<bool> {
        let mut conn = self.pool.acquire().await.map_db(Entity::Record)?;
        let Some(token) = by_id(&mut conn, id, false).await? else {
            return Ok(false);
        };
        if !token.token_digest.ct_eq(digest) {
            return Ok(false);
        }
        revoke_family(&mut conn, token.family).await?;
        Ok(true)
    }

    async fn revoke_user(&self, user: UserId) -> Result<u64> {
        sqlx::query(
            "UPDATE tm_refresh_tokens SET revoked_at = now() WHERE user_id = $1 \
             AND revoked_at IS NULL AND rotated_at IS NULL AND expires_at > now()",
        )
        .bind(user.as_uuid())
        .execute(&self.pool)
        .await
        .map_db(Entity::Record)
        .map(|r| r.rows_affected())
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64> {
        sqlx::query("DELETE FROM tm_refresh_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_db(Entity::Record)
            .map(|r| r.rows_affected())
    }
}
