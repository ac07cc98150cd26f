//! The JSON form of a record: nested objects named after the Elastic Common
//! Schema, OpenTelemetry `db.*` where ECS has nothing, and `pgwarden.*` for
//! the rest (docs/audit-records.md). Nested objects rather than dotted keys
//! because that is ECS's canonical form and every SIEM flattens it back to
//! `user.name` on ingest, while Elasticsearch ingest pipelines would need a
//! dot_expander for flat keys.
//!
//! The views below borrow from the record, so serializing allocates nothing
//! but the output.

use super::record::{
    AuditRecord, ConnectionEvent, ConnectionRecord, Outcome, PolicyRecord, SessionContext,
    StatementRecord,
};
use super::subject_record::Subjects;
use crate::analyse::{OpaqueCall, RelationAccess, RelationName, StatementKind};
use crate::detect::extraction::FlagSet;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ECS version the field names follow.
pub(crate) const ECS_VERSION: &str = "8.11.0";

impl Serialize for AuditRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuditRecord::Statement(r) => StatementDoc::new(r).serialize(s),
            AuditRecord::Connection(r) => ConnectionDoc::new(r).serialize(s),
            AuditRecord::Alert(a) => AlertDoc::new(a).serialize(s),
        }
    }
}

/// `@timestamp`: RFC 3339, UTC, microseconds.
pub(crate) struct Timestamp(pub(crate) SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // humantime panics outside 1970..=9999; a wild clock must not kill the writer.
        const MAX: Duration = Duration::from_secs(253_402_300_799);
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let t = UNIX_EPOCH + since.min(MAX);
        s.collect_str(&humantime::format_rfc3339_micros(t))
    }
}

#[derive(Serialize)]
struct Ecs {
    version: &'static str,
}

#[derive(Serialize)]
struct Event {
    kind: &'static str,
    category: &'static [&'static str],
    #[serde(rename = "type")]
    type_: &'static [&'static str],
    action: &'static str,
    outcome: &'static str,
    dataset: &'static str,
    module: &'static str,
    /// Nanoseconds, as ECS wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
}

impl Event {
    fn new(
        category: &'static [&'static str],
        type_: &'static [&'static str],
        action: &'static str,
        outcome: &'static str,
        duration: Option<Duration>,
    ) -> Self {
        Self {
            kind: "event",
            category,
            type_,
            action,
            outcome,
            dataset: "pgwarden.audit",
            module: "pgwarden",
            duration: duration.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}

#[derive(Serialize)]
struct Source {
    ip: std::net::IpAddr,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
}

impl Source {
    fn new(c: &SessionContext, bytes: Option<u64>) -> Self {
        Self {
            // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
            ip: c.client_addr.ip().to_canonical(),
            port: c.client_addr.port(),
            bytes,
        }
    }
}

#[derive(Serialize)]
struct Bytes {
    bytes: u64,
}

#[derive(Serialize)]
struct Tls {
    established: bool,
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective: Option<Name<'a>>,
}

impl<'a> User<'a> {
    fn new(c: &'a SessionContext) -> Option<Self> {
        (!c.user.is_empty()).then(|| Self {
            name: &c.user,
            effective: c.effective_user.as_deref().map(|name| Name { name }),
        })
    }
}

#[derive(Serialize)]
struct ErrorDoc<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Db<'a> {
    system: Name<'static>,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<Name<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<Collection<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<Query<'a>>,
    #[serde(skip_serializing_if = "Response::is_empty")]
    response: Response<'a>,
}

impl<'a> Db<'a> {
    fn session(c: &'a SessionContext) -> Self {
        Self {
            system: Name { name: "postgresql" },
            namespace: &c.database,
            operation: None,
            collection: None,
            query: None,
            response: Response::default(),
        }
    }
}

#[derive(Serialize)]
struct Collection<'a> {
    #[serde(serialize_with = "display")]
    name: &'a RelationName,
}

#[derive(Serialize)]
struct Query<'a> {
    text: &'a str,
}

#[derive(Serialize, Default)]
struct Response<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<&'a str>,
}

impl Response<'_> {
    fn is_empty(&self) -> bool {
        self.returned_rows.is_none() && self.status_code.is_none()
    }
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// `pgwarden.*` of a statement.
#[derive(Serialize)]
struct StatementExtra<'a> {
    session_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend_pid: Option<i32>,
    #[serde(skip_serializing_if = "str::is_empty")]
    application_name: &'a str,
    statement_kind: StatementKind,
    fingerprint: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_affected: Option<u64>,
    #[serde(skip_serializing_if = "Columns::is_empty")]
    columns_read: Columns<'a>,
    #[serde(skip_serializing_if = "Columns::is_empty")]
    columns_written: Columns<'a>,
    #[serde(skip_serializing_if = "Access::is_empty")]
    access: Access<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    opaque_calls: &'a [OpaqueCall],
    #[serde(skip_serializing_if = "Option::is_none")]
    unanalysed: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Subjects::is_empty")]
    subjects: Subjects<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a PolicyRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "FlagSet::is_empty")]
    flags: FlagSet,
}

