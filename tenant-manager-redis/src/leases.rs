//! [`RedisConnectionLeases`]: each database server's connection budget, shared by every
//! instance of a deployment.

use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::{
    ConnectionLeases, LeaseGrant, Result, ServerId, ttl_millis, validate_lease,
};

use crate::pool::RedisPool;
use crate::scripts;

/// Leases of connection slots in Redis, obeying the [`ConnectionLeases`] contract.
///
/// Per server, three keys under one hash tag (`<prefix>budget:{<server>}:…`, so one slot of a
/// Redis Cluster): a sorted set of holders scored by when their slots expire (ms of the Redis
/// server's clock, so instances' clocks do not matter), a hash of each holder's slot count,
/// and a marker set for a lease time when an acquire got less than it asked for. Every call is
/// one Lua script that first reclaims expired holders, so counting and granting are atomic.
#[derive(Debug, Clone)]
pub struct RedisConnectionLeases {
    pool: RedisPool,
}

/// The three keys of one server.
struct ServerKeys {
    holders: String,
    slots: String,
    contended: String,
}

impl RedisConnectionLeases {
    /// Leases on `pool`.
    pub fn new(pool: &RedisPool) -> Self {
        Self { pool: pool.clone() }
    }

    fn keys(&self, server: &ServerId) -> ServerKeys {
        let base = format!("{}budget:{{{server}}}:", self.pool.keys().prefix());
        ServerKeys {
            holders: format!("{base}holders"),
            slots: format!("{base}slots"),
            contended: format!("{base}contended"),
        }
    }

    fn script<'a>(
        &self,
        script: &'a redis::Script,
        server: &ServerId,
    ) -> redis::ScriptInvocation<'a> {
        let keys = self.keys(server);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(keys.holders)
            .key(keys.slots)
            .key(keys.contended);
        invocation
    }
}

fn grant((held, contended): (u32, u8)) -> LeaseGrant {
    LeaseGrant::new(held, contended == 1)
}

#[async_trait]
impl ConnectionLeases for RedisConnectionLeases {
    async fn acquire(
        &self,
        server: &ServerId,
        holder: &str,
        want: u32,
        budget: u32,
        ttl: Duration,
    ) -> Result<LeaseGrant> {
        validate_lease(holder, ttl)?;
        let mut invocation = self.script(&scripts::BUDGET_ACQUIRE, server);
        invocation
            .arg(holder)
            .arg(want)
            .arg(budget)
            .arg(ttl_millis(ttl));
        Ok(grant(self.pool.invoke(&invocation).await?))
    }

    async fn renew(&self, server: &ServerId, holder: &str, ttl: Duration) -> Result<LeaseGrant> {
        validate_lease(holder, ttl)?;
        let mut invocation = self.script(&scripts::BUDGET_RENEW, server);
        invocation.arg(holder).arg(ttl_millis(ttl));
        Ok(grant(self.pool.invoke_idempotent(&invocation).await?))
    }

    async fn release(&self, server: &ServerId, holder: &str, count: u32) -> Result<u32> {
        validate_lease(holder, Duration::from_millis(1))?;
        let mut invocation = self.script(&scripts::BUDGET_RELEASE, server);
        invocation.arg(holder).arg(count);
        self.pool.invoke(&invocation).await
    }

    async fn held(&self, server: &ServerId) -> Result<u32> {
        let invocation = self.script(&scripts::BUDGET_HELD, server);
        self.pool.invoke_idempotent(&invocation).await
    }
}
