//! `ocsf`: OCSF 1.3 events. Statements are Datastore Activity [6005],
//! logins and disconnects Authentication [3002] (Logon / Logoff), a TCP
//! connect Network Activity [4001] (Open), an alert Detection Finding
//! [2004] (Create). pgwarden's own fields go under `unmapped.pgwarden`,
//! exactly as in the native form.

use super::client_ip;
use crate::analyse::StatementKind;
use crate::audit::json::Timestamp;
use crate::audit::record::{
    AuditRecord, ConnectionEvent, ConnectionRecord, ErrorInfo, Outcome, SessionContext,
    StatementRecord,
};
use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The OCSF schema version the events follow.
pub(crate) const OCSF_VERSION: &str = "1.3.0";

/// Appends the OCSF event of `record`.
pub(super) fn write(record: &AuditRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    // The pgwarden extension is taken from the native form so both agree.
    let native = serde_json::to_value(record)?;
    let doc = match record {
        AuditRecord::Statement(r) => statement(r, &native),
        AuditRecord::Connection(r) => connection(r, &native),
        AuditRecord::Alert(a) => return serde_json::to_writer(out, &finding(a, &native)),
    };
    serde_json::to_writer(out, &doc)
}

/// One OCSF event; class-specific fields are left out where they do not apply.
#[derive(Serialize)]
struct Event<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: &'a str,
    type_uid: u64,
    type_name: String,
    time: u64,
    time_dt: Timestamp,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<&'a str>,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    metadata: Metadata,
    actor: Actor<'a>,
    /// Authentication: the user logging on or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Session>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_remote: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Named<'a>>,
    src_endpoint: Endpoint,
    /// Datastore Activity: the datastore type (1 = Database).
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u8>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<Database<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_info: Option<QueryInfo<'a>>,
    unmapped: Unmapped<'a>,
}

#[derive(Serialize)]
struct Metadata {
    version: &'static str,
    product: Product,
    log_name: &'static str,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Actor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
    session: Session,
    #[serde(skip_serializing_if = "str::is_empty")]
    app_name: &'a str,
}

#[derive(Serialize, Clone, Copy)]
struct User<'a> {
    name: &'a str,
}

#[derive(Serialize, Clone)]
struct Session {
    uid: String,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Endpoint {
    ip: IpAddr,
    port: u16,
}

#[derive(Serialize)]
struct Database<'a> {
    name: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    type_: &'static str,
}

#[derive(Serialize)]
struct QueryInfo<'a> {
    query_string: &'a str,
    /// The fingerprint: the same for every statement of the same shape.
    uid: &'a str,
}

#[derive(Serialize)]
struct Unmapped<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'a str>,
    pgwarden: &'a Value,
}

/// OCSF severity: (id, caption).
const INFORMATIONAL: (u8, &str) = (1, "Informational");
const LOW: (u8, &str) = (2, "Low");
const MEDIUM: (u8, &str) = (3, "Medium");

fn millis(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn user(c: &SessionContext) -> Option<User<'_>> {
    (!c.user.is_empty()).then_some(User { name: &c.user })
}

