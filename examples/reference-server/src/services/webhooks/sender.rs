//! One delivery attempt: the event's JSON posted to an endpoint, signed.

use std::time::Duration;

use bytes::Bytes;
use tenant_manager::TenantEvent;
use tenant_manager::webhook::{EVENT_ID_HEADER, SIGNATURE_HEADER, sign};

use crate::config::WebhookEndpoint;

/// Header naming the event's kind, so receivers can route without parsing the body.
pub(crate) const EVENT_KIND_HEADER: &str = "X-TM-Event-Kind";

/// Posts events to endpoints: one pooled HTTP client (rustls), a timeout per attempt, no
/// redirects followed (a `3xx` is a failed attempt).
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender whose attempts end after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<Self, tenant_manager::Error> {
        // The TLS of the client is rustls over ring, the provider the rest of the workspace
        // uses; installing it is a no-op when the process already has one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "tenant-manager-webhooks/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| tenant_manager::Error::internal_with("webhook HTTP client", e))?;
        Ok(Self { client })
    }

    /// One attempt: `Ok` on a `2xx` answer; otherwise why, in words that never quote the URL
    /// or the secret.
    pub(crate) async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        event: &TenantEvent,
        body: &Bytes,
    ) -> Result<(), String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(&endpoint.secret, now, body).map_err(|e| e.to_string())?;
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, event.id.to_string())
            .header(EVENT_KIND_HEADER, event.kind.as_str())
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) if response.status().is_redirection() => Err(format!(
                "answered {} (redirects are not followed)",
                response.status().as_u16()
            )),
            Ok(response) => Err(format!("answered {}", response.status().as_u16())),
            Err(e) if e.is_timeout() => Err("no answer within the timeout".to_owned()),
            Err(e) if e.is_connect() => Err("could not connect".to_owned()),
            Err(_) => Err("the request failed".to_owned()),
        }
    }
}
