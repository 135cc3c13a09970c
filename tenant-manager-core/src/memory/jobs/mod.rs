//! `InMemoryJobQueue`: an at-least-once job queue with visibility timeouts, delayed retries and
//! a dead-letter list, for one process.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::JobId;
use crate::error::{Error, Result};
use crate::traits::{
    Job, JobQueue, NackOutcome, NewJob, QueueStats, validate_consumer, validate_delay,
    validate_extension,
};

mod config;
mod state;

pub use config::{InMemoryJobQueueConfig, MAX_JOB_ERROR_LEN};

use self::state::{Entry, Place, State};

/// Name of this backend in [`Error::Unavailable`].
const BACKEND: &str = "memory job queue";

/// The queue holds `max_jobs` jobs already.
#[derive(Debug, thiserror::Error)]
#[error("job queue is full ({max_jobs} jobs)")]
struct QueueFull {
    max_jobs: usize,
}

/// A job queue for one process, obeying the [`JobQueue`] contract.
///
/// - A delivered job is leased for the visibility timeout; once it passes, the next `dequeue`
///   reclaims the job and delivers it again with `attempt + 1` (and a new receipt, so the first
///   consumer's `ack`/`nack` become no-ops). A job whose lease expires after its last allowed
///   delivery is dead-lettered with the error `visibility timeout expired`.
/// - `extend` moves the current lease's expiry to `now + visibility` (same receipt), waking a
///   waiting consumer when the lease got shorter.
/// - Ready jobs wait in one lane per tenant and deliveries take the lanes in turn, so one
///   tenant's flood delays another tenant's next job by at most one delivery per tenant with
///   ready jobs (the fairness bound of the [`JobQueue`] contract).
/// - `release` hands a delivery back without counting it (its attempt counter goes back).
/// - `dequeue` waits on a [`Notify`] and on the next timer (delayed retry or lease expiry), so
///   waiting consumers cost nothing until there is work.
/// - Memory is bounded: at most [`max_jobs`](InMemoryJobQueueConfig::max_jobs) jobs are held
///   and `enqueue` past that returns [`Error::Unavailable`] (retryable: consumers drain the
///   queue); at most [`max_dead_letters`](InMemoryJobQueueConfig::max_dead_letters) dead letters
///   are kept, dropping the oldest; error messages are cut to [`MAX_JOB_ERROR_LEN`] bytes.
///
/// Jobs live as long as the process: for durability across restarts use a backend queue (the
/// Redis queue). State sits behind one mutex per queue, held for a few map operations and never
/// across an await. Clones share the same queue.
#[derive(Clone)]
pub struct InMemoryJobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    notify: Notify,
    config: InMemoryJobQueueConfig,
}

impl InMemoryJobQueue {
    /// A queue with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the config does not validate.
    pub fn new(config: InMemoryJobQueueConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::unchecked(config))
    }

    fn unchecked(config: InMemoryJobQueueConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                config,
            }),
        }
    }

    /// The settings of this queue.
    pub fn config(&self) -> &InMemoryJobQueueConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the data if a panic ever did.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One delivery attempt; `Err` carries the instant to wake up at, if any timer is pending.
    fn try_deliver(&self) -> std::result::Result<Job, Option<Instant>> {
        let now = Instant::now();
        let mut state = self.state();
        state.promote(now, &self.inner.config);
        let timer_before = state.next_timer();
        match state.deliver(now, self.inner.config.visibility_timeout) {
            Some(job) => {
                // A lease that became the earliest timer: let one waiter re-arm for it.
                if timer_before.is_none() {
                    self.inner.notify.notify_one();
                }
                Ok(job)
            }
            None => Err(timer_before),
        }
    }
}

impl Default for InMemoryJobQueue {
    /// A queue with the default (valid) config.
    fn default() -> Self {
        Self::unchecked(InMemoryJobQueueConfig::default())
    }
}

impl fmt::Debug for InMemoryJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryJobQueue")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// `message` cut to at most [`MAX_JOB_ERROR_LEN`] bytes at a character boundary.
fn bounded_error(message: &str) -> String {
    crate::domain::truncate_utf8(message, MAX_JOB_ERROR_LEN).to_owned()
}

