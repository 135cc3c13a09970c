//! Login: e-mail and password to an access token.

use super::TenantManager;
use crate::auth::IssuedToken;
use crate::domain::{Email, TenantId, TenantStatus, User};
use crate::error::{Error, Result};

/// Counter of login attempts, labelled `result` (`success`, `failure`, `refused`).
const LOGINS_TOTAL: &str = "tenant_logins_total";

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
    /// # Errors
    /// - `InvalidInput` on `email` (not an e-mail address) or `password` (empty).
    /// - `Unauthenticated` (`invalid email or password`) for an unknown e-mail or a wrong
    ///   password.
    /// - `Suspended` when the user's tenant is suspended; `NotReady` when it is not active.
    /// - `Unavailable` when the registry cannot be reached.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResult> {
        let email = Email::parse_field(email, "email")?;
        if password.is_empty() {
            return Err(Error::invalid("password", "must not be empty"));
        }
        let user = self.inner.ops.registry.find_user_by_email(&email).await?;
        let verified = self
            .inner
            .hasher
            .verify_or_dummy(password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        let user = match user {
            Some(user) if verified => user,
            _ => {
                metrics::counter!(LOGINS_TOTAL, "result" => "failure").increment(1);
                return Err(Error::unauthenticated("invalid email or password"));
            }
        };
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
