//! `tenant-cli users` end to end on the real Postgres (and Redis): an operator's invitation
//! accepted through the API, the users listed, a removal that revokes the user's refresh
//! tokens, the users quota and the last owner kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, assert_error, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};

const PASSWORD: &str = "Test123!";

fn run(env: &PgEnv, args: &[&str]) -> Output {
    env.cli(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `users list --json`: one JSON object per user.
fn users(env: &PgEnv, tenant: &str) -> Vec<Value> {
    let out = run(env, &["users", "list", tenant, "--json"]);
    assert_ok(&out);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn refresh(server: &Server, token: &str) -> reference_server::http_client::HttpResponse {
    server
        .post(
            "/api/auth/refresh",
            Auth::None,
            &json!({"refresh_token": token}),
        )
        .await
}

/// The refresh tokens of `user` not revoked, as the registry keeps them.
async fn live_refresh_tokens(env: &PgEnv, user: &str) -> i64 {
    let mut registry = env.registry().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM tm_refresh_tokens WHERE user_id = $1::uuid AND revoked_at IS NULL",
    )
    .bind(user)
    .fetch_one(&mut registry)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_operator_invites_lists_and_removes_users() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let (tenant_id, _, _) = env.register(&server, "ucli", "schema").await;
    let slug = env.slug("ucli");

    // The owner alone, by slug and by id.
    let listed = users(&env, &slug);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["role"], "owner");
    let owner_id = listed[0]["id"].as_str().unwrap().to_owned();
    let owner_email = listed[0]["email"].as_str().unwrap().to_owned();
    assert_eq!(users(&env, &tenant_id), listed);
    let table = run(&env, &["users", "list", &slug]);
    assert_ok(&table);
    assert!(stdout(&table).contains(&owner_id), "{}", stdout(&table));

    // An operator's invitation, accepted through the API; the user logs in.
    let member_email = email("ucli-member");
    let out = run(
        &env,
        &["users", "invite", &slug, &member_email, "--role", "admin"],
    );
    assert_ok(&out);
    let invited: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(invited["role"], "admin", "{invited}");
    assert!(invited["expires_at"].is_string(), "{invited}");
    let token = invited["token"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(token));
    let r = server
        .post(
            "/api/auth/accept-invitation",
            Auth::None,
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let r = server.login(&member_email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let session: Value = r.json().unwrap();
    let member_refresh = session["refresh_token"].as_str().unwrap().to_owned();

    let listed = users(&env, &slug);
    let member = listed
        .iter()
        .find(|u| u["email"] == member_email.as_str())
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(member["role"], "admin");
    let member_id = member["id"].as_str().unwrap().to_owned();

    // The same e-mail again is a conflict; a bad e-mail is invalid input.
    let out = run(&env, &["users", "invite", &slug, &member_email]);
    assert_eq!(out.status.code(), Some(4));
    let out = run(&env, &["users", "invite", &slug, "not-an-email"]);
    assert_eq!(out.status.code(), Some(5));

    // The users quota applies to the operator too (2 users taken).
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{tenant_id}/quota"),
            Auth::AdminKey(ADMIN_KEY),
            Some(
                &json!({"rate": {"limit": 1000, "window_ms": 1000}, "max_users": 2,
                "max_storage_bytes": 1_000_000_000u64, "max_connections": 5}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let out = run(&env, &["users", "invite", &slug, &email("ucli-third")]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());

    // Removal: the user is gone and its refresh tokens are revoked in the registry.
    assert_eq!(live_refresh_tokens(&env, &member_id).await, 1);
    let out = run(&env, &["users", "remove", &slug, &member_id]);
    assert_ok(&out);
    assert_eq!(live_refresh_tokens(&env, &member_id).await, 0);
    assert_error(
        &refresh(&server, &member_refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let listed = users(&env, &slug);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let out = run(&env, &["users", "remove", &slug, &member_id]);
    assert_eq!(out.status.code(), Some(3));

    // The last owner stays.
    let out = run(&env, &["users", "remove", &slug, &owner_id]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert_eq!(users(&env, &slug).len(), 1);
    let r = server.login(&owner_email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
}
