//! Login credentials of tenant roles.
//!
//! A tenant with its own database ([`Isolation::Database`]) or schema ([`Isolation::Schema`])
//! has its own Postgres login role, named by [`tenant_role`]. Its password comes from a
//! [`TenantCredentials`] source: the provisioner sets it when it creates the role, and the pool
//! manager connects with it. [`DerivedCredentials`] derives each password from a deployment
//! master secret and the tenant id, so passwords are never stored anywhere and never logged.
//!
//! [`WallKeys`], the key the application proves a session's tenant to the [`wall`](crate::wall)
//! with, is derived from the same master secret ([`WallKeys::derived`]).

use std::fmt;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenant_manager_core::{Error, Isolation, Result, Secret, Tenant};

use crate::ident::Ident;

mod wall_keys;

pub use wall_keys::{MIN_WALL_KEY_LEN, WallKeys};

/// Shortest master secret [`DerivedCredentials`] accepts, in bytes.
pub const MIN_MASTER_SECRET_LEN: usize = 32;

/// Domain separation of derived passwords; bump the version to rotate every password.
const DERIVATION_CONTEXT: &[u8] = b"tenant-manager/postgres-role-password/v1/";

/// The role of a tenant ([`Tenant::role_name`]: from its recorded placement,
/// `<prefix>_t_<slug>` or, for tenants created before storage prefixes, `tenant_<slug>`),
/// validated as an identifier.
///
/// # Errors
/// [`Error::InvalidInput`] on field `role` for a shared tenant (no role) or a name that is not
/// a valid identifier.
pub fn tenant_role(tenant: &Tenant) -> Result<Ident> {
    let name = tenant
        .role_name()
        .ok_or_else(|| Error::invalid("role", "shared tenants have no role"))?;
    Ident::new(&name, "role")
}

/// Where the password of a tenant's login role comes from.
///
/// # Contract
/// - `password` returns the same secret for the same tenant every time it is asked, until the
///   host rotates it (and then re-provisions or alters the role).
/// - The secret is never logged; its `Debug` output is redacted.
/// - It is asked for tenants with [`Isolation::Database`] or [`Isolation::Schema`]; tenants with
///   [`Isolation::Shared`] have no login role.
///
/// # Errors
/// - `InvalidInput` (field `isolation`) for a tenant that has no login role.
/// - `Unavailable` when a remote secret store cannot be reached.
#[async_trait]
pub trait TenantCredentials: fmt::Debug + Send + Sync + 'static {
    /// The password of the tenant's login role.
    async fn password(&self, tenant: &Tenant) -> Result<Secret>;
}

/// Passwords derived with HMAC-SHA256 from a deployment master secret and the tenant id:
/// deterministic, so never stored; 64 hex characters each.
///
/// Rotating the master secret changes every tenant's password; re-provisioning a tenant sets
/// its role's password again (provisioning is idempotent).
#[derive(Clone)]
pub struct DerivedCredentials {
    master: Secret,
}

impl DerivedCredentials {
    /// Derives passwords from `master`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `master_secret` when it is shorter than
    /// [`MIN_MASTER_SECRET_LEN`] bytes.
    pub fn new(master: Secret) -> Result<Self> {
        if master.len() < MIN_MASTER_SECRET_LEN {
            return Err(Error::invalid(
                "master_secret",
                "must be at least 32 bytes long",
            ));
        }
        Ok(Self { master })
    }

    /// The password of a tenant, without the isolation check of [`TenantCredentials`].
    ///
    /// # Errors
    /// [`Error::Internal`] if the MAC refuses the key (HMAC takes keys of any length).
    pub fn derive(&self, tenant: &Tenant) -> Result<Secret> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.master.expose().as_bytes())
            .map_err(|e| Error::internal_with("hmac key refused", e.to_string()))?;
        mac.update(DERIVATION_CONTEXT);
        mac.update(tenant.id.as_uuid().as_bytes());
        Ok(Secret::new(hex::encode(mac.finalize().into_bytes())))
    }
}

impl fmt::Debug for DerivedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedCredentials")
            .field("master", &self.master)
            .finish()
    }
}

#[async_trait]
impl TenantCredentials for DerivedCredentials {
    async fn password(&self, tenant: &Tenant) -> Result<Secret> {
        if tenant.isolation == Isolation::Shared {
            return Err(Error::invalid(
                "isolation",
                "shared tenants have no login role",
            ));
        }
        self.derive(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_manager_core::{NewTenant, TenantSlug};
    use time::OffsetDateTime;

    fn tenant(slug: &str, isolation: Isolation) -> Tenant {
        let slug = TenantSlug::new(slug).unwrap_or_else(|e| panic!("{e}"));
        NewTenant::new(slug, "Acme", isolation)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_tenant(OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn passwords_are_deterministic_per_tenant_and_hidden() {
        assert!(DerivedCredentials::new(Secret::new("short")).is_err());
        let creds =
            DerivedCredentials::new(Secret::new("m".repeat(32))).unwrap_or_else(|e| panic!("{e}"));
        let a = tenant("acme", Isolation::Database);
        let b = tenant("beta", Isolation::Schema);
        let pa = creds.password(&a).await.unwrap_or_else(|e| panic!("{e}"));
        let pa2 = creds.password(&a).await.unwrap_or_else(|e| panic!("{e}"));
        let pb = creds.password(&b).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(pa.ct_eq(pa2.expose().as_bytes()));
        assert!(!pa.ct_eq(pb.expose().as_bytes()));
        assert_eq!(pa.len(), 64);
        let other =
            DerivedCredentials::new(Secret::new("n".repeat(32))).unwrap_or_else(|e| panic!("{e}"));
        let po = other.derive(&a).unwrap_or_else(|e| panic!("{e}"));
        assert!(!po.ct_eq(pa.expose().as_bytes()));
        assert!(!format!("{creds:?}").contains("mmmm"));
        let shared = tenant("gamma", Isolation::Shared);
        assert_eq!(
            creds.password(&shared).await.err().map(|e| e.code()),
            Some("invalid_input")
        );
        assert_eq!(
            tenant_role(&a)
                .map(|r| r.as_str().to_owned())
                .ok()
                .as_deref(),
            Some("tm_t_acme")
        );
    }
}
