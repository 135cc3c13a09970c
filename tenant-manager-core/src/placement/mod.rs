//! Placement policies: [`LeastLoaded`], the default of a manager with a server list.
//!
//! It keeps the rules of the [`PlacementPolicy`] contract (override, region, capacity)
//! through [`eligible_servers`], and ranks what is left by load per capacity.

use std::cmp::Ordering;

use crate::domain::ServerId;
use crate::error::{Error, Result};
use crate::traits::{PlacementPolicy, PlacementRequest, ServerLoad, eligible_servers};

/// What [`LeastLoaded`] weighs a server by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMetric {
    /// Tenants placed on it.
    #[default]
    Tenants,
    /// Bytes its tenants' storage takes ([`ServerLoad::bytes`]); servers of unknown size rank
    /// by tenants after every server of known size.
    Bytes,
}

/// Places a tenant on the eligible server with the smallest load per unit of capacity: a
/// server of capacity 2000 with 1000 tenants is as loaded as one of capacity 1000 with 500.
/// A server without capacity weighs as much as the largest capacity given (all weigh the same
/// when none is given). Ties go to the first server by id.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLoaded {
    metric: LoadMetric,
}

impl LeastLoaded {
    /// Least loaded by tenant count.
    pub fn by_tenants() -> Self {
        Self {
            metric: LoadMetric::Tenants,
        }
    }

    /// Least loaded by the size of the tenants' storage.
    pub fn by_size() -> Self {
        Self {
            metric: LoadMetric::Bytes,
        }
    }

    /// The metric it weighs servers by.
    pub fn metric(&self) -> LoadMetric {
        self.metric
    }

    /// `a`'s load per capacity compared with `b`'s, by cross-multiplication (exact).
    fn compare(&self, a: &ServerLoad, b: &ServerLoad, unbounded: u64) -> Ordering {
        let weight = |s: &ServerLoad| u128::from(s.spec.capacity.unwrap_or(unbounded).max(1));
        let by = |load_a: u64, load_b: u64| {
            (u128::from(load_a) * weight(b)).cmp(&(u128::from(load_b) * weight(a)))
        };
        let tenants = || by(a.tenants, b.tenants);
        let primary = match self.metric {
            LoadMetric::Tenants => tenants(),
            LoadMetric::Bytes => match (a.bytes, b.bytes) {
                (Some(x), Some(y)) => by(x, y).then_with(tenants),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => tenants(),
            },
        };
        primary.then_with(|| a.spec.id.cmp(&b.spec.id))
    }
}

impl PlacementPolicy for LeastLoaded {
    fn place(&self, request: &PlacementRequest, servers: &[ServerLoad]) -> Result<ServerId> {
        let eligible = eligible_servers(request, servers)?;
        let unbounded = servers
            .iter()
            .filter_map(|s| s.spec.capacity)
            .max()
            .unwrap_or(1);
        eligible
            .into_iter()
            .min_by(|a, b| self.compare(a, b, unbounded))
            .map(|s| s.spec.id.clone())
            .ok_or_else(|| Error::internal("placement found no eligible server"))
    }
}

#[cfg(test)]
mod tests;
