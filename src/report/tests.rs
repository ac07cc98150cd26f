//! Aggregation over hand-written records in the exact on-disk format
//! (docs/audit-records.md), with exact numbers; options parsing; rendering.

use super::input::{parse_line, Entry, LineError};
use super::model::Report;
use super::options::{parse_time, Bound, OfficeHours, ReportOptions};
use super::render::{render, Format};
use super::{read_lines, Aggregator};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Fixture: one week (Mon 2025-10-06 .. Sun 2025-10-12), three users.
// ---------------------------------------------------------------------------

/// A statement line as json.rs writes it (chain fields included).
#[allow(clippy::too_many_arguments)]
fn stmt(
    seq: u64,
    ts: &str,
    user: Value,
    kind: &str,
    op: &str,
    text: &str,
    outcome: &str,
    access: Value,
    extra: Value,
) -> String {
    let failed = outcome != "ok";
    let mut v = json!({
        "seq": seq, "prev": "0".repeat(64),
        "@timestamp": ts, "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "category": ["database"], "type": ["access"],
                  "action": "statement", "outcome": if failed {"failure"} else {"success"},
                  "dataset": "pgwarden.audit", "module": "pgwarden", "duration": 1000},
        "source": {"ip": "10.0.0.5", "port": 50000}, "destination": {"bytes": 10},
        "tls": {"established": false}, "user": user,
        "db": {"system": {"name": "postgresql"}, "namespace": "hr",
               "operation": {"name": op}, "query": {"text": text}},
        "pgwarden": {"session_id": 1, "statement_kind": kind, "fingerprint": "0123456789abcdef",
                     "outcome": outcome, "access": access}
    });
    merge(&mut v, extra);
    v.to_string()
}

/// Deep-merges `extra` into `v`.
fn merge(v: &mut Value, extra: Value) {
    match (v, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in b {
                merge(a.entry(k).or_insert(Value::Null), x);
            }
        }
        (slot, x) => *slot = x,
    }
}

fn login(seq: u64, ts: &str, user: &str, ip: &str, ok: bool) -> String {
    let mut v = json!({
        "seq": seq, "prev": "0".repeat(64), "@timestamp": ts, "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "category": ["authentication"], "type": ["start"],
                  "action": "login", "outcome": if ok {"success"} else {"failure"},
                  "dataset": "pgwarden.audit", "module": "pgwarden"},
        "source": {"ip": ip, "port": 40022}, "tls": {"established": true},
        "user": {"name": user}, "db": {"system": {"name": "postgresql"}, "namespace": "hr"},
        "pgwarden": {"session_id": 8, "outcome": if ok {"ok"} else {"error"}}
    });
    if !ok {
        merge(
            &mut v,
            json!({"error": {"code": "28P01", "message": "password authentication failed"},
                   "db": {"response": {"status_code": "28P01"}}}),
        );
    }
    v.to_string()
}

