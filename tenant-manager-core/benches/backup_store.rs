//! Backup store throughput: put and get of one ~50 MB file, three runs per store (a local
//! directory and memory).
//!
//! `cargo bench -p tenant-manager-core --bench backup_store`
//!
//! Measures only; prints one line per run. `BACKUP_BENCH_MB` changes the size.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tenant_manager_core::BackupStore;
use tenant_manager_core::backup_store::ObjectBackupStore;

const RUNS: usize = 3;

fn mb() -> usize {
    std::env::var("BACKUP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

async fn measure(name: &str, store: Arc<dyn BackupStore>, source: &Path, scratch: &Path) {
    let size = std::fs::metadata(source).expect("source").len() as f64 / 1e6;
    for run in 1..=RUNS {
        let key = format!("bench/run-{run}.dump");
        let started = Instant::now();
        store.put_file(&key, source).await.expect("put");
        let put = started.elapsed().as_secs_f64();
        let dest = scratch.join(format!("{name}-{run}.out"));
        let started = Instant::now();
        store.get_file(&key, &dest).await.expect("get");
        let get = started.elapsed().as_secs_f64();
        println!(
            "{name:<22} run {run}: put {:>7.1} ms ({:>6.0} MB/s)  get {:>7.1} ms ({:>6.0} MB/s)",
            put * 1e3,
            size / put,
            get * 1e3,
            size / get
        );
        std::fs::remove_file(&dest).expect("remove copy");
        store.delete(&key).await.expect("delete");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let scratch = std::env::temp_dir().join(format!("tm-backup-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let source = scratch.join("source.dump");
    let content: Vec<u8> = (0..mb() * 1_000_000)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 11) as u8)
        .collect();
    std::fs::write(&source, &content).expect("source");
    runtime.block_on(async {
        measure(
            "object_store local",
            Arc::new(ObjectBackupStore::local(scratch.join("new"))),
            &source,
            &scratch,
        )
        .await;
        measure(
            "object_store in-memory",
            Arc::new(ObjectBackupStore::in_memory()),
            &source,
            &scratch,
        )
        .await;
    });
    std::fs::remove_dir_all(&scratch).expect("cleanup");
}
