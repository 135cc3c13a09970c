//! Replies of the queue scripts, and receipts: `<stream entry id>/<attempt>`.

use std::collections::HashMap;
use std::time::Duration;

use tenant_manager_core::{Error, Job, JobId, Result, TenantId};
use time::OffsetDateTime;

/// What the claim script answered.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A job delivered to the consumer.
    Job(Job),
    /// Nothing to deliver now.
    Empty {
        /// Last entry id generated in the signal stream: a blocking read waits for entries after it.
        last_id: String,
        /// Time until the next delayed retry is due, if any.
        next_due: Option<Duration>,
    },
}

fn bad_reply(what: &'static str) -> Error {
    Error::internal(what)
}

/// Parses `{'1', entry, job, attempt, kind, tenant, payload, enqueued_at, last_error}` or
/// `{'0', last_id, next_due_ms}`.
pub(crate) fn parse_claim(reply: Vec<String>) -> Result<Claim> {
    match reply.as_slice() {
        [
            flag,
            entry,
            job,
            attempt,
            kind,
            tenant,
            payload,
            enqueued_at,
            last_error,
        ] if flag == "1" => {
            let attempt: u32 = attempt
                .parse()
                .map_err(|_| bad_reply("job attempt is not a number"))?;
            Ok(Claim::Job(job_from_parts(
                job,
                kind,
                tenant,
                payload,
                enqueued_at,
                attempt,
                last_error,
                receipt(entry, attempt),
            )?))
        }
        [flag, last_id, next_due] if flag == "0" => {
            let next_due: i64 = next_due
                .parse()
                .map_err(|_| bad_reply("next due time is not a number"))?;
            Ok(Claim::Empty {
                last_id: last_id.clone(),
                next_due: u64::try_from(next_due).ok().map(Duration::from_millis),
            })
        }
        _ => Err(bad_reply("unexpected reply of the queue claim script")),
    }
}

/// A job from an entry of the dead-letter stream. Its receipt carries attempt 0, which no
/// current delivery has, so acking or nacking it does nothing.
pub(crate) fn dead_job(entry_id: &str, fields: &HashMap<String, String>) -> Result<Job> {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let attempt = field("attempts").parse().unwrap_or(0);
    job_from_parts(
        field("job"),
        field("kind"),
        field("tenant"),
        fields.get("payload").map_or("null", String::as_str),
        field("enqueued_at"),
        attempt,
        field("last_error"),
        receipt(entry_id, 0),
    )
}

#[allow(clippy::too_many_arguments)]
fn job_from_parts(
    id: &str,
    kind: &str,
    tenant: &str,
    payload: &str,
    enqueued_at: &str,
    attempt: u32,
    last_error: &str,
    receipt: String,
) -> Result<Job> {
    let id =
        JobId::parse_field(id, "job_id").map_err(|_| bad_reply("stored job id is not a UUID"))?;
    let tenant = match tenant {
        "" => None,
        t => Some(
            TenantId::parse_field(t, "tenant_id")
                .map_err(|_| bad_reply("stored tenant id is not a UUID"))?,
        ),
    };
    let payload = serde_json::from_str(payload)
        .map_err(|e| Error::internal_with("stored job payload is not JSON", e))?;
    let enqueued_at = enqueued_at
        .parse::<i128>()
        .ok()
        .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        .ok_or_else(|| bad_reply("stored enqueue time is not a timestamp"))?;
    let last_error = (!last_error.is_empty()).then(|| last_error.to_owned());
    Ok(Job::new(
        id,
        kind.to_owned(),
        tenant,
        payload,
        attempt,
        last_error,
        enqueued_at,
        receipt,
    ))
}

fn receipt(entry_id: &str, attempt: u32) -> String {
    format!("{entry_id}/{attempt}")
}

/// The stream entry id and attempt of a receipt.
///
/// # Errors
/// [`Error::InvalidInput`] on field `receipt` when it is not one of this queue's receipts.
pub(crate) fn parse_receipt(receipt: &str) -> Result<(&str, u32)> {
    let invalid = || Error::invalid("receipt", "is not a receipt of this queue");
    let (entry, attempt) = receipt.split_once('/').ok_or_else(invalid)?;
    let valid_entry = entry
        .split_once('-')
        .is_some_and(|(ms, seq)| is_digits(ms) && is_digits(seq));
    if !valid_entry {
        return Err(invalid());
    }
    Ok((entry, attempt.parse().map_err(|_| invalid())?))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_garbage_is_refused() {
        assert_eq!(
            parse_receipt("1700000000000-3/2").ok(),
            Some(("1700000000000-3", 2))
        );
        assert!(parse_receipt("1700000000000-3").is_err());
        assert!(parse_receipt("x-1/1").is_err());
        assert!(parse_receipt("1-1/x").is_err());
        assert!(parse_receipt("").is_err());
    }

    #[test]
    fn claim_replies_parse() {
        let id = JobId::new();
        let reply = vec![
            "1".to_owned(),
            "5-0".to_owned(),
            id.to_string(),
            "2".to_owned(),
            "provision_tenant".to_owned(),
            String::new(),
            r#"{"a":[1,2]}"#.to_owned(),
            "1700000000000000000".to_owned(),
            "boom".to_owned(),
        ];
        let Ok(Claim::Job(job)) = parse_claim(reply) else {
            panic!("expected a job");
        };
        assert_eq!(
            (job.id, job.attempt, job.receipt.as_str()),
            (id, 2, "5-0/2")
        );
        assert_eq!(job.last_error.as_deref(), Some("boom"));
        assert_eq!(job.tenant_id, None);
        let empty = parse_claim(vec!["0".into(), "7-1".into(), "-1".into()]);
        assert!(matches!(empty, Ok(Claim::Empty { next_due: None, .. })));
        assert!(parse_claim(vec!["2".into()]).is_err());
    }
}
