//! Signed webhooks of tenant events, to the endpoints of `WEBHOOK_ENDPOINTS`.
//!
//! One delivery task per endpoint. With Redis, each endpoint is a consumer group
//! (`webhook.<id>`) of the event stream, so every instance's task shares the work and each
//! event is posted to an endpoint once across the deployment (at least once: an instance that
//! dies mid-delivery leaves the event to another after the visibility timeout; receivers drop
//! duplicates by the `X-TM-Event-Id` header). Without Redis, each task follows the in-process
//! bus. Every attempt is signed (`X-TM-Signature`, see `tenant_manager::webhook`); failed
//! attempts are retried with exponential backoff and jitter, and after the last one the event
//! goes to the endpoint's dead letters, which the admin API lists and redelivers.

mod dead;
mod delivery;
mod endpoint;
mod sender;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tenant_manager::redis::{EventStreamConfig, RedisEventBus, RedisPool};
use tenant_manager::{Error, EventBus, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use self::dead::{DeadLetter, DeadLetters, validate_id as validate_dead_letter_id};
use self::delivery::{Attempts, Outcome};
use self::endpoint::Counters;
pub(crate) use self::endpoint::Endpoint;
use self::sender::Sender;
use crate::config::WebhookSettings;

/// Name of the event stream (shared with the bus the manager publishes on).
pub(crate) const EVENT_STREAM: &str = "tenant-events";
/// Dead letters redelivered by one "redeliver all" at most.
pub(crate) const MAX_REDELIVER_ALL: usize = 1000;

/// An endpoint as the admin API shows it: never its secret, nor its URL's query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointView {
    /// Its id.
    id: String,
    /// Its URL, without the query.
    url: String,
    /// The kinds delivered (`null`: every kind).
    events: Option<Vec<String>>,
    /// Events delivered by this instance since it started.
    delivered: u64,
    /// Attempts that failed on this instance since it started.
    failed_attempts: u64,
    /// Events this instance dead-lettered since it started.
    dead_lettered: u64,
    /// The last failed attempt's error on this instance.
    last_error: Option<String>,
}

/// What redelivering one dead letter did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Redelivery {
    /// The dead letter taken.
    id: String,
    /// The event's id.
    event_id: String,
    /// Whether the endpoint took it (`2xx`).
    delivered: bool,
    /// Why not, when it did not.
    error: Option<String>,
    /// Its new dead letter, when it did not.
    dead_letter_id: Option<String>,
}

/// The endpoints and their delivery. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Webhooks {
    endpoints: Arc<Vec<Arc<Endpoint>>>,
    attempts: Option<Attempts>,
    tasks: Option<(TaskTracker, CancellationToken)>,
}

