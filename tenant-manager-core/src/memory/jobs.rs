//! `InMemoryJobQueue`: an at-least-once job queue with visibility timeouts, delayed retries and
//! a dead-letter list, for one process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::{JobId, TenantId};
use crate::error::{Error, Result};
use crate::traits::{
    Job, JobQueue, NackOutcome, NewJob, QueueStats, validate_consumer, validate_extension,
};

/// Name of this backend in [`Error::Unavailable`].
const BACKEND: &str = "memory job queue";

/// Longest error message kept with a job, in bytes; longer ones are cut at a character boundary.
pub const MAX_JOB_ERROR_LEN: usize = 2048;

/// Settings of an [`InMemoryJobQueue`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InMemoryJobQueueConfig {
    /// How long a delivered job stays invisible to other consumers (default 30 s).
    pub visibility_timeout: Duration,
    /// Deliveries after which a failing job is dead-lettered (default 5).
    pub max_attempts: u32,
    /// Most jobs held (ready, delayed and in flight); enqueue past it fails (default 100,000).
    pub max_jobs: usize,
    /// Most dead-lettered jobs kept; the oldest are dropped past it (default 10,000).
    pub max_dead_letters: usize,
}

impl Default for InMemoryJobQueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 5,
            max_jobs: 100_000,
            max_dead_letters: 10_000,
        }
    }
}

impl InMemoryJobQueueConfig {
    /// Sets the visibility timeout.
    #[must_use]
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets the deliveries after which a failing job is dead-lettered.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the most jobs held.
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// Sets the most dead-lettered jobs kept.
    #[must_use]
    pub fn with_max_dead_letters(mut self, max_dead_letters: usize) -> Self {
        self.max_dead_letters = max_dead_letters;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first field out of range: `visibility_timeout` (1 ms
    /// to 1 day), `max_attempts` (1 to 1,000), `max_jobs` or `max_dead_letters` (at least 1).
    pub fn validate(&self) -> Result<()> {
        if self.visibility_timeout < Duration::from_millis(1)
            || self.visibility_timeout > Duration::from_secs(86_400)
        {
            return Err(Error::invalid(
                "visibility_timeout",
                "must be between 1 ms and 1 day",
            ));
        }
        if !(1..=1_000).contains(&self.max_attempts) {
            return Err(Error::invalid("max_attempts", "must be 1 to 1000"));
        }
        if self.max_jobs == 0 {
            return Err(Error::invalid("max_jobs", "must be at least 1"));
        }
        if self.max_dead_letters == 0 {
            return Err(Error::invalid("max_dead_letters", "must be at least 1"));
        }
        Ok(())
    }
}

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

/// Where a job is. A lease is keyed `(expiry, token)`, unique because tokens are.
#[derive(Clone, Copy)]
enum Place {
    Ready,
    Delayed,
    Leased((Instant, u64)),
}

struct Entry {
    kind: String,
    tenant_id: Option<TenantId>,
    payload: serde_json::Value,
    enqueued_at: OffsetDateTime,
    attempts: u32,
    last_error: Option<String>,
    place: Place,
}

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Entry>,
    ready: VecDeque<JobId>,
    delayed: BTreeMap<(Instant, u64), JobId>,
    leases: BTreeMap<(Instant, u64), JobId>,
    dead: VecDeque<Job>,
    next_token: u64,
}

impl State {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The earliest delayed retry or lease expiry.
    fn next_timer(&self) -> Option<Instant> {
        let delayed = self.delayed.keys().next().map(|k| k.0);
        let lease = self.leases.keys().next().map(|k| k.0);
        delayed.into_iter().chain(lease).min()
    }

