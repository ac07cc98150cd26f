//! The policy file format, as security teams write it (TOML). Every field
//! has a default documented here; `load.rs` turns files into a [`Policy`].
//!
//! [`Policy`]: super::Policy

use serde::Deserialize;
use std::collections::BTreeMap;

/// One policy file. Several files in a directory are merged: classifications
/// and rules add up; `mode`, `[defaults]` and `[functions]` may be set in
/// one file only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `enforce` (default) or `monitor`.
    pub mode: Option<Mode>,
    /// What applies where no rule decides.
    pub defaults: Option<Defaults>,
    /// Tables whose rows are about a data subject: `schema.table` → key
    /// column, or `{ key, subject }` (see `subjects.rs`). Default none.
    #[serde(default)]
    pub subjects: BTreeMap<String, super::subjects::SubjectSpec>,
    /// Classification name → the columns or tables it covers
    /// (`schema.table.column`, `schema.table`, with `*` wildcards).
    #[serde(default)]
    pub classifications: BTreeMap<String, Vec<String>>,
    /// Rules, applied most specific first.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
    /// Opaque code that may run for roles without full access.
    pub functions: Option<FunctionsSpec>,
    /// Bulk-extraction limits.
    #[serde(default, rename = "limit")]
    pub limits: Vec<LimitSpec>,
    /// Security events that raise alerts.
    pub security: Option<SecuritySpec>,
    /// Change capture: which columns' old and new values are recorded.
    pub capture: Option<CaptureSpec>,
    /// Behaviour baselines: how they are learnt and when a deviation alerts.
    pub baseline: Option<BaselineSpec>,
}

/// `[capture]`: columns whose changes are recorded with old and new values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSpec {
    /// Columns captured (`schema.table.column`, `schema.table` = every
    /// column, `*` wildcards). Default none.
    pub changes: Vec<String>,
    /// Classifications whose captured values are recorded as keyed hashes
    /// instead of clear values. Default `["restricted"]`.
    pub hashed: Vec<String>,
    /// Most changed rows recorded per statement (the rest are counted).
    /// Default 1000.
    pub max_rows: usize,
}

impl Default for CaptureSpec {
    fn default() -> Self {
        Self {
            changes: Vec::new(),
            hashed: vec!["restricted".into()],
            max_rows: 1000,
        }
    }
}

/// `[baseline]`: per-user behaviour baselines (learnt when the config sets
/// `[baseline] path`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSpec {
    /// How long a user's baseline learns, from their first statement or
    /// login. Default `14d`.
    pub learning_period: crate::config::HumanDuration,
    /// Statements a baseline must have seen before it judges. Default 200.
    pub min_statements: u64,
    /// Alert when a deviation's score (0..1, weighted) reaches this. Default 0.8.
    pub alert_score: f64,
    /// One alert per user, kind and object within this. Default `1h`.
    pub cooldown: crate::config::HumanDuration,
    /// No volume alert below this many rows in an hour. Default 1000.
    pub volume_min_rows: u64,
    /// Weight of each kind of deviation (0..1). Default 1 each.
    pub weights: BaselineWeights,
}

impl Default for BaselineSpec {
    fn default() -> Self {
        Self {
            learning_period: crate::config::HumanDuration::from_secs(14 * 86_400),
            min_statements: 200,
            alert_score: 0.8,
            cooldown: crate::config::HumanDuration::from_secs(3600),
            volume_min_rows: 1000,
            weights: BaselineWeights::default(),
        }
    }
}

/// `[baseline] weights`: how much each kind of deviation counts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineWeights {
    /// A table the user never read while learning.
    pub table: f64,
    /// A column never read of a table the user did read.
    pub column: f64,
    /// Rows in an hour far above the busiest learnt hour.
    pub volume: f64,
    /// An hour of day the user was rarely or never active in.
    pub hour: f64,
}

impl Default for BaselineWeights {
    fn default() -> Self {
        Self {
            table: 1.0,
            column: 1.0,
            volume: 1.0,
            hour: 1.0,
        }
    }
}

/// `[security]`: events that raise alerts (and optionally refuse logins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySpec {
    /// Failed logins of one user, or from one address, in the window that
    /// raise an alert (brute force, password spraying). Default 10.
    pub failed_logins_alert: Option<u64>,
    /// The failed-login window. Default `5m`.
    pub failed_logins_window: crate::config::HumanDuration,
    /// Failed logins from one address in `block_cooldown` after which its
    /// further attempts are refused (SQLSTATE 28000). Default none.
    pub failed_logins_block: Option<u64>,
    /// How long an address stays refused. Default `10m`.
    pub block_cooldown: crate::config::HumanDuration,
    /// Refused statements of one user in the window that raise an alert
    /// (probing). Default 20.
    pub refusals_alert: Option<u64>,
    /// The refusal window. Default `5m`.
    pub refusals_window: crate::config::HumanDuration,
    /// Reading classified columns outside these hours raises an alert.
    pub office_hours: Option<WhenSpec>,
    /// GRANT, REVOKE, CREATE/ALTER/DROP ROLE and switches to a privileged
    /// role raise an alert. Default true.
    pub privilege_changes: bool,
    /// Flag statements that look like extraction before they run (reads of
    /// protected tables without WHERE or LIMIT, COPY TO, large counts).
    /// Default true.
    pub extraction_flags: bool,
    /// A LIMIT or FETCH count at least this large is flagged. Default 10000.
    pub large_fetch: Option<u64>,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        Self {
            failed_logins_alert: Some(10),
            failed_logins_window: crate::config::HumanDuration::from_secs(300),
            failed_logins_block: None,
            block_cooldown: crate::config::HumanDuration::from_secs(600),
            refusals_alert: Some(20),
            refusals_window: crate::config::HumanDuration::from_secs(300),
            office_hours: None,
            privilege_changes: true,
            extraction_flags: true,
            large_fetch: Some(10_000),
        }
    }
}

