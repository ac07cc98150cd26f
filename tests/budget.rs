//! The Redis budget store against a real `redis-server` (one per test):
//! totals over a window, expiry of the keys, exact totals under concurrent
//! adds from two "replicas", and bounded failure while Redis is down.

mod common;

use common::redis::RedisServer;
use pgwarden::budget::{BudgetError, Budgets};
use pgwarden::config::{BudgetConfig, BudgetStore, HumanDuration};
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MINUTE: Duration = Duration::from_secs(60);

fn config(server: &RedisServer, timeout_ms: u64) -> BudgetConfig {
    BudgetConfig {
        store: BudgetStore::Redis,
        redis_url: Some(server.url()),
        timeout: HumanDuration(Duration::from_millis(timeout_ms)),
        ..BudgetConfig::default()
    }
}

/// A fixed start well after the epoch, plus `ms`.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn totals_over_a_sliding_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let b = Budgets::from_config(&config(&server, 2000)).unwrap();
    assert!(matches!(b, Budgets::Redis(_)));
    // One-minute window: one-second buckets.
    assert_eq!(b.add("k", 5, MINUTE, at(0)).await.unwrap(), 5);
    assert_eq!(b.add("k", 3, MINUTE, at(30_000)).await.unwrap(), 8);
    assert_eq!(b.total("k", MINUTE, at(59_999)).await.unwrap(), 8);
    assert_eq!(b.total("k", MINUTE, at(60_999)).await.unwrap(), 8);
    assert_eq!(b.total("k", MINUTE, at(61_000)).await.unwrap(), 3);
    assert_eq!(b.add("k", 1, MINUTE, at(75_000)).await.unwrap(), 4);
    assert_eq!(b.total("k", MINUTE, at(91_000)).await.unwrap(), 1);
    // Other windows and keys are counted apart.
    assert_eq!(
        b.add("k", 7, Duration::from_secs(3600), at(75_000))
            .await
            .unwrap(),
        7
    );
    assert_eq!(b.total("other", MINUTE, at(75_000)).await.unwrap(), 0);
    // Large amounts are exact; too large ones are refused.
    assert_eq!(b.add("big", 1 << 40, MINUTE, at(0)).await.unwrap(), 1 << 40);
    assert!(matches!(
        b.add("big", u64::MAX, MINUTE, at(0)).await,
        Err(BudgetError::AmountTooLarge(_))
    ));
    // Every key carries the prefix and the bucket width.
    let mut conn = raw(&server).await;
    let keys: Vec<String> = conn.keys("pgwarden:budget:*").await.unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "pgwarden:budget:big:1000",
            "pgwarden:budget:k:1000",
            "pgwarden:budget:k:60000"
        ]
    );
}

#[tokio::test]
async fn keys_expire_and_stale_buckets_are_dropped() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let b = Budgets::from_config(&config(&server, 2000)).unwrap();
    let mut conn = raw(&server).await;
    // A 600 ms window has 10 ms buckets: the key lives 610 ms after its last add.
    let window = Duration::from_millis(600);
    let now = SystemTime::now();
    assert_eq!(b.add("e", 2, window, now).await.unwrap(), 2);
    let key = "pgwarden:budget:e:10";
    let ttl: i64 = conn.pttl(key).await.unwrap();
    assert!((1..=610).contains(&ttl), "pttl {ttl}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let exists: bool = conn.exists(key).await.unwrap();
    assert!(!exists, "the counter outlived its window");
    assert_eq!(b.total("e", window, SystemTime::now()).await.unwrap(), 0);

    // Buckets older than the window are removed when the counter is next written.
    for s in [0, 1, 2] {
        b.add("s", 1, MINUTE, at(s * 1000)).await.unwrap();
    }
    let fields: usize = conn.hlen("pgwarden:budget:s:1000").await.unwrap();
    assert_eq!(fields, 3);
    assert_eq!(b.add("s", 1, MINUTE, at(62_500)).await.unwrap(), 2);
    let fields: usize = conn.hlen("pgwarden:budget:s:1000").await.unwrap();
    assert_eq!(fields, 2, "buckets 0 and 1 are stale at 62.5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_adding_concurrently_get_an_exact_total() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Two stores with their own connections, as two pgwarden processes would have.
    let replicas = [
        Arc::new(Budgets::from_config(&config(&server, 5000)).unwrap()),
        Arc::new(Budgets::from_config(&config(&server, 5000)).unwrap()),
    ];
    let now = SystemTime::now();
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let b = replicas[(t % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for i in 0..100u64 {
                let total = b
                    .add("rows:alice:hr.employees", t + i % 3, MINUTE, now)
                    .await
                    .unwrap();
                // Totals seen by one task only grow.
                assert!(total >= last, "{total} < {last}");
                last = total;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Σ_t Σ_i (t + i%3) = 100·Σt + 32·(34·0 + 33·1 + 33·2)
    let expected = 100 * (0..32).sum::<u64>() + 32 * 99;
    for b in &replicas {
        assert_eq!(
            b.total("rows:alice:hr.employees", MINUTE, now)
                .await
                .unwrap(),
            expected
        );
    }
}

#[tokio::test]
async fn a_down_server_fails_fast_and_is_reconnected() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let b = Budgets::from_config(&config(&server, 300)).unwrap();
    assert_eq!(b.add("d", 1, MINUTE, at(0)).await.unwrap(), 1);
    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = b.add("d", 1, MINUTE, at(0)).await;
        assert!(r.is_err(), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
    }
    // Back on the same port (empty: no persistence): the store reconnects by itself.
    let _server = RedisServer::start_on(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.add("d", 1, MINUTE, at(0)).await {
            Ok(total) => {
                assert_eq!(total, 1);
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "still failing: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_server_that_never_was_fails_within_the_timeout() {
    // Nothing listens on this port (the server is gone before the store is made).
    let Some(server) = RedisServer::start() else {
        return;
    };
    let c = config(&server, 200);
    drop(server);
    let b = Budgets::from_config(&c).unwrap();
    let started = Instant::now();
    assert!(b.total("x", MINUTE, at(0)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}
