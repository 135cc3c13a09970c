//! One key's lease on this instance, as plain state: admitting from it, planning a claim
//! (ending, adapting and giving back the previous lease) and settling the claim's reply. No
//! I/O and no clock of its own: `now` is passed in.

use std::time::{Duration, Instant};

use tenant_manager_core::RateDecision;

use crate::quota::check::{Check, Params};

/// What this instance holds of one key.
#[derive(Debug)]
pub(super) struct Lease {
    /// Parameters the cells (and the cached refusal) were obtained under.
    params: Params,
    /// Cells left to admit from.
    cells: u64,
    /// Cells of the current lease admitted so far.
    used: u64,
    /// When the cells stop being usable; `None` without a lease.
    expires: Option<Instant>,
    /// The TAT the last grant left in Redis, for giving back.
    tat: u64,
    /// Cells Redis had left after the last claim, beyond those leased.
    redis_remaining: u64,
    /// When the key's allowance is full again, as of the last claim (unused cells counted).
    reset_at: Instant,
    /// After a refusal with nothing left: no cell before this.
    blocked_until: Option<Instant>,
    /// Cells the next claim asks for (adaptive, within the cap).
    size: u64,
    /// Claims made (or failed), so waiters see whether one failed while they waited.
    claims: u64,
    /// Whether the last claim found Redis unavailable.
    last_unavailable: bool,
}

impl Default for Lease {
    fn default() -> Self {
        Self {
            params: Params::default(),
            cells: 0,
            used: 0,
            expires: None,
            tat: 0,
            redis_remaining: 0,
            reset_at: Instant::now(),
            blocked_until: None,
            size: 1,
            claims: 0,
            last_unavailable: false,
        }
    }
}

/// One claim to send: cells reserved from the current lease, and what to ask Redis for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    /// Cells of the current lease set aside for this request.
    reserved: u64,
    /// When the reserved cells expire.
    reserved_until: Option<Instant>,
    /// Fewest cells worth granting.
    pub(super) need: u64,
    /// Most cells to grant.
    pub(super) want: u64,
    /// The TAT the previous lease left, to give back against.
    pub(super) give_back_tat: u64,
    /// Microseconds to give back (unused cells times their interval).
    pub(super) give_back_us: u64,
    /// Unused cells of the previous lease offered back.
    pub(super) give_back_cells: u64,
}

/// The lease script's reply.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    /// Cells granted (0: refused).
    pub(super) granted: u64,
    /// Cells Redis has left after the claim.
    pub(super) available: u64,
    /// Time until the key's allowance is full again.
    pub(super) backlog: Duration,
    /// When refused: time until `need` cells are available.
    pub(super) retry: Duration,
    /// The key's TAT after a grant.
    pub(super) tat: u64,
    /// Whether the offered cells were given back.
    pub(super) given_back: bool,
}

/// When a claim was sent, and so when its cells expire.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grant {
    /// Just before the claim was sent.
    pub(super) sent: Instant,
    /// When the granted cells stop being usable.
    pub(super) expires: Instant,
}