fn fixture() -> Vec<String> {
    let alice = json!({"name": "alice"});
    let bob = json!({"name": "bob"});
    let carol = json!({"name": "carol", "effective": {"name": "payroll"}});
    vec![
        stmt(1, "2025-10-06T09:00:00.000001Z", alice.clone(), "select", "SELECT",
             "SELECT first_name, ssn FROM hr.employees WHERE id = $1", "ok",
             json!([{"relation": "hr.employees", "output": ["first_name", "ssn"], "filter": ["id"]}]),
             json!({"db": {"response": {"returned_rows": 1}},
                    "pgwarden": {"policy": {"action": "mask", "rule": "payroll-ssn-last-4",
                                            "columns": ["hr.employees.ssn"]}}})),
        stmt(2, "2025-10-06T10:00:00Z", alice.clone(), "select", "SELECT",
             "SELECT * FROM hr.employees", "ok",
             json!([{"relation": "hr.employees", "output": ["first_name", "id", "ssn"]}]),
             json!({"db": {"response": {"returned_rows": 500}},
                    "pgwarden": {"policy": {"action": "allow"}}})),
        stmt(3, "2025-10-06T11:00:00Z", bob.clone(), "select", "SELECT",
             "SELECT ssn FROM hr.employees", "refused",
             json!([{"relation": "hr.employees", "output": ["ssn"]}]),
             json!({"error": {"code": "42501", "message": "permission denied for column hr.employees.ssn"},
                    "pgwarden": {"policy": {"action": "deny", "rule": "analyst-no-identifiers",
                                            "columns": ["hr.employees.ssn"], "reason": "read"}}})),
        login(4, "2025-10-07T03:00:00Z", "mallory", "203.0.113.9", false),
        login(5, "2025-10-07T03:00:05Z", "mallory", "203.0.113.9", false),
        stmt(6, "2025-10-07T22:30:00Z", bob.clone(), "select", "SELECT",
             "SELECT amount FROM hr.salaries", "ok",
             json!([{"relation": "hr.salaries", "output": ["amount"]}]),
             json!({"db": {"response": {"returned_rows": 300}}})),
        json!({"seq": 7, "prev": "0".repeat(64), "@timestamp": "2025-10-07T23:00:00.000Z",
               "event": {"kind": "alert", "action": "row_budget"},
               "user": {"name": "bob"}, "rule": {"name": "hr_rows_per_hour"}}).to_string(),
        stmt(8, "2025-10-08T12:00:00Z", carol.clone(), "update", "UPDATE",
             "UPDATE hr.salaries SET amount = $1 WHERE employee_id = $2", "ok",
             json!([{"relation": "hr.salaries", "filter": ["employee_id"], "written": ["amount"]}]),
             json!({"pgwarden": {"rows_affected": 1, "changes": [
                 {"relation": "hr.salaries", "old": {"amount": "5000.00"}, "new": {"amount": "5500.00"}}]}})),
        stmt(9, "2025-10-08T13:00:00Z", bob.clone(), "select", "SELECT", "SELECT $1/$2", "error",
             json!([]), json!({"error": {"code": "22012", "message": "division by zero"}})),
        login(10, "2025-10-08T14:00:00Z", "mallory", "198.51.100.7", false),
        login(11, "2025-10-08T14:01:00Z", "alice", "10.0.0.5", true),
        stmt(12, "2025-10-11T12:00:00Z", carol, "delete", "DELETE",
             "DELETE FROM hr.salaries WHERE employee_id = $1", "ok",
             json!([{"relation": "hr.salaries", "filter": ["employee_id"], "deletes_rows": true}]),
             json!({"pgwarden": {"rows_affected": 2}})),
        // A checkpoint, a record after the period, a damaged line, a connect.
        format!(r#"{{"seq":13,"prev":"{}","@timestamp":"2025-10-12T00:00:00Z","ecs":{{"version":"8.11.0"}},"event":{{"kind":"event","category":["database"],"type":["info"],"action":"checkpoint","reason":"interval","outcome":"success","dataset":"pgwarden.audit","module":"pgwarden"}},"pgwarden":{{"checkpoint":{{"records":12,"key_id":"3f2a9c0d1e7b6a55","signature":"{}"}}}}}}"#, "0".repeat(64), "a".repeat(128)),
        stmt(14, "2025-10-13T00:00:00Z", alice, "select", "SELECT", "SELECT 1", "ok", json!([]),
             json!({"db": {"response": {"returned_rows": 1}}})),
        r#"{"seq":15,"prev":"#.to_owned(),
        r#"{"seq":16,"prev":"x","@timestamp":"2025-10-09T00:00:00Z","ecs":{"version":"8.11.0"},"event":{"kind":"event","category":["network"],"type":["connection","start"],"action":"connect","outcome":"success","dataset":"pgwarden.audit","module":"pgwarden"},"source":{"ip":"10.0.0.5","port":1},"tls":{"established":false},"db":{"system":{"name":"postgresql"}},"pgwarden":{"session_id":9,"outcome":"ok"}}"#.to_owned(),
    ]
}

fn t(s: &str) -> DateTime<Utc> {
    parse_time(s, chrono_tz::UTC, Bound::From).expect("time")
}

fn week() -> ReportOptions {
    let mut o = ReportOptions::new(t("2025-10-06"), t("2025-10-13"));
    o.top = 2;
    o
}

fn report_of(lines: &[String], o: ReportOptions) -> Report {
    let mut agg = Aggregator::new(o);
    read_lines(lines.join("\n").as_bytes(), "fixture", &mut agg).expect("read");
    agg.finish()
}

fn demo_policy() -> Arc<crate::policy::Policy> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    Arc::new(crate::policy::load::load(&path, 1).expect("demo policy"))
}

