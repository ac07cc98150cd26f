//! The audit record types a session fills in. Everything shared between the
//! records of one session (who, from where) sits in an [`Arc<SessionContext>`]
//! and the statement's tables and columns in the [`Arc<Analysis>`] the
//! analyser produced, so building a record clones two pointers and copies a
//! few integers. The JSON form is in `json.rs` and `docs/audit-records.md`.

use crate::analyse::Analysis;
use crate::session::SessionInfo;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Who is connected and from where: shared by every record of a session.
///
/// Rebuild it (a new `Arc`) when `application_name` or the effective role
/// changes; records already queued keep the values they were made with.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// pgwarden's id for the session, unique within the process.
    pub session_id: u64,
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// Whether the client connected with TLS.
    pub client_tls: bool,
    /// The PostgreSQL backend pid, once logged in.
    pub backend_pid: Option<i32>,
    /// Login role from the StartupMessage; empty before it arrives.
    pub user: Arc<str>,
    /// Role in effect after SET ROLE / SET SESSION AUTHORIZATION, if different.
    pub effective_user: Option<Arc<str>>,
    /// Database; empty before the StartupMessage arrives.
    pub database: Arc<str>,
    /// application_name; empty when the client set none.
    pub application_name: Arc<str>,
}

impl SessionContext {
    /// A session that has only connected: nothing but the peer is known yet.
    pub fn connecting(session_id: u64, client_addr: SocketAddr, client_tls: bool) -> Self {
        Self {
            session_id,
            client_addr,
            client_tls,
            backend_pid: None,
            user: Arc::from(""),
            effective_user: None,
            database: Arc::from(""),
            application_name: Arc::from(""),
        }
    }

    /// A logged-in session, from the relay's [`SessionInfo`].
    pub fn from_info(session_id: u64, info: &SessionInfo) -> Self {
        Self {
            session_id,
            client_addr: info.client_addr,
            client_tls: info.client_tls,
            backend_pid: Some(info.backend_pid),
            user: Arc::from(info.user.as_str()),
            effective_user: None,
            database: Arc::from(info.database.as_str()),
            application_name: Arc::from(info.application_name.as_str()),
        }
    }
}

/// A SQLSTATE and message, from an ErrorResponse or made by pgwarden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Five-character SQLSTATE, e.g. `42501`.
    pub sqlstate: String,
    /// The primary message.
    pub message: String,
}

impl ErrorInfo {
    /// An error with this SQLSTATE and message.
    pub fn new(sqlstate: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            sqlstate: sqlstate.into(),
            message: message.into(),
        }
    }
}

/// How a statement ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Outcome {
    /// CommandComplete (or EmptyQueryResponse).
    #[default]
    Ok,
    /// PostgreSQL answered with an ErrorResponse.
    Error(ErrorInfo),
    /// pgwarden refused it (a policy) and sent this error instead.
    Refused(ErrorInfo),
}

/// What the policy decided about a statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    /// E.g. `allow`, `deny`, `mask`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The rule that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Columns the action applied to, as `schema.table.column`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Why a statement was (or would have been) refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The statement switches to a role with full access or superuser rights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged_role: Option<String>,
}

/// One statement: who ran what, against which columns, with what result.
#[derive(Debug, Clone)]
pub struct StatementRecord {
    /// When the statement started.
    pub timestamp: SystemTime,
    /// The session that ran it.
    pub session: Arc<SessionContext>,
    /// What the analyser found (kind, command, accesses, normalized text).
    pub analysis: Arc<Analysis>,
    /// The text with its literals; kept only when `audit.log_full_text` is on.
    pub full_text: Option<Arc<str>>,
    /// Data subjects whose rows it returned or wrote (`[subjects]`).
    pub subjects: Vec<super::SubjectSeen>,
    /// Rows sent to the client (SELECT, FETCH, COPY TO, RETURNING).
    pub rows_returned: Option<u64>,
    /// Rows inserted, updated, deleted, merged or copied in.
    pub rows_affected: Option<u64>,
    /// Bytes of results sent to the client.
    pub bytes_returned: u64,
    /// From the first message of the statement to its last answer.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The policy decision, when a policy applied.
    pub policy: Option<PolicyRecord>,
    /// Captured changes (old and new values), when the policy captures them.
    pub changes: Option<serde_json::Value>,
    /// Extraction flags raised before it ran (`unfiltered_read`, ...).
    pub flags: crate::detect::extraction::FlagSet,
}

