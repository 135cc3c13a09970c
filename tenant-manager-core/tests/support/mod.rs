//! Shared set-up of the integration tests: the real in-memory adapters, a cheap password
//! hasher, a manager harness over them, and small fakes for failure paths only.
#![allow(dead_code, unreachable_pub, missing_docs)]

mod manager;

use std::sync::Arc;

// Each test binary uses a part of the support module.
#[allow(unused_imports)]
pub use manager::{Failure, FlakyProvisioner, Harness, MakeProvisioner, RecordingPools};
use tenant_manager_core::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryTenantData};
use tenant_manager_core::testing::provisioner::sample_tenant_record;
use tenant_manager_core::{Isolation, Provisioner, Tenant};

pub const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
pub const PASSWORD: &str = "Test123!";

/// argon2id at 1 MiB on `threads` hashing threads that wait at most `wait` for a free one.
pub fn pooled_hasher(threads: usize, wait: std::time::Duration) -> PasswordHasher {
    PasswordHasher::new(
        HasherConfig::default()
            .with_params(1024, 1, 1)
            .with_max_concurrent(threads)
            .with_queue_wait(wait),
    )
    .unwrap_or_else(|e| panic!("hasher: {e}"))
}

/// argon2id with tiny costs: tests exercise the code, not the cost.
pub fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::new(
        HasherConfig::default()
            .with_params(256, 1, 1)
            .with_max_concurrent(4),
    )
    .unwrap_or_else(|e| panic!("hasher: {e}"))
}

pub fn tokens() -> TokenService {
    TokenService::new(JwtConfig::hs256(JWT_SECRET)).unwrap_or_else(|e| panic!("tokens: {e}"))
}

/// Hashes and verifies `count` distinct passwords at once on `hasher`, and checks that every
/// one verifies.
pub async fn hash_and_verify_concurrently(hasher: &Arc<PasswordHasher>, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let hasher = Arc::clone(hasher);
            tokio::spawn(async move {
                let password = format!("Password-{i}");
                let hash = hasher.hash(&password).await?;
                hasher.verify(&password, &hash).await
            })
        })
        .collect();
    for task in tasks {
        let verified = task
            .await
            .unwrap_or_else(|e| panic!("task: {e}"))
            .unwrap_or_else(|e| panic!("hash: {e}"));
        assert!(verified);
    }
}

/// `data`, shared with an in-memory provisioner, and one tenant of `isolation` provisioned
/// into it.
pub async fn provisioned(
    data: InMemoryTenantData,
    isolation: Isolation,
) -> (Arc<InMemoryTenantData>, InMemoryProvisioner, Tenant) {
    let data = Arc::new(data);
    let provisioner = InMemoryProvisioner::new(Arc::clone(&data));
    let tenant = sample_tenant_record(isolation);
    provisioner
        .provision(&tenant)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    (data, provisioner, tenant)
}
