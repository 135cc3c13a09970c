//! `TenantLayer` over a plain `tower::service_fn`: every resolver, refused tokens, tenants in
//! every status, resolvers naming different tenants, and what reaches the inner service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{Echo, World, bearer, claims, forged_token, get, get_bearer, send, unsigned_token};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::json;
use tenant_manager_core::auth::{JwtConfig, TokenService};
use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::memory::{InMemoryRegistry, InMemoryTenantCache};
use tenant_manager_core::*;
use tenant_manager_tower::{
    HeaderResolver, JwtResolver, PathResolver, Resolution, ResolvedBy, SubdomainResolver,
    TenantLayer,
};
use tower::Layer;

#[tokio::test]
async fn a_verified_token_names_tenant_user_and_role() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, user) = world.token(&tenant, Role::Admin);
    let echo = Echo::default();
    let service = world.jwt_layer().layer(echo.service());

    let (status, _, body) = send(service, get_bearer("/items", &token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], json!(tenant.id));
    assert_eq!(body["user"], json!(user));
    assert_eq!(body["role"], "admin");
    assert_eq!(body["via"], "jwt");
    assert_eq!(echo.calls(), 1);
}

#[tokio::test]
async fn forged_expired_wrong_audience_and_unsigned_tokens_are_refused() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let other_audience =
        TokenService::new(JwtConfig::hs256(common::SECRET).with_audience("another-api")).unwrap();
    let user = NewUser::new(
        tenant.id,
        Email::new("a@b.example").unwrap(),
        Role::Owner,
        PasswordHash::from_phc("x"),
    )
    .into_user(time::OffsetDateTime::now_utc());
    let (valid, _) = world.token(&tenant, Role::Member);

    let cases = [
        (
            "forged signature",
            forged_token(
                &claims(&tenant, json!({})),
                "another-secret-another-secret-0123456",
            ),
        ),
        (
            "expired",
            forged_token(
                &claims(
                    &tenant,
                    json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
                ),
                common::SECRET,
            ),
        ),
        (
            "wrong audience",
            other_audience
                .issue(&user)
                .unwrap()
                .access_token
                .expose()
                .to_owned(),
        ),
        (
            "wrong issuer",
            forged_token(
                &claims(&tenant, json!({"iss": "someone-else"})),
                common::SECRET,
            ),
        ),
        ("alg none", unsigned_token(&claims(&tenant, json!({})))),
        ("tampered payload", {
            // The valid token's signature over another tenant's claims.
            let mut parts: Vec<&str> = valid.split('.').collect();
            let payload = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                claims(&tenant, json!({"role": "owner"})).to_string(),
            );
            parts[1] = &payload;
            parts.join(".")
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, token) in cases {
        let echo = Echo::default();
        let service = world.jwt_layer().layer(echo.service());
        let (status, headers, body) = send(service, get_bearer("/", &token)).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{case}");
        assert!(headers.contains_key(WWW_AUTHENTICATE), "{case}");
        assert!(
            !body.to_string().contains(&token),
            "{case}: the token is never echoed"
        );
        assert_eq!(echo.calls(), 0, "{case}: the inner service is not called");
    }

    for header in ["Basic dXNlcjpwdw==", "Bearer", "token-without-scheme"] {
        let service = world.jwt_layer().layer(Echo::default().service());
        let (status, _, _) = send(service, get("/", &[("authorization", header)])).await;
        assert_eq!(status, 401, "{header}");
    }
}

#[tokio::test]
async fn tenant_status_decides_the_answer() {
    let world = World::new();
    let cases = [
        (TenantStatus::Suspended, 403, "tenant_suspended", false),
        (TenantStatus::Pending, 409, "tenant_not_ready", true),
        (TenantStatus::Provisioning, 409, "tenant_not_ready", true),
        (TenantStatus::Failed, 409, "tenant_not_ready", false),
        (TenantStatus::Deleting, 401, "unauthenticated", false),
        (TenantStatus::Deleted, 401, "unauthenticated", false),
    ];
    for (i, (state, status, code, retry)) in cases.into_iter().enumerate() {
        let tenant = world.tenant(&format!("tenant{i}"), state).await;
        let (token, _) = world.token(&tenant, Role::Member);
        let echo = Echo::default();
        let service = world.jwt_layer().layer(echo.service());
        let (got, headers, body) = send(service, get_bearer("/", &token)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{state}"
        );
        assert_eq!(headers.contains_key(RETRY_AFTER), retry, "{state}");
        assert_eq!(echo.calls(), 0, "{state}");
    }
}

#[tokio::test]
async fn unknown_tenants_and_requests_naming_none_are_unauthenticated() {
    let world = World::new();
    let ghost = world.tenant("ghost", TenantStatus::Active).await;
    let (token, _) = world.token(&ghost, Role::Member);
    let lonely = World::new(); // same secret, empty registry: the token's tenant is unknown there
    let service = lonely.jwt_layer().layer(Echo::default().service());
    let (status, _, body) = send(service, get_bearer("/", &token)).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (401, Some("unauthenticated: unknown tenant"))
    );

    let service = world.jwt_layer().layer(Echo::default().service());
    assert_eq!(send(service, get("/", &[])).await.0, 401);
}

