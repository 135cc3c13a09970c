//! Listing tenants a page at a time, and counting them by status.

use crate::domain::{Isolation, Plan, TenantId, TenantQuery, TenantStatus};
use crate::testing::support::{expect_invalid, random_hex, sample_tenant, tenant_in};
use crate::traits::TenantRegistry;

/// Paging through a filtered listing returns every match once, in id order, with no
/// skip or repeat, and `next` is `None` on the last page. Bad limits are refused.
pub async fn pagination_without_skips_or_repeats(r: &dyn TenantRegistry) {
    let plan = Plan::new(format!("p{}", random_hex(12))).unwrap();
    let mut all = Vec::new();
    for i in 0..23 {
        let isolation = [Isolation::Schema, Isolation::Shared, Isolation::Database][i % 3];
        let status = [TenantStatus::Pending, TenantStatus::Active][i % 2];
        let new = sample_tenant(isolation).with_plan(plan.clone());
        all.push(tenant_in(r, new, status).await);
    }
    let filters = [
        TenantQuery::default().with_plan(Some(plan.clone())),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_status(Some(TenantStatus::Active)),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_isolation(Some(Isolation::Schema)),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_isolation(Some(Isolation::Shared))
            .with_status(Some(TenantStatus::Pending)),
    ];
    for query in filters {
        let expected: Vec<TenantId> = {
            let mut ids: Vec<TenantId> = all
                .iter()
                .filter(|t| query.status.is_none_or(|s| s == t.status))
                .filter(|t| query.isolation.is_none_or(|i| i == t.isolation))
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        };
        for limit in [1, 4, 7, 100] {
            let mut seen = Vec::new();
            let mut query = query.clone().with_limit(limit).with_after(None);
            loop {
                let page = r.list_tenants(&query).await.expect("page");
                assert!(page.items.len() <= limit as usize);
                for t in &page.items {
                    assert!(query.status.is_none_or(|s| s == t.status));
                    assert!(query.isolation.is_none_or(|i| i == t.isolation));
                    assert_eq!(t.plan, plan);
                }
                seen.extend(page.items.iter().map(|t| t.id));
                match page.next {
                    Some(next) => {
                        assert_eq!(Some(next), page.items.last().map(|t| t.id));
                        query = query.with_after(Some(next));
                    }
                    None => break,
                }
            }
            assert_eq!(seen, expected, "limit {limit}");
        }
    }
    // After the last tenant: an empty last page.
    let last = all.iter().map(|t| t.id).max().unwrap();
    let page = r
        .list_tenants(
            &TenantQuery::default()
                .with_plan(Some(plan))
                .with_after(Some(last)),
        )
        .await
        .expect("empty page");
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
    expect_invalid(
        r.list_tenants(&TenantQuery::default().with_limit(0)).await,
        "limit",
    );
    expect_invalid(
        r.list_tenants(&TenantQuery::default().with_limit(crate::domain::MAX_PAGE_SIZE + 1))
            .await,
        "limit",
    );
}

/// Counts follow creations and transitions; the total leaves out `Deleted` tenants.
pub async fn count_by_status(r: &dyn TenantRegistry) {
    let count =
        |status: Option<TenantStatus>| async move { r.count_tenants(status).await.expect("count") };
    let (all, pending, active, deleted) = (
        count(None).await,
        count(Some(TenantStatus::Pending)).await,
        count(Some(TenantStatus::Active)).await,
        count(Some(TenantStatus::Deleted)).await,
    );
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Pending).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Active).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Active).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Deleted).await;
    assert_eq!(count(None).await, all + 3);
    assert_eq!(count(Some(TenantStatus::Pending)).await, pending + 1);
    assert_eq!(count(Some(TenantStatus::Active)).await, active + 2);
    assert_eq!(count(Some(TenantStatus::Deleted)).await, deleted + 1);
}

/// Counts per server follow placements and leave out `Deleted` tenants; a server without
/// tenants is absent.
pub async fn count_by_server(r: &dyn TenantRegistry) {
    let server = |tag: &str| {
        crate::domain::ServerId::new(format!("{tag}{}", random_hex(8))).expect("server id")
    };
    let (a, b, empty) = (server("a"), server("b"), server("c"));
    let on = |server: &crate::domain::ServerId| {
        let mut tenant = sample_tenant(Isolation::Shared);
        tenant.placement.server = server.clone();
        tenant
    };
    tenant_in(r, on(&a), TenantStatus::Active).await;
    tenant_in(r, on(&a), TenantStatus::Pending).await;
    tenant_in(r, on(&a), TenantStatus::Deleted).await;
    tenant_in(r, on(&b), TenantStatus::Suspended).await;
    let counts = r.count_tenants_by_server().await.expect("count by server");
    assert_eq!(counts.get(&a), Some(&2));
    assert_eq!(counts.get(&b), Some(&1));
    assert_eq!(counts.get(&empty), None);
}
