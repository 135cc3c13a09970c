//! Organisation registration: a tenant and its owner, created together, then provisioned.

use super::TenantManager;
use super::reclaim::Reclaimed;
use super::signup::{Registered, Registration, Valid, email_taken};
use crate::domain::{
    Actor, Email, EventKind, Isolation, NewTenant, NewUser, Plan, Role, ServerId, Tenant, TenantId,
    TenantSlug, User, validate_name, validate_region,
};
use crate::error::{Error, Result};
use crate::lifecycle::jobs_kinds;
use crate::lifecycle::ops::{PROVISIONING_TOTAL, record};
use crate::traits::UsageKind;

/// What a new tenant is made of besides its id and slug: the registration's fields and the
/// server placement chose.
#[derive(Debug)]
pub(crate) struct Placed {
    pub(crate) name: String,
    pub(crate) isolation: Isolation,
    pub(crate) plan: Plan,
    pub(crate) server: ServerId,
    pub(crate) region: Option<String>,
}

impl TenantManager {
    /// Registers an organisation: validates every field, hashes the password, creates the
    /// tenant and its owner atomically, counts the owner against the `users` quota, then
    /// provisions the tenant inline (`Active`, or `Failed` with the reason) or queues a
    /// `tenant.provision` job (`Provisioning`) when async provisioning is on.
    ///
    /// A slug derived from the name that is taken is retried with a short random suffix.
    /// Provisioning failures do not fail the call: they show in the returned tenant's
    /// status (`Failed`) and reason, and [`TenantManager::retry_provisioning`] tries again.
    ///
    /// An e-mail whose tenant never became active (its provisioning failed, inline or
    /// later in the worker) is not lost: the same e-mail and password register again, which
    /// provisions the same tenant again (same name, slug, isolation and plan) or replaces it
    /// (anything else asked). A different password, or a tenant that ever served, gets the
    /// `Conflict` of any taken e-mail; see the `reclaim` module for the whole rule.
    ///
    /// # Errors
    /// - `InvalidInput` naming `organization_name`, `admin_email`, `admin_password`, `slug`,
    ///   `isolation` or `plan`.
    /// - `Conflict` on `email` (already registered) or `slug` (a chosen slug that is taken).
    /// - `QuotaExceeded` on `users`; `Unavailable` when a backend cannot be reached.
    /// - `InvalidTransition` when a racing call moved a retried registration's tenant on.
    pub async fn register_organization(&self, registration: Registration) -> Result<Registered> {
        let valid = self.validate_registration(&registration)?;
        let registry = &self.inner.ops.registry;
        if let Some(existing) = registry.find_user_by_email(&valid.email).await? {
            match self
                .reclaim(existing, &valid, &registration.admin_password)
                .await?
            {
                Reclaimed::Resume(resumed) => {
                    let (tenant, user) = *resumed;
                    let tenant = self.start_provisioning(tenant).await?;
                    let token = self.inner.tokens.issue(&user)?;
                    return Ok(Registered {
                        tenant,
                        user,
                        token,
                    });
                }
                Reclaimed::Released => {}
            }
        }
        let hash = self
            .inner
            .hasher
            .hash(registration.admin_password.expose())
            .await?;
        let tenant_id = TenantId::new();
        let max_users = self.inner.plans.policy(&valid.plan).max_users;
        let decision = self
            .inner
            .quota
            .consume_usage(tenant_id, UsageKind::Users, 1, max_users)
            .await?;
        if !decision.allowed {
            return Err(Error::QuotaExceeded {
                quota: "users".into(),
                limit: decision.max,
                retry_after: std::time::Duration::ZERO,
            });
        }
        let owner = NewUser::new(tenant_id, valid.email.clone(), Role::Owner, hash);
        let (tenant, user) = match self.create_with_slug(&valid, tenant_id, owner).await {
            Ok(created) => created,
            Err(e) => {
                self.release_user_slot(tenant_id, max_users).await;
                return Err(e);
            }
        };
        tracing::info!(tenant = %tenant.id, slug = %tenant.slug, "organisation registered");
        self.inner
            .ops
            .emit(
                EventKind::Registered,
                &tenant,
                Actor::User { id: user.id },
                None,
            )
            .await;
        let tenant = self.start_provisioning(tenant).await?;
        let token = self.inner.tokens.issue(&user)?;
        Ok(Registered {
            tenant,
            user,
            token,
        })
    }

    fn validate_registration(&self, r: &Registration) -> Result<Valid> {
        let name = validate_name(r.organization_name.clone(), "organization_name")?;
        let email = Email::parse_field(&r.admin_email, "admin_email")?;
        self.inner
            .policy
            .check(r.admin_password.expose(), Some(&email), "admin_password")?;
        let slug = r
            .slug
            .as_deref()
            .map(|s| TenantSlug::parse_field(s, "slug"))
            .transpose()?;
        let isolation = match r.isolation.as_deref() {
            Some(s) => s.parse::<Isolation>()?,
            None => self.inner.config.default_isolation,
        };
        if !self
            .inner
            .ops
            .provisioner
            .capabilities()
            .supports(isolation)
        {
            return Err(Error::invalid(
                "isolation",
                "is not supported by this deployment",
            ));
        }
        let plan = match r.plan.as_deref() {
            Some(s) => Plan::new(s)?,
            None => self.inner.config.default_plan.clone(),
        };
        let region = r
            .region
            .clone()
            .or_else(|| self.inner.config.region.clone());
        if let Some(region) = &region {
            validate_region(region)?;
        }
        let server = r.server.clone().map(ServerId::new).transpose()?;
        Ok(Valid {
            name,
            email,
            slug,
            isolation,
            plan,
            region,
            server,
        })
    }

