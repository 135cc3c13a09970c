//! `WEBHOOK_ENDPOINTS`: where tenant events are delivered as signed webhooks, and the
//! delivery settings (`WEBHOOK_TIMEOUT_MS`, `WEBHOOK_MAX_ATTEMPTS`, `WEBHOOK_BACKOFF_*`).
//!
//! One entry per endpoint, entries separated by blanks or new lines:
//! `<id>=<http(s) URL>;secret=<secret>[;events=<kind>,<kind>...]`. `id` is 1 to 32 of
//! `[a-z0-9_-]` (it names the endpoint in the admin API, in metrics and in Redis); the secret
//! signs each delivery (`X-TM-Signature`), 16 to 256 printable characters without blanks or
//! `;`; `events` lists the event kinds sent (`registered`, `suspended`, ...; default all). The
//! URL carries no credentials (the signature authenticates the sender). Errors name the entry
//! by position and id, never show the URL or the secret.

use std::fmt;
use std::time::Duration;

use tenant_manager::{EventKind, Secret};
use url::Url;

use super::env::EnvVars;
use crate::startup_error::ConfigError;

/// The variable.
const VAR: &str = "WEBHOOK_ENDPOINTS";
/// Shortest signing secret, in bytes.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;
/// Longest signing secret, in bytes.
const MAX_WEBHOOK_SECRET_LEN: usize = 256;
/// Longest endpoint id.
const MAX_ID_LEN: usize = 32;

/// One endpoint of the list.
#[derive(Clone)]
#[non_exhaustive]
pub struct WebhookEndpoint {
    /// Its id: 1 to 32 of `[a-z0-9_-]`.
    pub id: String,
    /// Where deliveries are posted.
    pub url: Url,
    /// The signing secret.
    pub secret: Secret,
    /// The kinds delivered; `None`: every kind.
    pub events: Option<Vec<EventKind>>,
}

impl WebhookEndpoint {
    /// Whether events of `kind` go to this endpoint.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&kind))
    }

    /// The URL as it may be shown: scheme, host, port and path, without its query.
    pub fn shown_url(&self) -> String {
        let mut shown = self.url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        shown.to_string()
    }
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.shown_url())
            .field("secret", &self.secret)
            .field("events", &self.events)
            .finish()
    }
}

/// The endpoints and how deliveries are made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebhookSettings {
    /// The endpoints (`WEBHOOK_ENDPOINTS`); none by default.
    pub endpoints: Vec<WebhookEndpoint>,
    /// How long one delivery attempt may take, connect to last byte (`WEBHOOK_TIMEOUT_MS`,
    /// default 10 s).
    pub timeout: Duration,
    /// Attempts per event before it goes to the endpoint's dead letters
    /// (`WEBHOOK_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// Pause after the first failed attempt, doubled after each next one, with jitter
    /// (`WEBHOOK_BACKOFF_BASE_MS`, default 1 s).
    pub backoff_base: Duration,
    /// Longest pause between two attempts (`WEBHOOK_BACKOFF_MAX_MS`, default 60 s).
    pub backoff_max: Duration,
    /// At most one `quota_exceeded` event per tenant and quota per this window
    /// (`QUOTA_EVENT_WINDOW_MS`, default 60 s).
    pub quota_event_window: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            quota_event_window: Duration::from_secs(60),
        }
    }
}

