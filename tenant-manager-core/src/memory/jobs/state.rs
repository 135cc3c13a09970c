//! The queue's state behind its mutex: every job with where it is (ready, delayed, leased),
//! the orders they leave in, and the dead letters.
//!
//! Ready jobs wait in one lane per tenant; `turns` lists the lanes that hold jobs, in the
//! order they are served: a delivery takes the first lane's oldest job and puts the lane at
//! the back of `turns` while it still holds jobs (round robin, the fairness bound of the
//! [`JobQueue`](crate::traits::JobQueue) contract).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::config::InMemoryJobQueueConfig;
use crate::domain::{JobId, TenantId};
use crate::traits::Job;

#[derive(Clone, Copy)]
pub(super) enum Place {
    Ready,
    Delayed,
    Leased((Instant, u64)),
}

pub(super) struct Entry {
    pub(super) kind: String,
    pub(super) tenant_id: Option<TenantId>,
    pub(super) payload: serde_json::Value,
    pub(super) enqueued_at: OffsetDateTime,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    pub(super) place: Place,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) jobs: HashMap<JobId, Entry>,
    pub(super) lanes: HashMap<Option<TenantId>, VecDeque<JobId>>,
    pub(super) turns: VecDeque<Option<TenantId>>,
    pub(super) ready_len: usize,
    pub(super) delayed: BTreeMap<(Instant, u64), JobId>,
    pub(super) leases: BTreeMap<(Instant, u64), JobId>,
    pub(super) dead: VecDeque<Job>,
    pub(super) next_token: u64,
}

impl State {
    pub(super) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The earliest delayed retry or lease expiry.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        let delayed = self.delayed.keys().next().map(|k| k.0);
        let lease = self.leases.keys().next().map(|k| k.0);
        delayed.into_iter().chain(lease).min()
    }

    /// Moves due retries to the ready list and reclaims expired leases.
    pub(super) fn promote(&mut self, now: Instant, config: &InMemoryJobQueueConfig) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.make_ready(id);
        }
        while let Some(entry) = self.leases.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            let exhausted = self
                .jobs
                .get(&id)
                .is_some_and(|e| e.attempts >= config.max_attempts);
            if exhausted {
                self.dead_letter(id, "visibility timeout expired", config);
            } else {
                self.make_ready(id);
            }
        }
    }

    pub(super) fn make_ready(&mut self, id: JobId) {
        if let Some(entry) = self.jobs.get_mut(&id) {
            entry.place = Place::Ready;
            let lane = self.lanes.entry(entry.tenant_id).or_default();
            if lane.is_empty() {
                self.turns.push_back(entry.tenant_id);
            }
            lane.push_back(id);
            self.ready_len += 1;
        }
    }

    /// Puts `id` in the delayed set until `due`.
    pub(super) fn delay(&mut self, id: JobId, due: Instant) {
        let key = (due, self.token());
        if let Some(entry) = self.jobs.get_mut(&id) {
            entry.place = Place::Delayed;
            self.delayed.insert(key, id);
        }
    }

    /// The oldest job of the lane whose turn it is; the lane goes to the back of the turns
    /// while it still holds jobs.
    fn next_ready(&mut self) -> Option<JobId> {
        let tenant = self.turns.pop_front()?;
        let lane = self.lanes.get_mut(&tenant)?;
        let id = lane.pop_front();
        if lane.is_empty() {
            self.lanes.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        if id.is_some() {
            self.ready_len -= 1;
        }
        id
    }

    /// Delivers the next ready job, leased until `now + visibility`.
    pub(super) fn deliver(&mut self, now: Instant, visibility: Duration) -> Option<Job> {
        let id = self.next_ready()?;
        let token = self.token();
        let key = (now + visibility, token);
        let entry = self.jobs.get_mut(&id)?;
        entry.attempts = entry.attempts.saturating_add(1);
        entry.place = Place::Leased(key);
        let job = Job::new(
            id,
            entry.kind.clone(),
            entry.tenant_id,
            entry.payload.clone(),
            entry.attempts,
            entry.last_error.clone(),
            entry.enqueued_at,
            token.to_string(),
        );
        self.leases.insert(key, id);
        Some(job)
    }

    /// Whether `job` carries the current lease of its id; returns the lease key.
    pub(super) fn current_lease(&self, job: &Job) -> Option<(Instant, u64)> {
        let token: u64 = job.receipt.parse().ok()?;
        match self.jobs.get(&job.id)?.place {
            Place::Leased(key) if key.1 == token => Some(key),
            _ => None,
        }
    }

    /// Moves the current lease of `job` to expire at `until`; `None` for a stale receipt, else
    /// whether the lease now expires earlier than before.
    pub(super) fn extend(&mut self, job: &Job, until: Instant) -> Option<bool> {
        let old = self.current_lease(job)?;
        let new = (until, old.1);
        let entry = self.jobs.get_mut(&job.id)?;
        entry.place = Place::Leased(new);
        self.leases.remove(&old);
        self.leases.insert(new, job.id);
        Some(new < old)
    }

    pub(super) fn dead_letter(&mut self, id: JobId, error: &str, config: &InMemoryJobQueueConfig) {
        let Some(entry) = self.jobs.remove(&id) else {
            return;
        };
        self.dead.push_back(Job::new(
            id,
            entry.kind,
            entry.tenant_id,
            entry.payload,
            entry.attempts,
            Some(error.to_owned()),
            entry.enqueued_at,
            String::new(),
        ));
        while self.dead.len() > config.max_dead_letters {
            if let Some(dropped) = self.dead.pop_front() {
                tracing::warn!(job = %dropped.id, "dead-letter list full; dropped the oldest");
            }
        }
    }
}
