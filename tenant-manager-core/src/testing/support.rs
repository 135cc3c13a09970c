//! Helpers shared by the suites and by adapters' own tests: unique names, sample records, and
//! assertions on the error variant a call must answer.

use crate::domain::{
    Email, Isolation, NewTenant, NewUser, PasswordHash, Role, Tenant, TenantId, TenantSlug,
    TenantStatus,
};
use crate::error::{Entity, Error, Result};
use crate::traits::TenantRegistry;

/// A random hex string of `len` characters (at most 32).
pub fn random_hex(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(len);
    s
}

/// A valid slug that no other test uses: `<prefix>_<12 hex>`.
pub fn unique_slug(prefix: &str) -> TenantSlug {
    TenantSlug::new(format!("{prefix}_{}", random_hex(12))).expect("valid slug")
}

/// A valid e-mail address that no other test uses.
pub fn unique_email(tag: &str) -> Email {
    Email::new(&format!("{tag}.{}@example.com", random_hex(12))).expect("valid e-mail")
}

/// A new tenant with a unique slug and the conventional placement.
pub fn sample_tenant(isolation: Isolation) -> NewTenant {
    NewTenant::new(unique_slug("cf"), "Conformance Tenant", isolation).expect("valid tenant")
}

/// A user of `tenant` with a unique e-mail and a dummy (well-formed) password hash.
pub fn sample_user(tenant: TenantId, role: Role) -> NewUser {
    NewUser::new(
        tenant,
        unique_email("user"),
        role,
        PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"),
    )
}

/// Asserts `InvalidInput` on `field`.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

/// Asserts `Conflict` on `field`.
#[track_caller]
pub fn expect_conflict<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::Conflict { field: f, .. }) if f == field => {}
        other => panic!("expected Conflict on {field}, got {other:?}"),
    }
}

/// Asserts `NotFound` of `entity`.
#[track_caller]
pub fn expect_not_found<T: std::fmt::Debug>(result: Result<T>, entity: Entity) {
    match result {
        Err(Error::NotFound { entity: e, .. }) if e == entity => {}
        other => panic!("expected NotFound {entity}, got {other:?}"),
    }
}

/// Asserts `InvalidTransition` from `from` to `to`.
#[track_caller]
pub fn expect_invalid_transition<T: std::fmt::Debug>(
    result: Result<T>,
    from: TenantStatus,
    to: TenantStatus,
) {
    match result {
        Err(Error::InvalidTransition { from: f, to: t, .. }) if f == from && t == to => {}
        other => panic!("expected InvalidTransition {from} -> {to}, got {other:?}"),
    }
}

/// Legal transitions that bring a new (`Pending`) tenant to `status`.
pub fn path_to(status: TenantStatus) -> &'static [TenantStatus] {
    use TenantStatus::*;
    match status {
        Pending => &[],
        Provisioning => &[Provisioning],
        Active => &[Provisioning, Active],
        Suspended => &[Provisioning, Active, Suspended],
        Moving => &[Provisioning, Active, Moving],
        Failed => &[Provisioning, Failed],
        Deleting => &[Deleting],
        Deleted => &[Deleting, Deleted],
    }
}

/// Creates a tenant from `new` and walks it to `status`.
pub async fn tenant_in(r: &dyn TenantRegistry, new: NewTenant, status: TenantStatus) -> Tenant {
    let mut tenant = r.create_tenant(new).await.expect("create tenant");
    for step in path_to(status) {
        tenant = r
            .transition(tenant.id, *step, None)
            .await
            .expect("legal transition");
    }
    assert_eq!(tenant.status, status);
    tenant
}