// ---------------------------------------------------------------------------
// Aggregation
// ---------------------------------------------------------------------------

#[test]
fn totals_and_input() {
    let r = report_of(&fixture(), week());
    let t = &r.totals;
    assert_eq!(
        (
            t.statements,
            t.reads,
            t.writes,
            t.refusals,
            t.errors,
            t.masks,
            t.alerts
        ),
        (7, 3, 2, 1, 1, 1, 1)
    );
    assert_eq!((t.rows_returned, t.rows_affected), (801, 3));
    assert_eq!((t.logins, t.login_failures, t.users), (1, 3, 3));
    let i = &r.input;
    assert_eq!((i.lines, i.records, i.outside_period), (16, 13, 1));
    assert_eq!((i.checkpoints, i.malformed), (1, 1));
    assert!(
        i.malformed_examples[0].starts_with("fixture:15: "),
        "{:?}",
        i.malformed_examples
    );
}

#[test]
fn per_user() {
    let r = report_of(&fixture(), week());
    let names: Vec<&str> = r.users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(names, ["bob", "alice", "carol"]);
    let bob = &r.users[0];
    assert_eq!(
        (
            bob.statements,
            bob.reads,
            bob.writes,
            bob.refusals,
            bob.errors,
            bob.masks,
            bob.alerts
        ),
        (3, 1, 0, 1, 1, 0, 1)
    );
    assert_eq!(
        (bob.rows_returned, bob.off_hours, bob.distinct_tables),
        (300, 1, 2)
    );
    assert_eq!(bob.tables, ["hr.employees", "hr.salaries"]);
    let alice = &r.users[1];
    assert_eq!(
        (
            alice.statements,
            alice.reads,
            alice.masks,
            alice.rows_returned
        ),
        (2, 2, 1, 501)
    );
    assert_eq!((alice.off_hours, alice.distinct_tables), (0, 1));
    let carol = &r.users[2];
    assert_eq!(
        (
            carol.statements,
            carol.writes,
            carol.rows_affected,
            carol.off_hours
        ),
        (2, 2, 3, 1)
    );
    assert_eq!(carol.effective_roles, ["payroll"]);
}

#[test]
fn per_table_and_column() {
    let r = report_of(&fixture(), week());
    let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["hr.employees", "hr.salaries"]);
    let e = &r.tables[0];
    assert_eq!(
        (
            e.reads,
            e.output_reads,
            e.filter_reads,
            e.writes,
            e.refusals,
            e.masks
        ),
        (2, 2, 1, 0, 1, 1)
    );
    assert_eq!(
        e.users,
        [("alice".to_owned(), 2), ("bob".to_owned(), 1)].into()
    );
    let cols: Vec<(&str, u64, u64, u64, u64)> = e
        .columns
        .iter()
        .map(|c| {
            (
                c.column.as_str(),
                c.output_reads,
                c.filter_reads,
                c.refusals,
                c.masks,
            )
        })
        .collect();
    assert_eq!(
        cols,
        [
            ("first_name", 2, 0, 0, 0),
            ("id", 1, 1, 0, 0),
            ("ssn", 2, 0, 1, 1)
        ]
    );
    let ssn = &e.columns[2];
    assert_eq!(
        ssn.users,
        [("alice".to_owned(), 2), ("bob".to_owned(), 1)].into()
    );
    let id = &e.columns[1];
    assert_eq!(
        id.users,
        [("alice".to_owned(), 2)].into(),
        "both filter and output count once"
    );

    let s = &r.tables[1];
    assert_eq!(
        (
            s.reads,
            s.output_reads,
            s.filter_reads,
            s.writes,
            s.refusals
        ),
        (3, 1, 2, 2, 0)
    );
    let cols: Vec<(&str, u64, u64, u64)> = s
        .columns
        .iter()
        .map(|c| (c.column.as_str(), c.output_reads, c.filter_reads, c.writes))
        .collect();
    assert_eq!(cols, [("amount", 1, 0, 1), ("employee_id", 0, 2, 0)]);
}

