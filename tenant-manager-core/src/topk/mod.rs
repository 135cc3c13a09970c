//! Top-K tenants: which tenants send the most requests, with their errors and latencies, in
//! memory bounded by K whatever the number of tenants.
//!
//! [`SpaceSaving`] is the sketch (Metwally et al.): K counters, each with an estimate and the
//! most it may overstate. [`TopTenants`] shards it by tenant (each tenant lives in one shard,
//! so the sketch's guarantees hold for the union), keeps per monitored tenant its errors and
//! a latency histogram, and halves every figure once per `half_life` so that old bursts fade:
//! the figures are exponentially decayed counts, not totals since start.

mod sketch;
mod stats;
mod top;

pub use sketch::{Counter, SpaceSaving};
pub use stats::LATENCY_BOUNDS;
pub use top::{RankBy, TopTenant, TopTenants, TopTenantsConfig};
