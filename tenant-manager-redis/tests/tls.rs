//! `rediss://`: a private `redis-server` with TLS and a certificate of a throw-away CA.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::{
    CacheKey, Error, QuotaEnforcer, RateKey, RateLimit, TenantCache, TenantId,
};
use tenant_manager_redis::{
    RedisConfig, RedisPool, RedisQuotaEnforcer, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::PrivateRedis;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl must be installed to run the TLS test");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext file");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tm-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_connect_with_the_configured_root_certificates() {
    let tls_port = support::dead_port();
    let dir = std::env::temp_dir().join(format!(
        "tm-tls-{}",
        tenant_manager_test_support::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    make_certificates(&dir);
    let path = |name: &str| dir.join(name).display().to_string();
    let _server = PrivateRedis::start_with(vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        path("server.crt"),
        "--tls-key-file".into(),
        path("server.key"),
        "--tls-ca-cert-file".into(),
        path("ca.crt"),
        "--tls-auth-clients".into(),
        "no".into(),
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = std::fs::read(dir.join("ca.crt")).expect("ca");

    let pool = RedisPool::connect(
        RedisConfig::new(&url)
            .with_key_prefix("tls:")
            .with_pool_size(2)
            .with_tls_root_certs(ca),
    )
    .await
    .expect("pool");
    pool.ping().await.expect("ping over TLS");
    let quota = RedisQuotaEnforcer::new(&pool);
    let limit = RateLimit::new(2, Duration::from_secs(60)).expect("rate");
    let decision = quota
        .check_rate(&RateKey::tenant(TenantId::new()), &limit, 1)
        .await
        .expect("check over TLS");
    assert!(decision.allowed);
    let cache = Arc::new(
        RedisTenantCache::new(&pool, TenantCacheConfig::default())
            .await
            .expect("cache"),
    );
    assert!(
        cache.wait_subscribed(Duration::from_secs(5)).await,
        "pub/sub over TLS"
    );
    let t = tenant_manager_core::testing::cache::sample_tenant();
    cache.put(&t).await.expect("put");
    assert_eq!(cache.get(&CacheKey::Id(t.id)).await.expect("get"), Some(t));

    // The system roots do not know the throw-away CA: refused, reported, no panic.
    let untrusted = RedisPool::connect(
        RedisConfig::new(&url)
            .with_pool_size(1)
            .with_acquire_timeout(Duration::from_millis(500)),
    )
    .await
    .expect("pool");
    let err = untrusted.ping().await.expect_err("untrusted certificate");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    // Root certificates need a TLS URL.
    let err = RedisPool::connect(
        RedisConfig::new(pool_url_plain(tls_port)).with_tls_root_certs(b"pem".to_vec()),
    )
    .await
    .expect_err("plain URL with TLS roots");
    assert_eq!(err.field(), Some("redis.tls_root_certs"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn pool_url_plain(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}