impl WebhookSettings {
    /// Sets the endpoints.
    #[must_use]
    pub fn with_endpoints(mut self, endpoints: Vec<WebhookEndpoint>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// The validation pass of the webhook variables.
    pub(super) fn from_vars(vars: &EnvVars) -> Result<Self, ConfigError> {
        if vars.webhook_backoff_max_ms < vars.webhook_backoff_base_ms {
            return Err(ConfigError::new(
                "WEBHOOK_BACKOFF_MAX_MS",
                "must not be below WEBHOOK_BACKOFF_BASE_MS",
            ));
        }
        Ok(Self {
            endpoints: parse(vars.webhook_endpoints.as_ref())?,
            timeout: Duration::from_millis(vars.webhook_timeout_ms),
            max_attempts: vars.webhook_max_attempts,
            backoff_base: Duration::from_millis(vars.webhook_backoff_base_ms),
            backoff_max: Duration::from_millis(vars.webhook_backoff_max_ms),
            quota_event_window: Duration::from_millis(vars.quota_event_window_ms),
        })
    }
}

/// Parses the list; empty when unset.
pub(super) fn parse(value: Option<&Secret>) -> Result<Vec<WebhookEndpoint>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut endpoints: Vec<WebhookEndpoint> = Vec::new();
    for (n, entry) in value.expose().split_whitespace().enumerate() {
        let endpoint = parse_entry(entry)
            .map_err(|reason| ConfigError::new(VAR, format!("entry {} {reason}", n + 1)))?;
        if endpoints.iter().any(|e| e.id == endpoint.id) {
            return Err(ConfigError::new(
                VAR,
                format!("entry {} names endpoint {} twice", n + 1, endpoint.id),
            ));
        }
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

/// Whether `id` is 1 to 32 of `[a-z0-9_-]`.
pub fn is_endpoint_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One `<id>=<url>;secret=S[;events=K,K]`; the error says why, without the URL or secret.
fn parse_entry(entry: &str) -> Result<WebhookEndpoint, String> {
    const SHAPE: &str = "must be <id>=<http(s) URL>;secret=<secret>[;events=<kind>,...]";
    let Some((id, rest)) = entry.split_once('=') else {
        return Err(SHAPE.to_owned());
    };
    if !is_endpoint_id(id) {
        return Err("has an invalid id: 1 to 32 lowercase letters, digits, _ or -".to_owned());
    }
    let mut parts = rest.split(';');
    let url = parse_url(parts.next().unwrap_or_default()).map_err(|why| format!("({id}) {why}"))?;
    let mut secret = None;
    let mut events = None;
    for option in parts {
        match option.split_once('=') {
            Some(("secret", value)) => {
                let printable = value.bytes().all(|b| b.is_ascii_graphic());
                if !(MIN_WEBHOOK_SECRET_LEN..=MAX_WEBHOOK_SECRET_LEN).contains(&value.len())
                    || !printable
                {
                    return Err(format!(
                        "({id}) has an invalid secret: {MIN_WEBHOOK_SECRET_LEN} to \
                         {MAX_WEBHOOK_SECRET_LEN} printable characters without blanks or ;"
                    ));
                }
                secret = Some(Secret::new(value));
            }
            Some(("events", list)) => {
                events = parse_kinds(list).map_err(|why| format!("({id}) {why}"))?;
            }
            _ => {
                return Err(format!(
                    "({id}) has an unknown option: only secret=... and events=... follow the URL"
                ));
            }
        }
    }
    let Some(secret) = secret else {
        return Err(format!("({id}) has no secret=..."));
    };
    Ok(WebhookEndpoint {
        id: id.to_owned(),
        url,
        secret,
        events,
    })
}

/// An `http://` or `https://` URL with a host and no credentials.
fn parse_url(text: &str) -> Result<Url, &'static str> {
    let url = Url::parse(text).map_err(|_| "has an invalid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must have an http:// or https:// URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has a URL without a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("has a URL with credentials: the signature authenticates deliveries");
    }
    Ok(url)
}

/// `*` (every kind) or a comma-separated list of kinds.
fn parse_kinds(list: &str) -> Result<Option<Vec<EventKind>>, String> {
    if list == "*" {
        return Ok(None);
    }
    let mut kinds = Vec::new();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let kind = EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                let short: String = name.chars().take(40).collect();
                format!("has an unknown event kind {short:?}")
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err("has an empty events list (use events=* for all)".to_owned());
    }
    Ok(Some(kinds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> Result<Vec<WebhookEndpoint>, ConfigError> {
        parse(Some(&Secret::new(value)))
    }

    #[test]
    fn entries_carry_id_url_secret_and_kinds() {
        let endpoints = parsed(
            "billing=https://hooks.example.com/tm?token=abc;secret=whsec_0123456789abcdef;events=suspended,resumed\n \
             audit=http://127.0.0.1:9000/in;secret=another-secret-of-16",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].id, "billing");
        assert_eq!(endpoints[0].secret.expose(), "whsec_0123456789abcdef");
        assert!(endpoints[0].wants(EventKind::Suspended));
        assert!(!endpoints[0].wants(EventKind::Registered));
        assert!(endpoints[1].wants(EventKind::Registered));
        assert_eq!(endpoints[0].shown_url(), "https://hooks.example.com/tm");
        let debug = format!("{endpoints:?}");
        assert!(!debug.contains("whsec_0123456789abcdef") && !debug.contains("token=abc"));
        assert!(parse(None).map(|e| e.is_empty()).unwrap_or(false));
    }

    #[test]
    fn bad_entries_are_named_without_their_url_or_secret() {
        for bad in [
            "https://x.test/hook;secret=hunter2hunter2hunter2",
            "Bad=https://x.test/hook;secret=hunter2hunter2hunter2",
            "a.b=https://x.test/hook;secret=hunter2hunter2hunter2",
            "b=ftp://x.test/hunter2;secret=hunter2hunter2hunter2",
            "b=not a url;secret=hunter2hunter2hunter2",
            "b=https://user:hunter2@x.test/;secret=hunter2hunter2hunter2",
            "b=https://x.test/hook;secret=hunter2",
            "b=https://x.test/hook",
            "b=https://x.test/hook;secret=hunter2hunter2hunter2;events=suspended,exploded",
            "b=https://x.test/hook;secret=hunter2hunter2hunter2;events=",
            "b=https://x.test/hook;secret=hunter2hunter2hunter2;retries=3",
            "b=https://x.test/a;secret=hunter2hunter2hunter2 b=https://x.test/b;secret=hunter2hunter2hunter2",
        ] {
            let err = parsed(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(err.variable, VAR);
            assert!(!err.reason.contains("hunter2"), "{}", err.reason);
            assert!(!err.reason.contains("x.test"), "{}", err.reason);
        }
    }
}
