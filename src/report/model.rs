//! The report's content, as every format renders it; `json` is this
//! structure serialized. Lists are in a fixed order (documented per field)
//! so the same input always gives the same report.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Users (or anything counted per user) → number of statements.
pub type ByUser = BTreeMap<String, u64>;

/// A compliance report over audit files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What the report covers.
    pub period: Period,
    /// What was read.
    pub input: InputSummary,
    /// Totals over the period.
    pub totals: Totals,
    /// Per login role, by statements (most first).
    pub users: Vec<UserStats>,
    /// Per table, by name.
    pub tables: Vec<TableStats>,
    /// Per classification.
    pub classifications: Classifications,
    /// Policy decisions other than `allow`, per rule and action (most first).
    pub rules: Vec<RuleStats>,
    /// Alerts per rule (most first).
    pub alerts: Vec<AlertStats>,
    /// The statements that returned the most rows (most first).
    pub largest_extractions: Vec<Extraction>,
    /// Statements outside office hours.
    pub off_hours: OffHours,
    /// Changes to the watched table (`hr.salaries` by default).
    pub changes: Changes,
    /// Failed logins per user and address (most first).
    pub login_failures: Vec<LoginFailures>,
    /// Per day in the report's zone, in order; days without records are
    /// included when the period spans at most 366 days.
    pub days: Vec<DayStats>,
}

/// The period and how time is read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// First instant excluded.
    pub to: DateTime<Utc>,
    /// IANA zone of days and office hours.
    pub time_zone: String,
    /// `HH:MM-HH:MM`, Monday to Friday.
    pub office_hours: String,
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputSummary {
    /// Files, as given.
    pub files: Vec<String>,
    /// Non-empty lines read.
    pub lines: u64,
    /// Records inside the period (checkpoints excluded).
    pub records: u64,
    /// Records outside the period.
    pub outside_period: u64,
    /// Checkpoint records skipped.
    pub checkpoints: u64,
    /// Lines that are not audit records.
    pub malformed: u64,
    /// The first few of them, as `FILE:LINE: why`.
    pub malformed_examples: Vec<String>,
}

/// Totals over the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Statements, whatever their outcome.
    pub statements: u64,
    /// Statements that ran and read tables without writing.
    pub reads: u64,
    /// Statements that ran and changed data.
    pub writes: u64,
    /// Statements refused by pgwarden's policy.
    pub refusals: u64,
    /// Statements PostgreSQL refused or that failed.
    pub errors: u64,
    /// Statements whose results were masked.
    pub masks: u64,
    /// Alerts.
    pub alerts: u64,
    /// Rows sent to clients.
    pub rows_returned: u64,
    /// Rows inserted, updated, deleted, merged or copied in.
    pub rows_affected: u64,
    /// Successful logins.
    pub logins: u64,
    /// Failed logins.
    pub login_failures: u64,
    /// Distinct login roles with statements or alerts.
    pub users: u64,
}

/// One login role's activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserStats {
    /// Login role.
    pub user: String,
    /// Statements.
    pub statements: u64,
    /// Reads (ran, read tables, wrote nothing).
    pub reads: u64,
    /// Writes (ran, changed data).
    pub writes: u64,
    /// Refused by the policy.
    pub refusals: u64,
    /// Failed in PostgreSQL.
    pub errors: u64,
    /// Masked.
    pub masks: u64,
    /// Alerts about this user.
    pub alerts: u64,
    /// Rows sent to the client.
    pub rows_returned: u64,
    /// Rows changed.
    pub rows_affected: u64,
    /// Statements outside office hours.
    pub off_hours: u64,
    /// Number of distinct tables touched.
    pub distinct_tables: usize,
    /// Those tables, by name.
    pub tables: Vec<String>,
    /// Roles acted as through SET ROLE, by name.
    pub effective_roles: Vec<String>,
}

/// One table's use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableStats {
    /// `schema.table`.
    pub table: String,
    /// Statements that ran and read it.
    pub reads: u64,
    /// Of those, statements that sent its columns to the client.
    pub output_reads: u64,
    /// Of those, statements that used its columns to choose rows.
    pub filter_reads: u64,
    /// Statements that ran and changed it.
    pub writes: u64,
    /// Refused statements touching it.
    pub refusals: u64,
    /// Masked statements with a masked column of it.
    pub masks: u64,
    /// Who touched it (any of the above).
    pub users: ByUser,
    /// Per column, by name.
    pub columns: Vec<ColumnStats>,
}

