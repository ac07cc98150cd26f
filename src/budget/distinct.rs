//! Distinct data subjects a user has seen in a sliding window ("the number
//! of distinct employees a user has seen in the last hour"), in memory.
//!
//! Each (user, limit) keeps the keys it saw with the time each was last
//! seen. The count is exact up to the limit's threshold plus one, which is
//! all an alert needs; no more keys than that are kept, so memory is bounded
//! by the threshold per user and limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A subject key, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectId {
    /// An integer key.
    Int(i64),
    /// A text key.
    Text(Box<str>),
}

/// One user's keys under one limit.
#[derive(Debug, Default)]
struct Window {
    /// (subject, key) → when last seen.
    seen: HashMap<(Arc<str>, SubjectId), Instant>,
    /// An alert was raised and the count has not dropped back since.
    alerted: bool,
}

/// (user, limit) → its window.
type Windows = HashMap<(Arc<str>, Arc<str>), Window>;

/// The windows of every user and limit.
#[derive(Debug, Default)]
pub struct DistinctWindows {
    windows: Mutex<Windows>,
}

/// What adding keys found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistinctCount {
    /// Distinct subjects in the window (exact up to `threshold + 1`).
    pub count: u64,
    /// This addition took the count past the threshold: alert now.
    pub crossed: bool,
}

/// Most (user, limit) windows kept; past it the stalest are forgotten.
const MAX_WINDOWS: usize = 100_000;

impl DistinctWindows {
    /// Adds the keys `user` just saw under `limit`, forgets those older than
    /// `window`, and says whether the count went past `threshold`.
    pub fn add<'a>(
        &self,
        user: &Arc<str>,
        limit: &Arc<str>,
        window: Duration,
        threshold: u64,
        keys: impl Iterator<Item = (&'a Arc<str>, SubjectId)>,
        now: Instant,
    ) -> DistinctCount {
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= MAX_WINDOWS && !all.contains_key(&(user.clone(), limit.clone())) {
            // Bounded: drop windows with nothing recent in them.
            all.retain(|_, w| w.seen.values().any(|t| now.duration_since(*t) < window));
        }
        let w = all.entry((user.clone(), limit.clone())).or_default();
        w.seen.retain(|_, t| now.duration_since(*t) < window);
        let before = w.seen.len() as u64;
        if before <= threshold {
            w.alerted = false;
        }
        let cap = usize::try_from(threshold.saturating_add(1)).unwrap_or(usize::MAX);
        for (subject, key) in keys {
            let k = (subject.clone(), key);
            if let Some(t) = w.seen.get_mut(&k) {
                *t = now;
            } else if w.seen.len() < cap {
                w.seen.insert(k, now);
            }
        }
        let count = w.seen.len() as u64;
        let crossed = count > threshold && !w.alerted;
        if crossed {
            w.alerted = true;
        }
        DistinctCount { count, crossed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_keys_in_the_window_and_alerts_once() {
        let d = DistinctWindows::default();
        let (u, l, s) = (
            Arc::from("alice"),
            Arc::from("lim"),
            Arc::from("hr.employees"),
        );
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let ints = |r: std::ops::Range<i64>| r.map(|i| (&s, SubjectId::Int(i))).collect::<Vec<_>>();
        let c = d.add(&u, &l, hour, 5, ints(0..3).into_iter(), t0);
        assert_eq!(
            c,
            DistinctCount {
                count: 3,
                crossed: false
            }
        );
        // Seen again: still three.
        let c = d.add(&u, &l, hour, 5, ints(0..3).into_iter(), t0);
        assert_eq!(c.count, 3);
        let c = d.add(&u, &l, hour, 5, ints(2..9).into_iter(), t0);
        assert_eq!(
            c,
            DistinctCount {
                count: 6,
                crossed: true
            }
        );
        let c = d.add(&u, &l, hour, 5, ints(100..200).into_iter(), t0);
        assert_eq!(
            c,
            DistinctCount {
                count: 6,
                crossed: false
            },
            "bounded, alerted once"
        );
        // After the window the old keys are gone and the count starts over.
        let later = t0 + hour + Duration::from_secs(1);
        let c = d.add(&u, &l, hour, 5, ints(0..1).into_iter(), later);
        assert_eq!(
            c,
            DistinctCount {
                count: 1,
                crossed: false
            }
        );
        let c = d.add(&u, &l, hour, 5, ints(1..7).into_iter(), later);
        assert!(c.crossed, "a new window alerts again");
        // Other users count apart.
        let b: Arc<str> = Arc::from("bob");
        assert_eq!(d.add(&b, &l, hour, 5, ints(0..2).into_iter(), t0).count, 2);
    }
}
