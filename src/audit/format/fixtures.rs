//! Records the format tests serialize.

use crate::analyse::{Analysis, RelationAccess, RelationName, StatementKind};
use crate::audit::record::{
    AuditRecord, ConnectionEvent, ConnectionRecord, ErrorInfo, Outcome, SessionContext,
    SessionTotals, StatementRecord,
};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// 2023-11-14T22:13:20.123456Z.
pub(super) const MICROS: u64 = 1_700_000_000_123_456;

/// Session 7 of hr_analyst on database hr, from 10.1.2.3:51234 over TLS.
pub(super) fn session() -> Arc<SessionContext> {
    Arc::new(SessionContext {
        backend_pid: Some(4242),
        user: Arc::from("hr_analyst"),
        database: Arc::from("hr"),
        application_name: Arc::from("psql"),
        ..SessionContext::connecting(7, "[::ffff:10.1.2.3]:51234".parse().unwrap(), true)
    })
}

fn analysis(kind: StatementKind, command: &str, written: &[&str]) -> Arc<Analysis> {
    let set = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
    Arc::new(Analysis {
        kind,
        command: command.into(),
        accesses: vec![RelationAccess {
            relation: RelationName {
                schema: "hr".into(),
                name: "employees".into(),
            },
            oid: Some(16_384),
            output: set(&["name", "salary"]),
            filter: set(&["id"]),
            written: set(written),
            deletes_rows: false,
        }],
        opaque_calls: vec![],
        unanalysed: None,
        normalized: Arc::from("SELECT name, salary FROM hr.employees WHERE id = $1"),
        fingerprint: Arc::from("0123456789abcdef"),
        effects: vec![],
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Default::default(),
    })
}

fn stamp(mut r: StatementRecord) -> StatementRecord {
    r.timestamp = UNIX_EPOCH + Duration::from_micros(MICROS);
    r.duration = Duration::from_micros(1500);
    r.bytes_returned = 2048;
    r
}

/// A successful SELECT returning 12 rows.
pub(super) fn select() -> AuditRecord {
    let mut r = stamp(StatementRecord::new(
        session(),
        analysis(StatementKind::Select, "SELECT", &[]),
    ));
    r.set_rows_from_tag("SELECT 12");
    r.into()
}

/// An UPDATE that PostgreSQL refused.
pub(super) fn failed_update() -> AuditRecord {
    let mut ctx = (*session()).clone();
    ctx.effective_user = Some(Arc::from("payroll_admin"));
    let mut r = stamp(StatementRecord::new(
        Arc::new(ctx),
        analysis(StatementKind::Update, "UPDATE", &["salary"]),
    ));
    r.outcome = Outcome::Error(ErrorInfo::new("42501", "permission denied"));
    r.into()
}

/// An UPDATE that pgwarden's policy refused.
pub(super) fn refused_update() -> AuditRecord {
    let mut r = stamp(StatementRecord::new(
        session(),
        analysis(StatementKind::Update, "UPDATE", &["salary"]),
    ));
    r.outcome = Outcome::Refused(ErrorInfo::new("42501", "refused by policy"));
    r.into()
}

/// A statement of `kind` and `command`, touching hr.employees.
pub(super) fn statement(kind: StatementKind, command: &str, written: &[&str]) -> AuditRecord {
    stamp(StatementRecord::new(
        session(),
        analysis(kind, command, written),
    ))
    .into()
}

/// A connection event of the fixture session.
pub(super) fn connection(event: ConnectionEvent) -> AuditRecord {
    let mut r = ConnectionRecord::new(session(), event);
    r.timestamp = UNIX_EPOCH + Duration::from_micros(MICROS);
    r.into()
}

/// A disconnect after 3 statements and 2 s.
pub(super) fn disconnect() -> AuditRecord {
    connection(ConnectionEvent::Disconnect(SessionTotals {
        statements: 3,
        rows: 12,
        bytes_in: 100,
        bytes_out: 2048,
        duration: Duration::from_secs(2),
    }))
}

/// Serializes `record` in `format` and parses it back.
pub(super) fn json(format: crate::config::AuditFormat, record: &AuditRecord) -> serde_json::Value {
    let mut out = Vec::new();
    super::write(format, record, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}
