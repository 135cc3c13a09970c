//! The in-memory registry, provisioner and backup, and the object_store backup store (in
//! memory and in a local directory), against their conformance suites: once built directly, once through the
//! `Arc<dyn Trait>` a host picks at start-up, and the provisioner once more with narrowed
//! capabilities so that the refusal of an unsupported isolation is exercised.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use tenant_manager_core::backup_store::ObjectBackupStore;
use tenant_manager_core::backup_store::testing::corrupt_stored;
use tenant_manager_core::memory::{
    InMemoryBackup, InMemoryProvisioner, InMemoryRegistry, InMemoryTenantData,
};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::backup::BackupHarness;
use tenant_manager_core::testing::backup_store::{ScratchDir, corrupt_file};
use tenant_manager_core::testing::support::sample_tenant;
use tenant_manager_core::{
    Backup, BackupStore, Isolation, Provisioner, Result, Tenant, TenantRegistry, TenantStatus,
};

/// Collection the harness keeps its rows in.
const ROWS: &str = "rows";

/// Tenants registered in an [`InMemoryRegistry`], provisioned by an [`InMemoryProvisioner`],
/// backed up by an [`InMemoryBackup`] into the given store.
struct MemoryHarness {
    registry: InMemoryRegistry,
    provisioner: InMemoryProvisioner,
    data: Arc<InMemoryTenantData>,
    backup: InMemoryBackup,
}

impl MemoryHarness {
    fn new(store: Arc<dyn BackupStore>) -> Self {
        let data = Arc::new(InMemoryTenantData::new());
        Self {
            registry: InMemoryRegistry::new(),
            provisioner: InMemoryProvisioner::new(Arc::clone(&data)),
            backup: InMemoryBackup::new(Arc::clone(&data), store),
            data,
        }
    }
}

#[async_trait]
impl BackupHarness for MemoryHarness {
    fn backup(&self) -> &dyn Backup {
        &self.backup
    }

    fn store(&self) -> &dyn BackupStore {
        self.backup.store().as_ref()
    }

    async fn new_tenant(&self, isolation: Isolation) -> Result<Tenant> {
        let tenant = self
            .registry
            .create_tenant(sample_tenant(isolation))
            .await?;
        let tenant = self
            .registry
            .transition(tenant.id, TenantStatus::Provisioning, None)
            .await?;
        self.provisioner.provision(&tenant).await?;
        self.registry
            .transition(tenant.id, TenantStatus::Active, None)
            .await
    }

    async fn write_rows(&self, tenant: &Tenant, rows: &[&str]) -> Result<()> {
        for row in rows {
            let id = uuid::Uuid::now_v7().to_string();
            self.data
                .insert(tenant.id, ROWS, &id, serde_json::json!({ "text": row }))?;
        }
        Ok(())
    }

    async fn read_rows(&self, tenant: &Tenant) -> Result<Vec<String>> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.data.list(tenant.id, ROWS, after.as_deref(), 20)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            rows.extend(
                page.iter()
                    .filter_map(|r| r.value["text"].as_str().map(str::to_owned)),
            );
        }
        Ok(rows)
    }
}

/// The store and scratch root of a fixture in a local directory.
fn fs_store() -> (Arc<ObjectBackupStore>, ScratchDir) {
    let root = ScratchDir::new("fs-store");
    let store = Arc::new(ObjectBackupStore::local(root.path().join("store")));
    (store, root)
}

/// Damages an artifact of the local store kept under the fixture's [`ScratchDir`].
async fn corrupt_fs(fixture: &Fixture<dyn BackupStore, ScratchDir>, key: &str) {
    corrupt_file(&fixture.guard().path().join("store"), key).await;
}

/// Damages an artifact of an in-memory store kept as the fixture's guard.
async fn corrupt_memory(fixture: &Fixture<dyn BackupStore, Arc<ObjectBackupStore>>, key: &str) {
    corrupt_stored(fixture, key)
        .await
        .expect("corrupt the artifact");
}

/// Each adapter built as its concrete type, coerced into the fixture.
mod direct {
    use super::*;

    mod registry {
        use super::*;

        async fn factory() -> Fixture<dyn TenantRegistry> {
            Fixture::new(Arc::new(InMemoryRegistry::new()))
        }
        tenant_manager_core::registry_conformance!(factory);
    }