    /// Creates tenant and owner; a derived slug that is taken is retried with a suffix.
    async fn create_with_slug(
        &self,
        valid: &Valid,
        tenant_id: TenantId,
        owner: NewUser,
    ) -> Result<(Tenant, User)> {
        let derived = valid.slug.is_none();
        let base = match &valid.slug {
            Some(slug) => slug.clone(),
            None => TenantSlug::from_name(&valid.name)?,
        };
        let server = self.place(valid, &base).await?;
        let mut slug = base.clone();
        let mut attempt = 0;
        loop {
            let tenant = self.new_tenant(valid, tenant_id, slug, server.clone())?;
            match self
                .inner
                .ops
                .registry
                .create_tenant_with_owner(tenant, owner.clone())
                .await
            {
                Err(Error::Conflict { field, .. })
                    if derived && field == "slug" && attempt < self.inner.config.slug_attempts =>
                {
                    attempt += 1;
                    slug = suffixed(&base)?;
                }
                Err(Error::Conflict { field, .. }) if field == "email" => return Err(email_taken()),
                other => return other,
            }
        }
    }

    fn new_tenant(
        &self,
        valid: &Valid,
        id: TenantId,
        slug: TenantSlug,
        server: ServerId,
    ) -> Result<NewTenant> {
        let new = Placed {
            name: valid.name.clone(),
            isolation: valid.isolation,
            plan: valid.plan.clone(),
            server,
            region: valid.region.clone(),
        };
        self.placed_tenant(id, slug, new)
    }

    /// A new tenant on `new.server`, named by this deployment's naming rules.
    pub(crate) fn placed_tenant(
        &self,
        id: TenantId,
        slug: TenantSlug,
        new: Placed,
    ) -> Result<NewTenant> {
        let config = &self.inner.config;
        let placement =
            config
                .naming
                .placement(&slug, new.isolation, new.server, &config.shared_database);
        let tenant = NewTenant::new(slug, new.name, new.isolation)?
            .with_id(id)
            .with_plan(new.plan)
            .with_placement(placement)
            .with_region(new.region);
        tenant.validate()?;
        Ok(tenant)
    }

    /// Gives back the user slot taken for a registration that did not go through.
    async fn release_user_slot(&self, tenant: TenantId, max_users: u64) {
        let released = self
            .inner
            .quota
            .consume_usage(tenant, UsageKind::Users, -1, max_users)
            .await;
        if let Err(e) = released {
            tracing::warn!(tenant = %tenant, error = %e, "could not release a user slot");
        }
    }

    /// Provisions a `Pending` or `Failed` tenant inline, or queues it when async provisioning
    /// is on. Failures end in status `Failed` with the reason, not in an error.
    pub(crate) async fn start_provisioning(&self, tenant: Tenant) -> Result<Tenant> {
        let ops = &self.inner.ops;
        let tenant = ops.begin_provisioning(tenant).await?;
        if self.inner.config.async_provisioning {
            let queued = async {
                let job = jobs_kinds::provision_job(tenant.id)?;
                self.job_queue()?.enqueue(job).await
            }
            .await;
            return match queued {
                Ok(job) => {
                    tracing::info!(tenant = %tenant.id, job = %job, "tenant provisioning queued");
                    Ok(tenant)
                }
                Err(e) => {
                    record(PROVISIONING_TOTAL, "failed");
                    ops.mark_failed(tenant.id, &e).await
                }
            };
        }
        self.provision_inline(tenant).await
    }

    /// Provisions a `Provisioning` tenant now, in a task of its own, whatever the async
    /// provisioning setting. Failures end in status `Failed` with the reason.
    pub(crate) async fn provision_inline(&self, tenant: Tenant) -> Result<Tenant> {
        // The run gets its own task: a caller that gives up half-way (a client that
        // disconnects, a request timeout) does not cancel it, so the tenant still ends
        // `Active` or `Failed` instead of staying `Provisioning`.
        let ops = self.inner.ops.clone();
        let id = tenant.id;
        let run = tokio::spawn(async move {
            match ops.provision(&tenant).await {
                Ok(active) => {
                    record(PROVISIONING_TOTAL, "success");
                    Ok(active)
                }
                Err(e) => {
                    record(PROVISIONING_TOTAL, "failed");
                    ops.mark_failed(tenant.id, &e).await
                }
            }
        });
        run.await.map_err(|e| {
            Error::internal(format!(
                "the provisioning of tenant {id} stopped before it finished: {e}"
            ))
        })?
    }
}

/// `base` with `_` and three random lowercase letters or digits, cut to fit the slug length.
fn suffixed(base: &TenantSlug) -> Result<TenantSlug> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut slug: String = base
        .as_str()
        .chars()
        .take(TenantSlug::MAX_LEN - 4)
        .collect();
    slug.push('_');
    for _ in 0..3 {
        let i = rand::random_range(0..ALPHABET.len());
        slug.push(char::from(ALPHABET[i]));
    }
    TenantSlug::parse_field(&slug, "slug")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_slugs_fit_and_differ() -> Result<()> {
        let long = TenantSlug::new("a".repeat(48))?;
        let a = suffixed(&long)?;
        assert_eq!(a.as_str().len(), 48);
        assert!(a.as_str().starts_with(&"a".repeat(44)));
        let short = TenantSlug::new("acme")?;
        let b = suffixed(&short)?;
        assert!(
            b.as_str().starts_with("acme_") && b.as_str().len() == 8,
            "{b}"
        );
        Ok(())
    }
}
