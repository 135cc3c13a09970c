//! The cross-tenant probes every deployment mode must pass: tenant B reaches none of tenant
//! A's companies, with its own token or by naming A anywhere in the request.

use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};

use super::Server;

/// A registered tenant: its id and its owner's access token.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    pub token: String,
}

/// Whether `server`'s pool manager lists a pool of `org`.
pub async fn has_pool(server: &Server, org: &Org) -> bool {
    let stats: Value = server
        .get_json("/api/admin/pools", Auth::AdminKey(super::ADMIN_KEY))
        .await;
    stats["per_pool"]
        .as_array()
        .unwrap_or_else(|| panic!("pool stats: {stats}"))
        .iter()
        .any(|pool| pool["tenant"] == org.id.as_str())
}

/// A creates a company; B cannot list, read, change or delete it with its own token, nor by
/// naming A in a header, a body field or a query parameter; A still sees it. Returns the id
/// of A's company.
pub async fn assert_b_cannot_reach_a(server: &Server, a: &Org, b: &Org) -> String {
    let (a_id, a_token, b_id, b_token) =
        (a.id.clone(), a.token.clone(), b.id.clone(), b.token.clone());
    let created = server
        .post(
            "/api/companies",
            Auth::Bearer(&a_token),
            &json!({"name":"Secret Co"}),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        super::text(&created)
    );
    let a_company = created.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // B's own token: sees none of A's companies, and A's company id is not found.
    let list = server
        .get_json("/api/companies", Auth::Bearer(&b_token))
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let path = format!("/api/companies/{a_company}");
    for method in [Method::GET, Method::DELETE] {
        let r = server
            .send(method, &path, Auth::Bearer(&b_token), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let r = server
        .send(
            Method::PATCH,
            &path,
            Auth::Bearer(&b_token),
            Some(&json!({"name":"pwned"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Naming A in a header next to B's token is refused.
    let request = http::Request::get(format!("{}/api/companies", server.base_url))
        .header("authorization", format!("Bearer {b_token}"))
        .header("x-tenant-id", &a_id)
        .body(())
        .unwrap();
    let r = raw(request).await;
    assert_eq!(r, StatusCode::FORBIDDEN);

    // A header alone, a forged token, or a body field naming A: no access.
    let request = http::Request::get(format!("{}/api/companies", server.base_url))
        .header("x-tenant-id", &a_id)
        .body(())
        .unwrap();
    assert_eq!(raw(request).await, StatusCode::UNAUTHORIZED);
    let forged = format!("{}x", &b_token[..b_token.len() - 1]);
    let r = server.get("/api/companies", Auth::Bearer(&forged)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = server
        .post(
            "/api/companies",
            Auth::Bearer(&b_token),
            &json!({"name":"x","tenant_id": a_id}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let r = server
        .get(
            &format!("/api/companies?tenant_id={a_id}"),
            Auth::Bearer(&b_token),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A still sees its company; B's tenant is B.
    let mine = server.get_json(&path, Auth::Bearer(&a_token)).await;
    assert_eq!(mine["name"], "Secret Co");
    let me = server.get_json("/api/tenant", Auth::Bearer(&b_token)).await;
    assert_eq!(me["id"], b_id.as_str());
    a_company
}

/// Sends a request with arbitrary headers and returns its status.
pub async fn raw(request: http::Request<()>) -> StatusCode {
    let (parts, ()) = request.into_parts();
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        parts.method.as_str(),
    ]);
    for (name, value) in &parts.headers {
        cmd.arg("-H")
            .arg(format!("{}: {}", name, value.to_str().unwrap()));
    }
    let out = cmd.arg(parts.uri.to_string()).output().await.expect("curl");
    let code: u16 = String::from_utf8_lossy(&out.stdout)
        .parse()
        .expect("status");
    StatusCode::from_u16(code).unwrap()
}
