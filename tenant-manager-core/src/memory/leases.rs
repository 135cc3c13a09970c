//! `InMemoryConnectionLeases`: connection budgets shared by the engines of one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::domain::ServerId;
use crate::error::Result;
use crate::traits::{ConnectionLeases, LeaseGrant, validate_lease};

/// One holder's slots of a server and when they expire.
#[derive(Debug, Clone, Copy)]
struct Lease {
    slots: u32,
    expires: Instant,
}

/// [`ConnectionLeases`] in a map, for the pool engines of one process (several engines over
/// the same servers, or tests); clones share it. Expiry reads tokio's clock, so tests may pause
/// time.
#[derive(Debug, Clone, Default)]
pub struct InMemoryConnectionLeases {
    servers: Arc<Mutex<HashMap<ServerId, Server>>>,
}

/// One server's holders, and until when it counts as contended.
#[derive(Debug, Default)]
struct Server {
    holders: HashMap<String, Lease>,
    contended_until: Option<Instant>,
}

impl InMemoryConnectionLeases {
    /// No leases yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on `server`'s live holders (expired ones are reclaimed first).
    fn with_server<T>(&self, server: &ServerId, f: impl FnOnce(&mut Server, Instant) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let state = servers.entry(server.clone()).or_default();
        let now = Instant::now();
        state
            .holders
            .retain(|_, lease| lease.expires > now && lease.slots > 0);
        f(state, now)
    }
}

fn total(holders: &HashMap<String, Lease>) -> u32 {
    holders
        .values()
        .fold(0u32, |sum, lease| sum.saturating_add(lease.slots))
}

#[async_trait]
impl ConnectionLeases for InMemoryConnectionLeases {
    async fn acquire(
        &self,
        server: &ServerId,
        holder: &str,
        want: u32,
        budget: u32,
        ttl: Duration,
    ) -> Result<LeaseGrant> {
        validate_lease(holder, ttl)?;
        Ok(self.with_server(server, |state, now| {
            let free = budget.saturating_sub(total(&state.holders));
            let grant = want.min(free);
            if grant < want {
                state.contended_until = Some(now + ttl);
            }
            let contended = state.contended_until.is_some_and(|until| until > now);
            let holders = &mut state.holders;
            let lease = holders.entry(holder.to_owned()).or_insert(Lease {
                slots: 0,
                expires: now,
            });
            lease.slots = lease.slots.saturating_add(grant);
            lease.expires = now + ttl;
            let slots = lease.slots;
            if slots == 0 {
                holders.remove(holder);
            }
            LeaseGrant::new(slots, contended)
        }))
    }

    async fn renew(&self, server: &ServerId, holder: &str, ttl: Duration) -> Result<LeaseGrant> {
        validate_lease(holder, ttl)?;
        Ok(self.with_server(server, |state, now| {
            let contended = state.contended_until.is_some_and(|until| until > now);
            let held = match state.holders.get_mut(holder) {
                Some(lease) => {
                    lease.expires = now + ttl;
                    lease.slots
                }
                None => 0,
            };
            LeaseGrant::new(held, contended)
        }))
    }

    async fn release(&self, server: &ServerId, holder: &str, count: u32) -> Result<u32> {
        validate_lease(holder, Duration::from_millis(1))?;
        Ok(self.with_server(server, |state, _| {
            let holders = &mut state.holders;
            let Some(lease) = holders.get_mut(holder) else {
                return 0;
            };
            lease.slots = lease.slots.saturating_sub(count);
            let slots = lease.slots;
            if slots == 0 {
                holders.remove(holder);
            }
            slots
        }))
    }

    async fn held(&self, server: &ServerId) -> Result<u32> {
        Ok(self.with_server(server, |state, _| total(&state.holders)))
    }
}
