//! `[budget]`: where the windowed counters behind row and login budgets live.

use super::HumanDuration;
use serde::Deserialize;

/// Which store keeps the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetStore {
    /// In this process: shared by its sessions only (default).
    #[default]
    Memory,
    /// In Redis at `redis_url`: shared by every replica.
    Redis,
}

/// `[budget]`: the counter store (see [`crate::budget`]).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// `memory` (default) or `redis`.
    pub store: BudgetStore,
    /// `redis://[user:password@]host:port[/db]`; needed with `store = "redis"`.
    /// Default none.
    pub redis_url: Option<String>,
    /// Longest one Redis call may take before it fails (the caller then
    /// decides to let the statement through or not). Default `250ms`.
    pub timeout: HumanDuration,
    /// Most counters the memory store holds (one per key and window, about
    /// 600 bytes plus the key each); past it the least recently used go.
    /// Default 100,000.
    pub max_keys: usize,
    /// Put before every Redis key, so deployments can share a server.
    /// Default `pgwarden:budget:`.
    pub key_prefix: String,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            store: BudgetStore::Memory,
            redis_url: None,
            timeout: HumanDuration(std::time::Duration::from_millis(250)),
            max_keys: 100_000,
            key_prefix: "pgwarden:budget:".into(),
        }
    }
}

// Hand-written so a logged configuration never shows a password in the URL.
impl std::fmt::Debug for BudgetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetConfig")
            .field("store", &self.store)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("timeout", &self.timeout)
            .field("max_keys", &self.max_keys)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `url` with whatever stands between `://` and `@` replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}<redacted>{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Checks the section; returns the offending field and why.
pub fn validate(b: &BudgetConfig) -> Result<(), (String, String)> {
    let bad = |f: &str, m: String| Err((f.to_owned(), m));
    if let Some(url) = &b.redis_url {
        if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
            return bad(
                "budget.redis_url",
                format!("{} is not a usable Redis URL: {e}", redact_url(url)),
            );
        }
    } else if b.store == BudgetStore::Redis {
        return bad(
            "budget.redis_url",
            "is needed when budget.store = \"redis\"".into(),
        );
    }
    if b.timeout.0.is_zero() {
        return bad("budget.timeout", "must be more than 0s".into());
    }
    if b.max_keys == 0 {
        return bad("budget.max_keys", "must be at least 1".into());
    }
    Ok(())
}