/// The fields every class shares.
#[allow(clippy::too_many_arguments)]
fn base<'a>(
    class: (u32, &'static str, u32, &'static str),
    activity: (u32, &'a str),
    time: SystemTime,
    severity: (u8, &'static str),
    error: Option<&'a ErrorInfo>,
    c: &'a SessionContext,
    native: &'a Value,
) -> Event<'a> {
    let (class_uid, class_name, category_uid, category_name) = class;
    let (status_id, status) = if error.is_some() {
        (2, "Failure")
    } else {
        (1, "Success")
    };
    Event {
        class_uid,
        class_name,
        category_uid,
        category_name,
        activity_id: activity.0,
        activity_name: activity.1,
        type_uid: u64::from(class_uid) * 100 + u64::from(activity.0),
        type_name: format!("{class_name}: {}", activity.1),
        time: millis(time),
        time_dt: Timestamp(time),
        severity_id: severity.0,
        severity: severity.1,
        status_id,
        status,
        status_code: error.map(|e| e.sqlstate.as_str()),
        status_detail: error.map(|e| e.message.as_str()),
        duration: None,
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: "pgwarden",
                vendor_name: "pgwarden",
                version: env!("CARGO_PKG_VERSION"),
            },
            log_name: "pgwarden.audit",
        },
        actor: Actor {
            user: user(c),
            session: Session {
                uid: c.session_id.to_string(),
            },
            app_name: &c.application_name,
        },
        user: None,
        session: None,
        is_remote: None,
        service: None,
        src_endpoint: Endpoint {
            ip: client_ip(c),
            port: c.client_addr.port(),
        },
        type_id: None,
        type_: None,
        database: None,
        table: None,
        query_info: None,
        unmapped: Unmapped {
            effective_user: c.effective_user.as_deref(),
            returned_rows: None,
            database: None,
            pgwarden: &native["pgwarden"],
        },
    }
}

/// Datastore Activity activity: (id, name).
fn datastore_activity(r: &StatementRecord) -> (u32, &str) {
    let a = &*r.analysis;
    match a.kind {
        StatementKind::Select => (4, "Query"),
        StatementKind::Copy if a.writes() => (5, "Write"),
        StatementKind::Copy => (1, "Read"),
        StatementKind::Insert => (5, "Write"),
        StatementKind::Update | StatementKind::Merge => (2, "Update"),
        StatementKind::Delete | StatementKind::Truncate => (7, "Delete"),
        StatementKind::Ddl if a.command.starts_with("CREATE") => (6, "Create"),
        StatementKind::Ddl if a.command.starts_with("DROP") => (7, "Delete"),
        StatementKind::Ddl if a.command.starts_with("ALTER") => (2, "Update"),
        // SET, BEGIN, GRANT, EXPLAIN...: the command names the activity.
        _ => (99, a.command.as_str()),
    }
}

fn statement<'a>(r: &'a StatementRecord, native: &'a Value) -> Event<'a> {
    let c = &*r.session;
    let (error, severity) = match &r.outcome {
        Outcome::Ok => (None, INFORMATIONAL),
        Outcome::Error(e) => (Some(e), LOW),
        // A policy refusal is someone trying what they may not: worth a look.
        Outcome::Refused(e) => (Some(e), MEDIUM),
    };
    let mut e = base(
        (6005, "Datastore Activity", 6, "Application Activity"),
        datastore_activity(r),
        r.timestamp,
        severity,
        error,
        c,
        native,
    );
    e.duration = Some(u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX));
    e.type_id = Some(1);
    e.type_ = Some("Database");
    e.database = (!c.database.is_empty()).then(|| Database {
        name: &c.database,
        type_id: 1,
        type_: "Relational",
    });
    e.table = native["db"]["collection"]["name"]
        .as_str()
        .map(|name| Named { name });
    e.query_info = Some(QueryInfo {
        query_string: &r.analysis.normalized,
        uid: &r.analysis.fingerprint,
    });
    e.unmapped.returned_rows = r.rows_returned;
    e
}

fn connection<'a>(r: &'a ConnectionRecord, native: &'a Value) -> Event<'a> {
    let c = &*r.session;
    const AUTH: (u32, &str, u32, &str) =
        (3002, "Authentication", 3, "Identity & Access Management");
    let mut e = match &r.event {
        ConnectionEvent::Connect => base(
            (4001, "Network Activity", 4, "Network Activity"),
            (1, "Open"),
            r.timestamp,
            INFORMATIONAL,
            None,
            c,
            native,
        ),
        ConnectionEvent::LoginSucceeded => base(
            AUTH,
            (1, "Logon"),
            r.timestamp,
            INFORMATIONAL,
            None,
            c,
            native,
        ),
        ConnectionEvent::LoginFailed(err) => base(
            AUTH,
            (1, "Logon"),
            r.timestamp,
            MEDIUM,
            Some(err),
            c,
            native,
        ),
        ConnectionEvent::Disconnect(t) => {
            let mut e = base(
                AUTH,
                (2, "Logoff"),
                r.timestamp,
                INFORMATIONAL,
                None,
                c,
                native,
            );
            e.duration = Some(u64::try_from(t.duration.as_millis()).unwrap_or(u64::MAX));
            e
        }
    };
    if e.class_uid == 3002 {
        e.user = user(c);
        e.session = Some(e.actor.session.clone());
        e.is_remote = Some(true);
        e.service = Some(Named { name: "postgresql" });
        e.unmapped.database = (!c.database.is_empty()).then_some(&*c.database);
    }
    e
}

