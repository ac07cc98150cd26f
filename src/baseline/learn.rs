//! Learning: observations add to a user's baseline until its learning
//! period is over and it has seen enough statements; from then on it is
//! fixed (only new addresses, once reported, are added).

use super::model::{Reads, RowUse, UserBaseline, MAX_ENTRIES};
use crate::policy::file::BaselineSpec;

/// The hour of day (UTC) of `at`.
pub fn hour_of_day(at: u64) -> usize {
    ((at / 3600) % 24) as usize
}

fn bump<K: Ord + Clone>(map: &mut std::collections::BTreeMap<K, u64>, key: &K) -> bool {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
        return true;
    }
    if map.len() >= MAX_ENTRIES {
        return false;
    }
    map.insert(key.clone(), 1);
    true
}

impl RowUse {
    /// Adds `rows` returned at `at`; returns the rows of that clock hour so
    /// far. While `learning`, a finished hour is folded into the totals.
    pub fn add(&mut self, at: u64, rows: u64, learning: bool) -> u64 {
        let hour = at / 3600;
        if hour != self.bucket_hour {
            if learning {
                self.fold();
            }
            self.bucket_hour = hour;
            self.bucket_rows = 0;
        }
        self.bucket_rows = self.bucket_rows.saturating_add(rows);
        self.bucket_rows
    }

    /// Folds the hour being counted into the learnt totals.
    pub fn fold(&mut self) {
        if self.bucket_rows > 0 {
            self.active_hours += 1;
            self.total = self.total.saturating_add(self.bucket_rows);
            self.max_hour = self.max_hour.max(self.bucket_rows);
        }
        self.bucket_rows = 0;
    }
}

impl UserBaseline {
    /// A baseline starting to learn at `at`.
    pub fn new(at: u64) -> Self {
        Self {
            first_seen: at,
            ..Self::default()
        }
    }

    /// Whether learning is over.
    pub fn learned(&self) -> bool {
        self.learned_at.is_some()
    }

    /// Ends learning when the period is over and enough statements were
    /// seen; true when it ended now.
    pub fn finish_if_due(&mut self, at: u64, spec: &BaselineSpec) -> bool {
        if self.learned()
            || self.statements < spec.min_statements
            || at.saturating_sub(self.first_seen) < spec.learning_period.0.as_secs()
        {
            return false;
        }
        self.rows.fold();
        self.learned_at = Some(at);
        true
    }

    /// Learns a login from `addr` at `at`.
    pub fn learn_login(&mut self, addr: &str, at: u64) {
        self.logins += 1;
        self.hours[hour_of_day(at)] += 1;
        bump(&mut self.addresses, &addr.to_owned());
    }

    /// Learns a statement that read `reads` and returned `rows` at `at`.
    pub fn learn_statement(&mut self, reads: &Reads, rows: u64, at: u64) {
        self.statements += 1;
        self.hours[hour_of_day(at)] += 1;
        for (table, columns) in reads {
            if !self.tables.contains_key(table) && self.tables.len() >= MAX_ENTRIES {
                continue;
            }
            let t = self.tables.entry(table.clone()).or_default();
            t.reads += 1;
            for c in columns {
                bump(&mut t.columns, c);
            }
        }
        self.rows.add(at, rows, true);
    }

    /// Remembers an address once its first use was reported.
    pub fn add_address(&mut self, addr: &str) {
        bump(&mut self.addresses, &addr.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn spec(period: u64, min: u64) -> BaselineSpec {
        BaselineSpec {
            learning_period: HumanDuration::from_secs(period),
            min_statements: min,
            ..BaselineSpec::default()
        }
    }

    #[test]
    fn learning_ends_after_the_period_and_enough_statements() {
        let mut b = UserBaseline::new(1_000_000);
        let reads = vec![("hr.departments".to_owned(), vec!["name".to_owned()])];
        for i in 0..3 {
            b.learn_statement(&reads, 10, 1_000_000 + i);
        }
        assert!(!b.finish_if_due(1_000_000 + 3600, &spec(3600, 5)));
        b.learn_statement(&reads, 10, 1_000_010);
        b.learn_statement(&reads, 10, 1_000_020);
        assert!(!b.finish_if_due(1_000_100, &spec(3600, 5)));
        assert!(b.finish_if_due(1_003_600, &spec(3600, 5)));
        assert!(b.learned());
        assert_eq!(b.rows.max_hour, 50);
        assert_eq!(b.tables["hr.departments"].columns["name"], 5);
    }

    #[test]
    fn rows_fold_per_clock_hour() {
        let mut r = RowUse::default();
        r.add(3600, 5, true);
        r.add(3700, 7, true);
        assert_eq!(r.add(7200, 1, true), 1);
        assert_eq!((r.active_hours, r.total, r.max_hour), (1, 12, 12));
        // After learning, hours are counted but not learnt.
        r.fold();
        assert_eq!(r.add(100 * 3600, 50, false), 50);
        assert_eq!(r.add(101 * 3600, 1, false), 1);
        assert_eq!(r.max_hour, 12);
    }
}
