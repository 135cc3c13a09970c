//! End-to-end on the real Postgres (and Redis): invitations, roles, the users quota, one
//! e-mail in several tenants, refresh tokens and what revokes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, assert_error, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::{Auth, HttpResponse};
use serde_json::{Value, json};

const PASSWORD: &str = "Test123!";

fn body(r: &HttpResponse) -> Value {
    r.json()
        .unwrap_or_else(|_| panic!("json: {} {}", r.status, text(r)))
}

/// Asserts `400 invalid_input` naming `field`.
fn assert_field(r: &HttpResponse, field: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(body(r)["error"]["field"], field, "{}", text(r));
}

/// Invites `email` as `role` with `token`, whatever the answer.
async fn invite(server: &Server, token: &str, email: &str, role: &str) -> HttpResponse {
    server
        .post(
            "/api/tenant/invitations",
            Auth::Bearer(token),
            &json!({"email": email, "role": role}),
        )
        .await
}

/// Invites and accepts: the new user's id.
async fn add_user(server: &Server, token: &str, email: &str, role: &str, password: &str) -> String {
    let r = invite(server, token, email, role).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let invitation = body(&r)["token"].as_str().unwrap().to_owned();
    let r = accept(server, &invitation, password).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    body(&r)["user"]["id"].as_str().unwrap().to_owned()
}

async fn accept(server: &Server, token: &str, password: &str) -> HttpResponse {
    server
        .post(
            "/api/auth/accept-invitation",
            Auth::None,
            &json!({"token": token, "password": password}),
        )
        .await
}

/// Logs in (optionally to `tenant`), whatever the answer.
async fn login(server: &Server, email: &str, password: &str, tenant: Option<&str>) -> HttpResponse {
    let mut request = json!({"email": email, "password": password});
    if let Some(tenant) = tenant {
        request["tenant"] = json!(tenant);
    }
    server.post("/api/auth/login", Auth::None, &request).await
}

