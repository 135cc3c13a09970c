//! Conformance suites: one plain `async fn` per behaviour over `&dyn Trait`, and one macro per
//! trait that stamps out a `#[tokio::test]` for each. Every adapter, in-memory or real, runs the
//! same suite against its real backend.
//!
//! ```ignore-not-compiled
//! async fn fixture() -> Fixture<dyn TenantRegistry> { Fixture::new(Arc::new(InMemoryRegistry::new())) }
//! tenant_manager_core::registry_conformance!(fixture);
//! ```
//!
//! Assertions panic, as tests do; this module is compiled only with feature `testing`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::any::Any;
use std::sync::Arc;

/// What a suite's factory returns: the adapter under test and whatever must live as long as it
/// (a test database, a key prefix) so it is cleaned up after the test.
pub struct Fixture<T: ?Sized> {
    /// The adapter under test.
    pub subject: Arc<T>,
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl<T: ?Sized> Fixture<T> {
    /// A fixture with nothing to clean up.
    pub fn new(subject: Arc<T>) -> Self {
        Self {
            subject,
            guard: None,
        }
    }

    /// A fixture that keeps `guard` alive until the test ends.
    pub fn with_guard(subject: Arc<T>, guard: impl Any + Send + Sync) -> Self {
        Self {
            subject,
            guard: Some(Box::new(guard)),
        }
    }

    /// The guard, downcast to its type.
    pub fn guard<G: 'static>(&self) -> Option<&G> {
        self.guard.as_ref().and_then(|g| g.downcast_ref::<G>())
    }
}

impl<T: ?Sized> std::fmt::Debug for Fixture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
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
