//! The provisioner conformance suite against the real Postgres, for all three isolations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{
    Isolation, ProvisionReport, Provisioner, ProvisionerCapabilities, Result, Tenant,
};
use tenant_manager_postgres::PostgresProvisioner;

use common::Env;

/// Places the suite's sample tenants in this test's shared database and remembers their
/// role and database names for cleanup; everything else goes straight to the provisioner.
#[derive(Debug)]
struct InTestDatabase {
    inner: PostgresProvisioner,
    shared_db: String,
    extra: Arc<std::sync::Mutex<Vec<String>>>,
}

impl InTestDatabase {
    fn place(&self, tenant: &Tenant) -> Tenant {
        let mut tenant = tenant.clone();
        if tenant.isolation != Isolation::Database {
            tenant.placement.database = self.shared_db.clone();
        }
        if let Ok(mut extra) = self.extra.lock() {
            extra.extend(tenant.role_name());
            extra.push(tenant.placement.database.clone());
        }
        tenant
    }
}

#[async_trait]
impl Provisioner for InTestDatabase {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        self.inner.provision(&self.place(tenant)).await
    }

    async fn deprovision(&self, tenant: &Tenant) -> Result<()> {
        self.inner.deprovision(&self.place(tenant)).await
    }

    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool> {
        self.inner.is_provisioned(&self.place(tenant)).await
    }

    fn capabilities(&self) -> ProvisionerCapabilities {
        self.inner.capabilities()
    }
}

async fn provisioner() -> Fixture<dyn Provisioner, Env> {
    let env = Env::new().await;
    let subject = InTestDatabase {
        inner: env.provisioner.clone(),
        shared_db: env.shared_db.clone(),
        extra: env.extra.clone(),
    };
    Fixture::with_guard(Arc::new(subject), env)
}

tenant_manager_core::provisioner_conformance!(provisioner);

/// Without shared migrations the provisioner declares (and the suite checks) that shared
/// isolation is refused.
async fn provisioner_without_shared() -> Fixture<dyn Provisioner, Env> {
    let env = Env::with(
        tenant_manager_postgres::TenantMigrations::new(&common::ISOLATED),
        |c| c,
    )
    .await;
    let subject = InTestDatabase {
        inner: env.provisioner.clone(),
        shared_db: env.shared_db.clone(),
        extra: env.extra.clone(),
    };
    Fixture::with_guard(Arc::new(subject), env)
}

mod without_shared {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unsupported_isolation_is_refused() {
        let fixture = provisioner_without_shared().await;
        assert!(!fixture.subject.capabilities().shared);
        tenant_manager_core::testing::provisioner::unsupported_isolation_is_refused(
            &*fixture.subject,
        )
        .await;
    }
}
