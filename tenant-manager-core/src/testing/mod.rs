//! Conformance suites: one plain `async fn` per behaviour over `&dyn Trait`, and one macro per
//! trait that stamps out a `#[tokio::test]` for each. Every adapter, in-memory or real, runs the
//! same suite against its real backend.
//!
//! An adapter crate runs a suite from its tests, against its real backend:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenant_manager_core::TenantRegistry;
//! use tenant_manager_core::memory::InMemoryRegistry;
//! use tenant_manager_core::testing::Fixture;
//!
//! async fn fixture() -> Fixture<dyn TenantRegistry> {
//!     Fixture::new(Arc::new(InMemoryRegistry::new()))
//! }
//!
//! tenant_manager_core::registry_conformance!(fixture);
//! # fn main() {}
//! ```
//!
//! Assertions panic, as tests do; this module is compiled only with feature `testing`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod backup;
pub mod backup_store;
pub mod cache;
pub mod events;
pub mod faults;
pub mod jobs;
pub mod leases;
pub mod provisioner;
pub mod quota;
pub mod refresh;
pub mod registry;
pub mod schedules;
pub mod support;

use std::future::Future;
use std::sync::Arc;

/// What a suite's factory returns: the adapter under test, whatever must live as long as it
/// (`G`: a test database, a key prefix) so it is cleaned up after the test, and the settings
/// the adapter runs with (`C`: a suite's caps struct, such as `cache::CacheCaps` or
/// `jobs::JobQueueCaps`).
///
/// Both are types, not values looked up at run time: a suite whose cases need caps takes
/// `Fixture<dyn Trait, G, ItsCaps>`, so a factory that did not declare them does not compile.
pub struct Fixture<T: ?Sized, G = (), C = ()> {
    /// The adapter under test.
    pub subject: Arc<T>,
    guard: G,
    caps: C,
}

impl<T: ?Sized> Fixture<T> {
    /// A fixture with nothing to clean up and no caps.
    pub fn new(subject: Arc<T>) -> Self {
        Self {
            subject,
            guard: (),
            caps: (),
        }
    }
}

impl<T: ?Sized, G> Fixture<T, G> {
    /// A fixture that keeps `guard` alive until the test ends.
    pub fn with_guard(subject: Arc<T>, guard: G) -> Self {
        Self {
            subject,
            guard,
            caps: (),
        }
    }
}

impl<T: ?Sized, G, C> Fixture<T, G, C> {
    /// The guard, as the factory made it.
    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// Declares how the adapter under test is configured, for suites whose cases depend on it.
    #[must_use]
    pub fn with_caps<D>(self, caps: D) -> Fixture<T, G, D> {
        Fixture {
            subject: self.subject,
            guard: self.guard,
            caps,
        }
    }

    /// The declared caps.
    pub fn caps(&self) -> &C {
        &self.caps
    }
}

impl<T: ?Sized, G, C> std::fmt::Debug for Fixture<T, G, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

/// Runs `n` futures made by `task(i)` on up to 16 OS threads at once (released together by a
/// barrier), each thread driving its share concurrently on the current runtime, and returns
/// their outputs in `i` order. Calls race for real, so an adapter's atomicity is tested, not
/// just its interleaving at awaits.
///
/// # Panics
/// Outside a multi-thread tokio runtime (the suite macros use one), or when a task panics.
pub fn run_concurrently<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = T>,
{
    let handle = tokio::runtime::Handle::current();
    let threads = n.clamp(1, 16);
    let barrier = std::sync::Barrier::new(threads);
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (handle, barrier, task) = (&handle, &barrier, &task);
                    scope.spawn(move || {
                        let (indices, futures): (Vec<usize>, Vec<Fut>) =
                            (t..n).step_by(threads).map(|i| (i, task(i))).unzip();
                        barrier.wait();
                        let outputs = handle.block_on(futures::future::join_all(futures));
                        indices.into_iter().zip(outputs).collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<(usize, T)> = workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker thread panicked"))
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, out)| out).collect()
        })
    })
}

/// Expands test functions that run `$crate::testing::$module::$case(&*fixture.subject)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:path; $module:ident; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $factory().await;
                $crate::testing::$module::$case(&*fixture.subject).await;
            }
        )+
    };
}

/// Like `__conformance_cases!`, for cases that also take the caps the fixture declared with
/// [`Fixture::with_caps`]: `$crate::testing::$module::$case(&*fixture.subject, caps)`. A
/// fixture without caps of type `$caps` is a compile error here.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_with_caps {
    ($factory:path; $module:ident; $caps:ty; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $factory().await;
                let caps: &$caps = fixture.caps();
                $crate::testing::$module::$case(&*fixture.subject, caps).await;
            }
        )+
    };
}