/// An alert as an OCSF Detection Finding (2004), activity Create (1).
fn finding(a: &crate::alert::Alert, native: &Value) -> Value {
    let (severity_id, severity) = match a.severity {
        crate::alert::Severity::Info => (1, "Informational"),
        crate::alert::Severity::Warning => (3, "Medium"),
        crate::alert::Severity::Critical => (5, "Critical"),
    };
    let time = a
        .timestamp
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "time": time,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "metadata": {"version": OCSF_VERSION, "product": {"name": "pgwarden", "vendor_name": "pgwarden", "version": env!("CARGO_PKG_VERSION")}},
        "finding_info": {"title": format!("{} ({})", a.kind, a.rule), "uid": format!("{}-{}", a.rule, time), "types": [a.kind]},
        "actor": {"user": {"name": a.user}},
        "src_endpoint": a.client_addr.map(|c| serde_json::json!({"ip": c.ip().to_string(), "port": c.port()})),
        "evidences": [a.evidence],
        "action": match a.action { crate::alert::Action::Alerted => "Observed", _ => "Denied" },
        "unmapped": {"pgwarden": native.get("pgwarden")},
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use crate::analyse::StatementKind;
    use crate::audit::record::{ConnectionEvent, ErrorInfo};
    use crate::config::AuditFormat;
    use serde_json::{json, Value};

    fn ocsf(r: &crate::audit::record::AuditRecord) -> Value {
        fixtures::json(AuditFormat::Ocsf, r)
    }

    #[test]
    fn ocsf_select_is_datastore_query() {
        let v = ocsf(&fixtures::select());
        assert_eq!(v["class_uid"], 6005);
        assert_eq!(v["category_uid"], 6);
        assert_eq!(v["activity_id"], 4);
        assert_eq!(v["activity_name"], "Query");
        assert_eq!(v["type_uid"], 600_504);
        assert_eq!(v["type_name"], "Datastore Activity: Query");
        assert_eq!(v["time"], 1_700_000_000_123u64);
        assert_eq!(v["time_dt"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["severity_id"], 1);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["status"], "Success");
        assert!(v.get("status_code").is_none());
        assert_eq!(v["duration"], 1);
        assert_eq!(v["metadata"]["version"], "1.3.0");
        assert_eq!(v["metadata"]["product"]["name"], "pgwarden");
        assert_eq!(v["actor"]["user"]["name"], "hr_analyst");
        assert_eq!(v["actor"]["session"]["uid"], "7");
        assert_eq!(v["actor"]["app_name"], "psql");
        assert_eq!(v["src_endpoint"], json!({"ip": "10.1.2.3", "port": 51234}));
        assert_eq!(v["type_id"], 1);
        assert_eq!(
            v["database"],
            json!({"name": "hr", "type_id": 1, "type": "Relational"})
        );
        assert_eq!(v["table"]["name"], "hr.employees");
        assert_eq!(
            v["query_info"],
            json!({
                "query_string": "SELECT name, salary FROM hr.employees WHERE id = $1",
                "uid": "0123456789abcdef"
            })
        );
        assert_eq!(v["unmapped"]["returned_rows"], 12);
        assert_eq!(
            v["unmapped"]["pgwarden"]["columns_read"],
            json!([
                "hr.employees.name",
                "hr.employees.salary",
                "hr.employees.id"
            ])
        );
        assert!(v.get("user").is_none(), "user is Authentication's");
    }

    #[test]
    fn ocsf_failures_and_refusals() {
        let v = ocsf(&fixtures::failed_update());
        assert_eq!(
            (v["activity_id"].as_u64(), v["type_uid"].as_u64()),
            (Some(2), Some(600_502))
        );
        assert_eq!(v["status_id"], 2);
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["status_code"], "42501");
        assert_eq!(v["status_detail"], "permission denied");
        assert_eq!(v["severity_id"], 2);
        assert_eq!(v["unmapped"]["effective_user"], "payroll_admin");
        let v = ocsf(&fixtures::refused_update());
        assert_eq!(v["severity_id"], 3);
        assert_eq!(v["unmapped"]["pgwarden"]["outcome"], "refused");
    }

    #[test]
    fn ocsf_activity_per_statement_kind() {
        let cases = [
            (StatementKind::Insert, "INSERT", &["salary"][..], 5),
            (StatementKind::Delete, "DELETE", &[], 7),
            (StatementKind::Truncate, "TRUNCATE TABLE", &[], 7),
            (StatementKind::Copy, "COPY", &[], 1),
            (StatementKind::Copy, "COPY", &["salary"], 5),
            (StatementKind::Ddl, "CREATE TABLE", &[], 6),
            (StatementKind::Ddl, "DROP TABLE", &[], 7),
            (StatementKind::Ddl, "ALTER TABLE", &[], 2),
            (StatementKind::Ddl, "GRANT", &[], 99),
            (StatementKind::Set, "SET", &[], 99),
        ];
        for (kind, command, written, id) in cases {
            let v = ocsf(&fixtures::statement(kind, command, written));
            assert_eq!(v["activity_id"], id, "{command} {written:?}");
            assert_eq!(v["type_uid"], 600_500 + id, "{command}");
        }
        let set = ocsf(&fixtures::statement(StatementKind::Set, "SET", &[]));
        assert_eq!(set["activity_name"], "SET");
    }

    #[test]
    fn ocsf_logins_are_authentication() {
        let ok = ocsf(&fixtures::connection(ConnectionEvent::LoginSucceeded));
        assert_eq!(ok["class_uid"], 3002);
        assert_eq!(ok["category_uid"], 3);
        assert_eq!(ok["activity_id"], 1);
        assert_eq!(ok["type_uid"], 300_201);
        assert_eq!(ok["user"]["name"], "hr_analyst");
        assert_eq!(ok["actor"]["user"]["name"], "hr_analyst");
        assert_eq!(ok["session"]["uid"], "7");
        assert_eq!(ok["is_remote"], true);
        assert_eq!(ok["status_id"], 1);
        assert_eq!(ok["unmapped"]["database"], "hr");
        let bad = ocsf(&fixtures::connection(ConnectionEvent::LoginFailed(
            ErrorInfo::new("28P01", "password authentication failed"),
        )));
        assert_eq!(bad["type_uid"], 300_201);
        assert_eq!(bad["status_id"], 2);
        assert_eq!(bad["status_code"], "28P01");
        assert_eq!(bad["severity_id"], 3);
        let bye = ocsf(&fixtures::disconnect());
        assert_eq!(bye["activity_id"], 2);
        assert_eq!(bye["type_uid"], 300_202);
        assert_eq!(bye["duration"], 2000);
        assert_eq!(bye["unmapped"]["pgwarden"]["session"]["statements"], 3);
    }

    #[test]
    fn ocsf_connect_is_network_open() {
        let v = ocsf(&fixtures::connection(ConnectionEvent::Connect));
        assert_eq!(v["class_uid"], 4001);
        assert_eq!(v["category_uid"], 4);
        assert_eq!(v["type_uid"], 400_101);
        assert!(v.get("user").is_none());
        assert_eq!(v["src_endpoint"]["port"], 51234);
    }
}