pub(super) fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl Lease {
    /// Usable cells at `now`, whatever the parameters.
    pub(super) fn held(&self, now: Instant) -> u64 {
        if self.expires.is_some_and(|e| now < e) {
            self.cells
        } else {
            0
        }
    }

    /// Claims made so far (failed ones included).
    pub(super) fn claims(&self) -> u64 {
        self.claims
    }

    /// Whether the last claim found Redis unavailable.
    pub(super) fn last_unavailable(&self) -> bool {
        self.last_unavailable
    }

    /// Counts a claim that came back, found Redis unavailable or not.
    pub(super) fn record_claim(&mut self, unavailable: bool) {
        self.claims += 1;
        self.last_unavailable = unavailable;
    }

    /// Whether the lease's cells can be spent on a check with `params` at `now`.
    fn live(&self, params: Params, now: Instant) -> bool {
        self.params == params && self.expires.is_some_and(|e| now < e)
    }

    fn usable(&self, params: Params, now: Instant) -> u64 {
        if self.live(params, now) {
            self.cells
        } else {
            0
        }
    }

    /// Nothing worth keeping: no usable cells and no refusal to remember.
    pub(super) fn idle(&self, now: Instant) -> bool {
        let holds = self.cells > 0 && self.expires.is_some_and(|e| now < e);
        let blocked = self.blocked_until.is_some_and(|b| now < b);
        !holds && !blocked
    }

    /// Decides without Redis: admitted from the lease, or refused while a refusal holds.
    pub(super) fn local(&mut self, check: Check, now: Instant) -> Option<RateDecision> {
        let Check {
            params,
            limit,
            cost,
        } = check;
        let held = self.usable(params, now);
        if held >= cost {
            self.cells -= cost;
            self.used += cost;
            return Some(self.admitted(params, limit, now));
        }
        let until = self
            .blocked_until
            .filter(|&b| self.params == params && now < b)?;
        let retry = (until - now) + micros((cost - held - 1).saturating_mul(params.interval));
        Some(RateDecision::new(
            false,
            limit,
            held.min(limit),
            self.reset_after(params, held, now),
            Some(retry),
        ))
    }

    fn admitted(&self, params: Params, limit: u64, now: Instant) -> RateDecision {
        RateDecision::new(
            true,
            limit,
            self.redis_remaining.saturating_add(self.cells).min(limit),
            self.reset_after(params, self.cells, now),
            None,
        )
    }

    /// Time until the allowance is full again, not counting the `held` cells still unused.
    fn reset_after(&self, params: Params, held: u64, now: Instant) -> Duration {
        self.reset_at
            .saturating_duration_since(now)
            .saturating_sub(micros(held.saturating_mul(params.interval)))
    }

    /// Ends the current lease if it is used up or no longer usable (adapting the next size,
    /// and giving back unused cells), sets aside its cells for this request, and says what
    /// to claim.
    pub(super) fn plan(&mut self, check: Check, cap: u64, now: Instant) -> Claim {
        let Check { params, cost, .. } = check;
        let mut claim = Claim {
            reserved: 0,
            reserved_until: None,
            need: cost,
            want: cost,
            give_back_tat: 0,
            give_back_us: 0,
            give_back_cells: 0,
        };
        if self.expires.is_some() {
            if self.cells == 0 {
                // Used up before it expired: the key is busy here.
                self.size = self.size.saturating_mul(2);
                self.expires = None;
            } else if !self.live(params, now) {
                // Expired (or the limit changed) with cells left: lease what was used.
                self.size = self.used.max(1);
                claim.give_back_tat = self.tat;
                claim.give_back_us = self.cells.saturating_mul(self.params.interval);
                claim.give_back_cells = self.cells;
                self.cells = 0;
                self.expires = None;
            } else {
                claim.reserved = self.cells;
                claim.reserved_until = self.expires;
                self.cells = 0;
            }
        }
        self.size = self.size.clamp(1, cap);
        claim.need = cost - claim.reserved;
        claim.want = self.size.max(claim.need);
        claim
    }

    /// Puts cells set aside for a claim that failed back into the lease, if still usable.
    pub(super) fn restore(&mut self, claim: &Claim, now: Instant) {
        if claim.reserved > 0
            && claim.reserved_until == self.expires
            && claim.reserved_until.is_some_and(|e| now < e)
        {
            self.cells += claim.reserved;
        }
    }

    /// Applies a claim's reply and decides the request.
    pub(super) fn settle(
        &mut self,
        check: Check,
        claim: &Claim,
        reply: &Reply,
        grant: Grant,
        now: Instant,
    ) -> RateDecision {
        let Check {
            params,
            limit,
            cost,
        } = check;
        let sent = grant.sent;
        self.params = params;
        self.redis_remaining = reply.available;
        self.reset_at = sent + reply.backlog;
        if reply.granted == 0 {
            self.restore(claim, now);
            let held = self.usable(params, now);
            if reply.available == 0 {
                // Nothing left at all: ask again once one cell is due.
                let one = reply
                    .retry
                    .saturating_sub(micros((claim.need - 1).saturating_mul(params.interval)));
                self.blocked_until = Some(sent + one);
            }
            return RateDecision::new(
                false,
                limit,
                reply.available.saturating_add(held).min(limit),
                self.reset_after(params, held, now),
                Some(reply.retry),
            );
        }
        // The grant covers what the cells set aside do not (the script grants `need` or
        // nothing). Those cells were usable when set aside, which is when they were spent.
        self.blocked_until = None;
        self.tat = reply.tat;
        self.expires = Some(grant.expires);
        self.cells = (claim.reserved + reply.granted).saturating_sub(cost);
        self.used = cost;
        self.admitted(params, limit, now)
    }
}

