//! Counters in Redis, shared by every replica. Each counter is one hash
//! (`{key_prefix}{key}:{bucket width in ms}`) with a field per bucket; one
//! Lua script (sent by EVALSHA) adds to the current bucket, renews the key's
//! expiry to a window plus one bucket, drops stale buckets and sums the live
//! ones, so concurrent replicas never lose an update. One key per counter
//! keeps every key a script touches declared, as Redis Cluster requires.
//!
//! Bucket numbers come from the caller's clock: replicas need synchronized
//! clocks (a skew of S shifts their windows by S). Totals are summed as Lua
//! numbers, exact up to 2^53.

use super::distinct::DistinctCount;
use super::window::{Position, SLOTS};
use super::BudgetError;
use crate::config::BudgetConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::sync::Arc;
use std::time::Duration;

/// Windowed counters in Redis.
#[derive(Clone)]
pub struct RedisBudgets {
    manager: ConnectionManager,
    script: Arc<Script>,
    /// Adds to a distinct-subject window (distinct.lua).
    distinct: Arc<Script>,
    timeout: Duration,
    prefix: Arc<str>,
}

impl std::fmt::Debug for RedisBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudgets")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBudgets {
    /// Prepares a client for `config.redis_url`. It connects on first use and
    /// reconnects on its own, so Redis may be down when this is called; must
    /// be called inside a tokio runtime.
    pub fn new(config: &BudgetConfig) -> Result<Self, BudgetError> {
        tokio::runtime::Handle::try_current().map_err(|_| BudgetError::NoRuntime)?;
        let url = config.redis_url.as_deref().ok_or(BudgetError::NoRedisUrl)?;
        let client =
            redis::Client::open(url).map_err(|e| BudgetError::InvalidUrl(e.to_string()))?;
        let timeout = config.timeout.0;
        // Each try is bounded by the timeout; the caller's call is bounded by
        // it too, so a down server costs one timeout, never a hang.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(timeout);
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            manager,
            script: Arc::new(Script::new(include_str!("add.lua"))),
            distinct: Arc::new(Script::new(include_str!("distinct.lua"))),
            timeout,
            prefix: config.key_prefix.as_str().into(),
        })
    }

    /// Adds `amount` (0: only reads) at `p` and returns the window's total.
    pub(crate) async fn add(
        &self,
        key: &str,
        amount: u64,
        p: Position,
    ) -> Result<u64, BudgetError> {
        let amount = i64::try_from(amount).map_err(|_| BudgetError::AmountTooLarge(amount))?;
        let mut conn = self.manager.clone();
        let mut call = self.script.prepare_invoke();
        call.key(format!("{}{key}:{}", self.prefix, p.width_ms))
            .arg(amount)
            .arg(p.current)
            .arg(SLOTS)
            .arg(p.ttl_ms());
        let total: i64 = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| BudgetError::Timeout(self.timeout))??;
        u64::try_from(total).map_err(|_| BudgetError::BadReply(total))
    }

    /// Adds `members` seen at `now_ms` to the distinct-subject window
    /// `key`; the count (exact up to `threshold + 1`) and whether this call
    /// took it past `threshold` (once, until it drops back or a window passes).
    pub(crate) async fn add_distinct(
        &self,
        key: &str,
        members: &[String],
        window: Duration,
        threshold: u64,
        now_ms: u64,
    ) -> Result<DistinctCount, BudgetError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.manager.clone();
        let mut call = self.distinct.prepare_invoke();
        call.key(format!("{}distinct:{key}", self.prefix))
            .key(format!("{}distinct:{key}:alerted", self.prefix))
            .arg(now_ms)
            .arg(window_ms)
            .arg(threshold);
        for m in members {
            call.arg(m);
        }
        let (count, crossed): (i64, i64) =
            tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
                .await
                .map_err(|_| BudgetError::Timeout(self.timeout))??;
        Ok(DistinctCount {
            count: u64::try_from(count).map_err(|_| BudgetError::BadReply(count))?,
            crossed: crossed == 1,
        })
    }
}