impl StatementRecord {
    /// A record stamped now, with outcome `ok` and no counts yet.
    pub fn new(session: Arc<SessionContext>, analysis: Arc<Analysis>) -> Self {
        Self {
            timestamp: SystemTime::now(),
            session,
            analysis,
            full_text: None,
            subjects: Vec::new(),
            rows_returned: None,
            rows_affected: None,
            bytes_returned: 0,
            duration: Duration::ZERO,
            outcome: Outcome::Ok,
            policy: None,
            changes: None,
            flags: Default::default(),
        }
    }

    /// Sets the row count from a CommandComplete tag such as `SELECT 5` or
    /// `INSERT 0 3`; tags without a count (`CREATE TABLE`) leave it unset.
    pub fn set_rows_from_tag(&mut self, tag: &str) {
        let mut words = tag.split_ascii_whitespace();
        let (Some(verb), Some(n)) = (words.next(), words.next_back()) else {
            return;
        };
        let Ok(n) = n.parse::<u64>() else { return };
        match verb {
            "SELECT" | "FETCH" | "MOVE" => self.rows_returned = Some(n),
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" => self.rows_affected = Some(n),
            // COPY says only how many rows moved; the direction decides which.
            "COPY" if self.analysis.writes() => self.rows_affected = Some(n),
            "COPY" => self.rows_returned = Some(n),
            _ => {}
        }
    }
}

/// Totals of a session, reported when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Statements run.
    pub statements: u64,
    /// Rows returned plus rows affected.
    pub rows: u64,
    /// Bytes received from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// From connect to disconnect.
    pub duration: Duration,
}

/// A connection event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A client connected (TCP accepted, TLS negotiated if any).
    Connect,
    /// PostgreSQL accepted the login.
    LoginSucceeded,
    /// PostgreSQL (or pgwarden) refused the login.
    LoginFailed(ErrorInfo),
    /// The session ended.
    Disconnect(SessionTotals),
}

/// One connection event of a session.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    /// When it happened.
    pub timestamp: SystemTime,
    /// The session; only the peer is known for `Connect`.
    pub session: Arc<SessionContext>,
    /// What happened.
    pub event: ConnectionEvent,
}

impl ConnectionRecord {
    /// A record of `event`, stamped now.
    pub fn new(session: Arc<SessionContext>, event: ConnectionEvent) -> Self {
        Self {
            timestamp: SystemTime::now(),
            session,
            event,
        }
    }
}

/// Anything the audit writer accepts: one line of the audit log.
// Statements are nearly every record: boxing them to shrink the enum would
// add an allocation per statement on the session's path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AuditRecord {
    /// A statement.
    Statement(StatementRecord),
    /// A connection event.
    Connection(ConnectionRecord),
    /// An alert (bulk extraction, failed logins, ...).
    Alert(Arc<crate::alert::Alert>),
}

impl AuditRecord {
    /// Forgets the full statement text (when `log_full_text` is off).
    pub(crate) fn strip_full_text(&mut self) {
        if let AuditRecord::Statement(s) = self {
            s.full_text = None;
        }
    }
}

impl From<StatementRecord> for AuditRecord {
    fn from(r: StatementRecord) -> Self {
        AuditRecord::Statement(r)
    }
}

impl From<ConnectionRecord> for AuditRecord {
    fn from(r: ConnectionRecord) -> Self {
        AuditRecord::Connection(r)
    }
}