#[allow(clippy::expect_used)]
#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(1);

    /// 100 per 100 s: one cell per second.
    fn check(cost: u64) -> Check {
        Check {
            params: Params {
                interval: 1_000_000,
                capacity: 100_000_000,
            },
            limit: 100,
            cost,
        }
    }

    fn granted(cells: u64, available: u64) -> Reply {
        Reply {
            granted: cells,
            available,
            backlog: Duration::from_secs(100 - available),
            retry: Duration::ZERO,
            tat: 1_000 + cells,
            given_back: false,
        }
    }

    /// Plans and settles one claim answered by `reply`, at `now`.
    fn claim(lease: &mut Lease, c: Check, reply: Reply, now: Instant) -> (Claim, RateDecision) {
        let planned = lease.plan(c, 8, now);
        let grant = Grant {
            sent: now,
            expires: now + TTL,
        };
        let decision = lease.settle(c, &planned, &reply, grant, now);
        (planned, decision)
    }

    #[test]
    fn leases_double_while_used_up_and_admit_locally_with_the_remaining_of_both() {
        let (mut lease, now) = (Lease::default(), Instant::now());
        assert!(lease.local(check(1), now).is_none(), "nothing leased yet");
        let (c, d) = claim(&mut lease, check(1), granted(1, 99), now);
        assert_eq!((c.need, c.want), (1, 1));
        assert_eq!((d.allowed, d.remaining), (true, 99));
        let (c, d) = claim(&mut lease, check(1), granted(2, 97), now);
        assert_eq!(c.want, 2, "used up: twice the size");
        assert_eq!(d.remaining, 98, "97 in Redis, 1 in hand");
        let d = lease.local(check(1), now).expect("from the lease");
        assert!(d.allowed && d.remaining == 97);
        assert!(lease.local(check(1), now).is_none());
        for want in [4, 8, 8] {
            let (c, _) = claim(&mut lease, check(1), granted(want, 50), now);
            assert_eq!(c.want, want, "doubling within the cap of 8");
            for _ in 1..want {
                assert!(lease.local(check(1), now).is_some_and(|d| d.allowed));
            }
        }
    }

    #[test]
    fn an_expired_lease_offers_its_unused_cells_back_and_shrinks_to_what_was_used() {
        let (mut lease, now) = (Lease::default(), Instant::now());
        lease.size = 8;
        claim(&mut lease, check(1), granted(8, 50), now);
        lease.local(check(1), now).expect("admitted");
        assert_eq!(lease.held(now), 6);
        let later = now + TTL;
        assert_eq!(lease.held(later), 0);
        assert!(
            lease.local(check(1), later).is_none(),
            "expired cells are not spent"
        );
        let c = lease.plan(check(1), 8, later);
        assert_eq!(c.give_back_cells, 6);
        assert_eq!(c.give_back_us, 6_000_000);
        assert_eq!(c.give_back_tat, 1_008);
        assert_eq!(c.want, 2, "two were used");
    }

    #[test]
    fn a_refusal_with_nothing_left_is_remembered_until_one_cell_is_due() {
        let (mut lease, now) = (Lease::default(), Instant::now());
        let refused = Reply {
            granted: 0,
            available: 0,
            backlog: Duration::from_secs(100),
            retry: Duration::from_millis(300),
            tat: 0,
            given_back: false,
        };
        let (_, d) = claim(&mut lease, check(1), refused, now);
        assert!(!d.allowed && d.retry_after == Some(Duration::from_millis(300)));
        let soon = now + Duration::from_millis(100);
        let d = lease.local(check(1), soon).expect("refused locally");
        assert!(!d.allowed && d.remaining == 0);
        assert_eq!(d.retry_after, Some(Duration::from_millis(200)));
        let d = lease.local(check(3), soon).expect("refused locally");
        assert_eq!(
            d.retry_after,
            Some(Duration::from_millis(2_200)),
            "two more cells"
        );
        let other_limit = Check {
            limit: 50,
            ..check(1)
        };
        let other_limit = Check {
            params: Params {
                interval: 2_000_000,
                ..other_limit.params
            },
            ..other_limit
        };
        assert!(
            lease.local(other_limit, soon).is_none(),
            "another limit asks Redis"
        );
        assert!(
            lease
                .local(check(1), now + Duration::from_millis(300))
                .is_none()
        );
    }

    #[test]
    fn cells_in_hand_are_set_aside_for_a_larger_cost_and_merged_with_the_grant() {
        let (mut lease, now) = (Lease::default(), Instant::now());
        lease.size = 4;
        claim(&mut lease, check(1), granted(4, 50), now);
        assert_eq!(lease.held(now), 3);
        let (c, d) = claim(&mut lease, check(5), granted(4, 46), now);
        assert_eq!((c.reserved, c.need, c.want), (3, 2, 4));
        assert_eq!((d.allowed, d.remaining), (true, 48));
        assert_eq!(lease.held(now), 2);
    }

    #[test]
    fn cells_set_aside_are_put_back_when_the_claim_is_refused_and_still_usable() {
        let (mut lease, now) = (Lease::default(), Instant::now());
        lease.size = 4;
        claim(&mut lease, check(1), granted(4, 50), now);
        let refused = Reply {
            granted: 0,
            available: 1,
            backlog: Duration::from_secs(99),
            retry: Duration::from_secs(1),
            tat: 0,
            given_back: false,
        };
        let (c, d) = claim(&mut lease, check(5), refused, now);
        assert_eq!((c.reserved, c.need), (3, 2));
        assert!(!d.allowed);
        assert_eq!(d.remaining, 4, "1 in Redis, 3 in hand");
        assert_eq!(lease.held(now), 3, "put back");
        let (c, _) = claim(&mut lease, check(5), refused, now + TTL);
        assert_eq!(
            (c.reserved, c.give_back_cells),
            (0, 3),
            "expired: offered back"
        );
        assert_eq!(lease.held(now + TTL), 0);
    }
}
