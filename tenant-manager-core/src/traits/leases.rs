//! `ConnectionLeases`: one connection budget per database server, shared by every instance of
//! a deployment through leases that expire.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::ServerId;
use crate::error::{Error, Result};

/// Longest lease: one day.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(86_400);

/// What a holder has after [`ConnectionLeases::acquire`] or [`ConnectionLeases::renew`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseGrant {
    /// Slots the holder holds.
    pub held: u32,
    /// Whether an acquire on the server was refused (in part) within the last lease time:
    /// holders should close idle connections and hand their slots back.
    pub contended: bool,
}

impl LeaseGrant {
    /// `held` slots, contended or not.
    pub fn new(held: u32, contended: bool) -> Self {
        Self { held, contended }
    }
}

/// Slots of a server's connection budget, leased by the instances (holders) that open
/// connections to it, so the connections of all instances together never exceed the budget.
///
/// Each holder has a count of slots on each server and one expiry for all of them. A holder
/// that stops renewing (an instance that died) loses its slots when the expiry passes: the next
/// call on that server reclaims them for the others.
///
/// # Contract
/// - [`acquire`](Self::acquire) first reclaims the slots of every expired holder of `server`,
///   then grants up to `want` more slots to `holder` so that the slots of all live holders
///   stay within `budget`, and renews all of `holder`'s slots for `ttl`. Reclaiming, counting
///   and granting are one atomic step: racing acquires never grant more than the budget
///   together. An acquire granted less than `want` marks the server contended for `ttl`.
/// - [`renew`](Self::renew) extends `holder`'s slots for `ttl` and answers how many it holds
///   and whether the server is contended;
///   a holder whose expiry passed holds 0 and is not brought back (its slots may already be
///   another's).
/// - [`release`](Self::release) gives back up to `count` of `holder`'s slots; a holder left
///   with none is forgotten.
/// - [`held`](Self::held) counts the slots of live holders of `server`.
/// - Servers are independent; so are holders.
///
/// # Errors
/// - `InvalidInput` for a holder name that is not 1 to 128 of `[A-Za-z0-9_.:-]` (field
///   `holder`), or a `ttl` of zero or above [`MAX_LEASE_TTL`] (field `ttl`).
/// - `Unavailable` when the backend cannot be reached: the caller must then assume it holds
///   nothing once its last renewal's `ttl` has passed.
#[async_trait]
pub trait ConnectionLeases: std::fmt::Debug + Send + Sync + 'static {
    /// Grants `holder` up to `want` more slots of `server`'s `budget` and renews all of its
    /// slots for `ttl`; returns how many slots `holder` holds afterwards.
    async fn acquire(
        &self,
        server: &ServerId,
        holder: &str,
        want: u32,
        budget: u32,
        ttl: Duration,
    ) -> Result<LeaseGrant>;

    /// Renews `holder`'s slots of `server` for `ttl`; returns how many it holds (0 once they
    /// expired).
    async fn renew(&self, server: &ServerId, holder: &str, ttl: Duration) -> Result<LeaseGrant>;

    /// Gives back up to `count` of `holder`'s slots of `server`; returns how many it still
    /// holds.
    async fn release(&self, server: &ServerId, holder: &str, count: u32) -> Result<u32>;

    /// Slots of `server` held by live holders.
    async fn held(&self, server: &ServerId) -> Result<u32>;
}

/// Checks a holder name and a lease time, as every adapter must.
///
/// # Errors
/// `InvalidInput` on field `holder` or `ttl`.
pub fn validate_lease(holder: &str, ttl: Duration) -> Result<()> {
    let holder_ok = (1..=128).contains(&holder.len())
        && holder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if !holder_ok {
        return Err(Error::invalid(
            "holder",
            "must be 1 to 128 letters, digits, '_', '.', ':' or '-'",
        ));
    }
    if ttl.is_zero() || ttl > MAX_LEASE_TTL {
        return Err(Error::invalid("ttl", "must be between 1 ms and 1 day"));
    }
    Ok(())
}

/// A lease time in whole milliseconds, at least 1.
pub fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