/// One column's use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnStats {
    /// Column name.
    pub column: String,
    /// Statements that ran and sent it to the client.
    pub output_reads: u64,
    /// Statements that ran and chose rows by it.
    pub filter_reads: u64,
    /// Statements that ran and wrote it.
    pub writes: u64,
    /// Refusals naming it.
    pub refusals: u64,
    /// Masks of it.
    pub masks: u64,
    /// Who touched it.
    pub users: ByUser,
}

/// Use per classification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classifications {
    /// `policy` (the policy's classifications) or `table` (no policy given:
    /// one group per table).
    pub source: String,
    /// By name; `(unclassified)` last.
    pub groups: Vec<ClassStats>,
}

/// One classification's use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassStats {
    /// Classification (or table) name.
    pub name: String,
    /// Columns of it seen, `schema.table.column`, by name.
    pub columns: Vec<String>,
    /// Statements that ran and read a column of it.
    pub reads: u64,
    /// Statements that ran and wrote a column of it.
    pub writes: u64,
    /// Refusals naming a column of it.
    pub refusals: u64,
    /// Masks of a column of it.
    pub masks: u64,
    /// Who.
    pub users: ByUser,
}

/// A policy rule's non-`allow` decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStats {
    /// Rule name(s); `(default)` when no rule decided.
    pub rule: String,
    /// `deny`, `mask`, `would_deny`, `would_mask`.
    pub action: String,
    /// Statements.
    pub statements: u64,
    /// Who.
    pub users: ByUser,
}

/// Alerts of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStats {
    /// Rule name.
    pub rule: String,
    /// Alerts.
    pub alerts: u64,
    /// Who.
    pub users: ByUser,
}

/// A statement that returned many rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extraction {
    /// When it started.
    pub timestamp: DateTime<Utc>,
    /// Login role.
    pub user: String,
    /// Role after SET ROLE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_role: Option<String>,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Normalized text.
    pub query: String,
    /// Rows sent to the client.
    pub rows: u64,
    /// Tables it read.
    pub tables: Vec<String>,
}

/// Activity outside office hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OffHours {
    /// Statements outside office hours.
    pub statements: u64,
    /// Per user (most first).
    pub users: Vec<OffHoursUser>,
}

/// One user's activity outside office hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OffHoursUser {
    /// Login role.
    pub user: String,
    /// Statements.
    pub statements: u64,
    /// Rows sent to the client.
    pub rows_returned: u64,
    /// The earliest few.
    pub examples: Vec<Example>,
}

/// One statement, briefly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// When it started.
    pub timestamp: DateTime<Utc>,
    /// Normalized text.
    pub query: String,
    /// Rows sent to the client.
    pub rows: u64,
    /// `ok`, `error`, `refused`.
    pub outcome: String,
}

/// Changes to one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    /// `schema.table`.
    pub table: String,
    /// Whether any record carried old/new values.
    pub with_values: bool,
    /// Statements that changed it (or tried to), in time order.
    pub statements: Vec<ChangeEntry>,
    /// Statements left out past the first 1,000.
    pub omitted: u64,
}

/// A statement changing the watched table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEntry {
    /// When it started.
    pub timestamp: DateTime<Utc>,
    /// Login role.
    pub user: String,
    /// Role after SET ROLE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_role: Option<String>,
    /// `UPDATE`, `INSERT`, ...
    pub operation: String,
    /// `ok`, `error`, `refused`.
    pub outcome: String,
    /// Rows changed.
    pub rows_affected: u64,
    /// Normalized text.
    pub query: String,
    /// Old and new values, when recorded.
    pub values: Vec<ChangeValues>,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeValues {
    /// Before.
    pub old: Option<Value>,
    /// After.
    pub new: Option<Value>,
}

/// Failed logins of one user from one address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginFailures {
    /// Role tried (`(unknown)` when the client never said).
    pub user: String,
    /// Client address.
    pub source_ip: String,
    /// Failures.
    pub failures: u64,
    /// First one.
    pub first: DateTime<Utc>,
    /// Last one.
    pub last: DateTime<Utc>,
    /// SQLSTATEs seen, sorted.
    pub sqlstates: Vec<String>,
}

/// One day's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// The local date.
    pub day: NaiveDate,
    /// Statements.
    pub statements: u64,
    /// Rows sent to clients.
    pub rows_returned: u64,
    /// Rows changed.
    pub rows_affected: u64,
    /// Policy refusals.
    pub refusals: u64,
    /// Alerts.
    pub alerts: u64,
    /// Failed logins.
    pub login_failures: u64,
}
