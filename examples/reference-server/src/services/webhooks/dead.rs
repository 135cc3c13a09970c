//! An endpoint's dead letters: the events whose every attempt failed. In Redis (the
//! endpoint's consumer group's dead-letter stream, shared by every instance) or in this
//! process (bounded, lost on restart).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tenant_manager::redis::RedisEventGroup;
use tenant_manager::{Error, Result, TenantEvent};

/// Dead letters one endpoint keeps in memory at most (the oldest go first).
const MEMORY_CAP: usize = 1000;

/// An event given up on, with why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct DeadLetter {
    /// Its id (`<ms>-<seq>`), to redeliver it.
    pub(crate) id: String,
    /// The event, as it would be posted.
    #[schema(value_type = Object)]
    pub(crate) event: TenantEvent,
    /// The last attempt's failure.
    pub(crate) error: String,
    /// Attempts made.
    pub(crate) attempts: u64,
}

/// Where an endpoint's dead letters are kept.
#[derive(Debug)]
pub(crate) enum DeadLetters {
    /// The consumer group's dead-letter stream.
    Redis(RedisEventGroup),
    /// This process.
    Memory {
        letters: Mutex<VecDeque<DeadLetter>>,
        next: AtomicU64,
    },
}

impl DeadLetters {
    /// An empty in-memory store.
    pub(crate) fn memory() -> Self {
        DeadLetters::Memory {
            letters: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Adds `event`; returns its dead letter's id.
    pub(crate) async fn add(
        &self,
        event: &TenantEvent,
        error: &str,
        attempts: u64,
    ) -> Result<String> {
        match self {
            DeadLetters::Redis(group) => group.bury(event, error, attempts).await,
            DeadLetters::Memory { letters, next } => {
                let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                let id = format!("{millis}-{}", next.fetch_add(1, Ordering::Relaxed));
                let mut letters = lock(letters)?;
                if letters.len() >= MEMORY_CAP {
                    letters.pop_front();
                }
                letters.push_back(DeadLetter {
                    id: id.clone(),
                    event: event.clone(),
                    error: error.to_owned(),
                    attempts,
                });
                Ok(id)
            }
        }
    }

    /// Up to `limit` dead letters, oldest first.
    pub(crate) async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        match self {
            DeadLetters::Redis(group) => Ok(group
                .dead_letters(limit)
                .await?
                .into_iter()
                .map(|d| DeadLetter {
                    id: d.id,
                    event: d.event,
                    error: d.error,
                    attempts: d.deliveries,
                })
                .collect()),
            DeadLetters::Memory { letters, .. } => {
                Ok(lock(letters)?.iter().take(limit).cloned().collect())
            }
        }
    }

    /// Removes the dead letter `id` and returns it; `None` when there is none (or a racing
    /// caller took it).
    pub(crate) async fn take(&self, id: &str) -> Result<Option<DeadLetter>> {
        validate_id(id)?;
        match self {
            DeadLetters::Redis(group) => {
                Ok(group.take_dead_letter(id).await?.map(|d| DeadLetter {
                    id: d.id,
                    event: d.event,
                    error: d.error,
                    attempts: d.deliveries,
                }))
            }
            DeadLetters::Memory { letters, .. } => {
                let mut letters = lock(letters)?;
                let position = letters.iter().position(|d| d.id == id);
                Ok(position.and_then(|p| letters.remove(p)))
            }
        }
    }
}

/// A dead letter's id: `<ms>-<seq>`, both at most 20 digits.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('-') {
        Some((ms, seq)) if number(ms) && number(seq) => Ok(()),
        _ => Err(Error::invalid(
            "dead_letter_id",
            "must be a dead letter's id (<ms>-<seq>)",
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| Error::internal("the dead letters' lock is poisoned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stream_ids() {
        assert!(validate_id("1700000000000-0").is_ok());
        for bad in ["", "1", "-", "a-1", "1-b", "1-2-3", &"9".repeat(21)] {
            let field = validate_id(bad)
                .err()
                .and_then(|e| e.field().map(str::to_owned));
            assert_eq!(field.as_deref(), Some("dead_letter_id"), "{bad}");
        }
    }
}
