//! Shared fixtures of the layer tests: real in-memory adapters, a token service, an echo
//! service that reports what the layers attached, and response helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tenant_manager_core::auth::{JwtConfig, TokenService};
use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::memory::{
    InMemoryQuotaConfig, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
};
use tenant_manager_core::{
    Email, Isolation, NewTenant, NewUser, PasswordHash, Role, Tenant, TenantCache, TenantRegistry,
    TenantSlug, TenantStatus, UserId,
};
use tenant_manager_tower::{JwtResolver, ResolvedBy, TenantContext, TenantLayer};
use time::OffsetDateTime;
use tower::ServiceExt;

/// The HS256 secret of the test token service.
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Real in-memory adapters wired the way a host wires them.
pub struct World {
    pub registry: Arc<InMemoryRegistry>,
    pub lookup: TenantLookup,
    pub tokens: TokenService,
    pub quota: Arc<InMemoryQuotaEnforcer>,
}

impl World {
    pub fn new() -> Self {
        let registry = Arc::new(InMemoryRegistry::new());
        let cache: Arc<dyn TenantCache> = Arc::new(InMemoryTenantCache::default());
        let lookup = TenantLookup::new(registry.clone() as Arc<dyn TenantRegistry>, cache);
        let tokens = TokenService::new(JwtConfig::hs256(SECRET)).expect("token service");
        let quota = Arc::new(InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default()).unwrap());
        Self {
            registry,
            lookup,
            tokens,
            quota,
        }
    }

    /// A tenant brought to `status` through legal transitions.
    pub async fn tenant(&self, slug: &str, status: TenantStatus) -> Tenant {
        let new = NewTenant::new(TenantSlug::new(slug).unwrap(), slug, Isolation::Shared)
            .unwrap()
            .with_domain(Some(format!("{slug}.customer.test")));
        let tenant = self.registry.create_tenant(new).await.unwrap();
        use TenantStatus::*;
        let path: &[TenantStatus] = match status {
            Pending => &[],
            Provisioning => &[Provisioning],
            Active => &[Provisioning, Active],
            Suspended => &[Provisioning, Active, Suspended],
            Moving => &[Provisioning, Active, Moving],
            Failed => &[Provisioning, Failed],
            Deleting => &[Provisioning, Active, Deleting],
            Deleted => &[Provisioning, Active, Deleting, Deleted],
        };
        let mut tenant = tenant;
        for step in path {
            tenant = self
                .registry
                .transition(tenant.id, *step, None)
                .await
                .unwrap();
        }
        tenant
    }

    /// A `TenantLayer` that resolves tenants from the world's access tokens.
    pub fn jwt_layer(&self) -> TenantLayer {
        jwt_layer(&self.lookup, &self.tokens)
    }

    /// A valid access token of a new user of `tenant`.
    pub fn token(&self, tenant: &Tenant, role: Role) -> (String, UserId) {
        let user = NewUser::new(
            tenant.id,
            Email::new(&format!(
                "u{}@example.com",
                UserId::new().as_uuid().simple()
            ))
            .unwrap(),
            role,
            PasswordHash::from_phc("$argon2id$unused"),
        )
        .into_user(OffsetDateTime::now_utc());
        let issued = self.tokens.issue(&user).unwrap();
        (issued.access_token.expose().to_owned(), user.id)
    }
}

/// A `TenantLayer` that resolves tenants from access tokens of `tokens` through `lookup`.
pub fn jwt_layer(lookup: &TenantLookup, tokens: &TokenService) -> TenantLayer {
    TenantLayer::builder(lookup.clone())
        .with_resolver(JwtResolver::new(tokens.clone()))
        .build()
        .unwrap()
}

/// Claims signed with `secret` by hand, for tokens the token service would never issue.
pub fn forged_token(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An unsigned token (`alg: none`) carrying `claims`.
pub fn unsigned_token(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// Claims for `tenant` that are valid but for the given overrides.
pub fn claims(tenant: &Tenant, overrides: Value) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "sub": UserId::new(), "tid": tenant.id, "role": "member",
        "jti": "00000000-0000-4000-8000-000000000000",
        "iat": now, "nbf": now, "exp": now + 600,
        "iss": "tenant-manager", "aud": "tenant-manager",
    });
    if let (Some(target), Some(source)) = (claims.as_object_mut(), overrides.as_object()) {
        for (key, value) in source {
            target.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// A plain `tower::service_fn` that answers 200 with what the layers attached, and counts calls.
#[derive(Clone, Default)]
pub struct Echo {
    pub calls: Arc<AtomicUsize>,
}

/// The echo handler's future.
pub type EchoFuture = futures::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

impl Echo {
    pub fn service(
        &self,
    ) -> tower::util::ServiceFn<impl FnMut(Request<Full<Bytes>>) -> EchoFuture + Clone + use<>>
    {
        let calls = self.calls.clone();
        tower::service_fn(move |request: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let body = match request.extensions().get::<TenantContext>() {
                Some(context) => json!({
                    "tenant": context.tenant.id,
                    "slug": context.tenant.slug,
                    "user": context.user(),
                    "role": context.role(),
                    "via": context.via().as_str(),
                }),
                None => json!({ "tenant": null }),
            };
            futures::future::ready(Ok(Response::new(Full::new(Bytes::from(body.to_string())))))
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A GET request to `uri` with `headers`.
pub fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// `Bearer <token>`: the `authorization` header value carrying `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A GET request to `uri` carrying `token` as a bearer token.
pub fn get_bearer(uri: &str, token: &str) -> Request<Full<Bytes>> {
    get(uri, &[("authorization", &bearer(token))])
}

/// `request` with `tenant` already resolved, as a `TenantLayer` in front would leave it.
pub fn with_tenant(mut request: Request<Full<Bytes>>, tenant: &Tenant) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(TenantContext::new(tenant.clone(), ResolvedBy::Jwt));
    request
}

/// A GET of `/` by `tenant`, already resolved.
pub fn get_as(tenant: &Tenant) -> Request<Full<Bytes>> {
    with_tenant(get("/", &[]), tenant)
}

/// Sends `request` through `service` once: status, headers and JSON body of the answer.
pub async fn send<S, B, R>(service: S, request: Request<B>) -> (u16, http::HeaderMap, Value)
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
    R: http_body::Body,
    R::Error: std::fmt::Debug,
{
    read(service.oneshot(request).await.unwrap()).await
}

/// Asserts a `500 middleware_missing` answer whose message names `missing`, what to add.
pub fn assert_middleware_missing(status: u16, body: &Value, missing: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("middleware_missing")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(missing),
        "{missing} not named in: {message}"
    );
}

/// Status and JSON body of a response.
pub async fn read<B>(response: Response<B>) -> (u16, http::HeaderMap, Value)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (parts.status.as_u16(), parts.headers, value)
}