#[test]
fn classifications_by_table_without_policy() {
    let r = report_of(&fixture(), week());
    assert_eq!(r.classifications.source, "table");
    let g: Vec<(&str, u64, u64, u64, u64)> = r
        .classifications
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.reads, g.writes, g.refusals, g.masks))
        .collect();
    assert_eq!(
        g,
        [("hr.employees", 2, 0, 1, 1), ("hr.salaries", 3, 2, 0, 0)]
    );
}

#[test]
fn classifications_from_the_policy() {
    let mut o = week();
    o.policy = Some(demo_policy());
    let r = report_of(&fixture(), o);
    assert_eq!(r.classifications.source, "policy");
    let g: Vec<(&str, u64, u64, u64, u64)> = r
        .classifications
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.reads, g.writes, g.refusals, g.masks))
        .collect();
    assert_eq!(
        g,
        [
            ("confidential", 3, 2, 0, 0),
            ("directory", 2, 0, 0, 0),
            ("restricted", 2, 0, 1, 1),
        ]
    );
    let restricted = &r.classifications.groups[2];
    assert_eq!(restricted.columns, ["hr.employees.ssn"]);
    assert_eq!(
        restricted.users,
        [("alice".to_owned(), 2), ("bob".to_owned(), 1)].into()
    );
    let confidential = &r.classifications.groups[0];
    assert_eq!(
        confidential.columns,
        [
            "hr.salaries.*",
            "hr.salaries.amount",
            "hr.salaries.employee_id"
        ]
    );
}

#[test]
fn rules_alerts_extractions() {
    let r = report_of(&fixture(), week());
    let rules: Vec<(&str, &str, u64)> = r
        .rules
        .iter()
        .map(|x| (x.rule.as_str(), x.action.as_str(), x.statements))
        .collect();
    assert_eq!(
        rules,
        [
            ("analyst-no-identifiers", "deny", 1),
            ("payroll-ssn-last-4", "mask", 1)
        ]
    );
    assert_eq!(r.alerts.len(), 1);
    assert_eq!(
        (r.alerts[0].rule.as_str(), r.alerts[0].alerts),
        ("hr_rows_per_hour", 1)
    );
    let top: Vec<(&str, u64)> = r
        .largest_extractions
        .iter()
        .map(|e| (e.user.as_str(), e.rows))
        .collect();
    assert_eq!(top, [("alice", 500), ("bob", 300)]);
    assert_eq!(r.largest_extractions[0].query, "SELECT * FROM hr.employees");
    assert_eq!(r.largest_extractions[0].tables, ["hr.employees"]);
}

