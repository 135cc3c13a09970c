//! The raw bb8 peer of the pool benches (also run by `examples/pool_checkout_counts.rs`).

use std::time::Duration;

use tenant_manager::core::pool::fake::{FakeManager, FakeProbe};

/// A raw bb8 pool of one fake connection named `name`, opened once.
pub(crate) async fn warm_raw_pool(name: &str) -> bb8::Pool<FakeManager> {
    let manager = FakeManager::new(name, Duration::ZERO, FakeProbe::default());
    let pool = bb8::Pool::builder()
        .max_size(1)
        .build(manager)
        .await
        .expect("bb8");
    drop(pool.get().await.expect("warm"));
    pool
}
