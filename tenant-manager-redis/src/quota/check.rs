//! One rate check as the leased budgets see it: its GCRA parameters, the limit its decision
//! reports, and its cost.

/// GCRA parameters of a check, in microseconds, and the limit its decisions report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Params {
    /// Emission interval.
    pub(super) interval: u64,
    /// Capacity: `limit * interval`.
    pub(super) capacity: u64,
}

/// One check: its parameters, the limit its decision reports, and its cost.
#[derive(Debug, Clone, Copy)]
pub(super) struct Check {
    pub(super) params: Params,
    pub(super) limit: u64,
    pub(super) cost: u64,
}
