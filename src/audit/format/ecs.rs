//! `ecs`: the native record, whose fields already carry ECS 8.11 names
//! (`@timestamp`, `event.*`, `source.*`, `user.*`, `tls.*`, `error.*`) plus
//! OpenTelemetry `db.*` and `pgwarden.*`, with the ECS fields the native
//! form leaves out to stay small: `observer.*` (pgwarden is the observing
//! proxy), `service.type`, `related.user`/`related.ip` (ECS's pivot fields)
//! and a one-line `message`.

use super::client_ip;
use crate::audit::record::{AuditRecord, ConnectionEvent, Outcome};
use serde::Serialize;
use std::net::IpAddr;

/// Appends the ECS document of `record`.
pub(super) fn write(record: &AuditRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let c = match record {
        AuditRecord::Statement(r) => &*r.session,
        AuditRecord::Connection(r) => &*r.session,
        // The native alert record is already ECS (`event.kind = "alert"`).
        AuditRecord::Alert(_) => return super::native::write(record, out),
    };
    serde_json::to_writer(out, &EcsDoc::new(record, c))
}

#[derive(Serialize)]
struct EcsDoc<'a> {
    // The native fields first, then the additions.
    #[serde(flatten)]
    base: &'a AuditRecord,
    observer: Observer,
    service: Service,
    related: Related<'a>,
    message: String,
}

#[derive(Serialize)]
struct Observer {
    vendor: &'static str,
    product: &'static str,
    #[serde(rename = "type")]
    type_: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Service {
    #[serde(rename = "type")]
    type_: &'static str,
}

#[derive(Serialize)]
struct Related<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user: Vec<&'a str>,
    ip: [IpAddr; 1],
}

impl<'a> EcsDoc<'a> {
    fn new(record: &'a AuditRecord, c: &'a crate::audit::record::SessionContext) -> Self {
        let mut user: Vec<&str> = Vec::with_capacity(2);
        if !c.user.is_empty() {
            user.push(&c.user);
        }
        if let Some(e) = c.effective_user.as_deref() {
            if !user.contains(&e) {
                user.push(e);
            }
        }
        Self {
            base: record,
            observer: Observer {
                vendor: "pgwarden",
                product: "pgwarden",
                type_: "proxy",
                version: env!("CARGO_PKG_VERSION"),
            },
            service: Service {
                type_: "postgresql",
            },
            related: Related {
                user,
                ip: [client_ip(c)],
            },
            message: message(record),
        }
    }
}

/// E.g. `hr_analyst: SELECT hr.employees (ok)` or `hr_analyst: login failed (28P01)`.
fn message(record: &AuditRecord) -> String {
    match record {
        AuditRecord::Statement(r) => {
            let a = &*r.analysis;
            let on = a
                .accesses
                .first()
                .map(|x| format!(" {}", x.relation))
                .unwrap_or_default();
            let outcome = match &r.outcome {
                Outcome::Ok => "ok".to_owned(),
                Outcome::Error(e) => format!("error {}", e.sqlstate),
                Outcome::Refused(e) => format!("refused {}", e.sqlstate),
            };
            format!("{}: {}{on} ({outcome})", who(&r.session.user), a.command)
        }
        AuditRecord::Connection(r) => {
            let what = match &r.event {
                ConnectionEvent::Connect => "connected".to_owned(),
                ConnectionEvent::LoginSucceeded => "logged in".to_owned(),
                ConnectionEvent::LoginFailed(e) => format!("login failed ({})", e.sqlstate),
                ConnectionEvent::Disconnect(t) => {
                    format!("disconnected after {} statements", t.statements)
                }
            };
            format!("{}: {what}", who(&r.session.user))
        }
        AuditRecord::Alert(a) => format!("{}: alert {} ({})", who(&a.user), a.kind, a.rule),
    }
}

fn who(user: &str) -> &str {
    if user.is_empty() {
        "(unknown user)"
    } else {
        user
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use crate::audit::record::{ConnectionEvent, ErrorInfo};
    use crate::config::AuditFormat;
    use serde_json::json;

    #[test]
    fn ecs_keeps_the_native_fields_and_adds_observer_related_message() {
        let r = fixtures::failed_update();
        let v = fixtures::json(AuditFormat::Ecs, &r);
        let native = serde_json::to_value(&r).unwrap();
        for (k, val) in native.as_object().unwrap() {
            assert_eq!(&v[k], val, "native field {k} changed");
        }
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["observer"]["type"], "proxy");
        assert_eq!(v["observer"]["product"], "pgwarden");
        assert_eq!(v["service"]["type"], "postgresql");
        assert_eq!(v["related"]["user"], json!(["hr_analyst", "payroll_admin"]));
        assert_eq!(v["related"]["ip"], json!(["10.1.2.3"]));
        assert_eq!(
            v["message"],
            "hr_analyst: UPDATE hr.employees (error 42501)"
        );
    }

    #[test]
    fn ecs_connection_messages() {
        let connect = fixtures::json(
            AuditFormat::Ecs,
            &fixtures::connection(ConnectionEvent::LoginFailed(ErrorInfo::new(
                "28P01",
                "bad password",
            ))),
        );
        assert_eq!(connect["message"], "hr_analyst: login failed (28P01)");
        assert_eq!(connect["event"]["action"], "login");
        let bye = fixtures::json(AuditFormat::Ecs, &fixtures::disconnect());
        assert_eq!(
            bye["message"],
            "hr_analyst: disconnected after 3 statements"
        );
        assert_eq!(bye["related"]["user"], json!(["hr_analyst"]));
    }
}
