//! `[baseline]`: where per-user behaviour baselines are kept (the policy's
//! `[baseline]` says how they are learnt and judged).

use super::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;

/// `[baseline]`: the baseline file and the learner's queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// JSON file the baselines are kept in across restarts. Default none:
    /// no baselines are learnt.
    pub path: Option<PathBuf>,
    /// How often the file is rewritten while anything changed (it is also
    /// written at shutdown). Default `60s`.
    pub save_interval: HumanDuration,
    /// Observations queued between the sessions and the learner; past it
    /// they are dropped and counted. Default 65,536.
    pub queue_capacity: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            path: None,
            save_interval: HumanDuration::from_secs(60),
            queue_capacity: 65_536,
        }
    }
}

/// Checks the section; returns the offending field and why.
pub fn validate(b: &BaselineConfig) -> Result<(), (String, String)> {
    let bad = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
    if b.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return bad("baseline.path", "must not be empty");
    }
    if b.save_interval.0 < std::time::Duration::from_secs(1) {
        return bad("baseline.save_interval", "must be at least 1s");
    }
    if b.queue_capacity == 0 {
        return bad("baseline.queue_capacity", "must be at least 1");
    }
    Ok(())
}
