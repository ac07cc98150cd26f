//! Counters in this process: [`SHARDS`] mutex-guarded maps (a key always
//! hashes to the same one), each counter a ring of [`SLOTS`] buckets.
//!
//! Memory is bounded: at most `max_keys` counters (one per key and window
//! length, about 600 bytes plus the key each). A shard that is full first
//! forgets counters whose buckets have all expired; if that is not enough it
//! evicts its least recently written keys down to 7/8 of its share, so the
//! scan is paid once per many inserts. An evicted key starts again from zero
//! (it under-counts), which only a flood of distinct keys can cause.

use super::window::{Position, SLOTS};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Independent locks; more than the cores so sessions rarely share one.
const SHARDS: usize = 32;

/// Windowed counters held in memory, shared by this process's sessions.
#[derive(Debug)]
pub struct MemoryBudgets {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Counters one shard may hold.
    per_shard: usize,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<Box<str>, Entry>,
    /// Counters in `keys`, all windows included.
    counters: usize,
    /// Adds so far: stamps entries in write order, for eviction.
    writes: u64,
}

/// One key's counters, one per window length in use.
#[derive(Debug)]
struct Entry {
    counters: Vec<Counter>,
    /// The shard's `writes` at this key's last add (eviction order).
    touched: u64,
}

/// A ring of bucket counts; slot `i % SLOTS` holds bucket `i`.
#[derive(Debug)]
struct Counter {
    width_ms: u64,
    /// The newest bucket written; older slots hold buckets up to SLOTS - 1 before it.
    newest: u64,
    counts: [u64; SLOTS as usize],
}

impl Counter {
    fn new(p: Position) -> Self {
        Self {
            width_ms: p.width_ms,
            newest: p.current,
            counts: [0; SLOTS as usize],
        }
    }

    fn slot(bucket: u64) -> usize {
        // Always below SLOTS, so the index is in bounds.
        (bucket % SLOTS) as usize
    }

    fn add(&mut self, bucket: u64, amount: u64) {
        if bucket > self.newest {
            // Buckets skipped since the last write are empty.
            let from = self
                .newest
                .saturating_add(1)
                .max(bucket.saturating_sub(SLOTS - 1));
            for b in from..=bucket {
                self.counts[Self::slot(b)] = 0;
            }
            self.newest = bucket;
        }
        // A caller whose clock lags by a window or more adds to nothing.
        if self.newest - bucket < SLOTS {
            let c = &mut self.counts[Self::slot(bucket)];
            *c = c.saturating_add(amount);
        }
    }

    fn total(&self, p: Position) -> u64 {
        let lo = p.oldest().max(self.newest.saturating_sub(SLOTS - 1));
        let hi = p.current.min(self.newest);
        if lo > hi {
            return 0;
        }
        // Walks the ring from `lo`'s slot without a division per bucket; at most SLOTS buckets.
        let (before, from) = self.counts.split_at(Self::slot(lo));
        let len = usize::try_from(hi - lo + 1).unwrap_or(usize::MAX);
        let sum: u128 = from
            .iter()
            .chain(before)
            .take(len)
            .map(|&c| u128::from(c))
            .sum();
        u64::try_from(sum).unwrap_or(u64::MAX)
    }

    fn expired(&self, now_ms: u64) -> bool {
        now_ms / self.width_ms >= self.newest.saturating_add(SLOTS)
    }
}

impl MemoryBudgets {
    /// Counters for at most `max_keys` (key, window) pairs.
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Adds `amount` to the bucket of `p` and returns the window's total.
    pub(crate) fn add(&self, key: &str, amount: u64, p: Position, now: SystemTime) -> u64 {
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        shard.writes += 1;
        let writes = shard.writes;
        // The common path: one lookup, no allocation.
        if let Some(entry) = shard.keys.get_mut(key) {
            if let Some(c) = entry.counters.iter_mut().find(|c| c.width_ms == p.width_ms) {
                entry.touched = writes;
                c.add(p.current, amount);
                return c.total(p);
            }
        }
        // A new counter, which may need room first (possibly evicting this key's others).
        if shard.counters >= self.per_shard {
            let evicted = shard.make_room(self.per_shard, millis(now));
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        let entry = shard.keys.entry(key.into()).or_insert_with(|| Entry {
            counters: Vec::with_capacity(1),
            touched: 0,
        });
        entry.touched = writes;
        let mut counter = Counter::new(p);
        counter.add(p.current, amount);
        let total = counter.total(p);
        entry.counters.push(counter);
        shard.counters += 1;
        total
    }

    /// The window's total for `key` at `p`, without adding.
    pub(crate) fn total(&self, key: &str, p: Position) -> u64 {
        let shard = self.shard(key);
        shard
            .keys
            .get(key)
            .and_then(|e| e.counters.iter().find(|c| c.width_ms == p.width_ms))
            .map_or(0, |c| c.total(p))
    }

    /// Counters held now (one per key and window length).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).counters).sum()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live keys evicted so far to stay within `max_keys`.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // Below SHARDS, the length of `shards`.
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[i])
    }
}

impl Shard {
    /// Forgets expired counters, then evicts least recently written keys
    /// until the shard is at 7/8 of `cap`; returns the live keys evicted.
    fn make_room(&mut self, cap: usize, now_ms: u64) -> u64 {
        self.keys.retain(|_, e| {
            e.counters.retain(|c| !c.expired(now_ms));
            !e.counters.is_empty()
        });
        self.counters = self.keys.values().map(|e| e.counters.len()).sum();
        if self.counters < cap {
            return 0;
        }
        let target = cap - cap / 8 - 1;
        let mut ages: Vec<(u64, usize)> = self
            .keys
            .values()
            .map(|e| (e.touched, e.counters.len()))
            .collect();
        ages.sort_unstable();
        // The newest write that must go for the rest to fit.
        let mut left = self.counters;
        let mut cutoff = 0;
        for (touched, n) in ages {
            if left <= target {
                break;
            }
            left -= n;
            cutoff = touched;
        }
        let before = self.keys.len();
        self.keys.retain(|_, e| e.touched > cutoff);
        self.counters = self.keys.values().map(|e| e.counters.len()).sum();
        (before - self.keys.len()) as u64
    }
}

/// A poisoned shard is still consistent (no update spans a panic point), so keep using it.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}
