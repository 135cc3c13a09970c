//! Key and channel names. Every name starts with the deployment's prefix; keys used together by
//! one script share a `{hash tag}` so they live in one slot.

use std::sync::Arc;

use tenant_manager_core::{RateKey, TenantId, TenantSlug, UsageKind};

/// The hash tag of every tenant cache key (see [`Keys::tenant_prefix`]).
pub(crate) const TENANT_CACHE_TAG: &str = "{tenant-cache}";

/// Builds the names of one deployment (one prefix).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: Arc<str>,
}

/// The keys of one job queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    /// Stream of deliverable jobs (entries hold the job id).
    pub(crate) stream: String,
    /// Sorted set of job ids waiting for a retry, scored by due time in ms.
    pub(crate) delayed: String,
    /// Stream of dead-lettered jobs (entries hold the whole job).
    pub(crate) dead: String,
    /// Where the reclaim scan of the pending entries resumes.
    pub(crate) reclaim_cursor: String,
    /// Prefix of the per-job hashes (`<job_prefix><job id>`).
    pub(crate) job_prefix: String,
    /// Prefix of the per-tenant lanes of ready job ids (`<lane_prefix><tenant id or ''>`).
    pub(crate) lane_prefix: String,
    /// List of the lanes holding jobs, in the order they are served (round robin).
    pub(crate) turns: String,
    /// Count of the job ids in all lanes.
    pub(crate) ready_count: String,
    /// Short stream that wakes waiting consumers when a job becomes ready.
    pub(crate) signal: String,
}

/// The keys of one event stream.
#[derive(Debug, Clone)]
pub(crate) struct EventKeys {
    /// Stream of published events (entries hold the event's JSON).
    pub(crate) stream: String,
    /// Prefix of the dead-letter streams, one per consumer group (`<dead_prefix><group>`).
    pub(crate) dead_prefix: String,
}

impl Keys {
    /// Names under `prefix` (already validated).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// GCRA state (the theoretical arrival time) of a rate key.
    pub(crate) fn rate(&self, key: &RateKey) -> String {
        format!("{}rate:{{{}}}", self.prefix, key.as_str())
    }

    /// Usage counters of a tenant: a hash with one field per [`UsageKind`]. Shares its hash
    /// tag with the tenant's rate key.
    pub(crate) fn usage(&self, tenant: TenantId) -> String {
        format!(
            "{}usage:{{{}}}",
            self.prefix,
            RateKey::tenant(tenant).as_str()
        )
    }

    /// The hash field of a usage kind.
    pub(crate) fn usage_field(kind: UsageKind) -> &'static str {
        kind.as_str()
    }

    /// Cached tenant record (JSON) by id.
    pub(crate) fn tenant(&self, id: TenantId) -> String {
        format!("{}{id}", self.tenant_prefix())
    }

    /// Prefix of the cached tenant records; scripts append an id. Every key of the tenant
    /// cache carries the hash tag [`TENANT_CACHE_TAG`]: a lookup reads an alias, the record it
    /// points at and the epoch in one script, so they share one slot.
    pub(crate) fn tenant_prefix(&self) -> String {
        format!("{}tenant:{TENANT_CACHE_TAG}:id:", self.prefix)
    }

    /// Slug alias: holds the id of the tenant that had this slug when cached.
    pub(crate) fn tenant_slug(&self, slug: &TenantSlug) -> String {
        format!(
            "{}tenant:{TENANT_CACHE_TAG}:slug:{}",
            self.prefix,
            slug.as_str()
        )
    }

    /// Domain alias: holds the id of the tenant that had this domain when cached.
    pub(crate) fn tenant_domain(&self, domain: &str) -> String {
        format!("{}tenant:{TENANT_CACHE_TAG}:domain:{domain}", self.prefix)
    }

    /// Tenant cache invalidation epoch: a counter every invalidation advances.
    pub(crate) fn tenant_epoch(&self) -> String {
        format!("{}tenant:{TENANT_CACHE_TAG}:epoch", self.prefix)
    }

    /// Channel on which tenant invalidations are published.
    pub(crate) fn invalidation_channel(&self) -> String {
        format!("{}tenant-invalidate", self.prefix)
    }

    /// Keys of the queue `name` (already validated).
    pub(crate) fn queue(&self, name: &str) -> QueueKeys {
        let base = format!("{}queue:{{{name}}}:", self.prefix);
        QueueKeys {
            stream: format!("{base}stream"),
            delayed: format!("{base}delayed"),
            dead: format!("{base}dead"),
            reclaim_cursor: format!("{base}reclaim-cursor"),
            job_prefix: format!("{base}job:"),
            lane_prefix: format!("{base}lane:"),
            turns: format!("{base}turns"),
            ready_count: format!("{base}ready"),
            signal: format!("{base}signal"),
        }
    }

    /// Keys of the event stream `name` (already validated); they share a hash tag, so a
    /// dead-lettering transaction touches one slot.
    pub(crate) fn events(&self, name: &str) -> EventKeys {
        let base = format!("{}events:{{{name}}}:", self.prefix);
        EventKeys {
            stream: format!("{base}stream"),
            dead_prefix: format!("{base}dead:"),
        }
    }

    /// A lock on `resource` (already validated).
    pub(crate) fn lock(&self, resource: &str) -> String {
        format!("{}lock:{resource}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix_and_related_keys_share_a_tag() {
        let keys = Keys::new("app1:");
        let tenant = TenantId::new();
        let rate = keys.rate(&RateKey::tenant(tenant));
        let usage = keys.usage(tenant);
        assert!(rate.starts_with("app1:rate:{tenant:"));
        let tag = |k: &str| k[k.find('{').unwrap_or(0)..].to_owned();
        assert_eq!(tag(&rate), tag(&usage));
        let queue = keys.queue("jobs");
        for key in [
            &queue.stream,
            &queue.delayed,
            &queue.dead,
            &queue.job_prefix,
            &queue.lane_prefix,
            &queue.turns,
            &queue.ready_count,
            &queue.signal,
        ] {
            assert!(key.starts_with("app1:queue:{jobs}:"), "{key}");
        }
        assert_eq!(keys.invalidation_channel(), "app1:tenant-invalidate");
        assert!(keys.lock("x").starts_with("app1:"));
        assert!(keys.tenant(tenant).starts_with(&keys.tenant_prefix()));
    }
}
