//! argon2id password hashing on a few dedicated threads that reuse their memory, with a
//! short bounded wait for a free thread before a request is shed.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use argon2::Params;
use tokio::sync::OwnedSemaphorePermit;

use super::hash_pool::HashPool;
use super::phc;
use crate::domain::PasswordHash;
use crate::error::{Error, Result};

/// Longest password, in bytes, the hasher accepts (far above any policy; bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Most hashing threads, whatever the configuration says.
const MAX_CONCURRENT_LIMIT: usize = 1024;

/// Longest accepted wait for a free hashing thread.
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(60);

/// Parameters of [`PasswordHasher`].
///
/// The default is OWASP's recommendation for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
/// Cheaper parameters (for tests) must be set explicitly with [`HasherConfig::with_params`];
/// the hasher logs a warning when it runs below the OWASP floor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HasherConfig {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Degree of parallelism (`p`).
    pub parallelism: u32,
    /// Dedicated hashing threads, which is also the most hashes computed at once. Capped at
    /// half the CPUs (at least 1): see [`HasherConfig::thread_cap`].
    pub max_concurrent: usize,
    /// How long a hash waits for a free thread before it is refused with
    /// [`Error::Unavailable`] (backend `password_hasher`, answered `503` + `Retry-After`).
    pub queue_wait: Duration,
}

impl HasherConfig {
    /// OWASP memory cost: 19 MiB.
    pub const OWASP_MEMORY_KIB: u32 = 19_456;
    /// OWASP iterations.
    pub const OWASP_ITERATIONS: u32 = 2;
    /// OWASP parallelism.
    pub const OWASP_PARALLELISM: u32 = 1;

    /// Default wait for a free hashing thread.
    pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(1);

    /// The OWASP parameters, on [`HasherConfig::thread_cap`] threads, waiting at most
    /// [`HasherConfig::DEFAULT_QUEUE_WAIT`] for one.
    pub fn owasp() -> Self {
        Self {
            memory_kib: Self::OWASP_MEMORY_KIB,
            iterations: Self::OWASP_ITERATIONS,
            parallelism: Self::OWASP_PARALLELISM,
            max_concurrent: Self::thread_cap(),
            queue_wait: Self::DEFAULT_QUEUE_WAIT,
        }
    }

    /// Most hashing threads on this machine: half the CPUs, at least 1, so that hashing
    /// never takes every core from the rest of the service.
    pub fn thread_cap() -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        (cpus / 2).max(1)
    }

    /// Sets the argon2id costs explicitly (memory in KiB, iterations, lanes).
    #[must_use]
    pub fn with_params(mut self, memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        self.memory_kib = memory_kib;
        self.iterations = iterations;
        self.parallelism = parallelism;
        self
    }

    /// Sets how many threads hash (capped at [`HasherConfig::thread_cap`]).
    #[must_use]
    pub fn with_max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// Sets how long a hash waits for a free thread before it is shed.
    #[must_use]
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    /// Whether these parameters are at least as strong as OWASP's.
    pub fn meets_owasp(&self) -> bool {
        self.memory_kib >= Self::OWASP_MEMORY_KIB
            && self.iterations >= Self::OWASP_ITERATIONS
            && self.parallelism >= Self::OWASP_PARALLELISM
    }

    fn params(&self) -> Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(|e| {
            Error::invalid("hasher_params", format!("are not valid argon2 costs: {e}"))
        })
    }
}

impl Default for HasherConfig {
    fn default() -> Self {
        Self::owasp()
    }
}

/// Hashes and verifies passwords with argon2id.
///
/// Hashes run on [`HasherConfig::max_concurrent`] dedicated threads (at most half the CPUs),
/// each reusing one memory buffer of the configured cost, so a login flood neither takes every
/// core nor grows the process's memory. A hash that finds no thread free within
/// [`HasherConfig::queue_wait`] is refused with a retryable [`Error::Unavailable`] instead of
/// queueing until the caller times out. The async workers never block. Cheap to clone (one
/// `Arc`); the threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: HasherConfig,
    params: Params,
    pool: HashPool,
    /// A PHC string with the configured costs that no password matches, verified in place of
    /// a missing user's hash so that an unknown e-mail costs as much as a wrong password.
    dummy: String,
}

/// Counters of a [`PasswordHasher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HasherStats {
    /// Dedicated hashing threads.
    pub threads: usize,
    /// Threads free right now.
    pub available: usize,
    /// Memory buffers allocated so far: at most one per thread, for the life of the hasher.
    pub buffers_allocated: u64,
    /// Hashes that needed more memory than the buffer (stored with a larger memory cost)
    /// and got a one-off allocation.
    pub oversize_allocations: u64,
    /// Hashes and verifications completed.
    pub completed: u64,
    /// Hashes refused because no thread was free within the queue wait.
    pub shed: u64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A hashing thread reserved for one verification: what [`PasswordHasher::reserve`] returns.
///
/// The thread stays reserved until the slot is dropped, also after its verification: a caller
/// that must record the outcome first (a failed login's budget) holds it until then. Dropping
/// it unused frees the thread.
#[must_use]
pub struct HashSlot {
    hasher: PasswordHasher,
    /// `None` only while a verification runs, or after one failed to come back.
    permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for HashSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashSlot").finish_non_exhaustive()
    }
}

