//! One audit line → one [`Entry`]: the few fields a report needs, read
//! leniently (absent fields default; unknown fields are ignored) so records
//! from older and newer pgwarden versions still count. The format is in
//! docs/audit-records.md; alerts and change capture, which other work adds,
//! are accepted in the shapes listed in docs/report.md.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What one line is, for the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A statement.
    Statement(Box<Statement>),
    /// A login attempt.
    Login(Login),
    /// An alert (`event.kind = "alert"`).
    Alert(Alert),
    /// A signed checkpoint: not an event, skipped.
    Checkpoint,
    /// Connect, disconnect and anything else: counted, not analysed.
    Other(DateTime<Utc>),
}

impl Entry {
    /// When it happened (`None` for checkpoints, which are never filtered).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Entry::Statement(s) => Some(s.ts),
            Entry::Login(l) => Some(l.ts),
            Entry::Alert(a) => Some(a.ts),
            Entry::Checkpoint => None,
            Entry::Other(t) => Some(*t),
        }
    }
}

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran.
    Ok,
    /// PostgreSQL refused it or it failed.
    Error,
    /// pgwarden's policy refused it; it never ran.
    Refused,
}

/// A statement record.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Start time.
    pub ts: DateTime<Utc>,
    /// Login role.
    pub user: String,
    /// Role after SET ROLE, when different.
    pub effective: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// `pgwarden.statement_kind`.
    pub kind: String,
    /// `db.operation.name`.
    pub operation: String,
    /// Normalized text.
    pub text: String,
    /// Outcome.
    pub outcome: Outcome,
    /// SQLSTATE of a failure.
    pub sqlstate: Option<String>,
    /// Rows sent to the client.
    pub rows_returned: u64,
    /// Rows inserted, updated, deleted, merged or copied in.
    pub rows_affected: u64,
    /// Per relation accessed.
    pub access: Vec<Access>,
    /// The policy decision, when one applied.
    pub policy: Option<PolicyDecision>,
    /// Change capture: old and new values, when recorded.
    pub changes: Vec<Change>,
}

impl Statement {
    /// Whether it changes data: a DML kind, or any column written / rows removed.
    pub fn writes(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "insert" | "update" | "delete" | "merge" | "truncate"
        ) || self
            .access
            .iter()
            .any(|a| !a.written.is_empty() || a.deletes_rows)
    }
}

/// `pgwarden.access[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Access {
    /// `schema.name`.
    pub relation: String,
    /// Columns sent to the client.
    pub output: Vec<String>,
    /// Columns choosing rows.
    pub filter: Vec<String>,
    /// Columns given values.
    pub written: Vec<String>,
    /// Whole rows removed.
    pub deletes_rows: bool,
}

/// `pgwarden.policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PolicyDecision {
    /// `allow`, `deny`, `mask`, `would_deny`, `would_mask`.
    pub action: Option<String>,
    /// Deciding rule(s); masks by several rules are joined with `,`.
    pub rule: Option<String>,
    /// `schema.table.column`.
    pub columns: Vec<String>,
}

/// Old and new values of changed rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The relation, when the record names it per change.
    pub relation: Option<String>,
    /// Values before (a row object or an array of them).
    pub old: Option<Value>,
    /// Values after.
    pub new: Option<Value>,
}

/// A login attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// When.
    pub ts: DateTime<Utc>,
    /// Role it tried (empty when unknown).
    pub user: String,
    /// Client address.
    pub ip: Option<String>,
    /// Accepted.
    pub ok: bool,
    /// SQLSTATE of a failure.
    pub sqlstate: Option<String>,
}

/// An alert record.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// When.
    pub ts: DateTime<Utc>,
    /// The user concerned.
    pub user: String,
    /// The rule that fired.
    pub rule: String,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not a JSON object of the expected shape.
    Json(String),
    /// No usable `@timestamp`.
    Timestamp,
}

