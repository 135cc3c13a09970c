//! End-to-end, embedded mode: the busiest tenants at `GET /api/admin/top-tenants` and in the
//! `tenant_manager_top_tenant_*` series of `/metrics`, never more tenant label values than
//! `TOP_TENANTS_K`; bad `k` and `by` answered with a JSON error naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{ADMIN_KEY, Server, email, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};

fn top_tenant_values(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with("tenant_manager_top_tenant_"))
        .filter_map(|line| line.split_once("tenant=\""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .collect()
}

#[tokio::test]
async fn the_busiest_tenants_are_listed_and_exported_within_k() {
    let server = Server::start(&[("TOP_TENANTS_K", "2"), ("RATE_LIMIT_MAX_REQUESTS", "1000")]);
    let mut tenants = Vec::new();
    for (n, requests) in [(1, 6), (2, 3), (3, 1), (4, 1)] {
        let slug = format!("topk_org_{n}");
        let (_, token, _) = server
            .register_with(&json!({
                "organization_name": format!("Top {n}"),
                "admin_email": email(&format!("top{n}")),
                "admin_password": "Test123!",
                "slug": slug,
            }))
            .await;
        for _ in 0..requests {
            let r = server.get("/api/tenant", Auth::Bearer(&token)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
        }
        tenants.push(slug);
    }

    let admin = Auth::AdminKey(ADMIN_KEY);
    let r = server.get("/api/admin/top-tenants", admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(
        (body["by"].as_str(), body["tracked"].as_u64()),
        (Some("requests"), Some(2))
    );
    let listed: Vec<&str> = body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{body}");
    assert_eq!(listed[0], "topk_org_1", "the busiest first: {body}");
    let first = &body["tenants"][0];
    assert!(first["requests"].as_u64().unwrap() >= 6, "{first}");
    assert!(first["p99_seconds"].as_f64().unwrap() > 0.0, "{first}");
    assert_eq!(first["errors"], 0);

    let one = server
        .get("/api/admin/top-tenants?k=1&by=errors", admin)
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", text(&one));
    assert_eq!(
        one.json::<Value>().unwrap()["tenants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let metrics = server.get("/metrics", Auth::None).await;
    let metrics = text(&metrics);
    let values = top_tenant_values(&metrics);
    assert!(values.len() <= 2, "{values:?}");
    assert!(values.contains("topk_org_1"), "{values:?}\n{metrics}");
    assert!(metrics.contains("# TYPE tenant_manager_top_tenant_requests gauge"));
    assert!(metrics.contains("# TYPE tenant_manager_top_tenant_latency_seconds summary"));
    assert!(metrics.contains(
        "tenant_manager_top_tenant_latency_seconds{tenant=\"topk_org_1\",quantile=\"0.99\"}"
    ));

    for (query, field) in [
        ("k=0", "k"),
        ("k=3", "k"),
        ("k=abc", "k"),
        ("k=-1", "k"),
        ("by=bogus", "by"),
        ("k=1&by=", "by"),
    ] {
        let r = server
            .get(&format!("/api/admin/top-tenants?{query}"), admin)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", text(&r));
        let error: Value = r.json().unwrap();
        assert_eq!(error["error"]["field"], field, "{query}: {error}");
        assert_eq!(error["error"]["code"], "invalid_input", "{query}: {error}");
    }
    let r = server.get("/api/admin/top-tenants", Auth::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
}