#[test]
fn off_hours_changes_logins() {
    let r = report_of(&fixture(), week());
    assert_eq!(r.off_hours.statements, 2);
    let off: Vec<(&str, u64, usize)> = r
        .off_hours
        .users
        .iter()
        .map(|u| (u.user.as_str(), u.statements, u.examples.len()))
        .collect();
    assert_eq!(off, [("bob", 1, 1), ("carol", 1, 1)]);
    assert_eq!(
        r.off_hours.users[0].examples[0].query,
        "SELECT amount FROM hr.salaries"
    );

    let ch = &r.changes;
    assert_eq!(
        (ch.table.as_str(), ch.with_values, ch.omitted),
        ("hr.salaries", true, 0)
    );
    let ops: Vec<(&str, u64, usize)> = ch
        .statements
        .iter()
        .map(|c| (c.operation.as_str(), c.rows_affected, c.values.len()))
        .collect();
    assert_eq!(ops, [("UPDATE", 1, 1), ("DELETE", 2, 0)]);
    assert_eq!(
        ch.statements[0].values[0].old,
        Some(json!({"amount": "5000.00"}))
    );
    assert_eq!(
        ch.statements[0].values[0].new,
        Some(json!({"amount": "5500.00"}))
    );
    assert_eq!(ch.statements[0].effective_role.as_deref(), Some("payroll"));

    let f: Vec<(&str, &str, u64)> = r
        .login_failures
        .iter()
        .map(|f| (f.user.as_str(), f.source_ip.as_str(), f.failures))
        .collect();
    assert_eq!(
        f,
        [
            ("mallory", "203.0.113.9", 2),
            ("mallory", "198.51.100.7", 1)
        ]
    );
    assert_eq!(r.login_failures[0].sqlstates, ["28P01"]);
    assert_eq!(r.login_failures[0].first, t("2025-10-07T03:00:00Z"));
    assert_eq!(r.login_failures[0].last, t("2025-10-07T03:00:05Z"));
}

#[test]
fn trends_per_day_include_quiet_days() {
    let r = report_of(&fixture(), week());
    let days: Vec<(String, u64, u64, u64, u64, u64, u64)> = r
        .days
        .iter()
        .map(|d| {
            (
                d.day.to_string(),
                d.statements,
                d.rows_returned,
                d.rows_affected,
                d.refusals,
                d.alerts,
                d.login_failures,
            )
        })
        .collect();
    let s = |d: &str| d.to_owned();
    assert_eq!(
        days,
        [
            (s("2025-10-06"), 3, 501, 0, 1, 0, 0),
            (s("2025-10-07"), 1, 300, 0, 0, 1, 2),
            (s("2025-10-08"), 2, 0, 1, 0, 0, 1),
            (s("2025-10-09"), 0, 0, 0, 0, 0, 0),
            (s("2025-10-10"), 0, 0, 0, 0, 0, 0),
            (s("2025-10-11"), 1, 0, 2, 0, 0, 0),
            (s("2025-10-12"), 0, 0, 0, 0, 0, 0),
        ]
    );
}

#[test]
fn time_zone_moves_days_and_office_hours() {
    let mut o = week();
    o.tz = chrono_tz::America::New_York;
    let r = report_of(&fixture(), o);
    // New York is UTC-4 then: alice's 09:00Z and 10:00Z reads are 05:00 and
    // 06:00, bob's 11:00Z is 07:00 and 22:30Z is 18:30 (his 13:00Z is 09:00,
    // inside); carol's 12:00Z update is 08:00, inside, her Saturday not.
    let off: Vec<(&str, u64)> = r
        .off_hours
        .users
        .iter()
        .map(|u| (u.user.as_str(), u.statements))
        .collect();
    assert_eq!(off, [("alice", 2), ("bob", 2), ("carol", 1)]);
    // Bob's 2025-10-07T22:30Z read falls on the 7th locally, the alert
    // (23:00Z = 19:00) too; the period starts at 2025-10-06T00:00Z, 20:00
    // local on the 5th.
    assert_eq!(r.days[0].day.to_string(), "2025-10-05");
    assert_eq!(r.days.len(), 8);
}

#[test]
fn order_of_records_and_files_does_not_matter() {
    let lines = fixture();
    let a = report_of(&lines, week());
    let mut reversed = lines.clone();
    reversed.reverse();
    let mut agg = Aggregator::new(week());
    let (x, y) = reversed.split_at(7);
    read_lines(x.join("\n").as_bytes(), "a", &mut agg).expect("read");
    read_lines(y.join("\n").as_bytes(), "b", &mut agg).expect("read");
    let mut b = agg.finish();
    b.input.malformed_examples = a.input.malformed_examples.clone();
    assert_eq!(a, b);
}