#[tokio::test]
async fn subdomain_header_path_and_custom_domain_resolvers() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(PathResolver::new("/t").unwrap())
        .with_resolver(HeaderResolver::x_tenant_id())
        .with_resolver(
            SubdomainResolver::new("app.test")
                .unwrap()
                .with_custom_domains(),
        )
        .build()
        .unwrap();
    let id = tenant.id.to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case<'_>; 5] = [
        ("/", vec![("host", "acme.app.test")], "subdomain"),
        ("/", vec![("host", "acme.customer.test:443")], "subdomain"),
        ("/", vec![("x-tenant-id", "acme")], "header"),
        ("/", vec![("x-tenant-id", id.as_str())], "header"),
        ("/t/acme/projects", vec![], "path"),
    ];
    for (uri, headers, via) in cases {
        let (status, _, body) =
            send(layer.layer(Echo::default().service()), get(uri, &headers)).await;
        assert_eq!(status, 200, "{uri} {headers:?}: {body}");
        assert_eq!(body["tenant"], json!(tenant.id));
        assert_eq!(body["via"], via);
        assert_eq!(body["user"], json!(null), "only tokens name users");
    }

    let (status, _, body) = send(
        layer.layer(Echo::default().service()),
        get("/", &[("x-tenant-id", "NOT A SLUG")]),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("x-tenant-id"))
    );
}

#[tokio::test]
async fn a_token_for_one_tenant_with_anything_naming_another_is_refused() {
    let world = World::new();
    let a = world.tenant("alpha", TenantStatus::Active).await;
    let b = world.tenant("bravo", TenantStatus::Active).await;
    let (token, user) = world.token(&a, Role::Member);
    let bearer = bearer(&token);
    let layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(JwtResolver::new(world.tokens.clone()))
        .with_resolver(HeaderResolver::x_tenant_id())
        .with_resolver(SubdomainResolver::new("app.test").unwrap())
        .with_resolver(PathResolver::new("/t").unwrap())
        .build()
        .unwrap();
    let b_id = b.id.to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>);
    let mismatches: [Case<'_>; 4] = [
        ("/", vec![("x-tenant-id", "bravo")]),
        ("/", vec![("x-tenant-id", b_id.as_str())]),
        ("/", vec![("host", "bravo.app.test")]),
        ("/t/bravo/items", vec![]),
    ];
    for (uri, mut headers) in mismatches {
        headers.push(("authorization", &bearer));
        let echo = Echo::default();
        let (status, _, body) = send(layer.layer(echo.service()), get(uri, &headers)).await;
        assert_eq!(status, 403, "{uri} {headers:?}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(echo.calls(), 0);
    }

    // Agreeing resolvers pass, and the token's user is kept whatever came first.
    let (status, _, body) = send(
        layer.layer(Echo::default().service()),
        get(
            "/t/alpha/items",
            &[
                ("authorization", &bearer),
                ("x-tenant-id", "alpha"),
                ("host", "alpha.app.test"),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!(user));
    assert_eq!(body["via"], "jwt");
}

#[tokio::test]
async fn closures_are_resolvers() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let slug = tenant.slug.clone();
    let layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(move |parts: &http::request::Parts| {
            Ok(parts
                .uri
                .query()
                .filter(|q| *q == "org=acme")
                .map(|_| Resolution::new(CacheKey::Slug(slug.clone()), ResolvedBy::Custom)))
        })
        .build()
        .unwrap();
    let (status, _, body) = send(
        layer.layer(Echo::default().service()),
        get("/?org=acme", &[]),
    )
    .await;
    assert_eq!((status, body["via"].as_str()), (200, Some("custom")));
    assert!(TenantLayer::builder(world.lookup.clone()).build().is_err());
}

#[tokio::test]
async fn suspension_is_seen_once_the_lookup_is_invalidated() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, _) = world.token(&tenant, Role::Member);
    let layer = world.jwt_layer();
    let call = || {
        send(
            layer.layer(Echo::default().service()),
            get_bearer("/", &token),
        )
    };
    assert_eq!(call().await.0, 200);
    world
        .registry
        .transition(tenant.id, TenantStatus::Suspended, Some("unpaid".into()))
        .await
        .unwrap();
    world.lookup.invalidate(tenant.id).await.unwrap();
    assert_eq!(call().await.0, 403);
}

/// A registry whose backend is down.
#[derive(Debug)]
struct DownRegistry(InMemoryRegistry);

fn down() -> Error {
    Error::unavailable("test registry", std::io::Error::other("connection refused"))
}

