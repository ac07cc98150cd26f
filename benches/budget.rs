//! Cost of one `Budgets::add`: the memory store on one hot key and spread
//! over 10,000 keys, and (when /usr/bin/redis-server exists) the Redis store
//! on a throwaway local server, one call at a time (latency) and 16 at once
//! (time per call under concurrency).
//!
//! `cargo bench --bench budget`

#[path = "../tests/common/redis.rs"]
mod redis_server;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgwarden::budget::{Budgets, MemoryBudgets};
use pgwarden::config::{BudgetConfig, BudgetStore, HumanDuration};
use redis_server::RedisServer;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);

/// Times `iters` sequential adds, cycling through `keys`.
async fn sequential(b: &Budgets, keys: &[String], iters: u64) -> Duration {
    let now = SystemTime::now();
    let start = Instant::now();
    for (i, key) in (0..iters).zip(keys.iter().cycle()) {
        black_box(b.add(key, 1 + (i & 7), HOUR, now).await.expect("add"));
    }
    start.elapsed()
}

/// Times `iters` adds made by `tasks` tasks at once.
async fn concurrent(b: &Arc<Budgets>, tasks: u64, iters: u64) -> Duration {
    let now = SystemTime::now();
    let start = Instant::now();
    let per_task = iters.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let b = b.clone();
            tokio::spawn(async move {
                let key = format!("rows:user{t}:hr.employees");
                for _ in 0..per_task {
                    black_box(b.add(&key, 1, HOUR, now).await.expect("add"));
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hot = vec!["rows:alice:hr.employees".to_owned()];
    let spread: Vec<String> = (0..10_000)
        .map(|i| format!("rows:user{i}:hr.employees"))
        .collect();

    let mut g = c.benchmark_group("budget");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let memory = Budgets::Memory(MemoryBudgets::new(100_000));
    g.bench_function("memory_add_one_key", |b| {
        b.iter_custom(|iters| rt.block_on(sequential(&memory, &hot, iters)))
    });
    g.bench_function("memory_add_10k_keys", |b| {
        b.iter_custom(|iters| rt.block_on(sequential(&memory, &spread, iters)))
    });

    // Kept until the group ends; dropping it kills the server.
    let Some(server) = RedisServer::start() else {
        g.finish();
        return;
    };
    let config = BudgetConfig {
        store: BudgetStore::Redis,
        redis_url: Some(server.url()),
        timeout: HumanDuration(Duration::from_secs(5)),
        ..BudgetConfig::default()
    };
    let redis = Arc::new(
        rt.block_on(async { Budgets::from_config(&config) })
            .expect("redis store"),
    );
    g.bench_function("redis_add_sequential", |b| {
        b.iter_custom(|iters| rt.block_on(sequential(&redis, &hot, iters)))
    });
    g.bench_function("redis_add_16_concurrent", |b| {
        b.iter_custom(|iters| rt.block_on(concurrent(&redis, 16, iters)))
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