impl HashSlot {
    /// [`PasswordHasher::verify_or_dummy`] on the reserved thread, which stays reserved by the
    /// slot afterwards.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`]; `Internal` when the slot was already spent by a
    /// verification that failed.
    pub async fn verify_or_dummy(
        &mut self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool> {
        let permit = self
            .permit
            .take()
            .ok_or_else(|| Error::internal("hashing slot already spent"))?;
        let inner = &self.hasher.inner;
        let known = hash.is_some();
        let phc = hash.map_or_else(|| inner.dummy.clone(), |h| h.as_phc().to_owned());
        // An over-long password can match nothing; still spend a hash on a truncated copy so
        // that its timing says nothing either.
        let mut password = password.as_bytes().to_vec();
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        password.truncate(MAX_PASSWORD_BYTES);
        let (matched, permit) = inner
            .pool
            .run_held(permit, move |memory| phc::verify(&password, &phc, memory))
            .await?;
        self.permit = Some(permit);
        Ok(known && !too_long && matched)
    }
}

impl PasswordHasher {
    /// A hasher with the given parameters; starts its threads.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `hasher_params` for costs argon2 refuses, on
    /// `hasher_max_concurrent` when it is 0 or above 1024, or on `hasher_queue_wait` above
    /// 60 s; [`Error::Internal`] when a thread cannot be started.
    pub fn new(config: HasherConfig) -> Result<Self> {
        let params = config.params()?;
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&config.max_concurrent) {
            return Err(Error::invalid("hasher_max_concurrent", "must be 1 to 1024"));
        }
        if config.queue_wait > MAX_QUEUE_WAIT {
            return Err(Error::invalid("hasher_queue_wait", "must be at most 60 s"));
        }
        if !config.meets_owasp() {
            tracing::warn!(
                memory_kib = config.memory_kib,
                iterations = config.iterations,
                parallelism = config.parallelism,
                "password hasher configured below the OWASP argon2id parameters"
            );
        }
        let cap = HasherConfig::thread_cap();
        if config.max_concurrent > cap {
            tracing::warn!(
                asked = config.max_concurrent,
                threads = cap,
                "password hashing threads capped at half the CPUs"
            );
        }
        let threads = config.max_concurrent.min(cap);
        let dummy = phc::dummy(&params)?;
        let pool = HashPool::start(threads, params.block_count(), config.queue_wait)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                params,
                pool,
                dummy,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &HasherConfig {
        &self.inner.config
    }

    /// How many threads hash (the configured number, capped at half the CPUs).
    pub fn threads(&self) -> usize {
        self.inner.pool.threads()
    }

    /// The hasher's counters.
    pub fn stats(&self) -> HasherStats {
        let pool = &self.inner.pool;
        let counters = &pool.counters;
        HasherStats {
            threads: pool.threads(),
            available: pool.available(),
            buffers_allocated: counters.buffers.load(Ordering::Relaxed),
            oversize_allocations: counters.oversize.load(Ordering::Relaxed),
            completed: counters.completed.load(Ordering::Relaxed),
            shed: counters.shed.load(Ordering::Relaxed),
        }
    }

    /// Hashes a password into an argon2id PHC string with a fresh random salt.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `password` when it is longer than [`MAX_PASSWORD_BYTES`];
    /// [`Error::Unavailable`] (backend `password_hasher`, retryable) when no hashing thread is
    /// free within the queue wait; [`Error::Internal`] when hashing fails or no tokio runtime
    /// is running.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash> {
        check_length(password)?;
        let permit = self.inner.pool.admit().await?;
        let params = self.inner.params.clone();
        let password = password.as_bytes().to_vec();
        let phc = self
            .inner
            .pool
            .run(permit, move |memory| phc::hash(&params, &password, memory))
            .await?;
        Ok(PasswordHash::from_phc(phc))
    }

    /// Verifies a password against a stored hash.
    ///
    /// # Errors
    /// [`Error::Internal`] when the stored hash is not an argon2id PHC string within sane
    /// costs (a corrupted record), or when no tokio runtime is running;
    /// [`Error::Unavailable`] (backend `password_hasher`) when no hashing thread is free
    /// within the queue wait.
    pub async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<bool> {
        self.verify_or_dummy(password, Some(hash)).await
    }

    /// Verifies a password against `hash`, or, when there is no user (`None`), against a
    /// dummy hash with the same costs, so both cases take the same time. Always `false` for
    /// `None`.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`].
    pub async fn verify_or_dummy(
        &self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool> {
        self.reserve().await?.verify_or_dummy(password, hash).await
    }

    /// Reserves a hashing thread for one verification, waiting at most the queue wait: lets a
    /// caller check something else (a failed-login limit) only once the hash is sure to run,
    /// so that no more verifications than threads pass such a check unaccounted.
    ///
    /// # Errors
    /// [`Error::Unavailable`] (backend `password_hasher`) when no thread is free in time;
    /// [`Error::Internal`] when no tokio runtime is running.
    pub async fn reserve(&self) -> Result<HashSlot> {
        let permit = self.inner.pool.admit().await?;
        Ok(HashSlot {
            hasher: self.clone(),
            permit: Some(permit),
        })
    }

    /// Whether a stored hash was made with other costs than the configured ones (and should
    /// be replaced at the next successful login).
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok((_, stored)) = phc::parse_stored(hash.as_phc()) else {
            return true;
        };
        let current = &self.inner.params;
        stored.m_cost() != current.m_cost()
            || stored.t_cost() != current.t_cost()
            || stored.p_cost() != current.p_cost()
    }
}

fn check_length(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid("password", "must be at most 4096 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owasp_is_the_default() {
        let config = HasherConfig::default();
        assert_eq!(
            (config.memory_kib, config.iterations, config.parallelism),
            (19_456, 2, 1)
        );
        assert!(config.meets_owasp());
        assert!(!config.with_params(8, 1, 1).meets_owasp());
    }
}
