//! Backups in the admin API and `tenant-cli backups` on the real Postgres, with the real
//! `pg_dump`/`pg_restore`: a tenant's list, restore as a new tenant in one call, restore into
//! an existing tenant, and a JSON error naming the field for every bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::isolation::Org;
use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, TempDir, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

async fn admin_post(server: &Server, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let r = server
        .send(Method::POST, path, Auth::AdminKey(ADMIN_KEY), body)
        .await;
    let json = r
        .json::<Value>()
        .unwrap_or_else(|_| panic!("{path}: {}", text(&r)));
    (r.status, json)
}

/// Company rows in the database of the database-isolated tenant `slug`, read as superuser.
async fn company_count(env: &PgEnv, slug: &str) -> i64 {
    let mut conn = env.admin(&format!("{}_t_{slug}", env.tag)).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM companies")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

async fn company_names(server: &Server, org: &Org) -> Vec<String> {
    let r = server
        .get("/api/companies?limit=100", Auth::Bearer(&org.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let mut names: Vec<String> = r.json::<Value>().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_and_restore_as_a_new_tenant_or_into_one_through_the_api_and_the_cli() {
    let env = PgEnv::new().await;
    let backups = TempDir::new("e2e-backups");
    let server = env.server(&[("BACKUP_DIR", backups.path().to_str().unwrap())]);
    let src = env
        .org_with_companies(&server, "src", "database", &["Alpha", "Beta", "Gamma"])
        .await;

    let (status, taken) = admin_post(
        &server,
        &format!("/api/admin/tenants/{}/backups", src.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let backup = taken["id"].as_str().unwrap().to_owned();

    // The list: the backup, with its isolation.
    let list = server
        .get_json(
            &format!("/api/admin/tenants/{}/backups", src.id),
            Auth::AdminKey(ADMIN_KEY),
        )
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], backup.as_str());
    assert_eq!(items[0]["isolation"], "database");

    // Restore as a new tenant: one call creates, provisions and fills it.
    let copy_slug = env.slug("copy");
    let restore = format!("/api/admin/backups/{backup}/restore");
    let (status, restored) = admin_post(
        &server,
        &restore,
        Some(&json!({"new_tenant": {"name": "Copy", "slug": copy_slug}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    assert_eq!(restored["created"], true);
    assert_eq!(restored["tenant"]["isolation"], "database");
    assert_eq!(restored["tenant"]["status"], "active");
    assert_ne!(restored["tenant"]["id"], src.id.as_str());
    assert_eq!(company_count(&env, &copy_slug).await, 3);

    // Into an existing tenant of the same isolation: its row is replaced by the source's.
    let dst = env
        .org_with_companies(&server, "dst", "database", &["Replaced"])
        .await;
    let (status, answer) = admin_post(&server, &restore, Some(&json!({"into": dst.id}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["created"], false);
    assert_eq!(
        company_names(&server, &dst).await,
        company_names(&server, &src).await
    );

    // tenant-cli: the list, and a restore as a new tenant by slug.
    let out = env
        .cli(&["backups", "list", &env.slug("src")])
        .env("BACKUP_DIR", backups.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(&backup), "{stdout}");
    let cli_slug = env.slug("cli_copy");
    let out = env
        .cli(&["backups", "restore", &backup, "--new-slug", &cli_slug])
        .env("BACKUP_DIR", backups.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(company_count(&env, &cli_slug).await, 3);

    // Retention: of three backups taken today, one day keeps the newest.
    let mut newest = String::new();
    for _ in 0..2 {
        let (status, taken) = admin_post(
            &server,
            &format!("/api/admin/tenants/{}/backups", src.id),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{taken}");
        newest = taken["id"].as_str().unwrap().to_owned();
    }
    let out = env
        .cli(&[
            "backups",
            "prune",
            &env.slug("src"),
            "--daily",
            "1",
            "--weekly",
            "0",
        ])
        .env("BACKUP_DIR", backups.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let list = server
        .get_json(
            &format!("/api/admin/tenants/{}/backups", src.id),
            Auth::AdminKey(ADMIN_KEY),
        )
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], newest.as_str());
}

/// A restore as a new tenant naming its owner: the answer carries an owner's invitation
/// (recorded as the operator's); once accepted, the owner logs in to the new tenant and sees
/// the restored rows, and can manage its users.
#[tokio::test]
async fn the_owner_named_in_a_restore_as_a_new_tenant_logs_in_to_the_restored_data() {
    const PASSWORD: &str = "Restored-Owner-1!";
    let env = PgEnv::new().await;
    let backups = TempDir::new("e2e-backups-owner");
    let server = env.server(&[("BACKUP_DIR", backups.path().to_str().unwrap())]);
    let src = env
        .org_with_companies(&server, "osrc", "schema", &["Alpha", "Beta"])
        .await;
    let (status, taken) = admin_post(
        &server,
        &format!("/api/admin/tenants/{}/backups", src.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let backup = taken["id"].as_str().unwrap().to_owned();
    let owner = common::email("restored-owner");
    let (status, restored) = admin_post(
        &server,
        &format!("/api/admin/backups/{backup}/restore"),
        Some(&json!({"new_tenant": {"slug": env.slug("ocopy"), "owner_email": owner}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    let tenant_id = restored["tenant"]["id"].as_str().unwrap().to_owned();
    let invitation = &restored["owner_invitation"];
    assert_eq!(invitation["email"], owner.as_str(), "{restored}");
    assert_eq!(invitation["role"], "owner", "{restored}");
    assert_eq!(invitation["invited_by"], Value::Null, "{restored}");
    let token = invitation["token"].as_str().unwrap();

    // Nobody logs in before the invitation is accepted.
    assert_eq!(
        server.login(&owner, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = server
        .post(
            "/api/auth/accept-invitation",
            Auth::None,
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let r = server.login(&owner, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let access = r.json::<Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let copy = Org {
        id: tenant_id,
        token: access,
    };
    assert_eq!(
        company_names(&server, &copy).await,
        company_names(&server, &src).await
    );
    let me = server
        .get_json("/api/tenant/users", Auth::Bearer(&copy.token))
        .await;
    let users = me["users"].as_array().unwrap_or_else(|| panic!("{me}"));
    assert_eq!(users.len(), 1, "{me}");
    assert_eq!(users[0]["role"], "owner", "{me}");
}

#[tokio::test]
async fn every_bad_input_of_the_backup_routes_is_a_json_error_naming_the_field() {
    let env = PgEnv::new().await;
    let backups = TempDir::new("e2e-backups-errors");
    let server = env.server(&[("BACKUP_DIR", backups.path().to_str().unwrap())]);
    let src = env
        .org_with_companies(&server, "src", "schema", &["Alpha"])
        .await;
    let (_, taken) = admin_post(
        &server,
        &format!("/api/admin/tenants/{}/backups", src.id),
        None,
    )
    .await;
    let backup = taken["id"].as_str().unwrap().to_owned();
    let restore = format!("/api/admin/backups/{backup}/restore");
    let unknown = uuid::Uuid::now_v7().to_string();
    let taken_slug = env.slug("src");

    let r = server
        .get(
            "/api/admin/tenants/not-a-uuid/backups",
            Auth::AdminKey(ADMIN_KEY),
        )
        .await;
    let json = r.json::<Value>().unwrap();
    assert_eq!(
        (r.status, &json["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("id"))
    );

    let cases: Vec<(String, Value, StatusCode, &str)> = vec![
        (
            "/api/admin/backups/nope/restore".into(),
            json!({"into": src.id}),
            StatusCode::BAD_REQUEST,
            "backup_id",
        ),
        (
            format!("/api/admin/backups/{unknown}/restore"),
            json!({"into": src.id}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (restore.clone(), json!({}), StatusCode::BAD_REQUEST, "into"),
        (
            restore.clone(),
            json!({"into": "x"}),
            StatusCode::BAD_REQUEST,
            "into",
        ),
        (
            restore.clone(),
            json!({"into": unknown}),
            StatusCode::BAD_REQUEST,
            "into",
        ),
        (
            restore.clone(),
            json!({"into": src.id, "new_tenant": {"slug": "abc"}}),
            StatusCode::BAD_REQUEST,
            "new_tenant",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"name": "x"}}),
            StatusCode::BAD_REQUEST,
            "new_tenant.slug",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"slug": "Bad Slug!"}}),
            StatusCode::BAD_REQUEST,
            "new_tenant.slug",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"slug": env.slug("ok"), "name": " "}}),
            StatusCode::BAD_REQUEST,
            "new_tenant.name",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"slug": env.slug("ok"), "owner_email": "not-an-email"}}),
            StatusCode::BAD_REQUEST,
            "new_tenant.owner_email",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"slug": env.slug("ok"), "owner_email": ""}}),
            StatusCode::BAD_REQUEST,
            "new_tenant.owner_email",
        ),
        (
            restore.clone(),
            json!({"new_tenant": {"slug": taken_slug}}),
            StatusCode::CONFLICT,
            "new_tenant.slug",
        ),
        (
            restore.clone(),
            json!({"into": src.id, "extra": 1}),
            StatusCode::BAD_REQUEST,
            "body",
        ),
    ];
    for (path, body, status, field) in cases {
        let (got, json) = admin_post(&server, &path, Some(&body)).await;
        assert_eq!(got, status, "{path} {body}: {json}");
        if field.is_empty() {
            assert_eq!(
                json["error"]["code"], "backup_not_found",
                "{path} {body}: {json}"
            );
        } else {
            assert_eq!(json["error"]["field"], field, "{path} {body}: {json}");
        }
    }
    // A refused restore as a new tenant leaves no tenant behind.
    let list = server
        .get_json("/api/admin/tenants?limit=500", Auth::AdminKey(ADMIN_KEY))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_to_an_s3_bucket_and_restore_from_it() {
    use tenant_manager::BackupStore as _;
    use tenant_manager::backup_store::{ObjectBackupStore, S3Config};

    let moto = tokio::task::block_in_place(tenant_manager_test_support::moto::moto);
    let env = PgEnv::new().await;
    let bucket = format!("tm-{}", env.tag);
    moto.create_bucket(&bucket);
    let endpoint = moto.endpoint();
    let empty_dir = TempDir::new("e2e-backups-s3");
    let server = env.server(&[
        ("BACKUP_STORE", "s3"),
        ("BACKUP_DIR", empty_dir.path().to_str().unwrap()),
        ("BACKUP_S3_BUCKET", &bucket),
        ("BACKUP_S3_ENDPOINT", &endpoint),
        ("BACKUP_S3_ACCESS_KEY_ID", "test-key-id"),
        ("BACKUP_S3_SECRET_ACCESS_KEY", "test-secret"),
    ]);
    let src = env
        .org_with_companies(&server, "s3src", "database", &["Alpha", "Beta"])
        .await;
    let (status, taken) = admin_post(
        &server,
        &format!("/api/admin/tenants/{}/backups", src.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");

    // The artifact is in the bucket, nothing on local disk.
    let store = ObjectBackupStore::s3(
        &S3Config::new(bucket.clone(), "test-key-id", "test-secret")
            .with_endpoint(endpoint.clone())
            .with_allow_http(true),
    )
    .unwrap();
    let objects = store.list(&format!("{}/", src.id)).await.unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].key, taken["key"].as_str().unwrap());
    assert_eq!(
        std::fs::read_dir(empty_dir.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    let backup = taken["id"].as_str().unwrap();
    let copy_slug = env.slug("s3copy");
    let (status, restored) = admin_post(
        &server,
        &format!("/api/admin/backups/{backup}/restore"),
        Some(&json!({"new_tenant": {"slug": copy_slug}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    assert_eq!(company_count(&env, &copy_slug).await, 2);
}