/// Qualified columns read (output ∪ filter) or written, as flat strings:
/// arrays of objects lose their pairing in most SIEM indexes, these do not.
struct Columns<'a> {
    accesses: &'a [RelationAccess],
    written: bool,
}

impl Columns<'_> {
    fn sets(a: &RelationAccess, written: bool) -> [&BTreeSet<String>; 2] {
        if written {
            [&a.written, &a.written]
        } else {
            [&a.output, &a.filter]
        }
    }

    fn is_empty(&self) -> bool {
        self.accesses
            .iter()
            .all(|a| Self::sets(a, self.written).iter().all(|s| s.is_empty()))
    }
}

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for a in self.accesses {
            let [first, second] = Self::sets(a, self.written);
            for c in first {
                seq.serialize_element(&Displayed(Qualified(&a.relation, c)))?;
            }
            if !self.written {
                for c in second.iter().filter(|c| !first.contains(*c)) {
                    seq.serialize_element(&Displayed(Qualified(&a.relation, c)))?;
                }
            }
        }
        seq.end()
    }
}

/// Per relation: which columns went out, filtered, were written.
struct Access<'a>(&'a [RelationAccess]);

impl Access<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Access<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(AccessDoc))
    }
}

struct AccessDoc<'a>(&'a RelationAccess);

impl Serialize for AccessDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("relation", &Displayed(&a.relation))?;
        for (key, set) in [
            ("output", &a.output),
            ("filter", &a.filter),
            ("written", &a.written),
        ] {
            if !set.is_empty() {
                m.serialize_entry(key, set)?;
            }
        }
        if a.deletes_rows {
            m.serialize_entry("deletes_rows", &true)?;
        }
        m.end()
    }
}

/// `schema.table.column`.
struct Qualified<'a>(&'a RelationName, &'a str);

impl fmt::Display for Qualified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Serializes anything `Display` as a JSON string without an allocation.
struct Displayed<T>(T);

impl<T: fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
struct StatementDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Timestamp,
    ecs: Ecs,
    event: Event,
    source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<Bytes>,
    tls: Tls,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
    db: Db<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc<'a>>,
    pgwarden: StatementExtra<'a>,
}

impl<'a> StatementDoc<'a> {
    fn new(r: &'a StatementRecord) -> Self {
        let a = &*r.analysis;
        let c = &*r.session;
        let (outcome, ecs_outcome, error) = match &r.outcome {
            Outcome::Ok => ("ok", "success", None),
            Outcome::Error(e) => ("error", "failure", Some(e)),
            Outcome::Refused(e) => ("refused", "failure", Some(e)),
        };
        let writes = a.writes()
            || matches!(
                a.kind,
                StatementKind::Insert
                    | StatementKind::Update
                    | StatementKind::Delete
                    | StatementKind::Merge
                    | StatementKind::Truncate
                    | StatementKind::Ddl
            );
        // ECS's database category allows access, change, info and error.
        let type_: &'static [&'static str] = match (writes, a.accesses.is_empty(), error) {
            (true, _, None) => &["change"],
            (true, _, Some(_)) => &["change", "error"],
            (false, false, None) => &["access"],
            (false, false, Some(_)) => &["access", "error"],
            (false, true, None) => &["info"],
            (false, true, Some(_)) => &["info", "error"],
        };
        let mut db = Db::session(c);
        db.operation = Some(Name { name: &a.command });
        db.collection = a.accesses.first().map(|x| Collection { name: &x.relation });
        db.query = Some(Query {
            text: &a.normalized,
        });
        db.response = Response {
            returned_rows: r.rows_returned,
            status_code: error.map(|e| e.sqlstate.as_str()),
        };
        Self {
            timestamp: Timestamp(r.timestamp),
            ecs: Ecs {
                version: ECS_VERSION,
            },
            event: Event::new(
                &["database"],
                type_,
                "statement",
                ecs_outcome,
                Some(r.duration),
            ),
            source: Source::new(c, None),
            destination: Some(Bytes {
                bytes: r.bytes_returned,
            }),
            tls: Tls {
                established: c.client_tls,
            },
            user: User::new(c),
            db,
            error: error.map(|e| ErrorDoc {
                code: &e.sqlstate,
                message: &e.message,
            }),
            pgwarden: StatementExtra {
                session_id: c.session_id,
                backend_pid: c.backend_pid,
                application_name: &c.application_name,
                statement_kind: a.kind,
                fingerprint: &a.fingerprint,
                outcome,
                rows_affected: r.rows_affected,
                columns_read: Columns {
                    accesses: &a.accesses,
                    written: false,
                },
                columns_written: Columns {
                    accesses: &a.accesses,
                    written: true,
                },
                access: Access(&a.accesses),
                opaque_calls: &a.opaque_calls,
                unanalysed: a.unanalysed.as_deref(),
                full_text: r.full_text.as_deref(),
                subjects: Subjects(&r.subjects),
                policy: r.policy.as_ref(),
                changes: r.changes.as_ref(),
                flags: r.flags,
            },
        }
    }
}