/// Logs in successfully: (access token, refresh token).
async fn session(server: &Server, email: &str, password: &str) -> (String, String) {
    let r = login(server, email, password, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let b = body(&r);
    (
        b["access_token"].as_str().expect("access token").to_owned(),
        b["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    )
}

async fn refresh(server: &Server, token: &str) -> HttpResponse {
    server
        .post(
            "/api/auth/refresh",
            Auth::None,
            &json!({"refresh_token": token}),
        )
        .await
}

async fn send(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    b: Option<&Value>,
) -> HttpResponse {
    server.send(method, path, Auth::Bearer(token), b).await
}

#[tokio::test]
async fn owners_and_admins_manage_users_members_do_not() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let (tenant_a, owner, answer) = env.register(&server, "users_a", "shared").await;
    let owner_email = answer["user"]["email"].as_str().unwrap().to_owned();

    // Bad input names its field.
    let r = server
        .post(
            "/api/tenant/invitations",
            Auth::Bearer(&owner),
            &json!({"role": "member"}),
        )
        .await;
    assert_field(&r, "email");
    assert_field(
        &invite(&server, &owner, "not-an-email", "member").await,
        "email",
    );
    assert_field(&invite(&server, &owner, &email("x"), "boss").await, "role");
    let patch = json!({"role": "admin"});
    let r = send(
        &server,
        Method::PATCH,
        "/api/tenant/users/nope",
        &owner,
        Some(&patch),
    )
    .await;
    assert_field(&r, "id");
    let r = send(
        &server,
        Method::DELETE,
        "/api/tenant/invitations/nope",
        &owner,
        None,
    )
    .await;
    assert_field(&r, "id");
    assert_field(
        &server
            .post(
                "/api/auth/accept-invitation",
                Auth::None,
                &json!({"password": PASSWORD}),
            )
            .await,
        "token",
    );
    assert_field(&accept(&server, "abc.def", PASSWORD).await, "token");

    // The owner invites; the invitee accepts with a password (the policy applies) and logs in.
    let member_email = email("member");
    let r = invite(&server, &owner, &member_email, "member").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let invitation = body(&r)["token"].as_str().unwrap().to_owned();
    let listed = server
        .get_json("/api/tenant/invitations", Auth::Bearer(&owner))
        .await;
    assert_eq!(
        listed["invitations"][0]["email"],
        member_email.as_str(),
        "{listed}"
    );
    assert!(
        listed.to_string().find(&invitation).is_none(),
        "tokens are never listed"
    );
    assert_field(&accept(&server, &invitation, "short").await, "password");
    let r = accept(&server, &invitation, PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(body(&r)["tenant_id"], tenant_a.as_str());
    let member_id = body(&r)["user"]["id"].as_str().unwrap().to_owned();
    assert_error(
        &accept(&server, &invitation, PASSWORD).await,
        StatusCode::NOT_FOUND,
        "invitation_not_found",
    );
    let (member, member_refresh) = session(&server, &member_email, PASSWORD).await;

    // A member manages no users.
    let r = server.get("/api/tenant/users", Auth::Bearer(&member)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_error(
        &invite(&server, &member, &email("y"), "member").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = send(
        &server,
        Method::GET,
        "/api/tenant/invitations",
        &member,
        None,
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let owner_id = answer["user"]["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/users/{owner_id}"),
        &member,
        None,
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/tenant/users/{member_id}"),
        &member,
        Some(&patch),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // The owner lists and promotes; an admin cannot grant owner, nor touch the owner.
    let users = server
        .get_json("/api/tenant/users", Auth::Bearer(&owner))
        .await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/tenant/users/{member_id}"),
        &owner,
        Some(&patch),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(body(&r)["role"], "admin");
    // The role is read from the registry, not from the (older) token.
    let r = invite(&server, &member, &email("owner2"), "owner").await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/users/{owner_id}"),
        &member,
        None,
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // The last owner stays.
    let demote = json!({"role": "member"});
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/tenant/users/{owner_id}"),
        &owner,
        Some(&demote),
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(body(&r)["error"]["field"], "role");
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/users/{owner_id}"),
        &owner,
        None,
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // The users quota counts users and pending invitations, at invite time.
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{tenant_a}/quota"),
            Auth::AdminKey(ADMIN_KEY),
            Some(
                &json!({"rate": {"limit": 1000, "window_ms": 1000}, "max_users": 3,
                "max_storage_bytes": 1_000_000_000u64, "max_connections": 5}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let r = invite(&server, &owner, &email("third"), "member").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let third = body(&r)["id"].as_str().unwrap().to_owned();
    let r = invite(&server, &owner, &email("fourth"), "member").await;
    assert_error(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    assert_eq!(body(&r)["error"]["field"], "users", "{}", text(&r));
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/invitations/{third}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
    let r = invite(&server, &owner, &email("fourth"), "member").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "a revoked invitation frees its seat: {}",
        text(&r)
    );
    let r = invite(&server, &owner, &owner_email, "member").await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // The token's tenant is authoritative: tenant B's owner cannot reach A's users.
    let (_, owner_b, _) = env.register(&server, "users_b", "shared").await;
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/users/{member_id}"),
        &owner_b,
        None,
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "user_not_found");
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/tenant/users/{member_id}"),
        &owner_b,
        Some(&demote),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "user_not_found");
    let listed_b = server
        .get_json("/api/tenant/users", Auth::Bearer(&owner_b))
        .await;
    assert_eq!(
        listed_b["users"].as_array().map(Vec::len),
        Some(1),
        "{listed_b}"
    );
    let r = server
        .send(
            Method::GET,
            "/api/tenant/users",
            Auth::Bearer(&owner_b),
            None,
        )
        .await;
    assert!(!text(&r).contains(&member_id));

    // Removal: the user is gone, its refresh tokens are revoked, its access token no longer
    // manages users.
    let r = send(
        &server,
        Method::DELETE,
        &format!("/api/tenant/users/{member_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
    assert_error(
        &refresh(&server, &member_refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let r = server.get("/api/tenant/users", Auth::Bearer(&member)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = login(&server, &member_email, PASSWORD, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn one_email_in_two_tenants_chooses_after_the_right_password() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let person = email("person");
    let mut registration = env.registration("multi_a", "shared");
    registration["admin_email"] = json!(person);
    let (tenant_a, _, _) = server.register_with(&registration).await;
    let (tenant_b, owner_b, _) = env.register(&server, "multi_b", "shared").await;
    add_user(&server, &owner_b, &person, "member", PASSWORD).await;

    // The right password, no tenant: the tenants to choose from, and no token.
    let r = login(&server, &person, PASSWORD, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let choice = body(&r);
    assert!(choice.get("access_token").is_none(), "{choice}");
    let slugs: Vec<&str> = choice["choose_tenant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec![env.slug("multi_a"), env.slug("multi_b")]);

    // Naming a tenant: a token for that tenant only.
    for (slug, id) in [
        (env.slug("multi_a"), &tenant_a),
        (env.slug("multi_b"), &tenant_b),
    ] {
        let r = login(&server, &person, PASSWORD, Some(&slug)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
        assert_eq!(body(&r)["tenant_id"], id.as_str());
        let token = body(&r)["access_token"].as_str().unwrap().to_owned();
        let current = server.get_json("/api/tenant", Auth::Bearer(&token)).await;
        assert_eq!(current["id"], id.as_str(), "{current}");
    }

    // A wrong password reveals nothing: the answer of an unknown e-mail, with or without a
    // tenant, also for an unknown tenant.
    let unknown = login(&server, &email("nobody"), PASSWORD, None).await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthenticated");
    for r in [
        login(&server, &person, "Wrong-pass-1", None).await,
        login(&server, &person, "Wrong-pass-1", Some(&env.slug("multi_b"))).await,
        login(&server, &person, PASSWORD, Some("no_such_tenant")).await,
    ] {
        assert_eq!(
            (r.status, &r.body),
            (unknown.status, &unknown.body),
            "{}",
            text(&r)
        );
    }
    assert_field(
        &login(&server, &person, PASSWORD, Some("Bad Slug!")).await,
        "tenant",
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_are_revoked() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let (_, _, answer) = env.register(&server, "sessions", "shared").await;
    let owner_email = answer["user"]["email"].as_str().unwrap().to_owned();

    // Bad input names its field.
    let r = server
        .post("/api/auth/refresh", Auth::None, &json!({}))
        .await;
    assert_field(&r, "refresh_token");
    assert_field(&refresh(&server, "garbage").await, "refresh_token");
    let r = server
        .post("/api/auth/logout", Auth::None, &json!({}))
        .await;
    assert_field(&r, "refresh_token");

    // Rotation: the old token is used up; using it again revokes the whole family.
    let (_, first) = session(&server, &owner_email, PASSWORD).await;
    let r = refresh(&server, &first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let second = body(&r)["refresh_token"].as_str().unwrap().to_owned();
    let access = body(&r)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .get("/api/tenant", Auth::Bearer(&access))
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &refresh(&server, &first).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &refresh(&server, &second).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );

    // Logout ends the session.
    let (_, third) = session(&server, &owner_email, PASSWORD).await;
    let r = server
        .post(
            "/api/auth/logout",
            Auth::None,
            &json!({"refresh_token": third}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
    assert_error(
        &refresh(&server, &third).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );

    // A password change ends every session of the user.
    let (access, fourth) = session(&server, &owner_email, PASSWORD).await;
    let (_, fifth) = session(&server, &owner_email, PASSWORD).await;
    let change = |current: &str, new: Option<&str>| {
        let mut b = json!({"current_password": current});
        if let Some(new) = new {
            b["new_password"] = json!(new);
        }
        b
    };
    let r = server
        .post(
            "/api/auth/change-password",
            Auth::Bearer(&access),
            &change(PASSWORD, None),
        )
        .await;
    assert_field(&r, "new_password");
    let r = server
        .post(
            "/api/auth/change-password",
            Auth::Bearer(&access),
            &change("Wrong-pass-1", Some("Changed-42!")),
        )
        .await;
    assert_field(&r, "current_password");
    let r = server
        .post(
            "/api/auth/change-password",
            Auth::Bearer(&access),
            &change(PASSWORD, Some("Changed-42!")),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
    assert_error(
        &refresh(&server, &fourth).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &refresh(&server, &fifth).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &login(&server, &owner_email, PASSWORD, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    session(&server, &owner_email, "Changed-42!").await;
}

#[tokio::test]
async fn expired_invitations_are_refused() {
    let env = PgEnv::new().await;
    let server = env.server(&[("INVITATION_TTL_SECONDS", "1")]);
    let (_, owner, _) = env.register(&server, "expiry", "shared").await;
    let r = invite(&server, &owner, &email("late"), "member").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let token = body(&r)["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_error(
        &accept(&server, &token, PASSWORD).await,
        StatusCode::NOT_FOUND,
        "invitation_not_found",
    );
    let listed = server
        .get_json("/api/tenant/invitations", Auth::Bearer(&owner))
        .await;
    assert_eq!(
        listed["invitations"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
}
