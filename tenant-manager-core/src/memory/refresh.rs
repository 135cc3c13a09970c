//! `InMemoryRefreshTokens`: the refresh token store of embedded mode.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{RefreshTokenId, TokenDigest, UserId};
use crate::error::{Entity, Error, Result};
use crate::traits::{NewRefreshToken, RefreshToken, RefreshTokenStore, Successor, refresh_refused};

/// A [`RefreshTokenStore`] in memory: one mutex over the tokens and their family and user
/// indexes (refresh, logout and revocation are rare next to requests, and each holds the lock
/// for a few map operations, never across an `.await`). Lost on restart, like every session
/// of embedded mode.
#[derive(Debug, Default)]
pub struct InMemoryRefreshTokens {
    inner: Mutex<Tokens>,
}

#[derive(Debug, Default)]
struct Tokens {
    by_id: HashMap<RefreshTokenId, RefreshToken>,
    families: HashMap<RefreshTokenId, Vec<RefreshTokenId>>,
    users: HashMap<UserId, Vec<RefreshTokenId>>,
}

impl Tokens {
    fn add(&mut self, token: RefreshToken) -> Result<RefreshToken> {
        if self.by_id.contains_key(&token.id) {
            return Err(Error::conflict(Entity::Record, "id", "id is taken"));
        }
        self.families
            .entry(token.family)
            .or_default()
            .push(token.id);
        self.users.entry(token.user_id).or_default().push(token.id);
        self.by_id.insert(token.id, token.clone());
        Ok(token)
    }

    /// Revokes the live tokens of `ids`; returns how many.
    fn revoke(&mut self, ids: &[RefreshTokenId], now: OffsetDateTime) -> u64 {
        let mut revoked = 0;
        for id in ids {
            if let Some(token) = self.by_id.get_mut(id)
                && token.revoked_at.is_none()
            {
                token.revoked_at = Some(now);
                if token.rotated_at.is_none() && token.expires_at > now {
                    revoked += 1;
                }
            }
        }
        revoked
    }

    fn revoke_family(&mut self, family: RefreshTokenId, now: OffsetDateTime) {
        let ids = self.families.get(&family).cloned().unwrap_or_default();
        self.revoke(&ids, now);
    }
}

impl InMemoryRefreshTokens {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RefreshTokenStore for InMemoryRefreshTokens {
    async fn insert(&self, token: NewRefreshToken) -> Result<RefreshToken> {
        let now = OffsetDateTime::now_utc();
        let family = token.id;
        self.lock().add(token.into_token(family, now))
    }

    async fn rotate(
        &self,
        id: RefreshTokenId,
        digest: &TokenDigest,
        next: Successor,
    ) -> Result<RefreshToken> {
        let now = OffsetDateTime::now_utc();
        let mut tokens = self.lock();
        let Some(current) = tokens.by_id.get(&id).cloned() else {
            return Err(refresh_refused());
        };
        if !current.token_digest.ct_eq(digest) {
            return Err(refresh_refused());
        }
        if current.rotated_at.is_some() || current.revoked_at.is_some() {
            tokens.revoke_family(current.family, now);
            return Err(refresh_refused());
        }
        if current.expires_at <= now {
            return Err(refresh_refused());
        }
        let created = tokens.add(next.into_token(&current, now))?;
        if let Some(token) = tokens.by_id.get_mut(&id) {
            token.rotated_at = Some(now);
        }
        Ok(created)
    }

    async fn revoke_family(&self, id: RefreshTokenId, digest: &TokenDigest) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        let mut tokens = self.lock();
        let Some(family) = tokens
            .by_id
            .get(&id)
            .filter(|t| t.token_digest.ct_eq(digest))
            .map(|t| t.family)
        else {
            return Ok(false);
        };
        tokens.revoke_family(family, now);
        Ok(true)
    }

    async fn revoke_user(&self, user: UserId) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut tokens = self.lock();
        let ids = tokens.users.get(&user).cloned().unwrap_or_default();
        Ok(tokens.revoke(&ids, now))
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64> {
        let mut tokens = self.lock();
        let expired: Vec<RefreshToken> = tokens
            .by_id
            .values()
            .filter(|t| t.expires_at < before)
            .cloned()
            .collect();
        for token in &expired {
            tokens.by_id.remove(&token.id);
            if let Some(ids) = tokens.families.get_mut(&token.family) {
                ids.retain(|id| *id != token.id);
            }
            if let Some(ids) = tokens.users.get_mut(&token.user_id) {
                ids.retain(|id| *id != token.id);
            }
        }
        tokens.families.retain(|_, ids| !ids.is_empty());
        tokens.users.retain(|_, ids| !ids.is_empty());
        Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
    }
}
