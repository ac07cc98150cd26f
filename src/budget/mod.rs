//! Budgets: sliding-window counters shared by sessions (and, in Redis, by
//! replicas), e.g. rows of a table read per user per hour, or failed logins
//! per client address per minute.
//!
//! A key names what is counted, e.g. `rows:alice:hr.employees`; the same key
//! may be counted over several windows (minute, hour, day), each kept apart.
//! Windows are cut into 60 buckets; see [`window`] for the precision. Time is
//! passed in (`now`) so tests can move it.

pub mod distinct;
mod memory;
mod redis;
pub mod window;

pub use memory::MemoryBudgets;
pub use redis::RedisBudgets;

use crate::config::{BudgetConfig, BudgetStore};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use window::Position;

/// Why a budget could not be counted; the caller decides whether to let the
/// work through (fail open) or not (fail closed).
#[derive(Debug, Error)]
pub enum BudgetError {
    /// A window of zero length counts nothing.
    #[error("a budget window must be longer than 0")]
    ZeroWindow,
    /// `now` lies before 1970.
    #[error("the clock reads before 1970")]
    ClockBeforeEpoch,
    /// Redis counts in signed 64 bits.
    #[error("amount {0} is too large to count")]
    AmountTooLarge(u64),
    /// `store = "redis"` without `redis_url`.
    #[error("budget.redis_url is not set")]
    NoRedisUrl,
    /// `redis_url` could not be used.
    #[error("budget.redis_url: {0}")]
    InvalidUrl(String),
    /// The Redis store must be created inside a tokio runtime.
    #[error("the Redis budget store must be created inside a tokio runtime")]
    NoRuntime,
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The script returned a negative total (someone else wrote the key).
    #[error("redis returned an impossible total {0}")]
    BadReply(i64),
}

/// Sliding-window counters in one of the two stores.
#[derive(Debug)]
pub enum Budgets {
    /// In this process.
    Memory(MemoryBudgets),
    /// In Redis, shared by replicas.
    Redis(RedisBudgets),
}

impl Budgets {
    /// The store `[budget]` asks for (Redis: call inside a tokio runtime).
    pub fn from_config(config: &BudgetConfig) -> Result<Self, BudgetError> {
        Ok(match config.store {
            BudgetStore::Memory => Self::Memory(MemoryBudgets::new(config.max_keys)),
            BudgetStore::Redis => Self::Redis(RedisBudgets::new(config)?),
        })
    }

    /// Adds `amount` at `now` to `key`'s counter and returns the total within
    /// the last `window` (including this amount).
    pub async fn add(
        &self,
        key: &str,
        amount: u64,
        window: Duration,
        now: SystemTime,
    ) -> Result<u64, BudgetError> {
        let p = Position::new(window, now)?;
        match self {
            Self::Memory(m) => Ok(m.add(key, amount, p, now)),
            Self::Redis(r) => r.add(key, amount, p).await,
        }
    }

    /// Adds subjects `user` saw under `limit` to a window shared by every
    /// replica: `None` for the memory store, whose sessions count in this
    /// process ([`distinct::DistinctWindows`]).
    pub async fn add_distinct(
        &self,
        user: &str,
        limit: &str,
        members: &[String],
        window: Duration,
        threshold: u64,
        now: SystemTime,
    ) -> Option<Result<distinct::DistinctCount, BudgetError>> {
        let Self::Redis(r) = self else {
            return None;
        };
        let now_ms = match now.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Err(_) => return Some(Err(BudgetError::ClockBeforeEpoch)),
        };
        Some(
            r.add_distinct(
                &format!("{user}:{limit}"),
                members,
                window,
                threshold,
                now_ms,
            )
            .await,
        )
    }

    /// Whether counts are shared with other replicas (Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Like [`Self::add`] for the memory store, which answers at once;
    /// `None` for Redis (call `add` from a task).
    pub fn add_in_process(
        &self,
        key: &str,
        amount: u64,
        window: Duration,
        now: SystemTime,
    ) -> Option<Result<u64, BudgetError>> {
        let Self::Memory(m) = self else {
            return None;
        };
        Some(Position::new(window, now).map(|p| m.add(key, amount, p, now)))
    }

    /// The total within the last `window` without adding.
    pub async fn total(
        &self,
        key: &str,
        window: Duration,
        now: SystemTime,
    ) -> Result<u64, BudgetError> {
        let p = Position::new(window, now)?;
        match self {
            Self::Memory(m) => Ok(m.total(key, p)),
            Self::Redis(r) => r.add(key, 0, p).await,
        }
    }
}

#[cfg(test)]
mod tests;
