//! Unit tests of the audit records, their JSON and the writer.

use super::*;
use crate::analyse::{Analysis, OpaqueCall, RelationAccess, RelationName, StatementKind};
use crate::config::{AuditConfig, AuditOnFull};
use crate::metrics::Metrics;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

fn access(table: &str, output: &[&str], filter: &[&str], written: &[&str]) -> RelationAccess {
    let set = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
    RelationAccess {
        relation: RelationName {
            schema: "hr".into(),
            name: table.into(),
        },
        oid: Some(16_384),
        output: set(output),
        filter: set(filter),
        written: set(written),
        deletes_rows: false,
    }
}

fn select_analysis() -> Arc<Analysis> {
    Arc::new(Analysis {
        kind: StatementKind::Select,
        command: "SELECT".into(),
        accesses: vec![
            access("employees", &["name", "salary"], &["dept_id", "name"], &[]),
            access("departments", &["title"], &["id"], &[]),
        ],
        opaque_calls: vec![OpaqueCall {
            function: "hr.score".into(),
            columns: vec!["hr.employees.salary".into()],
        }],
        unanalysed: None,
        normalized: Arc::from("SELECT e.name, e.salary FROM hr.employees e WHERE e.name = $1"),
        fingerprint: Arc::from("0123456789abcdef"),
        effects: vec![],
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Default::default(),
    })
}

fn session(id: u64) -> Arc<SessionContext> {
    Arc::new(SessionContext {
        backend_pid: Some(4242),
        user: Arc::from("hr_analyst"),
        database: Arc::from("hr"),
        application_name: Arc::from("psql"),
        ..SessionContext::connecting(id, "10.1.2.3:51234".parse().unwrap(), true)
    })
}

fn statement(id: u64) -> StatementRecord {
    let mut r = StatementRecord::new(session(id), select_analysis());
    r.timestamp = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    r.duration = Duration::from_micros(1500);
    r.bytes_returned = 2048;
    r.set_rows_from_tag("SELECT 12");
    r
}

fn to_json(r: impl Into<AuditRecord>) -> Value {
    serde_json::to_value(r.into()).unwrap()
}

fn config(path: &Path) -> AuditConfig {
    AuditConfig {
        path: Some(path.to_owned()),
        ..AuditConfig::default()
    }
}

/// Every line of `audit.log` and its rotated files, oldest first.
fn read_lines(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let age = |p: &std::path::PathBuf| -> u32 {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse().ok())
            .unwrap_or(0)
    };
    files.sort_by_key(|p| std::cmp::Reverse(age(p)));
    let mut lines = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{f:?} ends mid-line"
        );
        for line in text.lines() {
            lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{f:?}: {e}: {line}")));
        }
    }
    lines
}

fn ids(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| l["pgwarden"]["session_id"].as_u64().unwrap())
        .collect()
}

