//! Alerts: what a rule saw and did, sent as JSON to the `[alerts] webhooks`.
//!
//! Sessions call [`AlertSink::raise`], which never waits. One task groups
//! alerts (one incident is one message plus one summary, not a thousand
//! messages, see [`group`]) and hands each message to one delivery task per
//! URL, which POSTs it with retries. The JSON sent is documented in
//! `docs/alerts.md`.

pub mod group;
mod sink;
mod webhook;

pub use group::{Grouper, Message, Summary};
pub use sink::{AlertSink, AlertTask};

use serde::{Serialize, Serializer};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Why the alert sink could not start.
#[derive(Debug, Error)]
pub enum AlertError {
    /// A webhook URL is unusable (configuration validation refuses these).
    #[error("alerts.webhooks: {0}")]
    InvalidUrl(String),
    /// [`AlertSink::start`] was called outside a tokio runtime.
    #[error("the alert sink must be started inside a tokio runtime")]
    NoRuntime,
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth looking at.
    Warning,
    /// Worth acting on now.
    Critical,
}

impl Severity {
    /// The lowercase name, as serialized and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What pgwarden did about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing but this alert.
    Alerted,
    /// The statement or login was refused.
    Blocked,
    /// The session was ended.
    Terminated,
}

/// One alert, as raised by a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// What happened, e.g. `row_budget` or `login_failures` (part of the grouping key).
    pub kind: String,
    /// Name of the rule that fired (part of the grouping key).
    pub rule: String,
    /// How bad it is.
    pub severity: Severity,
    /// The database user concerned (part of the grouping key).
    pub user: String,
    /// pgwarden's session id, when one session is concerned.
    pub session_id: Option<u64>,
    /// The client's address and port, when known.
    pub client_addr: Option<SocketAddr>,
    /// What the rule saw, e.g. `{"table": "hr.employees", "rows": 50000, "limit": 10000}`.
    pub evidence: serde_json::Value,
    /// What pgwarden did.
    pub action: Action,
    /// When it happened (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: SystemTime,
}

/// RFC 3339 with milliseconds; clamped, since humantime panics past year 9999.
fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    const MAX: Duration = Duration::from_secs(253_402_300_799);
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    s.collect_str(&humantime::format_rfc3339_millis(
        UNIX_EPOCH + since.min(MAX),
    ))
}