/// `pgwarden.*` of a connection event.
#[derive(Serialize)]
struct ConnectionExtra<'a> {
    session_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend_pid: Option<i32>,
    #[serde(skip_serializing_if = "str::is_empty")]
    application_name: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Totals>,
}

#[derive(Serialize)]
struct Totals {
    statements: u64,
    rows: u64,
}

#[derive(Serialize)]
struct ConnectionDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Timestamp,
    ecs: Ecs,
    event: Event,
    source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<Bytes>,
    tls: Tls,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
    db: Db<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc<'a>>,
    pgwarden: ConnectionExtra<'a>,
}

impl<'a> ConnectionDoc<'a> {
    fn new(r: &'a ConnectionRecord) -> Self {
        let c = &*r.session;
        let mut error = None;
        let mut totals = None;
        let mut outcome = "ok";
        let event = match &r.event {
            ConnectionEvent::Connect => Event::new(
                &["network"],
                &["connection", "start"],
                "connect",
                "success",
                None,
            ),
            ConnectionEvent::LoginSucceeded => Event::new(
                &["authentication", "session"],
                &["start"],
                "login",
                "success",
                None,
            ),
            ConnectionEvent::LoginFailed(e) => {
                error = Some(ErrorDoc {
                    code: &e.sqlstate,
                    message: &e.message,
                });
                outcome = "error";
                Event::new(&["authentication"], &["start"], "login", "failure", None)
            }
            ConnectionEvent::Disconnect(t) => {
                totals = Some(t);
                Event::new(
                    &["session"],
                    &["end"],
                    "disconnect",
                    "success",
                    Some(t.duration),
                )
            }
        };
        let mut db = Db::session(c);
        db.response.status_code = error.as_ref().map(|e| e.code);
        Self {
            timestamp: Timestamp(r.timestamp),
            ecs: Ecs {
                version: ECS_VERSION,
            },
            event,
            source: Source::new(c, totals.map(|t| t.bytes_in)),
            destination: totals.map(|t| Bytes { bytes: t.bytes_out }),
            tls: Tls {
                established: c.client_tls,
            },
            user: User::new(c),
            db,
            error,
            pgwarden: ConnectionExtra {
                session_id: c.session_id,
                backend_pid: c.backend_pid,
                application_name: &c.application_name,
                outcome,
                session: totals.map(|t| Totals {
                    statements: t.statements,
                    rows: t.rows,
                }),
            },
        }
    }
}

/// An alert: ECS `event.kind = "alert"`, the alert itself under
/// `pgwarden.alert`.
#[derive(Serialize)]
struct AlertDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Timestamp,
    ecs: Ecs,
    event: AlertEvent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<AlertSource>,
    user: AlertUser<'a>,
    pgwarden: AlertExtra<'a>,
}

#[derive(Serialize)]
struct AlertEvent<'a> {
    kind: &'static str,
    category: &'static [&'static str],
    #[serde(rename = "type")]
    type_: &'static [&'static str],
    action: &'a str,
    severity: u8,
    dataset: &'static str,
    module: &'static str,
}

#[derive(Serialize)]
struct AlertSource {
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct AlertUser<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct AlertExtra<'a> {
    alert: &'a crate::alert::Alert,
}

impl<'a> AlertDoc<'a> {
    fn new(a: &'a crate::alert::Alert) -> Self {
        Self {
            timestamp: Timestamp(a.timestamp),
            ecs: Ecs {
                version: ECS_VERSION,
            },
            event: AlertEvent {
                kind: "alert",
                category: &["intrusion_detection"],
                type_: &["info"],
                action: &a.kind,
                severity: match a.severity {
                    crate::alert::Severity::Info => 21,
                    crate::alert::Severity::Warning => 47,
                    crate::alert::Severity::Critical => 73,
                },
                dataset: "pgwarden.audit",
                module: "pgwarden",
            },
            source: a.client_addr.map(|s| AlertSource {
                ip: s.ip().to_string(),
                port: s.port(),
            }),
            user: AlertUser { name: &a.user },
            pgwarden: AlertExtra { alert: a },
        }
    }
}
