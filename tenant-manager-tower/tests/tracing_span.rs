//! The `TenantLayer` runs the inner service inside a `tenant` span carrying the context, and
//! fills `tenant_id` / `tenant_slug` of an outer span that declared them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{World, get_bearer};
use tenant_manager_core::{Role, TenantStatus};
use tower::{Layer as _, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

type Fields = BTreeMap<String, String>;

/// Records every span's name and fields (at creation and when recorded later).
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(Id, String, Fields)>>>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0.lock().unwrap().push((id.clone(), name, fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, _, fields)) = spans.iter_mut().find(|(known, ..)| known == id) {
            values.record(&mut Collect(fields));
        }
    }
}

impl Spans {
    fn fields_of(&self, name: &str) -> Option<Fields> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .find(|(_, known, _)| known == name)
            .map(|(_, _, fields)| fields.clone())
    }
}

#[tokio::test]
async fn the_inner_service_runs_in_the_tenant_span() {
    let spans = Spans::default();
    let _guard = tracing_subscriber::registry()
        .with(spans.clone())
        .set_default();

    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, user) = world.token(&tenant, Role::Owner);
    let seen = Arc::new(Mutex::new(None::<String>));
    let inner = {
        let seen = seen.clone();
        tower::service_fn(move |_request: http::Request<_>| {
            let current = tracing::Span::current()
                .metadata()
                .map(|m| m.name().to_owned());
            *seen.lock().unwrap() = current;
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::new(),
                )))
            }
        })
    };
    let service = world.jwt_layer().layer(inner);

    let outer = tracing::info_span!(
        "request",
        tenant_id = tracing::field::Empty,
        tenant_slug = tracing::field::Empty
    );
    let response = tracing::Instrument::instrument(service.oneshot(get_bearer("/", &token)), outer)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(seen.lock().unwrap().as_deref(), Some("tenant"));
    let fields = spans.fields_of("tenant").unwrap();
    assert_eq!(fields.get("tenant_id"), Some(&tenant.id.to_string()));
    assert_eq!(fields.get("tenant_slug").map(String::as_str), Some("acme"));
    assert_eq!(fields.get("user_id"), Some(&user.to_string()));
    assert_eq!(fields.get("via").map(String::as_str), Some("jwt"));
    let outer = spans.fields_of("request").unwrap();
    assert_eq!(outer.get("tenant_id"), Some(&tenant.id.to_string()));
    assert_eq!(outer.get("tenant_slug").map(String::as_str), Some("acme"));
}
