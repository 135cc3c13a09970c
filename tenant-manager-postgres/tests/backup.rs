//! Backups against the real Postgres and the real pg_dump: the conformance suite for all three
//! isolations (clones restored with pg_restore have identical rows), tool checks, backup_all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tenant_manager_core::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager_core::backup_store::ObjectBackupStore;
use tenant_manager_core::manager::TenantManager;
use tenant_manager_core::memory::InMemoryQuotaEnforcer;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::backup::BackupHarness;
use tenant_manager_core::{Backup, BackupStore, Isolation, Result, Tenant};
use tenant_manager_postgres::{BackupConfig, PgDumpBackup, PgTools};

use common::{Env, add_companies, company_names};

struct PgHarness {
    env: Env,
    backup: PgDumpBackup,
    dir: PathBuf,
    n: AtomicUsize,
}

impl PgHarness {
    async fn new(tools: PgTools) -> Self {
        let env = Env::new().await;
        let dir = std::env::temp_dir().join(format!("tmbackup_{}", env.tag));
        let store = Arc::new(ObjectBackupStore::local(dir.join("store")));
        let config = BackupConfig::default()
            .with_work_dir(dir.join("work"))
            .with_tools(tools);
        let backup = PgDumpBackup::new(env.storage.clone(), store, config);
        Self {
            env,
            backup,
            dir,
            n: AtomicUsize::new(0),
        }
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl BackupHarness for PgHarness {
    fn backup(&self) -> &dyn Backup {
        &self.backup
    }

    fn store(&self) -> &dyn BackupStore {
        self.backup.store().as_ref()
    }

    async fn new_tenant(&self, isolation: Isolation) -> Result<Tenant> {
        let n = self.n.fetch_add(1, Ordering::SeqCst);
        Ok(self.env.active(&format!("b{n}"), isolation).await)
    }

    async fn write_rows(&self, tenant: &Tenant, rows: &[&str]) -> Result<()> {
        add_companies(&self.env, tenant, rows).await;
        Ok(())
    }

    async fn read_rows(&self, tenant: &Tenant) -> Result<Vec<String>> {
        Ok(company_names(&self.env, tenant).await)
    }
}

async fn harness() -> Fixture<dyn BackupHarness> {
    Fixture::new(Arc::new(PgHarness::new(PgTools::from_path()).await))
}

tenant_manager_core::backup_conformance!(harness);

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_missing_pg_dump_is_a_clear_error() {
    let h = PgHarness::new(PgTools::from_path().with_bin_dir("/nonexistent/pg/bin")).await;
    let tenant = h.new_tenant(Isolation::Database).await.expect("tenant");
    let err = h.backup.backup(&tenant).await.expect_err("no pg_dump");
    assert_eq!(err.code(), "backend_unavailable");
    let text = error_chain(&err);
    assert!(text.contains("pg_dump not found"), "{text}");
    assert!(
        text.contains("install the PostgreSQL client tools"),
        "{text}"
    );
    assert!(h.backup.list(tenant.id).await.expect("list").is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn an_old_pg_dump_is_refused_with_the_versions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!(
        "tmoldpg_{}",
        &tenant_manager_test_support::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    for tool in ["pg_dump", "pg_restore"] {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{tool} (PostgreSQL) 9.6.24'\n"),
        )
        .expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let h = PgHarness::new(PgTools::from_path().with_bin_dir(&dir)).await;
    let server = tenant_manager_core::ServerId::default_server();
    let err = h.backup.check_tools(&server).await.expect_err("too old");
    let text = error_chain(&err);
    assert!(
        text.contains("pg_dump 9 is older than the server"),
        "{text}"
    );
    let tenant = h.new_tenant(Isolation::Schema).await.expect("tenant");
    assert_eq!(
        h.backup.backup(&tenant).await.err().map(|e| e.code()),
        Some("backend_unavailable")
    );
    // The real tools pass the same check.
    let real = PgHarness::new(PgTools::from_path()).await;
    real.backup.check_tools(&server).await.expect("real tools");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The manager over this crate's adapters: `backup_all` is [`TenantManager::backup_all`] over
/// the [`Backup`] trait, which [`PgDumpBackup`] implements.
fn manager(h: &PgHarness) -> TenantManager {
    let hasher = HasherConfig::default()
        .with_params(256, 1, 1)
        .with_max_concurrent(2);
    TenantManager::builder()
        .with_registry(Arc::new(h.env.registry.clone()))
        .with_provisioner(Arc::new(h.env.provisioner.clone()))
        .with_quota(Arc::new(InMemoryQuotaEnforcer::default()))
        .with_tokens(
            TokenService::new(JwtConfig::hs256(
                "0123456789abcdef0123456789abcdef-test-only",
            ))
            .expect("tokens"),
        )
        .with_hasher(PasswordHasher::new(hasher).expect("hasher"))
        .with_backup(Arc::new(h.backup.clone()))
        .build()
        .expect("manager")
}

#[tokio::test]
async fn backup_all_covers_every_tenant_with_progress() {
    let h = PgHarness::new(PgTools::from_path()).await;
    let mut tenants = Vec::new();
    for isolation in [Isolation::Database, Isolation::Schema, Isolation::Shared] {
        let tenant = h.new_tenant(isolation).await.expect("tenant");
        h.write_rows(&tenant, &["Initech"]).await.expect("rows");
        tenants.push(tenant);
    }
    let manager = manager(&h);
    let mut calls = 0;
    let summary = manager
        .backup_all(2, |p| {
            calls += 1;
            assert!(p.succeeded && p.total == 3);
        })
        .await
        .expect("backup all");
    assert_eq!((summary.backups.len(), summary.failures.len()), (3, 0));
    assert_eq!(calls, 3);
    for tenant in &tenants {
        let listed = h.backup.list(tenant.id).await.expect("list");
        assert_eq!(listed.len(), 1);
        let format = if tenant.isolation == Isolation::Shared {
            "tm_copy_v1"
        } else {
            "pg_dump_custom"
        };
        assert_eq!(listed[0].format, format);
        let stored = h
            .backup
            .store()
            .list(&tenant.id.to_string())
            .await
            .expect("store");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].sha256, listed[0].sha256);
    }
    assert_eq!(h.backup.prune_expired(None).await.expect("prune"), 0);
    assert_eq!(
        manager.backup_all(0, |_| {}).await.err().map(|e| e.code()),
        Some("invalid_input")
    );
}

#[tokio::test]
async fn a_backup_cannot_be_restored_across_isolations() {
    let h = PgHarness::new(PgTools::from_path()).await;
    let source = h.new_tenant(Isolation::Database).await.expect("source");
    let target = h.new_tenant(Isolation::Schema).await.expect("target");
    let record = h.backup.backup(&source).await.expect("backup");
    let err = h
        .backup
        .restore(record.id, &target)
        .await
        .expect_err("refused");
    assert_eq!(err.field(), Some("isolation"));
}