#[test]
fn audit_statement_json_shape() {
    let mut r = statement(7);
    r.full_text = Some(Arc::from("SELECT ... WHERE e.name = 'Ann'"));
    r.policy = Some(PolicyRecord {
        reason: None,
        privileged_role: None,
        action: Some("mask".into()),
        rule: None,
        columns: vec!["hr.employees.salary".into()],
    });
    let v = to_json(r);
    assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["ecs"]["version"], "8.11.0");
    assert_eq!(v["event"]["kind"], "event");
    assert_eq!(v["event"]["category"], serde_json::json!(["database"]));
    assert_eq!(v["event"]["type"], serde_json::json!(["access"]));
    assert_eq!(v["event"]["action"], "statement");
    assert_eq!(v["event"]["outcome"], "success");
    assert_eq!(v["event"]["duration"], 1_500_000);
    assert_eq!(v["source"]["ip"], "10.1.2.3");
    assert_eq!(v["source"]["port"], 51234);
    assert_eq!(v["destination"]["bytes"], 2048);
    assert_eq!(v["tls"]["established"], true);
    assert_eq!(v["user"]["name"], "hr_analyst");
    assert!(v["user"].get("effective").is_none());
    assert_eq!(v["db"]["system"]["name"], "postgresql");
    assert_eq!(v["db"]["namespace"], "hr");
    assert_eq!(v["db"]["operation"]["name"], "SELECT");
    assert_eq!(v["db"]["collection"]["name"], "hr.employees");
    assert!(v["db"]["query"]["text"].as_str().unwrap().ends_with("= $1"));
    assert_eq!(v["db"]["response"]["returned_rows"], 12);
    assert!(v.get("error").is_none());
    let p = &v["pgwarden"];
    assert_eq!(p["session_id"], 7);
    assert_eq!(p["backend_pid"], 4242);
    assert_eq!(p["application_name"], "psql");
    assert_eq!(p["statement_kind"], "select");
    assert_eq!(p["fingerprint"], "0123456789abcdef");
    assert_eq!(p["outcome"], "ok");
    assert!(p.get("relations").is_none());
    assert_eq!(
        p["columns_read"],
        serde_json::json!([
            "hr.employees.name",
            "hr.employees.salary",
            "hr.employees.dept_id",
            "hr.departments.title",
            "hr.departments.id"
        ])
    );
    assert!(p.get("columns_written").is_none());
    assert_eq!(
        p["access"][0],
        serde_json::json!({"relation": "hr.employees", "output": ["name", "salary"], "filter": ["dept_id", "name"]})
    );
    assert_eq!(p["opaque_calls"][0]["function"], "hr.score");
    assert_eq!(p["full_text"], "SELECT ... WHERE e.name = 'Ann'");
    assert_eq!(
        p["policy"],
        serde_json::json!({"action": "mask", "columns": ["hr.employees.salary"]})
    );
}

#[test]
fn audit_statement_error_and_write() {
    let mut a = (*select_analysis()).clone();
    a.kind = StatementKind::Update;
    a.command = "UPDATE".into();
    a.accesses = vec![access("employees", &[], &["id"], &["salary"])];
    a.accesses[0].deletes_rows = true;
    a.unanalysed = Some("dynamic SQL".into());
    let mut ctx = (*session(1)).clone();
    ctx.effective_user = Some(Arc::from("payroll_admin"));
    ctx.client_addr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
    let mut r = StatementRecord::new(Arc::new(ctx), Arc::new(a));
    r.outcome = Outcome::Error(ErrorInfo::new("42501", "permission denied"));
    let v = to_json(r);
    assert_eq!(v["event"]["type"], serde_json::json!(["change", "error"]));
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(v["source"]["ip"], "192.0.2.1");
    assert_eq!(v["user"]["effective"]["name"], "payroll_admin");
    assert_eq!(v["error"]["code"], "42501");
    assert_eq!(v["error"]["message"], "permission denied");
    assert_eq!(v["db"]["response"]["status_code"], "42501");
    assert_eq!(v["pgwarden"]["outcome"], "error");
    assert_eq!(v["pgwarden"]["unanalysed"], "dynamic SQL");
    assert_eq!(
        v["pgwarden"]["columns_written"],
        serde_json::json!(["hr.employees.salary"])
    );
    assert_eq!(v["pgwarden"]["access"][0]["deletes_rows"], true);

    let mut r = statement(1);
    r.outcome = Outcome::Refused(ErrorInfo::new("42501", "denied by policy"));
    assert_eq!(to_json(r)["pgwarden"]["outcome"], "refused");
}

#[test]
fn audit_rows_from_command_tags() {
    let mut r = statement(1);
    r.rows_returned = None;
    r.set_rows_from_tag("INSERT 0 3");
    assert_eq!((r.rows_returned, r.rows_affected), (None, Some(3)));
    r.set_rows_from_tag("FETCH 10");
    assert_eq!(r.rows_returned, Some(10));
    let mut r = statement(1);
    r.rows_returned = None;
    r.set_rows_from_tag("CREATE TABLE");
    r.set_rows_from_tag("COPY 5");
    assert_eq!((r.rows_returned, r.rows_affected), (Some(5), None));
}

