//! Plans and their quota policies, kept in `tm_plans`.

use sqlx::PgConnection;

use tenant_manager_core::{Entity, Error, Plan, PlanCatalog, QuotaPolicy, Result};

use crate::pg::SqlxResultExt;

/// Creates or replaces a plan's policy.
pub(crate) async fn put(conn: &mut PgConnection, plan: &Plan, policy: &QuotaPolicy) -> Result<()> {
    policy.validate()?;
    let json = serde_json::to_value(policy)
        .map_err(|e| Error::internal_with("quota policy not serialisable", e))?;
    sqlx::query(
        "INSERT INTO tm_plans (name, policy, updated_at) VALUES ($1, $2, now()) \
         ON CONFLICT (name) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()",
    )
    .bind(plan.as_str())
    .bind(json)
    .execute(conn)
    .await
    .map_db(Entity::Record)?;
    Ok(())
}

/// Every stored plan, ordered by name.
pub(crate) async fn list(conn: &mut PgConnection) -> Result<Vec<(Plan, QuotaPolicy)>> {
    let catalog = catalog(conn, QuotaPolicy::default()).await?;
    Ok(catalog
        .plans()
        .into_iter()
        .map(|(plan, policy)| (plan.clone(), policy.clone()))
        .collect())
}

/// Every stored plan on top of `default`.
pub(crate) async fn catalog(conn: &mut PgConnection, default: QuotaPolicy) -> Result<PlanCatalog> {
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT name, policy FROM tm_plans ORDER BY name")
            .fetch_all(conn)
            .await
            .map_db(Entity::Record)?;
    rows.into_iter()
        .try_fold(PlanCatalog::new(default), |catalog, (name, policy)| {
            let plan = Plan::new(name)
                .map_err(|e| Error::internal_with("corrupt registry row: plan", e))?;
            let policy = serde_json::from_value::<QuotaPolicy>(policy)
                .map_err(|e| Error::internal_with("corrupt registry row: plan policy", e))?;
            Ok(catalog.with_plan(plan, policy))
        })
}

/// Deletes a plan; tenants on it fall back to the default policy. Returns whether it existed.
pub(crate) async fn delete(conn: &mut PgConnection, plan: &Plan) -> Result<bool> {
    let done = sqlx::query("DELETE FROM tm_plans WHERE name = $1")
        .bind(plan.as_str())
        .execute(conn)
        .await
        .map_db(Entity::Record)?;
    Ok(done.rows_affected() == 1)
}