#[async_trait]
impl JobQueue for InMemoryJobQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        let id = JobId::new();
        let due = match job.delay {
            Some(delay) => Some(
                Instant::now()
                    .checked_add(delay)
                    .ok_or_else(|| Error::invalid("delay", "is too long"))?,
            ),
            None => None,
        };
        {
            let mut state = self.state();
            let max_jobs = self.inner.config.max_jobs;
            if state.jobs.len() >= max_jobs {
                return Err(Error::unavailable(BACKEND, QueueFull { max_jobs }));
            }
            state.jobs.insert(
                id,
                Entry {
                    kind: job.kind,
                    tenant_id: job.tenant_id,
                    payload: job.payload,
                    enqueued_at: OffsetDateTime::now_utc(),
                    attempts: 0,
                    last_error: None,
                    place: Place::Ready,
                },
            );
            match due {
                Some(due) => state.delay(id, due),
                None => state.make_ready(id),
            }
        }
        self.inner.notify.notify_one();
        Ok(id)
    }

    async fn dequeue(&self, consumer: &str, wait: Duration) -> Result<Option<Job>> {
        validate_consumer(consumer)?;
        let deadline = Instant::now().checked_add(wait);
        loop {
            // Registered before looking, so an enqueue in between is not missed.
            let notified = self.inner.notify.notified();
            let timer = match self.try_deliver() {
                Ok(job) => return Ok(Some(job)),
                Err(timer) => timer,
            };
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            match deadline.into_iter().chain(timer).min() {
                Some(wake) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        let mut state = self.state();
        if let Some(lease) = state.current_lease(job) {
            state.leases.remove(&lease);
            state.jobs.remove(&job.id);
        }
        Ok(())
    }

    async fn nack(&self, job: &Job, error: &str, delay: Duration) -> Result<NackOutcome> {
        let now = Instant::now();
        let due = now
            .checked_add(delay)
            .ok_or_else(|| Error::invalid("delay", "is too long"))?;
        let error = bounded_error(error);
        let config = &self.inner.config;
        let mut state = self.state();
        let Some(lease) = state.current_lease(job) else {
            // Reclaimed by another consumer: its delivery decides.
            return Ok(NackOutcome::Retried);
        };
        state.leases.remove(&lease);
        let exhausted = state
            .jobs
            .get(&job.id)
            .is_some_and(|e| e.attempts >= config.max_attempts);
        if exhausted {
            state.dead_letter(job.id, &error, config);
            return Ok(NackOutcome::DeadLettered);
        }
        if let Some(entry) = state.jobs.get_mut(&job.id) {
            entry.last_error = Some(error);
        }
        if delay.is_zero() {
            state.make_ready(job.id);
        } else {
            state.delay(job.id, due);
        }
        drop(state);
        // Wakes one waiter: it takes the job now or re-arms its timer for the retry.
        self.inner.notify.notify_one();
        Ok(NackOutcome::Retried)
    }

    async fn release(&self, job: &Job, delay: Duration) -> Result<bool> {
        validate_delay(delay)?;
        let due = Instant::now()
            .checked_add(delay)
            .ok_or_else(|| Error::invalid("delay", "is too long"))?;
        let mut state = self.state();
        let Some(lease) = state.current_lease(job) else {
            return Ok(false);
        };
        state.leases.remove(&lease);
        if let Some(entry) = state.jobs.get_mut(&job.id) {
            entry.attempts = entry.attempts.saturating_sub(1);
        }
        if delay.is_zero() {
            state.make_ready(job.id);
        } else {
            state.delay(job.id, due);
        }
        drop(state);
        self.inner.notify.notify_one();
        Ok(true)
    }

    async fn extend(&self, job: &Job, visibility: Duration) -> Result<bool> {
        validate_extension(visibility, self.inner.config.visibility_timeout)?;
        let until = Instant::now() + visibility;
        let extended = self.state().extend(job, until);
        if extended == Some(true) {
            // The lease now ends before the timer a waiting consumer may sleep on: re-arm it.
            self.inner.notify.notify_one();
        }
        Ok(extended.is_some())
    }

    fn visibility_timeout(&self) -> Duration {
        self.inner.config.visibility_timeout
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Job>> {
        Ok(self.state().dead.iter().take(limit).cloned().collect())
    }

    async fn stats(&self) -> Result<QueueStats> {
        let state = self.state();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(QueueStats::new(
            count(state.ready_len + state.delayed.len()),
            count(state.leases.len()),
            count(state.dead.len()),
        ))
    }
}

#[cfg(test)]
mod tests;