#[test]
fn audit_connection_json_shapes() {
    let peer = "10.1.2.3:51234".parse().unwrap();
    let v = to_json(ConnectionRecord::new(
        Arc::new(SessionContext::connecting(3, peer, false)),
        ConnectionEvent::Connect,
    ));
    assert_eq!(v["event"]["action"], "connect");
    assert_eq!(
        v["event"]["type"],
        serde_json::json!(["connection", "start"])
    );
    assert!(v.get("user").is_none());
    assert!(v["db"].get("namespace").is_none());
    assert!(v["pgwarden"].get("backend_pid").is_none());

    let v = to_json(ConnectionRecord::new(
        session(3),
        ConnectionEvent::LoginSucceeded,
    ));
    assert_eq!(v["event"]["action"], "login");
    assert_eq!(v["event"]["outcome"], "success");
    assert_eq!(v["user"]["name"], "hr_analyst");

    let v = to_json(ConnectionRecord::new(
        session(3),
        ConnectionEvent::LoginFailed(ErrorInfo::new("28P01", "password authentication failed")),
    ));
    assert_eq!(
        v["event"]["category"],
        serde_json::json!(["authentication"])
    );
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(v["error"]["code"], "28P01");
    assert_eq!(v["db"]["namespace"], "hr");
    assert_eq!(v["pgwarden"]["outcome"], "error");

    let v = to_json(ConnectionRecord::new(
        session(3),
        ConnectionEvent::Disconnect(SessionTotals {
            statements: 10,
            rows: 200,
            bytes_in: 1000,
            bytes_out: 50_000,
            duration: Duration::from_secs(2),
        }),
    ));
    assert_eq!(v["event"]["action"], "disconnect");
    assert_eq!(v["event"]["duration"], 2_000_000_000u64);
    assert_eq!(v["source"]["bytes"], 1000);
    assert_eq!(v["destination"]["bytes"], 50_000);
    assert_eq!(v["pgwarden"]["session"]["statements"], 10);
    assert_eq!(v["pgwarden"]["session"]["rows"], 200);
}

#[tokio::test]
async fn audit_disabled_is_a_no_op() {
    let (h, task) = AuditLog::start(&AuditConfig::default(), &Metrics::new()).unwrap();
    assert!(!h.is_enabled());
    h.send(statement(1)).await;
    task.shutdown().await;
}

#[tokio::test]
async fn audit_shutdown_drains_everything() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let (h, task) = AuditLog::start(&config(&dir.path().join("audit.log")), &m).unwrap();
    for i in 0..10_000 {
        h.send(statement(i)).await;
    }
    task.shutdown().await;
    let lines = read_lines(dir.path());
    assert_eq!(ids(&lines), (0..10_000).collect::<Vec<_>>());
    assert_eq!(m.audit_records.get(), 10_000);
    assert_eq!(m.audit_dropped.get(), 0);
    // After shutdown, records are counted as dropped, not lost silently.
    h.send(statement(1)).await;
    assert_eq!(m.audit_dropped.get(), 1);
}

#[tokio::test]
async fn audit_full_text_only_when_enabled() {
    for enabled in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let c = AuditConfig {
            log_full_text: enabled,
            ..config(&dir.path().join("audit.log"))
        };
        let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
        assert_eq!(h.log_full_text(), enabled);
        let mut r = statement(1);
        r.full_text = Some(Arc::from("SELECT 'secret'"));
        h.send(r).await;
        task.shutdown().await;
        let lines = read_lines(dir.path());
        assert_eq!(lines[0]["pgwarden"].get("full_text").is_some(), enabled);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn audit_file_mode_is_0640() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (_h, task) = AuditLog::start(&config(&path), &Metrics::new()).unwrap();
    task.shutdown().await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    // The umask may take bits away, never add them.
    assert_eq!(mode & 0o137, 0, "{mode:o}");
}

#[tokio::test]
async fn audit_rotation_keeps_every_line_whole() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        max_file_size: 4096,
        keep_files: 1000,
        ..config(&dir.path().join("audit.log"))
    };
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    for i in 0..300 {
        h.send(statement(i)).await;
    }
    task.shutdown().await;
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(files > 20, "only {files} files");
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let len = e.unwrap().metadata().unwrap().len();
        assert!(len <= 4096, "a file of {len} bytes");
    }
    assert_eq!(ids(&read_lines(dir.path())), (0..300).collect::<Vec<_>>());
}

