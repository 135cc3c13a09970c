//! The hashing threads: a fixed set of dedicated threads, each keeping one argon2 memory
//! buffer of the configured size for its whole life, behind an admission with a short wait.
//!
//! Why dedicated threads: argon2id allocates its whole memory cost (19 MiB with OWASP's
//! parameters) per hash. Freed on one of tokio's many blocking threads, that memory stays in
//! the thread's malloc arena, so a login flood left the process hundreds of MiB larger for
//! good. Here each thread allocates its buffer once, on its first hash, and reuses it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::phc::{FreshMemory, Memory, alloc_blocks};
use crate::error::{Error, Result};

/// Counter of logins and registrations shed because no hashing thread was free in time.
pub(super) const SHED_TOTAL: &str = "password_hash_shed_total";

/// Work for a hashing thread.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// Counters of a [`HashPool`], shared with its threads.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) buffers: AtomicU64,
    pub(super) oversize: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) shed: AtomicU64,
}

/// The memory of one hashing thread: one buffer of the configured block count, allocated on
/// first use and kept; hashes needing more (a stored hash with a larger memory cost) get
/// memory of their own for that one hash.
pub(super) struct Workspace {
    buffer: Vec<Block>,
    blocks: usize,
    counters: Arc<Counters>,
}

impl Memory for Workspace {
    fn with_blocks<T>(&mut self, count: usize, work: impl FnOnce(&mut [Block]) -> T) -> Result<T> {
        if count > self.blocks {
            self.counters.oversize.fetch_add(1, Ordering::Relaxed);
            return FreshMemory.with_blocks(count, work);
        }
        if self.buffer.len() < self.blocks {
            self.buffer = alloc_blocks(self.blocks)?;
            self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        }
        let blocks = self
            .buffer
            .get_mut(..count)
            .ok_or_else(|| Error::internal("hashing buffer too small"))?;
        Ok(work(blocks))
    }
}

/// A fixed set of hashing threads and the admission in front of them.
pub(super) struct HashPool {
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    threads: usize,
    queue_wait: Duration,
    pub(super) counters: Arc<Counters>,
}

/// The refusal of a hash when no thread was free within the wait.
#[derive(Debug, thiserror::Error)]
#[error("all {threads} password hashing threads stayed busy for {waited:?}")]
pub(super) struct Overloaded {
    threads: usize,
    waited: Duration,
}

impl HashPool {
    /// Starts `threads` threads whose buffers hold `blocks` argon2 blocks each; a hash waits at
    /// most `queue_wait` for a free thread. The threads end when the pool is dropped.
    ///
    /// # Errors
    /// [`Error::Internal`] when a thread cannot be started.
    pub(super) fn start(threads: usize, blocks: usize, queue_wait: Duration) -> Result<Self> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let counters = Arc::new(Counters::default());
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let workspace = Workspace {
                buffer: Vec::new(),
                blocks,
                counters: Arc::clone(&counters),
            };
            std::thread::Builder::new()
                .name(format!("tm-argon2-{index}"))
                .spawn(move || serve(&receiver, workspace))
                .map_err(|e| {
                    Error::internal_with("could not start a password hashing thread", e)
                })?;
        }
        Ok(Self {
            jobs,
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            queue_wait,
            counters,
        })
    }

    /// How many threads hash.
    pub(super) fn threads(&self) -> usize {
        self.threads
    }

    /// Hashing threads free right now.
    pub(super) fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Waits up to the queue wait for a free thread.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on backend `password_hasher` when none is free in time;
    /// [`Error::Internal`] outside a tokio runtime.
    pub(super) async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal_with("password hashing needs a tokio runtime", e))?;
        let acquire = Arc::clone(&self.permits).acquire_owned();
        match tokio::time::timeout(self.queue_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(Error::internal_with("password hasher closed", closed)),
            Err(_elapsed) => {
                self.counters.shed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(SHED_TOTAL).increment(1);
                Err(Error::unavailable(
                    "password_hasher",
                    Overloaded {
                        threads: self.threads,
                        waited: self.queue_wait,
                    },
                ))
            }
        }
    }

    /// Runs `work` on a hashing thread under `permit` and returns its result.
    ///
    /// # Errors
    /// What `work` returns; [`Error::Internal`] when the thread is gone or `work` panicked.
    pub(super) async fn run<T, F>(&self, permit: OwnedSemaphorePermit, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Workspace) -> Result<T> + Send + 'static,
    {
        self.run_held(permit, work).await.map(|(out, _permit)| out)
    }

    /// [`run`](Self::run), handing `permit` back with the result, so that the caller holds
    /// the thread until it has acted on the result. When the caller stopped waiting, the
    /// permit goes with the undelivered reply as soon as the work is done.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub(super) async fn run_held<T, F>(
        &self,
        permit: OwnedSemaphorePermit,
        work: F,
    ) -> Result<(T, OwnedSemaphorePermit)>
    where
        T: Send + 'static,
        F: FnOnce(&mut Workspace) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let counters = Arc::clone(&self.counters);
        let job: Job = Box::new(move |workspace| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| work(workspace)))
                .unwrap_or_else(|_| Err(Error::internal("password hashing panicked")));
            counters.completed.fetch_add(1, Ordering::Relaxed);
            // The caller may have gone: the reply, and the permit with it, is then dropped.
            let _ = reply.send(out.map(|out| (out, permit)));
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("password hashing threads stopped"))?;
        answer
            .await
            .map_err(|e| Error::internal_with("password hashing thread stopped", e))?
    }
}

/// The loop of one hashing thread: take a job, run it on this thread's workspace; stop when
/// the pool is gone.
fn serve(receiver: &Mutex<mpsc::Receiver<Job>>, mut workspace: Workspace) {
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            receiver.recv()
        };
        match job {
            Ok(job) => job(&mut workspace),
            Err(mpsc::RecvError) => return,
        }
    }
}
