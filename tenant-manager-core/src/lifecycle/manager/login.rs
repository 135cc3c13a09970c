//! Login: e-mail and password to an access token, with a limit on failed logins per e-mail.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::TenantManager;
use crate::auth::IssuedToken;
use crate::domain::{Email, RateLimit, TenantId, TenantSlug, TenantStatus, User};
use crate::error::{Error, Result};
use crate::traits::{QuotaEnforcer, RateKey};

/// Counter of login attempts, labelled `result` (`success`, `failure`, `refused`, `limited`,
/// `choose`).
const LOGINS_TOTAL: &str = "tenant_logins_total";

/// What a failed login costs an e-mail's budget, in units; a successful one costs 1. The
/// budget holds `(limit + 1) × FAILURE_WEIGHT - 1` units per window: `limit` failures spend
/// it whether or not up to `FAILURE_WEIGHT - 1` successful logins came in between.
const FAILURE_WEIGHT: u64 = 1000;

/// How many of an e-mail's memberships a login checks the password against (the oldest).
pub const MAX_LOGIN_MEMBERSHIPS: usize = 8;

/// A tenant to choose from, when an e-mail and password are good for several.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantChoice {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug: send it back as the login's tenant.
    pub slug: TenantSlug,
    /// Its display name.
    pub name: String,
}

/// What a login gives: a token for one tenant, or the tenants to choose from.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Logged in to one tenant.
    LoggedIn(Box<LoginResult>),
    /// The password is good for several tenants and none was named: log in again naming one.
    ChooseTenant(Vec<TenantChoice>),
}

/// A successful login.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginResult {
    /// An access token for the user.
    pub token: IssuedToken,
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user: User,
}