#[async_trait]
impl TenantRegistry for DownRegistry {
    async fn create_tenant(&self, t: NewTenant) -> Result<Tenant> {
        self.0.create_tenant(t).await
    }
    async fn create_tenant_with_owner(&self, t: NewTenant, o: NewUser) -> Result<(Tenant, User)> {
        self.0.create_tenant_with_owner(t, o).await
    }
    async fn get_tenant(&self, _: TenantId) -> Result<Tenant> {
        Err(down())
    }
    async fn find_tenant_by_slug(&self, _: &TenantSlug) -> Result<Option<Tenant>> {
        Err(down())
    }
    async fn find_tenant_by_domain(&self, _: &str) -> Result<Option<Tenant>> {
        Err(down())
    }
    async fn list_tenants(&self, q: &TenantQuery) -> Result<Page<Tenant>> {
        self.0.list_tenants(q).await
    }
    async fn count_tenants(&self, s: Option<TenantStatus>) -> Result<u64> {
        self.0.count_tenants(s).await
    }
    async fn update_tenant(&self, id: TenantId, u: TenantUpdate) -> Result<Tenant> {
        self.0.update_tenant(id, u).await
    }
    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        r: Option<String>,
    ) -> Result<Tenant> {
        self.0.transition(id, to, r).await
    }
    async fn purge_tenant(&self, id: TenantId) -> Result<()> {
        self.0.purge_tenant(id).await
    }
    async fn create_user(&self, u: NewUser) -> Result<User> {
        self.0.create_user(u).await
    }
    async fn get_user(&self, id: UserId) -> Result<User> {
        self.0.get_user(id).await
    }
    async fn find_user_by_email(&self, e: &Email) -> Result<Option<User>> {
        self.0.find_user_by_email(e).await
    }
    async fn list_users(&self, t: TenantId) -> Result<Vec<User>> {
        self.0.list_users(t).await
    }
    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>> {
        self.0.find_users_by_email(email).await
    }
    async fn update_user_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: tenant_manager_core::Role,
    ) -> Result<User> {
        self.0.update_user_role(tenant, user, role).await
    }
    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        self.0.delete_user(tenant, user).await
    }
    async fn create_invitation(
        &self,
        invitation: tenant_manager_core::NewInvitation,
        max_users: u64,
    ) -> Result<tenant_manager_core::Invitation> {
        self.0.create_invitation(invitation, max_users).await
    }
    async fn get_invitation(
        &self,
        id: tenant_manager_core::InvitationId,
    ) -> Result<tenant_manager_core::Invitation> {
        self.0.get_invitation(id).await
    }
    async fn list_invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<tenant_manager_core::Invitation>> {
        self.0.list_invitations(tenant).await
    }
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: tenant_manager_core::InvitationId,
    ) -> Result<tenant_manager_core::Invitation> {
        self.0.revoke_invitation(tenant, id).await
    }
    async fn accept_invitation(
        &self,
        id: tenant_manager_core::InvitationId,
        digest: &tenant_manager_core::TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User> {
        self.0.accept_invitation(id, digest, password_hash).await
    }
    async fn count_seats(&self, tenant: TenantId) -> Result<u64> {
        self.0.count_seats(tenant).await
    }
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User> {
        self.0.replace_password_hash(id, current, new).await
    }
}

#[tokio::test]
async fn an_unavailable_registry_is_503_with_retry_after() {
    let lookup = TenantLookup::new(
        Arc::new(DownRegistry(InMemoryRegistry::new())),
        Arc::new(InMemoryTenantCache::default()),
    );
    let layer = TenantLayer::builder(lookup)
        .with_resolver(HeaderResolver::x_tenant_id())
        .build()
        .unwrap();
    let echo = Echo::default();
    let (status, headers, body) = send(
        layer.layer(echo.service()),
        get("/", &[("x-tenant-id", "acme")]),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("backend_unavailable"))
    );
    assert!(headers.contains_key(RETRY_AFTER));
    assert_eq!(echo.calls(), 0);
}

#[tokio::test]
async fn a_cross_check_never_names_a_tenant_alone() {
    let world = World::new();
    let a = world.tenant("alpha", TenantStatus::Active).await;
    world.tenant("bravo", TenantStatus::Active).await;
    let (token, _) = world.token(&a, Role::Member);
    let bearer = bearer(&token);
    let layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(JwtResolver::new(world.tokens.clone()))
        .with_cross_check(HeaderResolver::x_tenant_id())
        .build()
        .unwrap();
    let cases: [(Vec<(&str, &str)>, u16); 4] = [
        (vec![("x-tenant-id", "alpha")], 401),
        (vec![("authorization", &bearer)], 200),
        (
            vec![("authorization", &bearer), ("x-tenant-id", "alpha")],
            200,
        ),
        (
            vec![("authorization", &bearer), ("x-tenant-id", "bravo")],
            403,
        ),
    ];
    for (headers, status) in cases {
        let echo = Echo::default();
        let (got, _, _) = send(layer.layer(echo.service()), get("/", &headers)).await;
        assert_eq!(got, status, "{headers:?}");
        assert_eq!(echo.calls(), usize::from(status == 200));
    }
    assert!(
        TenantLayer::builder(world.lookup.clone())
            .with_cross_check(HeaderResolver::x_tenant_id())
            .build()
            .is_err(),
        "a cross-check alone cannot build a layer"
    );
}