impl Webhooks {
    /// Starts one delivery task per endpoint of `settings`: from its consumer group of the
    /// event stream in `redis` when Redis is configured, else from `bus`.
    pub(crate) fn start(
        settings: &WebhookSettings,
        bus: Arc<dyn EventBus>,
        redis: Option<&RedisPool>,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<Self> {
        if settings.endpoints.is_empty() {
            return Ok(Self::default());
        }
        let attempts = Attempts::new(Sender::new(settings.timeout)?, settings);
        let groups = match redis {
            Some(pool) => Some(webhook_stream(pool, settings)?),
            None => None,
        };
        let consumer = format!(
            "webhooks-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        let mut endpoints = Vec::new();
        for config in &settings.endpoints {
            let group = match &groups {
                Some(bus) => Some(bus.group(&format!("webhook.{}", config.id))?),
                None => None,
            };
            let dead = match &group {
                Some(group) => DeadLetters::Redis(group.clone()),
                None => DeadLetters::memory(),
            };
            let endpoint = Arc::new(Endpoint {
                config: config.clone(),
                counters: Counters::default(),
                dead,
            });
            let token = shutdown.clone();
            match group {
                Some(group) => tasks.spawn(delivery::from_group(
                    endpoint.clone(),
                    group,
                    consumer.clone(),
                    attempts.clone(),
                    token,
                )),
                None => tasks.spawn(delivery::from_bus(
                    endpoint.clone(),
                    bus.clone(),
                    attempts.clone(),
                    token,
                )),
            };
            endpoints.push(endpoint);
        }
        tracing::info!(
            endpoints = endpoints.len(),
            shared = groups.is_some(),
            "webhook delivery started"
        );
        Ok(Self {
            endpoints: Arc::new(endpoints),
            attempts: Some(attempts),
            tasks: Some((tasks.clone(), shutdown.clone())),
        })
    }

    /// Every endpoint, as configured, with this instance's counts.
    pub(crate) fn views(&self) -> Vec<EndpointView> {
        self.endpoints
            .iter()
            .map(|e| EndpointView {
                id: e.config.id.clone(),
                url: e.config.shown_url(),
                events: e
                    .config
                    .events
                    .as_ref()
                    .map(|kinds| kinds.iter().map(|k| k.as_str().to_owned()).collect()),
                delivered: e.counters.delivered.load(Ordering::Relaxed),
                failed_attempts: e.counters.failed_attempts.load(Ordering::Relaxed),
                dead_lettered: e.counters.dead_lettered.load(Ordering::Relaxed),
                last_error: e.counters.last_error.lock().ok().and_then(|l| l.clone()),
            })
            .collect()
    }

    /// The endpoint `id`.
    ///
    /// # Errors
    /// `InvalidInput` on `id` when it is not an endpoint id; `NotFound`-like refusal when no
    /// endpoint has it (the route answers 404).
    pub(crate) fn endpoint(&self, id: &str) -> Result<Option<Arc<Endpoint>>> {
        if !crate::config::is_endpoint_id(id) {
            return Err(Error::invalid(
                "id",
                "must be an endpoint id: 1 to 32 lowercase letters, digits, _ or -",
            ));
        }
        Ok(self.endpoints.iter().find(|e| e.config.id == id).cloned())
    }

    /// Takes the dead letter `id` of `endpoint` and makes one attempt at it now; a failed
    /// attempt puts it back (under a new id). `None` when there is no such dead letter.
    pub(crate) async fn redeliver(
        &self,
        endpoint: Arc<Endpoint>,
        id: &str,
    ) -> Result<Option<Redelivery>> {
        let attempts = self
            .attempts
            .clone()
            .ok_or_else(|| Error::internal("webhooks are not started"))?;
        let Some(letter) = endpoint.dead.take(id).await? else {
            return Ok(None);
        };
        // On its own task: a request that times out does not lose the letter it took.
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let outcome = attempts.run(&endpoint, &letter.event, 1, &shutdown).await;
            let failure = match outcome {
                Outcome::Delivered(_) => None,
                Outcome::Failed(error, _) => Some(error),
                Outcome::Cancelled => Some("cancelled".to_owned()),
            };
            let (delivered, error, dead_letter_id) = match failure {
                None => (true, None, None),
                Some(error) => {
                    let again = endpoint
                        .dead
                        .add(&letter.event, &error, letter.attempts.saturating_add(1))
                        .await;
                    (false, Some(error), again.ok())
                }
            };
            Redelivery {
                id: letter.id,
                event_id: letter.event.id.to_string(),
                delivered,
                error,
                dead_letter_id,
            }
        });
        task.await
            .map(Some)
            .map_err(|e| Error::internal(format!("the redelivery stopped: {e}")))
    }

    /// Redelivers up to [`MAX_REDELIVER_ALL`] dead letters of `endpoint` in the background,
    /// one attempt each (those that fail again go back); returns how many were queued.
    pub(crate) async fn redeliver_all(&self, endpoint: Arc<Endpoint>) -> Result<usize> {
        let letters = endpoint.dead.list(MAX_REDELIVER_ALL).await?;
        let count = letters.len();
        let webhooks = self.clone();
        let run = async move {
            for letter in letters {
                if let Err(error) = webhooks.redeliver(endpoint.clone(), &letter.id).await {
                    tracing::warn!(endpoint = %endpoint.config.id, dead_letter = %letter.id, %error, "redelivering a dead letter failed");
                }
            }
        };
        match &self.tasks {
            Some((tasks, _)) => tasks.spawn(run),
            None => tokio::spawn(run),
        };
        Ok(count)
    }
}

/// The event stream as the webhook groups read it: the same stream as the publishers', with
/// a visibility timeout longer than every attempt of one event takes, so an event still being
/// retried is not taken over by another instance.
fn webhook_stream(pool: &RedisPool, settings: &WebhookSettings) -> Result<RedisEventBus> {
    let per_attempt = settings.timeout.saturating_mul(2) + settings.backoff_max;
    let visibility = per_attempt
        .saturating_mul(settings.max_attempts)
        .saturating_add(Duration::from_secs(30))
        .min(Duration::from_secs(86_400));
    let config = EventStreamConfig::default()
        .with_name(EVENT_STREAM)
        .with_visibility_timeout(visibility);
    RedisEventBus::new(pool, config)
}