/// Parses one line.
pub fn parse_line(line: &[u8]) -> Result<Entry, LineError> {
    let raw: Raw = serde_json::from_slice(line).map_err(|e| LineError::Json(e.to_string()))?;
    if raw.event.action.as_deref() == Some("checkpoint") {
        return Ok(Entry::Checkpoint);
    }
    let ts = raw
        .timestamp
        .as_deref()
        .or(raw.alt_timestamp.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or(LineError::Timestamp)?;
    if raw.event.kind.as_deref() == Some("alert") {
        return Ok(Entry::Alert(alert(raw, ts)));
    }
    match raw.event.action.as_deref() {
        Some("statement") => Ok(Entry::Statement(Box::new(statement(raw, ts)))),
        Some("login") => Ok(Entry::Login(Login {
            ts,
            user: user_name(&raw.user),
            ip: raw.source.ip,
            ok: raw.event.outcome.as_deref() != Some("failure"),
            sqlstate: raw.error.code,
        })),
        _ => Ok(Entry::Other(ts)),
    }
}

fn statement(raw: Raw, ts: DateTime<Utc>) -> Statement {
    let p = raw.pgwarden;
    let outcome = match (p.outcome.as_deref(), raw.event.outcome.as_deref()) {
        (Some("refused"), _) => Outcome::Refused,
        (Some("error"), _) | (None, Some("failure")) => Outcome::Error,
        _ => Outcome::Ok,
    };
    let mut changes = Vec::new();
    for v in p.changes.into_iter().chain(p.change) {
        match v {
            Value::Array(items) => changes.extend(items.iter().filter_map(change)),
            other => changes.extend(change(&other)),
        }
    }
    for (old, new) in [(p.old, p.new), (raw.old, raw.new)] {
        if old.is_some() || new.is_some() {
            changes.push(Change {
                relation: None,
                old,
                new,
            });
        }
    }
    Statement {
        ts,
        user: user_name(&raw.user),
        effective: effective_name(&raw.user),
        ip: raw.source.ip,
        kind: p.statement_kind.unwrap_or_default(),
        operation: raw.db.operation.name.unwrap_or_default(),
        text: raw.db.query.text.unwrap_or_default(),
        outcome,
        sqlstate: raw.error.code.or(raw.db.response.status_code),
        rows_returned: raw.db.response.returned_rows.unwrap_or(0),
        rows_affected: p.rows_affected.unwrap_or(0),
        access: p.access,
        policy: p.policy,
        changes,
    }
}

/// One change object: `{relation?, old?, new?}`.
fn change(v: &Value) -> Option<Change> {
    let o = v.as_object()?;
    let old = o.get("old").cloned();
    let new = o.get("new").cloned();
    (old.is_some() || new.is_some()).then(|| Change {
        relation: o.get("relation").and_then(Value::as_str).map(str::to_owned),
        old,
        new,
    })
}

/// An alert as the audit trail records it (ECS `user.name`, `rule.name`,
/// or `pgwarden.alert.*`) or as the webhook sends it (`user`, `rule`).
fn alert(raw: Raw, ts: DateTime<Utc>) -> Alert {
    let a = raw.pgwarden.alert.unwrap_or_default();
    let rule = match &raw.rule {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("name").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let user = match user_name(&raw.user) {
        u if u.is_empty() => a.user.unwrap_or_default(),
        u => u,
    };
    Alert {
        ts,
        user,
        rule: rule.or(a.rule).or(a.kind).unwrap_or_default(),
    }
}

/// `user.name`, or `user` when it is a plain string.
fn user_name(u: &Option<Value>) -> String {
    match u {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// `user.effective.name`.
fn effective_name(u: &Option<Value>) -> Option<String> {
    u.as_ref()?
        .pointer("/effective/name")?
        .as_str()
        .map(str::to_owned)
}

// The shape read from a line: only what the report uses.

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    #[serde(rename = "@timestamp")]
    timestamp: Option<String>,
    #[serde(rename = "timestamp")]
    alt_timestamp: Option<String>,
    event: RawEvent,
    source: RawSource,
    user: Option<Value>,
    rule: Option<Value>,
    db: RawDb,
    error: RawError,
    pgwarden: RawPgwarden,
    old: Option<Value>,
    new: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEvent {
    kind: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSource {
    ip: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDb {
    operation: RawName,
    query: RawQuery,
    response: RawResponse,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawName {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawQuery {
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawResponse {
    returned_rows: Option<u64>,
    status_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawError {
    code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPgwarden {
    outcome: Option<String>,
    statement_kind: Option<String>,
    rows_affected: Option<u64>,
    access: Vec<Access>,
    policy: Option<PolicyDecision>,
    alert: Option<RawAlert>,
    changes: Option<Value>,
    change: Option<Value>,
    old: Option<Value>,
    new: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAlert {
    kind: Option<String>,
    rule: Option<String>,
    user: Option<String>,
}
