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
    // Recorded as the operator's: no inviting user (not the tenant's owner).
    let inviter: Option<String> =
        sqlx::query_scalar("SELECT invited_by::text FROM tm_invitations WHERE id = $1::uuid")
            .bind(invited["id"].as_str().unwrap())
            .fetch_one(&mut env.registry().await)
            .await
            .unwrap();
    assert_eq!(inviter, None, "the operator invited, not {owner_id}");
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

/// Rows of `tm_refresh_tokens` with id `id`: 1 while it exists.
async fn token_rows(env: &PgEnv, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tm_refresh_tokens WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&mut env.registry().await)
        .await
        .unwrap()
}

/// Stores a refresh token row of the tenant's owner expiring `expires_in_s` seconds from the
/// database's now (negative: already expired); returns its id.
async fn store_token(env: &PgEnv, tenant: &str, expires_in_s: i64) -> String {
    sqlx::query_scalar(
        "INSERT INTO tm_refresh_tokens \
           (id, family_id, user_id, tenant_id, token_digest, created_at, expires_at) \
         SELECT gen_random_uuid(), gen_random_uuid(), u.id, u.tenant_id, \
                sha256(gen_random_uuid()::text::bytea), now() - interval '2 days', \
                now() + make_interval(secs => $2) \
         FROM tm_users u WHERE u.tenant_id = $1::uuid LIMIT 1 \
         RETURNING id::text",
    )
    .bind(tenant)
    .bind(expires_in_s as f64)
    .fetch_one(&mut env.registry().await)
    .await
    .unwrap()
}

/// Polls until the row of refresh token `id` is gone; false if it is still there after
/// `PRUNE_PATIENCE` (the server prunes every 50 ms).
async fn pruned(env: &PgEnv, id: &str) -> bool {
    const PRUNE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
    let deadline = tokio::time::Instant::now() + PRUNE_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if token_rows(env, id).await == 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// The server's pruning task (`REFRESH_TOKEN_PRUNE_INTERVAL_MS`) deletes expired refresh
/// tokens from the registry as it runs, round after round, and leaves the unexpired ones: a
/// login's token, and one that expires in an hour, both outlive several rounds.
#[tokio::test]
async fn the_prune_task_deletes_expired_refresh_tokens_only() {
    let env = PgEnv::new().await;
    let server = env.server(&[("REFRESH_TOKEN_PRUNE_INTERVAL_MS", "50")]);
    let (tenant_id, _, _) = env.register(&server, "prune", "shared").await;
    let owner: String = sqlx::query_scalar("SELECT email FROM tm_users WHERE tenant_id = $1::uuid")
        .bind(&tenant_id)
        .fetch_one(&mut env.registry().await)
        .await
        .unwrap();
    let r = server.login(&owner, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let live_refresh = r.json::<Value>().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let later = store_token(&env, &tenant_id, 3600).await;
    let expired = store_token(&env, &tenant_id, -1).await;
    assert!(pruned(&env, &expired).await, "the expired token is deleted");
    // Another round, after the first: a token that expired long ago goes too.
    let older = store_token(&env, &tenant_id, -86_400).await;
    assert!(pruned(&env, &older).await, "deleted by a later round");
    // The rounds left the unexpired tokens alone.
    assert_eq!(
        token_rows(&env, &later).await,
        1,
        "not deleted before expiry"
    );
    let r = refresh(&server, &live_refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
}
