//! The Lua scripts, loaded once per process and run with `EVALSHA` (the driver loads a script
//! again when the server answers `NOSCRIPT`, after a restart or `SCRIPT FLUSH`).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $($file:literal)+) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!($(include_str!(concat!("lua/", $file)), "\n"),+)));
    };
}

script!(
    /// GCRA check-and-consume.
    GCRA = "gcra.lua"
);
script!(
    /// GCRA lease: claim several cells at once, giving back an expired lease's unused ones.
    GCRA_LEASE = "gcra_lease.lua"
);
script!(
    /// Usage quota check-and-consume or release.
    USAGE = "usage.lua"
);
script!(
    /// Compare-and-delete of a lock.
    LOCK_RELEASE = "lock_release.lua"
);
script!(
    /// Compare-and-extend of a lock.
    LOCK_EXTEND = "lock_extend.lua"
);
script!(
    /// Tenant lookup by id or through a slug or domain alias, with the invalidation epoch.
    CACHE_LOOKUP = "cache_epoch.lua" "cache_lookup.lua"
);
script!(
    /// Tenant record and aliases, optionally only if the invalidation epoch is unchanged.
    CACHE_PUT = "cache_put.lua"
);
script!(
    /// Delete, advance the invalidation epoch and publish an invalidation.
    CACHE_INVALIDATE = "cache_epoch.lua" "cache_invalidate.lua"
);
script!(
    /// Add a job.
    QUEUE_ENQUEUE = "queue_common.lua" "queue_enqueue.lua"
);
script!(
    /// Move due retries, reclaim or read the next job.
    QUEUE_CLAIM = "queue_common.lua" "queue_claim.lua"
);
script!(
    /// Acknowledge a current delivery.
    QUEUE_ACK = "queue_common.lua" "queue_ack.lua"
);
script!(
    /// Retry or dead-letter a current delivery.
    QUEUE_NACK = "queue_common.lua" "queue_nack.lua"
);
script!(
    /// Renew the lease of a current delivery.
    QUEUE_EXTEND = "queue_common.lua" "queue_extend.lua"
);
script!(
    /// Queue depth.
    QUEUE_STATS = "queue_stats.lua"
);
script!(
    /// Delete consumers idle past a threshold that hold no pending entries.
    QUEUE_PRUNE = "queue_prune.lua"
);
script!(
    /// Hand a current delivery back without counting it.
    QUEUE_RELEASE = "queue_common.lua" "queue_release.lua"
);
script!(
    /// Add or replace a recurring schedule.
    SCHEDULE_PUT = "schedule_put.lua"
);
script!(
    /// Remove a recurring schedule.
    SCHEDULE_REMOVE = "schedule_remove.lua"
);
script!(
    /// Claim the due ticks of the recurring schedules.
    SCHEDULE_CLAIM = "schedule_claim.lua"
);
script!(
    /// Grant slots of a server's connection budget (reclaiming expired holders first).
    BUDGET_ACQUIRE = "budget_common.lua" "budget_acquire.lua"
);
script!(
    /// Renew a holder's slots of a server's connection budget.
    BUDGET_RENEW = "budget_common.lua" "budget_renew.lua"
);
script!(
    /// Give back slots of a server's connection budget.
    BUDGET_RELEASE = "budget_common.lua" "budget_release.lua"
);
script!(
    /// Count the live slots of a server's connection budget.
    BUDGET_HELD = "budget_common.lua" "budget_held.lua"
);
