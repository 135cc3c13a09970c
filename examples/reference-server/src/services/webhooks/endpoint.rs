//! One endpoint of the delivery: its configuration, this instance's counts and its dead
//! letters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tenant_manager::TenantEvent;

use super::dead::DeadLetters;
use crate::config::WebhookEndpoint;

/// Counter of delivery attempts and their ends, labelled `endpoint` (a configured id) and
/// `outcome` (`delivered`, `failed`: an attempt that will be retried or was the last, and
/// `dead_lettered`).
pub(crate) const DELIVERIES_TOTAL: &str = "tenant_manager_webhook_deliveries_total";

/// An endpoint's counts since this instance started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) delivered: AtomicU64,
    pub(super) failed_attempts: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(super) fn delivered(&self, id: &str) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DELIVERIES_TOTAL, "endpoint" => id.to_owned(), "outcome" => "delivered")
            .increment(1);
    }

    pub(super) fn failed(&self, id: &str, error: &str) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_owned());
        }
        metrics::counter!(DELIVERIES_TOTAL, "endpoint" => id.to_owned(), "outcome" => "failed")
            .increment(1);
    }

    pub(super) fn dead_lettered(&self, id: &str) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DELIVERIES_TOTAL, "endpoint" => id.to_owned(), "outcome" => "dead_lettered")
            .increment(1);
    }
}

/// One endpoint: its configuration, counts and dead letters.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) config: WebhookEndpoint,
    pub(crate) counters: Counters,
    pub(crate) dead: DeadLetters,
}

impl Endpoint {
    /// Dead-letters `event` after `attempts` failed ones (logged when even that fails).
    pub(super) async fn bury(&self, event: &TenantEvent, error: &str, attempts: u32) {
        self.counters.dead_lettered(&self.config.id);
        if let Err(e) = self.dead.add(event, error, u64::from(attempts)).await {
            tracing::error!(endpoint = %self.config.id, event = %event.id, error = %e, "a webhook event could not be dead-lettered and is lost");
        }
    }
}
