//! The scale run (`tenant-cli scale`) in small: 200 tenants over the shared Postgres and a
//! second cluster the run starts itself, a few seconds of load, the fleet migration. Checks
//! the run's invariants from its JSON report (every tenant registered and placed on both
//! servers, tenant connections never above the budget, every tenant reached by the load and
//! by the migration) and that it left nothing behind on the shared server. The full run
//! (10,000 tenants) is `scripts/scale-run.sh`, outside the test suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tenant_manager_test_support::postgres_admin_url;

#[tokio::test]
async fn a_small_scale_run_keeps_its_invariants_and_cleans_up() {
    let admin = postgres_admin_url().await;
    let report = std::env::temp_dir().join(format!(
        "tm-scale-report-{}.json",
        tenant_manager_test_support::unique_suffix()
    ));
    let budget = 6;
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-cli"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["scale", "--tenants", "200", "--database-tenants", "4"])
        .args([
            "--shared-every",
            "5",
            "--small-set",
            "20",
            "--duration",
            "2",
        ])
        .args(["--concurrency", "16", "--register-concurrency", "8"])
        .args(["--budget", &budget.to_string(), "--global-pool", "6"])
        .args(["--admin-url", &admin])
        .args(["--server-bin", env!("CARGO_BIN_EXE_reference-server")])
        .arg("--output")
        .arg(&report)
        .output()
        .expect("run tenant-cli scale");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    assert!(
        out.status.success(),
        "tenant-cli scale: {}\n{stdout}\n{stderr}",
        out.status
    );
    let r: Value = serde_json::from_str(&text).expect("the JSON report");
    assert_eq!(r["violations"], serde_json::json!([]), "{stdout}");

    // Every tenant registered, of each isolation, on both servers.
    let reg = &r["registration"];
    assert_eq!(reg["registered"], 200);
    assert_eq!(reg["database"], 4);
    assert_eq!(reg["shared"], 39);
    assert_eq!(reg["schema"], 157);
    let placement = reg["placement"].as_object().unwrap();
    assert_eq!(placement.len(), 2, "{placement:?}");
    let placed: f64 = placement.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((placed - 200.0).abs() < 0.5, "{placement:?}");
    assert!(placement.values().all(|v| v.as_f64().unwrap() >= 50.0));

    // The tenant connections were sampled and never went above the budget, on both servers.
    let c = &r["connections"];
    assert!(c["samples"].as_u64().unwrap() > 10, "{c}");
    assert!(c["tenant_total"].as_i64().unwrap() <= budget, "{c}");
    assert!(c["tenant_total"].as_i64().unwrap() > 0, "{c}");
    assert!(c["tenant_per_server"][0].as_i64().unwrap() > 0, "{c}");
    assert!(c["tenant_per_server"][1].as_i64().unwrap() > 0, "{c}");

    // Every load phase reached each tenant of its set without errors.
    let load = r["load"].as_array().unwrap();
    assert_eq!(load.len(), 3);
    for (phase, tenants) in load.iter().zip([20, 200, 20]) {
        assert_eq!(phase["tenants"], tenants, "{phase}");
        assert_eq!(phase["tenants_reached"], tenants, "{phase}");
        assert_eq!(phase["errors"], 0, "{phase}");
        assert!(phase["ok"].as_u64().unwrap() >= tenants, "{phase}");
        assert!(phase["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    }
    assert!(r["memory"]["all_tenants_mib"].as_f64().unwrap() > 1.0);

    // The migration reached every tenant.
    let m = &r["migration"];
    assert_eq!(m["behind_before"], 200, "{m}");
    assert_eq!(m["succeeded"], 200, "{m}");
    assert_eq!(m["failed"], 0, "{m}");
    assert_eq!(m["behind_after"], 0, "{m}");

    // Nothing of the run is left on the shared server.
    let tag = r["tag"].as_str().unwrap();
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_database WHERE strpos(datname, $1) > 0) \
              + (SELECT count(*) FROM pg_roles WHERE strpos(rolname, $1) > 0)",
    )
    .bind(tag)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    assert_eq!(left, 0, "databases or roles of {tag} left behind");
    assert!(
        !std::env::temp_dir()
            .join(format!("tm-scale-{tag}"))
            .exists()
    );
}