#[tokio::test]
async fn audit_rotation_drops_the_oldest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let c = AuditConfig {
        max_file_size: 4096,
        keep_files: 3,
        ..config(&path)
    };
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    for i in 0..300 {
        h.send(statement(i)).await;
    }
    task.shutdown().await;
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    );
    // What is left is the newest records, in order, ending with the last.
    let ids = ids(&read_lines(dir.path()));
    assert_eq!(ids.last(), Some(&299));
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
}

#[tokio::test]
async fn audit_block_mode_waits_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let c = AuditConfig {
        queue_capacity: 2,
        ..config(&dir.path().join("audit.log"))
    };
    let (pause, gate) = tokio::sync::watch::channel(true);
    let (h, task) = AuditLog::start_gated(&c, &m, Some(gate)).unwrap();
    h.send(statement(0)).await;
    h.send(statement(1)).await;
    let third = tokio::time::timeout(Duration::from_millis(100), h.send(statement(2))).await;
    assert!(third.is_err(), "a full queue must make the sender wait");
    let sender = {
        let h = h.clone();
        tokio::spawn(async move {
            for i in 2..500 {
                h.send(statement(i)).await;
            }
        })
    };
    pause.send_replace(false);
    sender.await.unwrap();
    task.shutdown().await;
    assert_eq!(ids(&read_lines(dir.path())), (0..500).collect::<Vec<_>>());
    assert_eq!(m.audit_dropped.get(), 0);
}

#[tokio::test]
async fn audit_drop_mode_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let c = AuditConfig {
        queue_capacity: 4,
        on_full: AuditOnFull::DropAndCount,
        ..config(&dir.path().join("audit.log"))
    };
    let (pause, gate) = tokio::sync::watch::channel(true);
    let (h, task) = AuditLog::start_gated(&c, &m, Some(gate)).unwrap();
    for i in 0..10 {
        // Never waits, even with the writer held.
        tokio::time::timeout(Duration::from_secs(1), h.send(statement(i)))
            .await
            .unwrap();
    }
    assert_eq!(m.audit_dropped.get(), 6);
    pause.send_replace(false);
    task.shutdown().await;
    assert_eq!(ids(&read_lines(dir.path())), vec![0, 1, 2, 3]);
    assert_eq!(m.audit_records.get(), 4);
}

#[tokio::test]
async fn audit_write_errors_are_counted_not_fatal() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let m = Metrics::new();
    let (h, task) = AuditLog::start(&config(Path::new("/dev/full")), &m).unwrap();
    for i in 0..5 {
        h.send(statement(i)).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    task.shutdown().await;
    assert!(
        m.audit_write_errors.get() >= 2,
        "{}",
        m.audit_write_errors.get()
    );
    assert_eq!(m.audit_records.get(), 0);
    // Given up at shutdown, and said so.
    assert_eq!(m.audit_dropped.get(), 5);
}

#[tokio::test]
async fn audit_open_error_names_the_path() {
    let c = config(Path::new("/nonexistent-dir/audit.log"));
    let e = AuditLog::start(&c, &Metrics::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("audit.path /nonexistent-dir/audit.log: cannot open"),
        "{e}"
    );
}

#[test]
fn audit_deploy_example_parses_with_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/pgwarden.toml");
    let c = crate::config::load_file(&path).unwrap();
    let d = AuditConfig::default();
    assert_eq!(c.audit.path, None);
    assert_eq!(
        (
            c.audit.max_file_size,
            c.audit.keep_files,
            c.audit.queue_capacity
        ),
        (d.max_file_size, d.keep_files, d.queue_capacity)
    );
    assert_eq!(c.audit.on_full, AuditOnFull::Block);
    assert!(!c.audit.log_full_text);
    assert_eq!(c.audit.signing_key, None);
    assert_eq!(
        (c.audit.sign_interval, c.audit.sign_interval_records),
        (d.sign_interval, d.sign_interval_records)
    );
}

