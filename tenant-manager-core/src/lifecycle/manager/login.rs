//! Login: e-mail and password to an access token, with a limit on failed logins per e-mail.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::TenantManager;
use crate::auth::IssuedToken;
use crate::domain::{Email, RateLimit, TenantId, TenantStatus, User};
use crate::error::{Error, Result};
use crate::traits::{QuotaEnforcer, RateKey};

/// Counter of login attempts, labelled `result` (`success`, `failure`, `refused`, `limited`).
const LOGINS_TOTAL: &str = "tenant_logins_total";

/// What a failed login costs an e-mail's budget, in units; a successful one costs 1. The
/// budget holds `(limit + 1) × FAILURE_WEIGHT - 1` units per window: `limit` failures spend
/// it whether or not up to `FAILURE_WEIGHT - 1` successful logins came in between.
const FAILURE_WEIGHT: u64 = 1000;

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
        let email = Email::parse_field(email, "email")?;
        if password.is_empty() {
            return Err(Error::invalid("password", "must not be empty"));
        }
        let user = self.inner.ops.registry.find_user_by_email(&email).await?;
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
        let verified = slot
            .verify_or_dummy(password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        let user = match user {
            Some(user) if verified => user,
            _ => {
                metrics::counter!(LOGINS_TOTAL, "result" => "failure").increment(1);
                if let Some(budget) = &budget {
                    budget.charge_failure(self.inner.quota.as_ref()).await?;
                }
                return Err(Error::unauthenticated("invalid email or password"));
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
        Ok(LoginResult {
            token,
            tenant_id: tenant.id,
            user,
        })
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