impl TenantManager {
    /// Logs a user in and issues an access token.
    ///
    /// An unknown e-mail and a wrong password give the same error after the same work (a
    /// dummy hash is verified for unknown e-mails). A stored hash made with other costs than
    /// the hasher's is replaced by a fresh one once the password is verified; that upgrade is
    /// best effort and never fails the login.
    ///
    /// With [`ManagerConfig::login_failures`](super::ManagerConfig::login_failures) set, an
    /// e-mail address (known or not, so the limit says nothing about which accounts exist)
    /// that failed that many times in the window is refused before its password is checked,
    /// right or wrong, until its budget refills. Other addresses are not affected.
    ///
    /// # Errors
    /// - `InvalidInput` on `email` (not an e-mail address) or `password` (empty).
    /// - `Unauthenticated` (`invalid email or password`) for an unknown e-mail or a wrong
    ///   password.
    /// - `QuotaExceeded` (quota `login_failures`, with `retry_after`) when the e-mail address
    ///   failed too often.
    /// - `Suspended` when the user's tenant is suspended; `NotReady` when it is not active.
    /// - `Unavailable` when the registry or the quota enforcer cannot be reached, or (backend
    ///   `password_hasher`, retryable) when no hashing thread is free within the hasher's wait.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResult> {
        match self.login_to(email, password, None).await? {
            LoginOutcome::LoggedIn(result) => Ok(*result),
            LoginOutcome::ChooseTenant(_) => Err(Error::invalid(
                "tenant",
                "this e-mail belongs to several tenants: name one",
            )),
        }
    }

    /// Logs a user in to one tenant: the one `tenant` (a slug) names, or the only one the
    /// e-mail and password are good for; when they are good for several and none is named,
    /// answers with the tenants to choose from.
    ///
    /// The password is checked against each of the e-mail's memberships (the oldest
    /// [`MAX_LOGIN_MEMBERSHIPS`], only the named tenant's when one is named), and the tenants
    /// are listed only when it matched: a wrong password gets the error of an unknown e-mail,
    /// whatever the memberships. What still differs is the work: one hash per membership
    /// checked, against one (a dummy) for an unknown e-mail, so the time of a failed login can
    /// hint at how many tenants an e-mail belongs to (not which); naming the tenant makes it
    /// one hash. Everything else is as [`login`](Self::login).
    ///
    /// # Errors
    /// As [`login`](Self::login), plus `InvalidInput` on `tenant` for a malformed slug. An
    /// unknown slug, or one the e-mail does not belong to, is a wrong password.
    pub async fn login_to(
        &self,
        email: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> Result<LoginOutcome> {
        let email = Email::parse_field(email, "email")?;
        if password.is_empty() {
            return Err(Error::invalid("password", "must not be empty"));
        }
        let slug = tenant
            .map(|s| TenantSlug::parse_field(s, "tenant"))
            .transpose()?;
        let registry = &self.inner.ops.registry;
        let mut candidates = registry.find_users_by_email(&email).await?;
        if let Some(slug) = &slug {
            let named = registry.find_tenant_by_slug(slug).await?.map(|t| t.id);
            candidates.retain(|u| Some(u.tenant_id) == named);
        }
        candidates.truncate(MAX_LOGIN_MEMBERSHIPS);
        // The hashing thread first, then the budget, and the thread stays reserved until a
        // failure is counted: no more verifications than threads can be under way beyond what
        // the budget has counted.
        let mut slot = self.inner.hasher.reserve().await?;
        let budget = self
            .inner
            .config
            .login_failures
            .map(|rate| FailureBudget::new(&email, rate))
            .transpose()?;
        if let Some(budget) = &budget {
            budget.admit(self.inner.quota.as_ref()).await?;
        }
        let mut verified = Vec::with_capacity(1);
        if candidates.is_empty() {
            slot.verify_or_dummy(password, None).await?;
        }
        for user in candidates {
            if slot
                .verify_or_dummy(password, Some(&user.password_hash))
                .await?
            {
                verified.push(user);
            }
        }
        let user = match verified.len() {
            1 => verified.remove(0),
            0 => {
                metrics::counter!(LOGINS_TOTAL, "result" => "failure").increment(1);
                if let Some(budget) = &budget {
                    budget.charge_failure(self.inner.quota.as_ref()).await?;
                }
                return Err(Error::unauthenticated("invalid email or password"));
            }
            _ => {
                drop(slot);
                metrics::counter!(LOGINS_TOTAL, "result" => "choose").increment(1);
                return self.choices(verified).await.map(LoginOutcome::ChooseTenant);
            }
        };
        // The hash upgrade below needs a thread of its own.
        drop(slot);
        let tenant = self.inner.ops.registry.get_tenant(user.tenant_id).await?;
        match tenant.status {
            TenantStatus::Active => {}
            TenantStatus::Suspended => {
                metrics::counter!(LOGINS_TOTAL, "result" => "refused").increment(1);
                return Err(Error::Suspended { tenant: tenant.id });
            }
            status => {
                metrics::counter!(LOGINS_TOTAL, "result" => "refused").increment(1);
                return Err(Error::NotReady {
                    tenant: tenant.id,
                    status,
                });
            }
        }
        let user = self.rehash_if_needed(user, password).await;
        let token = self.inner.tokens.issue(&user)?;
        metrics::counter!(LOGINS_TOTAL, "result" => "success").increment(1);
        Ok(LoginOutcome::LoggedIn(Box::new(LoginResult {
            token,
            tenant_id: tenant.id,
            user,
        })))
    }

    /// The tenants of `users` to choose from (those deleted meanwhile left out).
    async fn choices(&self, users: Vec<User>) -> Result<Vec<TenantChoice>> {
        let mut choices = Vec::with_capacity(users.len());
        for user in users {
            match self.inner.ops.registry.get_tenant(user.tenant_id).await {
                Ok(tenant) if tenant.status != TenantStatus::Deleted => {
                    choices.push(TenantChoice {
                        tenant_id: tenant.id,
                        slug: tenant.slug,
                        name: tenant.name,
                    })
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(choices)
    }

    /// Replaces `user`'s hash by a fresh one of `password` (just verified) when it was made
    /// with other costs than the hasher's. A failure is logged, and the user is returned with
    /// the old hash; a password changed meanwhile is never overwritten (compare-and-set).
    async fn rehash_if_needed(&self, user: User, password: &str) -> User {
        let hasher = &self.inner.hasher;
        if !hasher.needs_rehash(&user.password_hash) {
            return user;
        }
        let replaced = async {
            let fresh = hasher.hash(password).await?;
            self.inner
                .ops
                .registry
                .replace_password_hash(user.id, &user.password_hash, fresh)
                .await
        }
        .await;
        match replaced {
            Ok(upgraded) => {
                tracing::info!(user = %user.id, "password hash upgraded to the current costs");
                upgraded
            }
            Err(error) => {
                tracing::warn!(user = %user.id, %error, "could not upgrade a password hash");
                user
            }
        }
    }
}

/// The failed-login budget of one e-mail address in the quota enforcer (see
/// [`FAILURE_WEIGHT`]). Every attempt takes 1 unit and is admitted only while a whole
/// failure's worth is left after it; a failure takes the rest of its weight.
struct FailureBudget {
    key: RateKey,
    units: RateLimit,
    failures: u64,
}

impl FailureBudget {
    fn new(email: &Email, rate: RateLimit) -> Result<Self> {
        // The address is hashed: the enforcer's keys (Redis) never hold e-mail addresses.
        let digest = Sha256::digest(email.as_str().as_bytes());
        let key = RateKey::custom(&format!("login-failures:{}", hex::encode(digest)))?;
        Ok(Self {
            key,
            units: RateLimit {
                limit: rate
                    .limit
                    .saturating_add(1)
                    .saturating_mul(FAILURE_WEIGHT)
                    .saturating_sub(1),
                window_ms: rate.window_ms,
            },
            failures: rate.limit,
        })
    }

    /// Takes one unit; refuses the attempt when less than a failure's worth was left.
    async fn admit(&self, quota: &dyn QuotaEnforcer) -> Result<()> {
        let decision = quota.check_rate(&self.key, &self.units, 1).await?;
        if decision.allowed && decision.remaining + 1 >= FAILURE_WEIGHT {
            return Ok(());
        }
        // The next attempt needs a whole failure's worth of units.
        let missing = if decision.allowed {
            FAILURE_WEIGHT.saturating_sub(decision.remaining)
        } else {
            FAILURE_WEIGHT
        };
        let refill = self
            .unit()
            .saturating_mul(u32::try_from(missing).unwrap_or(u32::MAX));
        Err(self.exceeded(refill.min(decision.reset_after.max(self.unit()))))
    }

    /// Takes the rest of a failure's weight; refuses when a concurrent failure took it first.
    async fn charge_failure(&self, quota: &dyn QuotaEnforcer) -> Result<()> {
        let cost = u32::try_from(FAILURE_WEIGHT - 1).unwrap_or(u32::MAX);
        let decision = quota.check_rate(&self.key, &self.units, cost).await?;
        if decision.allowed {
            Ok(())
        } else {
            Err(self.exceeded(decision.retry_after.unwrap_or(decision.reset_after)))
        }
    }

    /// The time one unit takes to refill.
    fn unit(&self) -> Duration {
        Duration::from_millis(self.units.window_ms)
            / u32::try_from(self.units.limit).unwrap_or(u32::MAX)
    }

    fn exceeded(&self, retry_after: Duration) -> Error {
        metrics::counter!(LOGINS_TOTAL, "result" => "limited").increment(1);
        Error::QuotaExceeded {
            quota: "login_failures".into(),
            limit: self.failures,
            retry_after: retry_after.max(Duration::from_secs(1)),
        }
    }
}
