//! A unique key prefix per test on a real Redis.

use std::sync::OnceLock;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

const HOW_TO_START: &str = "no Redis answered. Start the local server with \
`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`, \
or set TEST_REDIS_URL to a reachable server, or enable the `containers` feature of \
tenant-manager-test-support with a running Docker engine.";

/// The Redis URL tests use: `TEST_REDIS_URL` or the local default (or a container).
pub async fn redis_url() -> String {
    static CONTAINER_URL: OnceLock<String> = OnceLock::new();
    if let Some(url) = CONTAINER_URL.get() {
        return url.clone();
    }
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match ping(&url).await {
        Ok(()) => url,
        Err(err) => {
            #[cfg(feature = "containers")]
            if let Some(container_url) = containers::start_redis().await {
                let _ = CONTAINER_URL.set(container_url.clone());
                return container_url;
            }
            panic!("{HOW_TO_START} (tried {url}: {err})")
        }
    }
}

async fn ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// A Redis URL and a key prefix unique to one test; keys under the prefix are deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
}

impl TestRedis {
    /// Reserves a fresh prefix `tmtest:<random>:` on the test server.
    pub async fn create() -> Self {
        let url = redis_url().await;
        Self {
            url,
            prefix: format!("tmtest:{}:", crate::unique_suffix()),
        }
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key prefix of this test.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let handle = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        });
        let _ = handle.join();
    }
}

#[cfg(feature = "containers")]
mod containers {
    use testcontainers_modules::redis::Redis;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;

    pub(super) async fn start_redis() -> Option<String> {
        let container = Redis::default().start().await.ok()?;
        let port = container.get_host_port_ipv4(6379).await.ok()?;
        std::mem::forget(container);
        Some(format!("redis://127.0.0.1:{port}"))
    }
}