#[test]
fn period_bounds_are_half_open() {
    let mut o = week();
    o.from = t("2025-10-06T10:00:00Z");
    o.to = t("2025-10-06T11:00:00Z");
    let r = report_of(&fixture(), o);
    // Only the 10:00:00 statement: 11:00:00 is the excluded end.
    assert_eq!(r.totals.statements, 1);
    assert_eq!(r.totals.rows_returned, 500);
}

// ---------------------------------------------------------------------------
// Input shapes
// ---------------------------------------------------------------------------

#[test]
fn change_capture_shapes() {
    let base = |extra: Value| {
        stmt(
            1,
            "2025-10-06T09:00:00Z",
            json!({"name": "u"}),
            "update",
            "UPDATE",
            "UPDATE",
            "ok",
            json!([{"relation": "hr.salaries", "written": ["amount"]}]),
            extra,
        )
    };
    let count = |line: String| match parse_line(line.as_bytes()) {
        Ok(Entry::Statement(s)) => s.changes.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        count(base(json!({"old": {"amount": 1}, "new": {"amount": 2}}))),
        1
    );
    assert_eq!(
        count(base(
            json!({"pgwarden": {"old": [{"a": 1}], "new": [{"a": 2}]}})
        )),
        1
    );
    assert_eq!(
        count(base(
            json!({"pgwarden": {"changes": [{"old": {"a": 1}}, {"new": {"a": 2}}, {"x": 1}]}})
        )),
        2
    );
    assert_eq!(count(base(json!({}))), 0);
}

