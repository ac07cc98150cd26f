//! The memory store with injected time.

use super::*;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// A fixed start well after the epoch, plus `ms`.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

fn memory(max_keys: usize) -> Budgets {
    Budgets::Memory(MemoryBudgets::new(max_keys))
}

#[tokio::test]
async fn window_slides_bucket_by_bucket() {
    let b = memory(100);
    // One-minute window: one-second buckets.
    assert_eq!(b.add("k", 5, MINUTE, at(0)).await.unwrap(), 5);
    assert_eq!(b.add("k", 3, MINUTE, at(30_000)).await.unwrap(), 8);
    assert_eq!(b.total("k", MINUTE, at(59_999)).await.unwrap(), 8);
    // Up to one bucket past the window the oldest bucket still counts (over-count bound).
    assert_eq!(b.total("k", MINUTE, at(60_999)).await.unwrap(), 8);
    assert_eq!(b.total("k", MINUTE, at(61_000)).await.unwrap(), 3);
    assert_eq!(b.add("k", 1, MINUTE, at(75_000)).await.unwrap(), 4);
    assert_eq!(b.total("k", MINUTE, at(90_999)).await.unwrap(), 4);
    assert_eq!(b.total("k", MINUTE, at(91_000)).await.unwrap(), 1);
    assert_eq!(b.total("k", MINUTE, at(136_000)).await.unwrap(), 0);
}

#[tokio::test]
async fn long_idle_counter_starts_from_zero() {
    let b = memory(100);
    for i in 0..60 {
        b.add("k", 1, MINUTE, at(i * 1000)).await.unwrap();
    }
    assert_eq!(b.total("k", MINUTE, at(59_500)).await.unwrap(), 60);
    // Two windows later every slot of the ring has to be cleared, not reused.
    assert_eq!(b.add("k", 2, MINUTE, at(185_000)).await.unwrap(), 2);
    assert_eq!(b.add("k", 2, MINUTE, at(186_000)).await.unwrap(), 4);
}

#[tokio::test]
async fn windows_and_keys_are_kept_apart() {
    let b = memory(100);
    b.add("rows:alice:hr.employees", 100, MINUTE, at(0))
        .await
        .unwrap();
    b.add("rows:alice:hr.employees", 7, HOUR, at(0))
        .await
        .unwrap();
    b.add("rows:bob:hr.employees", 1, MINUTE, at(0))
        .await
        .unwrap();
    let total = |k: &'static str, w| {
        let b = &b;
        async move { b.total(k, w, at(120_000)).await.unwrap() }
    };
    // A minute later the minute window forgot; the hour window did not.
    assert_eq!(total("rows:alice:hr.employees", MINUTE).await, 0);
    assert_eq!(total("rows:alice:hr.employees", HOUR).await, 7);
    assert_eq!(total("rows:bob:hr.employees", HOUR).await, 0);
    assert_eq!(total("nobody", MINUTE).await, 0);
}

#[tokio::test]
async fn a_late_clock_still_counts_within_the_window() {
    let b = memory(100);
    b.add("k", 10, MINUTE, at(100_000)).await.unwrap();
    // Another session's clock is 10 s behind: still inside the window.
    assert_eq!(b.add("k", 1, MINUTE, at(90_000)).await.unwrap(), 1);
    assert_eq!(b.total("k", MINUTE, at(100_000)).await.unwrap(), 11);
    // A window behind: nothing left to add to, nothing counted.
    assert_eq!(b.add("k", 5, MINUTE, at(20_000)).await.unwrap(), 0);
    assert_eq!(b.total("k", MINUTE, at(100_000)).await.unwrap(), 11);
}

#[tokio::test]
async fn many_keys_stay_within_the_bound() {
    let m = MemoryBudgets::new(320);
    let b = Budgets::Memory(m);
    for i in 0..10_000u64 {
        let key = format!("login:10.0.{}.{}", i / 256, i % 256);
        assert_eq!(b.add(&key, 1, MINUTE, at(i)).await.unwrap(), 1);
    }
    let Budgets::Memory(m) = &b else {
        unreachable!()
    };
    assert!(m.len() <= 320, "{} counters held", m.len());
    assert!(m.evicted() >= 9_000, "{} evicted", m.evicted());
    // The most recently written keys survive with their counts.
    assert_eq!(
        b.add("login:10.0.39.15", 1, MINUTE, at(10_000))
            .await
            .unwrap(),
        2
    );
    // Once everything has expired, new keys replace expired ones: no live key
    // is evicted (32 keys over 32 shards of 10 never overfill one in practice).
    let evicted = m.evicted();
    for i in 0..32u64 {
        b.add(&format!("later:{i}"), 1, MINUTE, at(500_000))
            .await
            .unwrap();
    }
    assert_eq!(m.evicted(), evicted);
    assert!(m.len() <= 320);
}

#[tokio::test]
async fn concurrent_adds_are_exact() {
    let b = Arc::new(memory(1000));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let b = b.clone();
        tasks.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..1000u64 {
                    b.add("shared", t + 1, HOUR, at(i)).await.unwrap();
                }
            });
        }));
    }
    for t in tasks {
        t.join().unwrap();
    }
    // 1000 × (1 + 2 + ... + 8)
    assert_eq!(b.total("shared", HOUR, at(1000)).await.unwrap(), 36_000);
}

#[tokio::test]
async fn bad_input_is_an_error() {
    let b = memory(10);
    assert!(matches!(
        b.add("k", 1, Duration::ZERO, at(0)).await,
        Err(BudgetError::ZeroWindow)
    ));
    let before = UNIX_EPOCH - Duration::from_secs(1);
    assert!(matches!(
        b.total("k", MINUTE, before).await,
        Err(BudgetError::ClockBeforeEpoch)
    ));
    assert_eq!(b.add("k", u64::MAX, MINUTE, at(0)).await.unwrap(), u64::MAX);
    assert_eq!(b.add("k", 1, MINUTE, at(0)).await.unwrap(), u64::MAX);
}