#[test]
#[ignore = "prints the example records of docs/audit-records.md"]
fn audit_print_doc_examples() {
    let mut a = (*select_analysis()).clone();
    a.kind = StatementKind::Update;
    a.command = "UPDATE".into();
    a.accesses = vec![access("salaries", &[], &["employee_id"], &["amount"])];
    a.opaque_calls.clear();
    a.normalized = Arc::from("UPDATE hr.salaries SET amount = amount * $1 WHERE employee_id = $2");
    a.fingerprint = Arc::from("5be1d0c2a9f37e64");
    let mut ctx = (*session(7)).clone();
    ctx.effective_user = Some(Arc::from("payroll_admin"));
    let mut r = StatementRecord::new(Arc::new(ctx), Arc::new(a));
    r.timestamp = UNIX_EPOCH + Duration::from_micros(1_760_000_000_654_321);
    r.duration = Duration::from_micros(420);
    r.set_rows_from_tag("UPDATE 1");
    r.policy = Some(PolicyRecord {
        reason: None,
        privileged_role: None,
        action: Some("allow".into()),
        rule: Some("payroll-writes".into()),
        columns: vec![],
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&AuditRecord::from(statement(7))).unwrap()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&AuditRecord::from(r)).unwrap()
    );
    let mut c = ConnectionRecord::new(
        session(7),
        ConnectionEvent::Disconnect(SessionTotals {
            statements: 42,
            rows: 1337,
            bytes_in: 9_876,
            bytes_out: 1_234_567,
            duration: Duration::from_millis(83_250),
        }),
    );
    c.timestamp = UNIX_EPOCH + Duration::from_micros(1_760_000_083_904_571);
    println!("{}", serde_json::to_string(&AuditRecord::from(c)).unwrap());
    let mut c = ConnectionRecord::new(
        Arc::new(SessionContext {
            user: Arc::from("mallory"),
            database: Arc::from("hr"),
            ..SessionContext::connecting(8, "203.0.113.9:40022".parse().unwrap(), true)
        }),
        ConnectionEvent::LoginFailed(ErrorInfo::new(
            "28P01",
            "password authentication failed for user \"mallory\"",
        )),
    );
    c.timestamp = UNIX_EPOCH + Duration::from_micros(1_760_000_090_000_001);
    println!("{}", serde_json::to_string(&AuditRecord::from(c)).unwrap());
}

#[tokio::test]
async fn strict_durability_publishes_a_watermark_of_fsynced_records() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let c = AuditConfig {
        durability: crate::config::AuditDurability::Strict,
        ..config(&dir.path().join("audit.log"))
    };
    let (pause, gate) = tokio::sync::watch::channel(true);
    let (h, task) = AuditLog::start_gated(&c, &m, Some(gate)).unwrap();
    assert!(h.is_strict());
    let mut watermark = h.durable_watch().expect("strict has a watermark");
    let mut tickets = Vec::new();
    for i in 0..50 {
        let t = h.try_send_ticketed(statement(i).into()).ok().flatten();
        tickets.push(t.expect("a ticket"));
    }
    tickets.push(h.send_ticketed(statement(50)).await.expect("a ticket"));
    // Tickets follow the queue's order.
    assert_eq!(tickets, (1..=51).collect::<Vec<u64>>());
    assert_eq!(
        *watermark.borrow(),
        0,
        "nothing written while the writer is held"
    );
    pause.send_replace(false);
    let last = *tickets.last().unwrap();
    tokio::time::timeout(Duration::from_secs(10), watermark.wait_for(|d| *d >= last))
        .await
        .expect("the watermark passes the last ticket")
        .unwrap();
    // Once published, the records are in the file.
    assert_eq!(ids(&read_lines(dir.path())), (0..51).collect::<Vec<_>>());
    task.shutdown().await;
}

#[tokio::test]
async fn without_strict_durability_nothing_is_ticketed() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let c = AuditConfig {
        durability: crate::config::AuditDurability::Batch,
        ..config(&dir.path().join("audit.log"))
    };
    let (h, task) = AuditLog::start(&c, &m).unwrap();
    assert!(!h.is_strict());
    assert!(h.durable_watch().is_none());
    assert_eq!(
        h.try_send_ticketed(statement(0).into()).ok().flatten(),
        None
    );
    task.shutdown().await;
    assert_eq!(ids(&read_lines(dir.path())), vec![0]);
}