#[test]
fn alert_shapes_and_bad_lines() {
    let a = parse_line(
        br#"{"@timestamp":"2025-10-06T09:00:00Z","event":{"kind":"alert"},"user":"eve","rule":"r1"}"#,
    );
    let Ok(Entry::Alert(a)) = a else {
        panic!("{a:?}")
    };
    assert_eq!((a.user.as_str(), a.rule.as_str()), ("eve", "r1"));
    let a = parse_line(
        br#"{"@timestamp":"2025-10-06T09:00:00Z","event":{"kind":"alert"},"pgwarden":{"alert":{"user":"eve","kind":"row_budget"}}}"#,
    );
    let Ok(Entry::Alert(a)) = a else {
        panic!("{a:?}")
    };
    assert_eq!((a.user.as_str(), a.rule.as_str()), ("eve", "row_budget"));
    assert_eq!(
        parse_line(br#"{"event":{"action":"statement"}}"#),
        Err(LineError::Timestamp)
    );
    assert!(matches!(parse_line(b"[1,2]"), Err(LineError::Json(_))));
    assert!(matches!(parse_line(b"\xff\xfe"), Err(LineError::Json(_))));
    // A field of the wrong type makes the line malformed, not a zero.
    assert!(matches!(
        parse_line(br#"{"@timestamp":"2025-10-06T09:00:00Z","event":{"action":"statement"},"db":{"response":{"returned_rows":"many"}}}"#),
        Err(LineError::Json(_))
    ));
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

#[test]
fn time_values() {
    let utc = chrono_tz::UTC;
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        parse_time("2025-10-09T08:00:00+02:00", utc, Bound::From).ok(),
        Some(t("2025-10-09T06:00:00Z"))
    );
    assert_eq!(
        parse_time("2025-10-09", berlin, Bound::From).ok(),
        Some(t("2025-10-08T22:00:00Z"))
    );
    assert_eq!(
        parse_time("2025-10-09", berlin, Bound::To).ok(),
        Some(t("2025-10-09T22:00:00Z"))
    );
    assert_eq!(
        parse_time("2025-10-09T08:00", berlin, Bound::To).ok(),
        Some(t("2025-10-09T06:00:00Z"))
    );
    assert_eq!(
        parse_time("2025-10-09 08:00:30", utc, Bound::From).ok(),
        Some(t("2025-10-09T08:00:30Z"))
    );
    // 02:30 on 2025-03-30 does not exist in Berlin.
    assert!(parse_time("2025-03-30T02:30", berlin, Bound::From).is_err());
    assert!(parse_time("yesterday", utc, Bound::From).is_err());
    assert!(super::parse_tz("Mars/Olympus").is_err());
}

#[test]
fn office_hours() {
    let h = OfficeHours::parse("08:00-18:00").expect("hours");
    assert_eq!((h.start, h.end), (480, 1080));
    assert!(h.contains(480) && h.contains(1079) && !h.contains(1080) && !h.contains(479));
    let night = OfficeHours::parse("22:00-06:00").expect("night shift");
    assert!(night.contains(23 * 60) && night.contains(0) && !night.contains(12 * 60));
    assert_eq!(night.to_string(), "22:00-06:00");
    for bad in ["8-18", "08:00", "25:00-26:00", "08:00-08:00"] {
        assert!(OfficeHours::parse(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// The fixture with a hostile user name and query text.
fn hostile() -> Vec<String> {
    let mut lines = fixture();
    lines.push(stmt(
        20,
        "2025-10-09T20:00:00Z",
        json!({"name": "<script>alert(1)</script>|x"}),
        "select",
        "SELECT",
        "SELECT '</code><img src=x>' | `tick` FROM t",
        "ok",
        json!([{"relation": "public.t", "output": ["a"]}]),
        json!({"db": {"response": {"returned_rows": 7}}}),
    ));
    lines
}

#[test]
fn json_is_the_report() {
    let r = report_of(&fixture(), week());
    let text = render(&r, Format::Json).expect("json");
    let v: Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(v["totals"]["statements"], 7);
    assert_eq!(v["users"][0]["user"], "bob");
    assert_eq!(v["period"]["from"], "2025-10-06T00:00:00Z");
    assert_eq!(v["days"][0]["day"], "2025-10-06");
    assert_eq!(
        v["changes"]["statements"][0]["values"][0]["new"]["amount"],
        "5500.00"
    );
}

#[test]
fn markdown_escapes_and_lists_sections() {
    let r = report_of(&hostile(), week());
    let md = render(&r, Format::Md).expect("md");
    for heading in [
        "## Summary",
        "## Users",
        "## Tables and columns",
        "## Classifications",
        "## Refusals and masks by rule",
        "## Largest extractions",
        "## Off-hours access",
        "## Changes to hr.salaries",
        "## Failed logins",
        "## Trends per day",
    ] {
        assert!(md.contains(heading), "{heading} missing");
    }
    assert!(!md.contains("<script>"), "raw HTML in markdown");
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\|x"));
    // The query is one code span whose fence outlasts the backticks inside.
    assert!(
        md.contains("`` SELECT '</code><img src=x>' \\| `tick` FROM t ``"),
        "{md}"
    );
    // Every table row has as many cells as its header.
    assert!(md.contains("| 2025-10-06 | 3 | 501 | 0 | 1 | 0 | 0 |"));
}

#[test]
fn html_is_self_contained_and_escaped() {
    let r = report_of(&hostile(), week());
    let html = render(&r, Format::Html).expect("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>alert"), "user name not escaped");
    assert!(!html.contains("<img"), "query text not escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;|x"));
    for banned in [
        "http://",
        "https://",
        "<script src",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(banned), "{banned} in the HTML");
    }
    // The charts: 4 SVGs; bars for 5 active days (statements) + 1 refusal
    // + 1 alert + 4 users + 1 refusal rule.
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
    assert_eq!(
        html.matches("<rect class=\"bar\"").count(),
        5 + 1 + 1 + 4 + 1
    );
    assert_eq!(html.matches("<path class=\"line\"").count(), 1);
}

#[test]
fn empty_report_renders() {
    let r = report_of(&[], week());
    assert_eq!(r.totals.statements, 0);
    assert_eq!(r.days.len(), 7);
    let html = render(&r, Format::Html).expect("html");
    assert!(html.contains("no data"));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 0);
    let md = render(&r, Format::Md).expect("md");
    assert!(md.contains("(none)"));
}
