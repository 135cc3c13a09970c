//! Companies on Postgres: the `companies` table of the tenant's own storage, reached through a
//! connection of the pool manager scoped to the tenant.
//!
//! - Database isolation: the tenant's own database, as the tenant's own login role.
//! - Schema isolation: the tenant's schema (the pool sets `search_path` to it alone).
//! - Shared isolation: the shared table.
//!
//! For both, the pool logs in as the unprivileged app login and proves the tenant to the
//! database's wall on checkout, so forced row-level security shows only that tenant's rows;
//! statements on the shared table also name the tenant (`tenant_id = $1`) as a second guard.

use tenant_manager::postgres::{PgTenantPools, SqlxResultExt as _};
use tenant_manager::{Entity, Isolation, Result, Tenant, async_trait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Company, CompanyPage, CompanyPatch, CompanyStore, check_limit, company_not_found};

/// A statement in its two shapes: for a table of the tenant alone, and for the shared table
/// where `$1` is the tenant id and the other parameters follow, shifted by one.
struct Statement {
    isolated: &'static str,
    shared: &'static str,
}

const LIST: Statement = Statement {
    isolated: "SELECT id, name, domain, created_at FROM companies \
               WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
    shared: "SELECT id, name, domain, created_at FROM companies \
             WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
};

const INSERT: Statement = Statement {
    isolated: "INSERT INTO companies (id, name, domain, created_at) VALUES ($1, $2, $3, $4) \
               RETURNING id, name, domain, created_at",
    shared: "INSERT INTO companies (tenant_id, id, name, domain, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, name, domain, created_at",
};

const GET: Statement = Statement {
    isolated: "SELECT id, name, domain, created_at FROM companies WHERE id = $1",
    shared: "SELECT id, name, domain, created_at FROM companies WHERE tenant_id = $1 AND id = $2",
};

/// `name` is kept when the patch has none; `domain` is replaced when the patch has one
/// (possibly null), in one statement, so concurrent patches of different fields both hold.
const UPDATE: Statement = Statement {
    isolated: "UPDATE companies SET name = COALESCE($2, name), \
               domain = CASE WHEN $3 THEN $4 ELSE domain END \
               WHERE id = $1 RETURNING id, name, domain, created_at",
    shared: "UPDATE companies SET name = COALESCE($3, name), \
             domain = CASE WHEN $4 THEN $5 ELSE domain END \
             WHERE tenant_id = $1 AND id = $2 RETURNING id, name, domain, created_at",
};

const DELETE: Statement = Statement {
    isolated: "DELETE FROM companies WHERE id = $1",
    shared: "DELETE FROM companies WHERE tenant_id = $1 AND id = $2",
};

type Row = (Uuid, String, Option<String>, OffsetDateTime);

fn to_company((id, name, domain, created_at): Row) -> Company {
    Company {
        id,
        name,
        domain,
        created_at,
    }
}

type PgQueryAs<'q, T> = sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// [`CompanyStore`] over the pool manager.
#[derive(Debug, Clone)]
pub(crate) struct PgCompanies {
    pools: PgTenantPools,
    /// Listing takes a read-only connection (`READS_FROM_REPLICAS`).
    reads_from_replicas: bool,
}

impl PgCompanies {
    pub(crate) fn new(pools: PgTenantPools) -> Self {
        Self {
            pools,
            reads_from_replicas: false,
        }
    }

    /// Lists with read-only connections ([`PgTenantPools::acquire_read`]): on a streaming
    /// replica within the lag bounds, else on the primary with the session read-only.
    #[must_use]
    pub(crate) fn with_reads_from_replicas(mut self, on: bool) -> Self {
        self.reads_from_replicas = on;
        self
    }
}

/// The statement's shape for `tenant`, with the tenant id bound first where it needs one.
fn rows<'q>(tenant: &Tenant, statement: &Statement) -> PgQueryAs<'q, Row> {
    if tenant.isolation == Isolation::Shared {
        sqlx::query_as::<_, Row>(statement.shared).bind(*tenant.id.as_uuid())
    } else {
        sqlx::query_as::<_, Row>(statement.isolated)
    }
}

/// As [`rows`], for a statement that returns none.
fn command<'q>(tenant: &Tenant, statement: &Statement) -> PgQuery<'q> {
    if tenant.isolation == Isolation::Shared {
        sqlx::query(statement.shared).bind(*tenant.id.as_uuid())
    } else {
        sqlx::query(statement.isolated)
    }
}

#[async_trait]
impl CompanyStore for PgCompanies {
    async fn list(&self, tenant: &Tenant, after: Option<Uuid>, limit: u32) -> Result<CompanyPage> {
        check_limit(limit)?;
        let mut conn = if self.reads_from_replicas {
            self.pools.acquire_read(tenant).await?
        } else {
            self.pools.acquire(tenant).await?
        };
        let fetched: Vec<Company> = rows(tenant, &LIST)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await
            .map_db(Entity::Record)?
            .into_iter()
            .map(to_company)
            .collect();
        let (items, next) = crate::paging::cut(fetched, limit, |c| c.id);
        Ok(CompanyPage { items, next })
    }

    async fn create(&self, tenant: &Tenant, company: Company) -> Result<Company> {
        let mut conn = self.pools.acquire(tenant).await?;
        rows(tenant, &INSERT)
            .bind(company.id)
            .bind(company.name)
            .bind(company.domain)
            .bind(company.created_at)
            .fetch_one(&mut *conn)
            .await
            .map_db(Entity::Record)
            .map(to_company)
    }

    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Company> {
        let mut conn = self.pools.acquire(tenant).await?;
        rows(tenant, &GET)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_db(Entity::Record)?
            .map(to_company)
            .ok_or_else(|| company_not_found(id))
    }

    async fn update(&self, tenant: &Tenant, id: Uuid, patch: CompanyPatch) -> Result<Company> {
        let patch = patch.validated()?;
        let mut conn = self.pools.acquire(tenant).await?;
        let (replace_domain, domain) = match patch.domain {
            Some(domain) => (true, domain),
            None => (false, None),
        };
        rows(tenant, &UPDATE)
            .bind(id)
            .bind(patch.name)
            .bind(replace_domain)
            .bind(domain)
            .fetch_optional(&mut *conn)
            .await
            .map_db(Entity::Record)?
            .map(to_company)
            .ok_or_else(|| company_not_found(id))
    }

    async fn delete(&self, tenant: &Tenant, id: Uuid) -> Result<()> {
        let mut conn = self.pools.acquire(tenant).await?;
        let done = command(tenant, &DELETE)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_db(Entity::Record)?;
        if done.rows_affected() == 0 {
            Err(company_not_found(id))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &str = "id, name, domain, created_at";

    /// Counts the distinct `$n` parameters of a statement.
    fn parameters(sql: &str) -> usize {
        let mut seen: Vec<u32> = sql
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    #[test]
    fn shared_statements_name_the_tenant_first_and_shift_the_rest() {
        for statement in [&LIST, &INSERT, &GET, &UPDATE, &DELETE] {
            assert!(
                statement.shared.contains("tenant_id = $1")
                    || statement.shared.contains("(tenant_id, "),
                "{}",
                statement.shared
            );
            assert!(!statement.isolated.contains("tenant_id"));
            assert_eq!(
                parameters(statement.shared),
                parameters(statement.isolated) + 1,
                "{}",
                statement.shared
            );
        }
        for statement in [&LIST, &INSERT, &GET, &UPDATE] {
            assert!(statement.shared.contains(COLUMNS));
            assert!(statement.isolated.contains(COLUMNS));
        }
    }
}