/// `[[limit]]`: how many rows of some tables a role may read, per statement
/// and per user in a sliding window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Unique name, quoted in errors, alerts and audit records.
    pub name: String,
    /// Roles it applies to (members too); `*` = everyone.
    pub roles: Vec<String>,
    /// Roles (and their members) it does not apply to.
    #[serde(default)]
    pub except_roles: Vec<String>,
    /// Tables (`schema.table`, wildcards) or classification names: a table
    /// counts when any of its columns has the class.
    pub on: Vec<String>,
    /// Alert when one statement returns more rows than this.
    pub alert_rows: Option<u64>,
    /// Stop the statement when it would return more rows than this.
    pub block_rows: Option<u64>,
    /// The sliding window of the per-window limits (default `1h`).
    pub window: Option<crate::config::HumanDuration>,
    /// Alert when a user's rows in the window exceed this.
    pub alert_rows_per_window: Option<u64>,
    /// Stop statements once a user's rows in the window would exceed this.
    pub block_rows_per_window: Option<u64>,
    /// Alert when a user has seen more distinct subjects (keys of
    /// `[subjects]` tables under `on`) than this in the window.
    pub distinct_subjects_per_window: Option<u64>,
}

/// Enforce or only watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse and mask.
    Enforce,
    /// Record what would have been refused or masked; change nothing.
    Monitor,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permit {
    /// Permitted.
    Allow,
    /// Refused.
    Deny,
}

/// What applies where no rule decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Reading and writing columns no classification covers (default `allow`).
    pub unclassified: Permit,
    /// Reading and writing classified columns no rule covers (default `deny`).
    pub classified: Permit,
    /// A statement that touches protected data but could not be fully
    /// analysed (default `deny`; monitor mode only records it).
    pub unanalysed: Permit,
    /// Opaque code (DO, CALL, functions the analyser cannot see into) run
    /// by a role without full access (default `deny`).
    pub opaque: Permit,
    /// Masked columns used to pick rows (WHERE, JOIN, ORDER BY, ...):
    /// default `deny`, since the rows that come back reveal the values.
    pub masked_filters: Permit,
    /// Masked columns inside expressions (`upper(ssn)`, `avg(salary)`),
    /// which cannot be masked cell by cell: default `deny`.
    pub masked_expressions: Permit,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            unclassified: Permit::Allow,
            classified: Permit::Deny,
            unanalysed: Permit::Deny,
            opaque: Permit::Deny,
            masked_filters: Permit::Deny,
            masked_expressions: Permit::Deny,
        }
    }
}

/// `[[rule]]`: what some roles may do with some columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name, quoted in refusals and audit records.
    pub name: String,
    /// PostgreSQL roles it applies to (members of them too); `*` = everyone.
    pub roles: Vec<String>,
    /// Roles (and their members) it does not apply to.
    #[serde(default)]
    pub except_roles: Vec<String>,
    /// What it covers: classification names, `schema.table`,
    /// `schema.table.column` (with `*` wildcards), or `*` for everything.
    pub on: Vec<String>,
    /// `allow`, `deny` or `mask:<method>` (e.g. `mask:partial:4`).
    pub read: Option<String>,
    /// `allow` or `deny`.
    pub write: Option<Permit>,
    /// For masked columns: may they pick rows (WHERE, JOIN, ORDER BY)?
    /// Default: `defaults.masked_filters`.
    pub filter: Option<Permit>,
    /// For masked columns: may they appear inside expressions, unmasked?
    /// Default: `defaults.masked_expressions`.
    pub expressions: Option<Permit>,
    /// Conditions; the rule applies only when all of them hold.
    pub when: Option<WhenSpec>,
}

/// Conditions of a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// Days of the week (`mon` ... `sun`).
    pub days: Option<Vec<String>>,
    /// Time-of-day range `HH:MM-HH:MM` (may wrap past midnight).
    pub hours: Option<String>,
    /// IANA time zone for `days` and `hours` (default `UTC`).
    pub timezone: Option<String>,
    /// Client address ranges (CIDR).
    pub addresses: Option<Vec<String>>,
    /// application_name values (`*` wildcards).
    pub applications: Option<Vec<String>>,
}

/// `[functions]`: opaque code allowed for every role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsSpec {
    /// Functions (`schema.name`) known not to leak protected data.
    #[serde(default)]
    pub allow: Vec<String>,
}
