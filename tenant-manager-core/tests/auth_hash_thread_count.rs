//! The password hasher's threads: a fixed number (at most half the CPUs), one reused memory
//! buffer each. The test counts the threads of its whole process, so it is the only test of
//! this file: `cargo test` runs the tests of one file as threads of one process, and another
//! test's hasher would be counted too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::auth::HasherConfig;

/// Threads of this process named `tm-argon2-*`.
fn hashing_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tm-argon2-"))
        .count()
}

/// [`hashing_threads`] once it equals `expected` (a new thread names itself when it starts,
/// an ending one disappears after its last job), or after a 10 s deadline.
async fn settled_hashing_threads(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hashing_threads() != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hashing_threads()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_runs_on_a_few_threads_that_each_allocate_once() {
    let cap = HasherConfig::thread_cap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(cap, (cpus / 2).max(1));
    assert_eq!(HasherConfig::default().max_concurrent, cap);
    let hasher = Arc::new(support::pooled_hasher(1024, Duration::from_secs(60)));
    assert_eq!(
        hasher.threads(),
        cap,
        "asking for 1024 threads gets the cap"
    );
    assert_eq!(settled_hashing_threads(cap).await, cap);
    assert_eq!(
        hasher.stats().buffers_allocated,
        0,
        "buffers come with the first hash"
    );

    support::hash_and_verify_concurrently(&hasher, 48).await;
    let stats = hasher.stats();
    assert_eq!(stats.completed, 96);
    assert_eq!(stats.shed, 0);
    assert!(
        (1..=cap as u64).contains(&stats.buffers_allocated),
        "{stats:?}"
    );
    assert_eq!(stats.oversize_allocations, 0);
    assert_eq!(hashing_threads(), cap, "no thread was added");

    // The threads end with the hasher.
    drop(Arc::into_inner(hasher));
    assert_eq!(settled_hashing_threads(0).await, 0);
}