    /// Moves due retries to the ready list and reclaims expired leases.
    fn promote(&mut self, now: Instant, config: &InMemoryJobQueueConfig) {
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

    fn make_ready(&mut self, id: JobId) {
        if let Some(entry) = self.jobs.get_mut(&id) {
            entry.place = Place::Ready;
            self.ready.push_back(id);
        }
    }

    /// Delivers the next ready job, leased until `now + visibility`.
    fn deliver(&mut self, now: Instant, visibility: Duration) -> Option<Job> {
        let id = self.ready.pop_front()?;
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
    fn current_lease(&self, job: &Job) -> Option<(Instant, u64)> {
        let token: u64 = job.receipt.parse().ok()?;
        match self.jobs.get(&job.id)?.place {
            Place::Leased(key) if key.1 == token => Some(key),
            _ => None,
        }
    }

    /// Moves the current lease of `job` to expire at `until`; `None` for a stale receipt, else
    /// whether the lease now expires earlier than before.
    fn extend(&mut self, job: &Job, until: Instant) -> Option<bool> {
        let old = self.current_lease(job)?;
        let new = (until, old.1);
        let entry = self.jobs.get_mut(&job.id)?;
        entry.place = Place::Leased(new);
        self.leases.remove(&old);
        self.leases.insert(new, job.id);
        Some(new < old)
    }

    fn dead_letter(&mut self, id: JobId, error: &str, config: &InMemoryJobQueueConfig) {
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
            state.ready.push_back(id);
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
            let key = (due, state.token());
            if let Some(entry) = state.jobs.get_mut(&job.id) {
                entry.place = Place::Delayed;
            }
            state.delayed.insert(key, job.id);
        }
        drop(state);
        // Wakes one waiter: it takes the job now or re-arms its timer for the retry.
        self.inner.notify.notify_one();
        Ok(NackOutcome::Retried)
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
            count(state.ready.len() + state.delayed.len()),
            count(state.leases.len()),
            count(state.dead.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(config: InMemoryJobQueueConfig) -> InMemoryJobQueue {
        InMemoryJobQueue::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn new_job() -> NewJob {
        NewJob::new("test.job", None, serde_json::json!({})).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn config_is_validated() {
        let field = |c: InMemoryJobQueueConfig| {
            InMemoryJobQueue::new(c)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        let d = InMemoryJobQueueConfig::default;
        assert_eq!(
            field(d().with_visibility_timeout(Duration::ZERO)).as_deref(),
            Some("visibility_timeout")
        );
        assert_eq!(
            field(d().with_max_attempts(0)).as_deref(),
            Some("max_attempts")
        );
        assert_eq!(field(d().with_max_jobs(0)).as_deref(), Some("max_jobs"));
        assert_eq!(
            field(d().with_max_dead_letters(0)).as_deref(),
            Some("max_dead_letters")
        );
        assert_eq!(field(d()), None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_a_retryable_error_until_drained() {
        let q = queue(InMemoryJobQueueConfig::default().with_max_jobs(2));
        for _ in 0..2 {
            q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let err = q.enqueue(new_job()).await.err();
        assert!(err.as_ref().is_some_and(Error::is_retryable), "{err:?}");
        assert_eq!(err.map(|e| e.code()), Some("backend_unavailable"));
        let job = q
            .dequeue("c", Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let job = job.unwrap_or_else(|| panic!("a job is ready"));
        q.ack(&job).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(q.enqueue(new_job()).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_last_lease_is_dead_lettered_and_dead_letters_are_capped() {
        let q = queue(
            InMemoryJobQueueConfig::default()
                .with_visibility_timeout(Duration::from_millis(20))
                .with_max_attempts(1)
                .with_max_dead_letters(2),
        );
        for _ in 0..3 {
            q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        for _ in 0..3 {
            let job = q.dequeue("c", Duration::ZERO).await;
            assert!(job.is_ok_and(|j| j.is_some()));
        }
        let none = q
            .dequeue("c", Duration::from_millis(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            none.is_none(),
            "expired last deliveries are not redelivered"
        );
        let dead = q.dead_letters(10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dead.len(), 2, "the oldest dead letter was dropped");
        assert!(
            dead.iter()
                .all(|j| j.last_error.as_deref() == Some("visibility timeout expired"))
        );
        let stats = q.stats().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats, QueueStats::new(0, 0, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shortening_a_lease_wakes_a_consumer_waiting_for_it() {
        let q = queue(InMemoryJobQueueConfig::default());
        q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
        let held = q
            .dequeue("holder", Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a job is ready"));
        // "other" sleeps towards the 30 s lease expiry until the lease is cut to 1 ms.
        let (again, extended) = tokio::join!(q.dequeue("other", Duration::from_secs(10)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            q.extend(&held, Duration::from_millis(1)).await
        });
        assert!(extended.is_ok_and(|e| e));
        let again = again.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.map(|j| (j.id, j.attempt)), Some((held.id, 2)));
    }

    #[tokio::test]
    async fn long_errors_are_cut_at_a_char_boundary_and_huge_delays_refused() {
        let q = queue(InMemoryJobQueueConfig::default().with_max_attempts(1));
        q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
        let job = q
            .dequeue("c", Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a job is ready"));
        let err = q.nack(&job, "x", Duration::MAX).await.err();
        assert_eq!(
            err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
            Some("delay")
        );
        let long = "é".repeat(MAX_JOB_ERROR_LEN);
        let outcome = q.nack(&job, &long, Duration::ZERO).await;
        assert!(outcome.is_ok_and(|o| o == NackOutcome::DeadLettered));
        let dead = q.dead_letters(1).await.unwrap_or_else(|e| panic!("{e}"));
        let kept = dead
            .first()
            .and_then(|j| j.last_error.clone())
            .unwrap_or_default();
        assert!(kept.len() <= MAX_JOB_ERROR_LEN && kept.len() >= MAX_JOB_ERROR_LEN - 1);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