    mod refresh_tokens {
        use super::*;
        use tenant_manager_core::RefreshTokenStore;
        use tenant_manager_core::memory::InMemoryRefreshTokens;

        async fn factory() -> Fixture<dyn RefreshTokenStore> {
            Fixture::new(Arc::new(InMemoryRefreshTokens::new()))
        }
        tenant_manager_core::refresh_token_conformance!(factory);
    }

    mod provisioner {
        use super::*;

        async fn factory() -> Fixture<dyn Provisioner> {
            let data = Arc::new(InMemoryTenantData::new());
            Fixture::new(Arc::new(InMemoryProvisioner::new(data)))
        }
        tenant_manager_core::provisioner_conformance!(factory);
    }

    mod memory_store {
        use super::*;

        async fn factory() -> Fixture<dyn BackupStore, Arc<ObjectBackupStore>> {
            let store = Arc::new(ObjectBackupStore::in_memory());
            Fixture::with_guard(store.clone(), store)
        }
        tenant_manager_core::backup_store_conformance!(factory, super::super::corrupt_memory);
    }

    mod fs_store {
        use super::*;

        async fn factory() -> Fixture<dyn BackupStore, ScratchDir> {
            let (store, root) = super::super::fs_store();
            Fixture::with_guard(store, root)
        }
        tenant_manager_core::backup_store_conformance!(factory, corrupt_fs);
    }

    mod backup {
        use super::*;

        async fn factory() -> Fixture<dyn BackupHarness> {
            let store = Arc::new(ObjectBackupStore::in_memory());
            Fixture::new(Arc::new(MemoryHarness::new(store)))
        }
        tenant_manager_core::backup_conformance!(factory);
    }
}

/// Each adapter built as the `Arc<dyn Trait>` a host holds after picking it at start-up.
mod through_dyn {
    use super::*;

    mod registry {
        use super::*;

        async fn factory() -> Fixture<dyn TenantRegistry> {
            let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
            Fixture::new(registry)
        }
        tenant_manager_core::registry_conformance!(factory);
    }

    mod provisioner {
        use super::*;

        async fn factory() -> Fixture<dyn Provisioner> {
            let data = Arc::new(InMemoryTenantData::new());
            let provisioner: Arc<dyn Provisioner> = Arc::new(InMemoryProvisioner::new(data));
            Fixture::new(provisioner)
        }
        tenant_manager_core::provisioner_conformance!(factory);
    }

    mod memory_store {
        use super::*;

        async fn factory() -> Fixture<dyn BackupStore, Arc<ObjectBackupStore>> {
            let concrete = Arc::new(ObjectBackupStore::in_memory().with_max_total_bytes(64 << 20));
            let store: Arc<dyn BackupStore> = concrete.clone();
            Fixture::with_guard(store, concrete)
        }
        tenant_manager_core::backup_store_conformance!(factory, super::super::corrupt_memory);
    }

    mod fs_store {
        use super::*;

        async fn factory() -> Fixture<dyn BackupStore, ScratchDir> {
            let (store, root) = super::super::fs_store();
            let store: Arc<dyn BackupStore> = store;
            Fixture::with_guard(store, root)
        }
        tenant_manager_core::backup_store_conformance!(factory, corrupt_fs);
    }

    /// Backups over the filesystem store, held as `Arc<dyn BackupStore>`.
    mod backup {
        use super::*;

        async fn factory() -> Fixture<dyn BackupHarness, ScratchDir> {
            let (store, root) = super::super::fs_store();
            let store: Arc<dyn BackupStore> = store;
            let harness: Arc<dyn BackupHarness> = Arc::new(MemoryHarness::new(store));
            Fixture::with_guard(harness, root)
        }
        tenant_manager_core::backup_conformance!(factory);
    }
}

/// A provisioner that declines database isolation, as a deployment without the rights to
/// create databases would.
mod narrowed_provisioner {
    use super::*;
    use tenant_manager_core::ProvisionerCapabilities;

    async fn factory() -> Fixture<dyn Provisioner> {
        let mut capabilities = ProvisionerCapabilities::ALL;
        capabilities.database = false;
        let data = Arc::new(InMemoryTenantData::new());
        Fixture::new(Arc::new(
            InMemoryProvisioner::new(data).with_capabilities(capabilities),
        ))
    }
    tenant_manager_core::provisioner_conformance!(factory);
}
