//! The audit trail end to end: real clients (tokio-postgres, psql, a raw
//! protocol client) talk to PostgreSQL through pgwarden, and the JSON lines
//! it writes are checked field by field against docs/audit-records.md.
//!
//! Every test has its own database, proxy and audit file. The file is read
//! only after a clean shutdown (`Server::wait` drains the audit queue), so
//! no record can still be in flight when the assertions run.

mod common;

use common::raw::Raw;
use common::{hr_database, pg, Pg, SUPERUSER, TRUST_USER};
use futures_util::future::join_all;
use futures_util::{SinkExt, TryStreamExt};
use pgwarden::config::Config;
use pgwarden::Server;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The HR role most tests log in as (password = name).
const HR_ADMIN: &str = "hr_admin";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A pgwarden with the audit trail on, writing to a file of its own.
struct Audited {
    /// `None` once [`Audited::records`] took it to shut it down.
    server: Option<Server>,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Audited {
    /// Starts a proxy in front of `pg` that audits to a fresh temp file.
    async fn start(pg: &Pg) -> Self {
        Self::start_with(pg, |_| {}).await
    }

    /// Like [`Audited::start`], with `tweak` applied to the config last.
    async fn start_with(pg: &Pg, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.log");
        let mut config = common::config_for(pg);
        config.audit.path = Some(log.clone());
        // The demo's own catalog role may not exist yet when the proxy starts.
        config.catalog.user = SUPERUSER.0.into();
        config.catalog.password = Some(SUPERUSER.1.into());
        tweak(&mut config);
        pgwarden::config::load::validate(&config).expect("valid test config");
        let server = Server::start(config).await.expect("proxy starts");
        Self {
            port: server.local_addr.port(),
            server: Some(server),
            log,
            dir,
        }
    }

    /// Shuts the proxy down, waits until the writer flushed every queued
    /// record, and returns the audit file's records in order.
    async fn records(mut self) -> Vec<Value> {
        let server = self.server.take().expect("server running");
        server.shutdown();
        tokio::time::timeout(Duration::from_secs(30), server.wait())
            .await
            .expect("proxy stops within 30 s");
        let records = read_records(&self.log);
        // For debugging a failure: the whole trail, one record per line.
        if std::env::var_os("PGWARDEN_TEST_DUMP_AUDIT").is_some() {
            for r in &records {
                eprintln!("{r}");
            }
        }
        records
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        // A test that panicked before `records` must not leave sessions behind.
        if let Some(s) = &self.server {
            s.shutdown();
        }
    }
}

/// Parses an NDJSON audit file; every line must be one JSON object.
fn read_records(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("audit log {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}"));
            assert!(v.is_object(), "audit line is not an object: {l}");
            v
        })
        .collect()
}

/// Connects through the proxy on a socket of our own, so the client's port
/// (the record's `source.port`) is known: (client, local port).
async fn connect_from(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<(Client, u16), tokio_postgres::Error> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect to the proxy");
    let local = tcp.local_addr().expect("local addr").port();
    let config: tokio_postgres::Config = common::conn_str(port, user, password, db)
        .parse()
        .expect("connection string");
    let (client, conn) = config.connect_raw(tcp, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, local))
}

/// Connects through the proxy as `user` (password = name, as the demo roles have).
async fn connect_as(port: u16, user: &str, db: &str) -> (Client, u16) {
    let password = if user == SUPERUSER.0 {
        SUPERUSER.1
    } else {
        user
    };
    connect_from(port, user, password, db)
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

/// The value at a dotted path (`db.query.text`), `Null` when absent.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let pointer: String = path.split('.').map(|p| format!("/{p}")).collect();
    v.pointer(&pointer).unwrap_or(&Value::Null)
}

/// The string at a dotted path; panics with the record when it is absent.
fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} missing or not a string in {v}"))
}

/// The integer at a dotted path, `None` when absent.
fn n(v: &Value, path: &str) -> Option<u64> {
    at(v, path).as_u64()
}

/// The array of strings at a dotted path; empty when absent.
fn strs(v: &Value, path: &str) -> Vec<String> {
    at(v, path)
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().expect("string element").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Owned strings from literals, for comparisons with [`strs`].
fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `pgwarden.access` as (relation, output, filter, written, deletes_rows) tuples.
type AccessRow = (String, Vec<String>, Vec<String>, Vec<String>, bool);

/// `pgwarden.access` in a comparable form.
fn access(rec: &Value) -> Vec<AccessRow> {
    at(rec, "pgwarden.access")
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        s(x, "relation").to_owned(),
                        strs(x, "output"),
                        strs(x, "filter"),
                        strs(x, "written"),
                        at(x, "deletes_rows").as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One expected `pgwarden.access` entry.
fn acc(relation: &str, output: &[&str], filter: &[&str], written: &[&str]) -> AccessRow {
    (relation.to_owned(), v(output), v(filter), v(written), false)
}

/// The statement records, in file order.
fn statements(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| s(r, "event.action") == "statement")
        .collect()
}

/// The records of one session, in file order.
fn of_session(records: &[Value], id: u64) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| n(r, "pgwarden.session_id") == Some(id))
        .collect()
}

/// The session id of the (only) successful login from client port `port`.
fn session_from_port(records: &[Value], port: u16) -> u64 {
    let ids: Vec<u64> = records
        .iter()
        .filter(|r| s(r, "event.action") == "login" && n(r, "source.port") == Some(port.into()))
        .map(|r| n(r, "pgwarden.session_id").expect("session id"))
        .collect();
    assert_eq!(ids.len(), 1, "one login from port {port}: {records:#?}");
    ids[0]
}

/// The statement records of the session that connected from `port`.
fn statements_from(records: &[Value], port: u16) -> Vec<&Value> {
    let id = session_from_port(records, port);
    of_session(records, id)
        .into_iter()
        .filter(|r| s(r, "event.action") == "statement")
        .collect()
}

/// Checks the fields every successful statement record shares.
fn assert_ok_statement(rec: &Value, operation: &str, kind: &str, text: &str) {
    assert_eq!(s(rec, "event.action"), "statement", "{rec}");
    assert_eq!(s(rec, "event.kind"), "event", "{rec}");
    assert_eq!(strs(rec, "event.category"), v(&["database"]), "{rec}");
    assert_eq!(s(rec, "event.outcome"), "success", "{rec}");
    assert_eq!(s(rec, "event.dataset"), "pgwarden.audit", "{rec}");
    assert_eq!(s(rec, "ecs.version"), "8.11.0", "{rec}");
    assert_eq!(s(rec, "pgwarden.outcome"), "ok", "{rec}");
    assert_eq!(s(rec, "db.system.name"), "postgresql", "{rec}");
    assert_eq!(s(rec, "db.operation.name"), operation, "{rec}");
    assert_eq!(s(rec, "pgwarden.statement_kind"), kind, "{rec}");
    assert_eq!(s(rec, "db.query.text"), text, "{rec}");
    assert!(at(rec, "error").is_null(), "no error on success: {rec}");
    assert!(
        at(rec, "pgwarden.unanalysed").is_null(),
        "fully analysed: {rec}"
    );
    assert_eq!(s(rec, "pgwarden.fingerprint").len(), 16, "{rec}");
}

/// Checks a failed statement's outcome fields.
fn assert_failed(rec: &Value, sqlstate: &str) {
    assert_eq!(s(rec, "event.action"), "statement", "{rec}");
    assert_eq!(s(rec, "event.outcome"), "failure", "{rec}");
    assert_eq!(s(rec, "pgwarden.outcome"), "error", "{rec}");
    assert_eq!(s(rec, "error.code"), sqlstate, "{rec}");
    assert_eq!(s(rec, "db.response.status_code"), sqlstate, "{rec}");
    assert!(!s(rec, "error.message").is_empty(), "{rec}");
    assert!(
        strs(rec, "event.type").contains(&"error".to_owned()),
        "event.type has error: {rec}"
    );
    assert!(at(rec, "db.response.returned_rows").is_null(), "{rec}");
}

/// Texts of statement records, for order checks with readable failures.
fn texts(recs: &[&Value]) -> Vec<String> {
    recs.iter()
        .map(|r| s(r, "db.query.text").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Simple query protocol
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_batch_gives_one_record_per_statement() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_simple", 30).await;
    let salary_rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM hr.salaries WHERE employee_id = 2",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(salary_rows > 0, "employee 2 has salary rows");
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_simple").await;
    client
        .batch_execute(
            "SELECT first_name, last_name FROM hr.employees WHERE id = 1; \
             UPDATE hr.salaries SET bonus = 100 WHERE employee_id = 2; \
             SELECT name FROM hr.departments ORDER BY id",
        )
        .await
        .expect("batch");
    drop(client);
    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(
        texts(&stmts),
        v(&[
            "SELECT first_name, last_name FROM hr.employees WHERE id = $1",
            "UPDATE hr.salaries SET bonus = $1 WHERE employee_id = $2",
            "SELECT name FROM hr.departments ORDER BY id",
        ]),
        "one record per statement, in order"
    );

    let sel = stmts[0];
    assert_ok_statement(
        sel,
        "SELECT",
        "select",
        "SELECT first_name, last_name FROM hr.employees WHERE id = $1",
    );
    assert_eq!(strs(sel, "event.type"), v(&["access"]));
    assert_eq!(s(sel, "db.collection.name"), "hr.employees");
    assert_eq!(s(sel, "db.namespace"), "audit_simple");
    assert_eq!(s(sel, "user.name"), HR_ADMIN);
    assert!(at(sel, "user.effective").is_null(), "{sel}");
    assert_eq!(s(sel, "source.ip"), "127.0.0.1");
    assert_eq!(n(sel, "source.port"), Some(port.into()));
    assert_eq!(n(sel, "db.response.returned_rows"), Some(1));
    assert!(n(sel, "destination.bytes").unwrap_or(0) > 0, "{sel}");
    assert!(at(sel, "pgwarden.rows_affected").is_null());
    assert_eq!(
        access(sel),
        vec![acc(
            "hr.employees",
            &["first_name", "last_name"],
            &["id"],
            &[]
        )]
    );
    assert_eq!(
        strs(sel, "pgwarden.columns_read"),
        v(&[
            "hr.employees.first_name",
            "hr.employees.last_name",
            "hr.employees.id"
        ])
    );
    assert!(at(sel, "pgwarden.columns_written").is_null());

    let upd = stmts[1];
    assert_ok_statement(
        upd,
        "UPDATE",
        "update",
        "UPDATE hr.salaries SET bonus = $1 WHERE employee_id = $2",
    );
    assert_eq!(strs(upd, "event.type"), v(&["change"]));
    assert_eq!(s(upd, "db.collection.name"), "hr.salaries");
    assert_eq!(n(upd, "pgwarden.rows_affected"), Some(salary_rows as u64));
    assert!(at(upd, "db.response.returned_rows").is_null(), "{upd}");
    assert_eq!(
        access(upd),
        vec![acc("hr.salaries", &[], &["employee_id"], &["bonus"])]
    );
    assert_eq!(
        strs(upd, "pgwarden.columns_read"),
        v(&["hr.salaries.employee_id"])
    );
    assert_eq!(
        strs(upd, "pgwarden.columns_written"),
        v(&["hr.salaries.bonus"])
    );

    let depts = stmts[2];
    assert_ok_statement(
        depts,
        "SELECT",
        "select",
        "SELECT name FROM hr.departments ORDER BY id",
    );
    let dept_count: i64 = admin
        .query_one("SELECT count(*) FROM hr.departments", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        n(depts, "db.response.returned_rows"),
        Some(dept_count as u64)
    );
    assert_eq!(
        access(depts),
        vec![acc("hr.departments", &["name"], &["id"], &[])]
    );

    // One session: every record carries the login's session id and pid.
    let id = session_from_port(&records, port);
    let login = records
        .iter()
        .find(|r| s(r, "event.action") == "login" && n(r, "pgwarden.session_id") == Some(id))
        .expect("login record");
    for r in &stmts {
        assert_eq!(n(r, "pgwarden.session_id"), Some(id));
        assert_eq!(
            n(r, "pgwarden.backend_pid"),
            n(login, "pgwarden.backend_pid")
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Extended protocol
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_records_every_execute() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_extended", 30).await;
    let employees: i64 = admin
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .expect("count")
        .get(0);
    let proxy = Audited::start(&pg).await;
    let (mut client, port) = connect_as(proxy.port, HR_ADMIN, "audit_extended").await;

    // A named prepared statement executed three times: three records.
    let by_id = client
        .prepare("SELECT email FROM hr.employees WHERE id = $1")
        .await
        .expect("prepare");
    for id in 1..=3i32 {
        let rows = client.query(&by_id, &[&id]).await.expect("query");
        assert_eq!(rows.len(), 1);
    }
    // The unnamed statement (query_typed sends Parse "" with the types).
    let rows = client
        .query_typed(
            "SELECT job_title FROM hr.employees WHERE department_id = $1",
            &[(&1i32, tokio_postgres::types::Type::INT4)],
        )
        .await
        .expect("query_typed");
    let dept1_rows = rows.len() as u64;

    // A portal read 7 rows at a time inside a transaction: one record per Execute.
    let mut per_execute = Vec::new();
    {
        let tx = client.transaction().await.expect("begin");
        let st = tx
            .prepare("SELECT id, last_name FROM hr.employees ORDER BY id")
            .await
            .expect("prepare");
        let portal = tx.bind(&st, &[]).await.expect("bind");
        loop {
            let rows = tx.query_portal(&portal, 7).await.expect("portal");
            per_execute.push(rows.len() as u64);
            if rows.len() < 7 {
                break;
            }
        }
        tx.commit().await.expect("commit");
    }
    assert_eq!(per_execute.iter().sum::<u64>(), employees as u64);

    // Twenty pipelined executions.
    let futures = (1..=20i32).map(|id| {
        let c = &client;
        let st = &by_id;
        async move { c.query(st, &[&id]).await.expect("pipelined").len() }
    });
    let got = join_all(futures).await;
    assert!(got.iter().all(|&n| n == 1));
    drop(by_id);
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    let by_id_text = "SELECT email FROM hr.employees WHERE id = $1";
    let portal_text = "SELECT id, last_name FROM hr.employees ORDER BY id";
    let mut expected = vec![by_id_text; 3];
    expected.push("SELECT job_title FROM hr.employees WHERE department_id = $1");
    // tokio-postgres begins with START TRANSACTION.
    expected.push("START TRANSACTION");
    expected.extend(std::iter::repeat_n(portal_text, per_execute.len()));
    expected.push("COMMIT");
    expected.extend(std::iter::repeat_n(by_id_text, 20));
    // tokio-postgres closes the dropped statement with Close + Sync; no record.
    assert_eq!(texts(&stmts), v(&expected));

    for r in stmts[..3].iter().chain(&stmts[stmts.len() - 20..]) {
        assert_ok_statement(r, "SELECT", "select", by_id_text);
        assert_eq!(n(r, "db.response.returned_rows"), Some(1), "{r}");
        assert_eq!(
            access(r),
            vec![acc("hr.employees", &["email"], &["id"], &[])]
        );
    }
    let typed = stmts[3];
    assert_ok_statement(
        typed,
        "SELECT",
        "select",
        "SELECT job_title FROM hr.employees WHERE department_id = $1",
    );
    assert_eq!(n(typed, "db.response.returned_rows"), Some(dept1_rows));
    assert_eq!(
        access(typed),
        vec![acc("hr.employees", &["job_title"], &["department_id"], &[])]
    );

    assert_eq!(s(stmts[4], "pgwarden.statement_kind"), "transaction");
    let portal_recs = &stmts[5..5 + per_execute.len()];
    let recorded: Vec<u64> = portal_recs
        .iter()
        .map(|r| n(r, "db.response.returned_rows").unwrap_or(0))
        .collect();
    assert_eq!(recorded, per_execute, "rows per Execute of the portal");
    for r in portal_recs {
        assert_ok_statement(r, "SELECT", "select", portal_text);
        assert_eq!(
            access(r),
            vec![acc("hr.employees", &["id", "last_name"], &["id"], &[])]
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_statements_and_what_never_ran() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_errors", 30).await;
    // The raw client logs in as the trust user; give it the HR tables.
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA hr TO {TRUST_USER}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA hr TO {TRUST_USER}"
        ))
        .await
        .expect("grants");
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_errors").await;

    let e = client
        .simple_query("SELECT 1/0")
        .await
        .expect_err("division by zero");
    assert_eq!(e.code().map(|c| c.code()), Some("22012"));
    let e = client
        .simple_query("SELECT * FROM hr.no_such_table")
        .await
        .expect_err("undefined table");
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
    // The third statement never runs: PostgreSQL stops the Query at the error.
    client
        .batch_execute(
            "SELECT name FROM hr.departments WHERE id = 1; \
             SELECT salary_oops / 0 FROM hr.salaries; \
             SELECT ssn FROM hr.employees",
        )
        .await
        .expect_err("second statement fails");
    client
        .batch_execute("SELECT count(*) FROM hr.departments")
        .await
        .expect("the session goes on");
    drop(client);

    // Extended protocol: Parse/Bind/Execute ×3 + Sync, then a second group.
    let mut raw = Raw::login_trust(proxy.port, TRUST_USER, "audit_errors").await;
    let raw_port = raw.s.local_addr().expect("local addr").port();
    let mut pipeline = Vec::new();
    for sql in [
        "SELECT name FROM hr.departments WHERE id = 2",
        "SELECT 1/0",
        "SELECT ssn FROM hr.employees",
    ] {
        pipeline.extend(parse_bind_execute(sql));
    }
    pipeline.extend(msg(b'S', &[]));
    pipeline.extend(parse_bind_execute(
        "SELECT email FROM hr.employees WHERE id = 3",
    ));
    pipeline.extend(msg(b'S', &[]));
    raw.send(&pipeline).await;
    let mut errors = Vec::new();
    let mut ready = 0;
    while ready < 2 {
        let m = raw.recv().await.expect("answer");
        match m.tag {
            b'E' => errors.push(m.sqlstate().unwrap_or_default()),
            b'Z' => ready += 1,
            _ => {}
        }
    }
    assert_eq!(errors, v(&["22012"]));
    raw.send_msg(b'X', &[]).await;
    drop(raw);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(stmts.len(), 5, "{stmts:#?}");
    assert_failed(stmts[0], "22012");
    assert_eq!(s(stmts[0], "db.operation.name"), "SELECT");
    assert_eq!(s(stmts[0], "db.query.text"), "SELECT $1/$2");
    assert_eq!(strs(stmts[0], "event.type"), v(&["info", "error"]));
    assert_eq!(s(stmts[0], "error.message"), "division by zero");

    assert_failed(stmts[1], "42P01");
    assert_eq!(
        s(stmts[1], "db.query.text"),
        "SELECT * FROM hr.no_such_table"
    );
    assert_eq!(
        s(stmts[1], "error.message"),
        "relation \"hr.no_such_table\" does not exist"
    );

    assert_ok_statement(
        stmts[2],
        "SELECT",
        "select",
        "SELECT name FROM hr.departments WHERE id = $1",
    );
    assert_eq!(n(stmts[2], "db.response.returned_rows"), Some(1));
    assert_failed(stmts[3], "42703");
    assert_eq!(
        s(stmts[3], "db.query.text"),
        "SELECT salary_oops / $1 FROM hr.salaries"
    );
    // No record for `SELECT ssn FROM hr.employees`: it never ran.
    assert_ok_statement(
        stmts[4],
        "SELECT",
        "select",
        "SELECT count(*) FROM hr.departments",
    );

    let raw_stmts = statements_from(&records, raw_port);
    assert_eq!(
        texts(&raw_stmts),
        v(&[
            "SELECT name FROM hr.departments WHERE id = $1",
            "SELECT $1/$2",
            "SELECT email FROM hr.employees WHERE id = $1",
        ]),
        "the Execute after the error in the same Sync group has no record"
    );
    assert_eq!(s(raw_stmts[0], "pgwarden.outcome"), "ok");
    assert_eq!(n(raw_stmts[0], "db.response.returned_rows"), Some(1));
    assert_failed(raw_stmts[1], "22012");
    assert_ok_statement(
        raw_stmts[2],
        "SELECT",
        "select",
        "SELECT email FROM hr.employees WHERE id = $1",
    );
    assert_eq!(s(raw_stmts[2], "user.name"), TRUST_USER);
    assert_eq!(n(raw_stmts[2], "db.response.returned_rows"), Some(1));
}

/// One frontend message: tag, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Parse (unnamed, no parameter types), Bind (unnamed portal, no
/// parameters, text results) and Execute (all rows) of `sql`.
fn parse_bind_execute(sql: &str) -> Vec<u8> {
    let mut parse = vec![0u8];
    parse.extend_from_slice(sql.as_bytes());
    parse.extend_from_slice(&[0, 0, 0]);
    let bind = [0u8, 0, 0, 0, 0, 0, 0, 0];
    let execute = [0u8, 0, 0, 0, 0];
    let mut out = msg(b'P', &parse);
    out.extend(msg(b'B', &bind));
    out.extend(msg(b'E', &execute));
    out
}

/// A statement PostgreSQL refuses at Parse (undefined table, syntax error)
/// through the extended protocol is recorded with its error, as the same
/// text through the simple protocol is: probing for tables leaves a trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_parse_error_is_recorded() {
    let pg = pg();
    let _admin = hr_database(&pg, "audit_parse_error", 30).await;
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_parse_error").await;
    // tokio-postgres sends Parse + Describe + Sync; the Parse fails.
    let e = client
        .query("SELECT ssn FROM hr.employes WHERE id = $1", &[&1i32])
        .await
        .expect_err("undefined table");
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
    client
        .query("SELECT 1", &[])
        .await
        .expect("the session goes on");
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(
        texts(&stmts),
        v(&["SELECT ssn FROM hr.employes WHERE id = $1", "SELECT $1"]),
        "the refused statement has a record, like its simple-protocol twin"
    );
    assert_failed(stmts[0], "42P01");
}

// ---------------------------------------------------------------------------
// 4. COPY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_both_ways_counts_rows() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_copy", 30).await;
    let dept_count: i64 = admin
        .query_one("SELECT count(*) FROM hr.departments", &[])
        .await
        .expect("count")
        .get(0);
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_copy").await;

    let out = client
        .copy_out("COPY hr.departments (id, name) TO STDOUT")
        .await
        .expect("copy out");
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.expect("copy data");
    let lines = chunks
        .iter()
        .map(|c| c.iter().filter(|&&b| b == b'\n').count())
        .sum::<usize>();
    assert_eq!(lines as i64, dept_count);

    let sink = client
        .copy_in("COPY hr.performance_reviews (employee_id, period, rating) FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"1\t2030-H1\t3\n2\t2030-H1\t4\n3\t2030-H1\t5\n",
    ))
    .await
    .expect("copy data");
    let copied = sink.finish().await.expect("copy done");
    assert_eq!(copied, 3);
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(stmts.len(), 2, "{stmts:#?}");
    let to = stmts[0];
    assert_ok_statement(
        to,
        "COPY TO",
        "copy",
        "COPY hr.departments (id, name) TO STDOUT",
    );
    assert_eq!(strs(to, "event.type"), v(&["access"]));
    assert_eq!(n(to, "db.response.returned_rows"), Some(dept_count as u64));
    assert!(at(to, "pgwarden.rows_affected").is_null(), "{to}");
    assert_eq!(
        access(to),
        vec![acc("hr.departments", &["id", "name"], &[], &[])]
    );

    let from = stmts[1];
    assert_ok_statement(
        from,
        "COPY FROM",
        "copy",
        "COPY hr.performance_reviews (employee_id, period, rating) FROM STDIN",
    );
    assert_eq!(strs(from, "event.type"), v(&["change"]));
    assert_eq!(n(from, "pgwarden.rows_affected"), Some(3));
    assert!(at(from, "db.response.returned_rows").is_null(), "{from}");
    assert_eq!(
        strs(from, "pgwarden.columns_written"),
        v(&[
            "hr.performance_reviews.employee_id",
            "hr.performance_reviews.period",
            "hr.performance_reviews.rating",
        ])
    );
}

// ---------------------------------------------------------------------------
// 5. psql and session settings
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_script_follows_search_path_role_prepared_cursors_views_temp() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_psql", 30).await;
    // A second `employees` that SET LOCAL search_path = public must pick.
    admin
        .batch_execute(
            "CREATE TABLE public.employees (id int, nickname text); \
             INSERT INTO public.employees VALUES (1, 'x')",
        )
        .await
        .expect("public.employees");
    let proxy = Audited::start(&pg).await;
    let script = "\
SET search_path = hr;
SELECT first_name FROM employees WHERE id = 1;
SET ROLE hr_analyst;
SELECT last_name FROM employees WHERE id = 2;
RESET ROLE;
SELECT email FROM employees WHERE id = 3;
BEGIN;
SET LOCAL search_path = public;
SELECT nickname FROM employees;
COMMIT;
SELECT phone FROM employees WHERE id = 4;
PREPARE by_id(int) AS SELECT ssn FROM employees WHERE id = $1;
EXECUTE by_id(5);
BEGIN;
DECLARE c CURSOR FOR SELECT bank_account FROM employees ORDER BY id;
FETCH 4 FROM c;
CLOSE c;
COMMIT;
SELECT email, department FROM employee_directory WHERE id = 6;
CREATE TEMP TABLE scratch (a int, b text);
INSERT INTO scratch VALUES (1, 'one'), (2, 'two');
SELECT b FROM scratch WHERE a = 2;
";
    let path = proxy.dir.path().join("script.sql");
    std::fs::write(&path, script).expect("script");
    let port = proxy.port.to_string();
    let pg2 = pg.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::run_pg_tool(
            &pg2,
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER.0,
                "-d",
                "audit_psql",
                "-f",
                path.to_str().expect("utf-8 path"),
            ],
            SUPERUSER.1,
        )
    })
    .await
    .expect("psql task");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let records = proxy.records().await;
    let stmts = statements(&records);
    let ops: Vec<&str> = stmts.iter().map(|r| s(r, "db.operation.name")).collect();
    assert_eq!(
        ops,
        [
            "SET",
            "SELECT",
            "SET ROLE",
            "SELECT",
            "RESET ROLE",
            "SELECT",
            "BEGIN",
            "SET",
            "SELECT",
            "COMMIT",
            "SELECT",
            "PREPARE",
            "EXECUTE",
            "BEGIN",
            "DECLARE CURSOR",
            "FETCH",
            "CLOSE CURSOR",
            "COMMIT",
            "SELECT",
            "CREATE TABLE",
            "INSERT",
            "SELECT",
        ],
        "one record per psql statement, in order: {:#?}",
        texts(&stmts)
    );
    for r in &stmts {
        assert_eq!(s(r, "pgwarden.outcome"), "ok", "{r}");
        assert!(at(r, "pgwarden.unanalysed").is_null(), "analysed: {r}");
        assert_eq!(s(r, "user.name"), SUPERUSER.0, "{r}");
        assert_eq!(s(r, "pgwarden.application_name"), "psql", "{r}");
    }
    let rel = |i: usize| access(stmts[i]).first().map(|a| a.0.clone());

    // SET search_path = hr: unqualified names resolve to hr.
    assert_eq!(strs(stmts[0], "event.type"), v(&["info"]));
    assert_eq!(s(stmts[0], "pgwarden.statement_kind"), "set");
    assert_eq!(rel(1).as_deref(), Some("hr.employees"));
    assert_eq!(
        strs(stmts[1], "pgwarden.columns_read"),
        v(&["hr.employees.first_name", "hr.employees.id"])
    );
    // The SET ROLE record itself already carries the new role (it is in
    // effect once the statement completed), the next statements too.
    assert_eq!(s(stmts[2], "user.effective.name"), "hr_analyst");
    assert_eq!(s(stmts[3], "user.effective.name"), "hr_analyst");
    assert!(at(stmts[4], "user.effective").is_null(), "{}", stmts[4]);
    assert_eq!(rel(3).as_deref(), Some("hr.employees"));
    assert!(at(stmts[5], "user.effective").is_null(), "{}", stmts[5]);
    assert!(at(stmts[1], "user.effective").is_null(), "{}", stmts[1]);
    // SET LOCAL: public inside the transaction, hr again after COMMIT.
    assert_eq!(rel(8).as_deref(), Some("public.employees"));
    assert_eq!(
        strs(stmts[8], "pgwarden.columns_read"),
        v(&["public.employees.nickname"])
    );
    assert_eq!(rel(10).as_deref(), Some("hr.employees"));
    assert_eq!(
        strs(stmts[10], "pgwarden.columns_read"),
        v(&["hr.employees.phone", "hr.employees.id"])
    );
    // EXECUTE lists what the prepared statement reads.
    let exec = stmts[12];
    assert_eq!(s(exec, "db.query.text"), "EXECUTE by_id($1)");
    assert_eq!(n(exec, "db.response.returned_rows"), Some(1));
    assert_eq!(
        access(exec),
        vec![acc("hr.employees", &["ssn"], &["id"], &[])]
    );
    // FETCH lists the cursor's columns and the rows fetched.
    let fetch = stmts[15];
    assert_eq!(s(fetch, "db.query.text"), "FETCH $1 FROM c");
    assert_eq!(n(fetch, "db.response.returned_rows"), Some(4));
    assert_eq!(
        access(fetch),
        vec![acc("hr.employees", &["bank_account"], &["id"], &[])]
    );
    // A view is recorded down to its base columns.
    let view = stmts[18];
    assert_eq!(n(view, "db.response.returned_rows"), Some(1));
    assert_eq!(
        access(view),
        vec![
            acc("hr.employees", &["email"], &["department_id", "id"], &[]),
            acc("hr.departments", &["name"], &["id"], &[]),
        ]
    );
    // Temp tables live in pg_temp. The catalog (another session) cannot see
    // their columns, so an INSERT without a column list writes the open
    // marker `*`; only the relation is checked here.
    assert_eq!(s(stmts[19], "pgwarden.statement_kind"), "ddl");
    assert_eq!(n(stmts[20], "pgwarden.rows_affected"), Some(2));
    assert_eq!(
        access(stmts[20]).first().map(|a| a.0.as_str()),
        Some("pg_temp.scratch")
    );
    assert_eq!(
        access(stmts[21]),
        vec![acc("pg_temp.scratch", &["b"], &["a"], &[])]
    );
    assert_eq!(n(stmts[21], "db.response.returned_rows"), Some(1));
}

// ---------------------------------------------------------------------------
// 6. Connection records
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_records_connect_login_failure_disconnect() {
    let pg = pg();
    let _admin = hr_database(&pg, "audit_conn", 30).await;
    let proxy = Audited::start(&pg).await;

    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_conn").await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let rows = client
        .query("SELECT id FROM hr.employees WHERE id <= 5", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 5);
    drop(client);

    let failed = connect_from(proxy.port, HR_ADMIN, "wrong_password", "audit_conn").await;
    let Err(e) = failed else {
        panic!("wrong password accepted")
    };
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("28P01"),
        "{e}"
    );

    let records = proxy.records().await;
    let id = session_from_port(&records, port);
    let session = of_session(&records, id);
    let actions: Vec<&str> = session.iter().map(|r| s(r, "event.action")).collect();
    assert_eq!(
        actions,
        ["connect", "login", "statement", "statement", "disconnect"]
    );
    for r in &session {
        assert_eq!(s(r, "source.ip"), "127.0.0.1", "{r}");
        assert_eq!(n(r, "source.port"), Some(port.into()), "{r}");
        assert_eq!(at(r, "tls.established"), &Value::Bool(false), "{r}");
        assert_eq!(s(r, "event.outcome"), "success", "{r}");
    }
    let connect = session[0];
    assert_eq!(strs(connect, "event.category"), v(&["network"]));
    assert_eq!(strs(connect, "event.type"), v(&["connection", "start"]));
    let login = session[1];
    assert_eq!(
        strs(login, "event.category"),
        v(&["authentication", "session"])
    );
    assert_eq!(strs(login, "event.type"), v(&["start"]));
    assert_eq!(s(login, "user.name"), HR_ADMIN);
    assert_eq!(s(login, "db.namespace"), "audit_conn");
    assert_eq!(s(login, "pgwarden.outcome"), "ok");
    assert_eq!(n(login, "pgwarden.backend_pid"), Some(pid as u64));
    for r in &session[1..] {
        assert_eq!(n(r, "pgwarden.backend_pid"), Some(pid as u64), "{r}");
    }

    let bye = session[4];
    assert_eq!(strs(bye, "event.category"), v(&["session"]));
    assert_eq!(strs(bye, "event.type"), v(&["end"]));
    assert_eq!(s(bye, "user.name"), HR_ADMIN);
    assert_eq!(n(bye, "pgwarden.session.statements"), Some(2));
    // pg_backend_pid(): 1 row; the select: 5 rows.
    assert_eq!(n(bye, "pgwarden.session.rows"), Some(6));
    assert!(n(bye, "event.duration").unwrap_or(0) > 0, "{bye}");
    let statement_bytes: u64 = session[2..4]
        .iter()
        .map(|r| n(r, "destination.bytes").expect("statement bytes"))
        .sum();
    let out = n(bye, "destination.bytes").expect("destination.bytes");
    assert!(
        out >= statement_bytes,
        "session bytes out {out} >= statements' {statement_bytes}"
    );
    let sent = n(bye, "source.bytes").expect("source.bytes");
    // At least the two statements' texts came from the client.
    assert!(sent > 60, "bytes from client: {sent}");

    // The failed login: connect, then login failure with 28P01, no more.
    let failure = records
        .iter()
        .find(|r| s(r, "event.action") == "login" && s(r, "event.outcome") == "failure")
        .expect("failed login record");
    let fid = n(failure, "pgwarden.session_id").expect("session id");
    assert_ne!(fid, id);
    let fsession = of_session(&records, fid);
    let factions: Vec<&str> = fsession.iter().map(|r| s(r, "event.action")).collect();
    assert_eq!(factions, ["connect", "login"]);
    assert_eq!(strs(failure, "event.category"), v(&["authentication"]));
    assert_eq!(s(failure, "user.name"), HR_ADMIN);
    assert_eq!(s(failure, "pgwarden.outcome"), "error");
    assert_eq!(s(failure, "error.code"), "28P01");
    assert_eq!(s(failure, "db.response.status_code"), "28P01");
    assert_eq!(
        s(failure, "error.message"),
        "password authentication failed for user \"hr_admin\""
    );
    assert!(at(failure, "pgwarden.backend_pid").is_null(), "{failure}");
}

// ---------------------------------------------------------------------------
// 7. DDL, then use of the new table
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_after_ddl_is_fully_analysed() {
    let pg = pg();
    let _admin = hr_database(&pg, "audit_ddl", 30).await;
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, SUPERUSER.0, "audit_ddl").await;
    client
        .batch_execute("CREATE TABLE hr.new_t (a int)")
        .await
        .expect("create");
    client
        .batch_execute("INSERT INTO hr.new_t VALUES (1)")
        .await
        .expect("insert");
    // Created and used in one Query (one implicit transaction).
    client
        .batch_execute("CREATE TABLE hr.new_u (b int); INSERT INTO hr.new_u (b) VALUES (2)")
        .await
        .expect("create and insert");
    let rows = client
        .query("SELECT a FROM hr.new_t", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 1);
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(stmts.len(), 5, "{:#?}", texts(&stmts));
    assert_ok_statement(
        stmts[0],
        "CREATE TABLE",
        "ddl",
        "CREATE TABLE hr.new_t (a int)",
    );
    assert_eq!(strs(stmts[0], "event.type"), v(&["change"]));
    let insert = stmts[1];
    assert_ok_statement(
        insert,
        "INSERT",
        "insert",
        "INSERT INTO hr.new_t VALUES ($1)",
    );
    assert_eq!(s(insert, "db.collection.name"), "hr.new_t");
    assert_eq!(n(insert, "pgwarden.rows_affected"), Some(1));
    assert_eq!(strs(insert, "pgwarden.columns_written"), v(&["hr.new_t.a"]));
    assert_eq!(access(insert), vec![acc("hr.new_t", &[], &[], &["a"])]);
    assert_ok_statement(
        stmts[2],
        "CREATE TABLE",
        "ddl",
        "CREATE TABLE hr.new_u (b int)",
    );
    assert_ok_statement(
        stmts[3],
        "INSERT",
        "insert",
        "INSERT INTO hr.new_u (b) VALUES ($1)",
    );
    assert_eq!(
        strs(stmts[3], "pgwarden.columns_written"),
        v(&["hr.new_u.b"])
    );
    assert_ok_statement(stmts[4], "SELECT", "select", "SELECT a FROM hr.new_t");
    assert_eq!(access(stmts[4]), vec![acc("hr.new_t", &["a"], &[], &[])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_over_a_unix_socket() {
    let pg = pg();
    let _admin = hr_database(&pg, "audit_unix", 30).await;
    let socket = pg
        .cluster
        .socket_dir()
        .join(format!(".s.PGSQL.{}", pg.port));
    let proxy = Audited::start_with(&pg, |c| {
        c.upstream.address = socket.display().to_string();
    })
    .await;
    let metrics = proxy
        .server
        .as_ref()
        .and_then(|s| s.metrics_addr)
        .expect("metrics address");
    let (client, port) = connect_as(proxy.port, SUPERUSER.0, "audit_unix").await;
    // PostgreSQL sees pgwarden as a Unix-socket client: no address.
    let unix: bool = client
        .query_one("SELECT inet_client_addr() IS NULL", &[])
        .await
        .expect("client address")
        .get(0);
    assert!(unix, "the server side is not the Unix socket");
    // The catalog came over the socket too: columns resolve.
    let rows = client
        .query(
            "SELECT first_name FROM hr.employees WHERE id = $1",
            &[&1i32],
        )
        .await
        .expect("select");
    assert_eq!(rows.len(), 1);
    // Cancel requests reach PostgreSQL over the same socket.
    let token = client.cancel_token();
    let slow = tokio::spawn(async move {
        let r = client.simple_query("SELECT pg_sleep(30)").await;
        (client, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to_proxy = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .expect("connect for the cancel");
    token
        .cancel_query_raw(to_proxy, NoTls)
        .await
        .expect("cancel sent");
    let (client, r) = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("cancelled within 10 s")
        .expect("task");
    let code = r
        .expect_err("cancelled")
        .code()
        .map(|c| c.code().to_owned());
    assert_eq!(code.as_deref(), Some("57014"));
    let (status, body) = common::http_get(metrics, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(stmts.len(), 3, "{:#?}", texts(&stmts));
    assert_ok_statement(
        stmts[1],
        "SELECT",
        "select",
        "SELECT first_name FROM hr.employees WHERE id = $1",
    );
    assert_eq!(
        access(stmts[1]),
        vec![acc("hr.employees", &["first_name"], &["id"], &[])]
    );
    assert_failed(stmts[2], "57014");
}

// ---------------------------------------------------------------------------
// 8. Clean shutdown under load
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_and_duplicates_nothing() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: u64 = 300;
    let pg = pg();
    let _admin = hr_database(&pg, "audit_load", 30).await;
    // The full text carries each statement's sequence number, so every
    // record can be matched to the client call that caused it.
    let proxy = Audited::start_with(&pg, |c| c.audit.log_full_text = true).await;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_load").await;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = BTreeSet::new();
            for k in 0..PER_CLIENT {
                let seq = i as u64 * 1_000_000 + k;
                let sql = format!("SELECT {seq} AS seq, name FROM hr.departments WHERE id = 1");
                match client.simple_query(&sql).await {
                    Ok(msgs) => {
                        let rows = msgs
                            .iter()
                            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                            .count();
                        assert_eq!(rows, 1);
                        ok.insert(seq);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    // The proxy closed the session: nothing more gets through.
                    Err(_) => break,
                }
            }
            (port, ok)
        }));
    }
    // Shut down mid-way through the load.
    let total = CLIENTS as u64 * PER_CLIENT;
    while done.load(Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let server = proxy.server.as_ref().expect("server");
    server.shutdown();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("client task"));
    }
    let records = proxy.records().await;

    let mut all_ok = 0;
    for (port, ok) in &results {
        all_ok += ok.len();
        let id = session_from_port(&records, *port);
        let session = of_session(&records, id);
        let mut seen = BTreeMap::new();
        for r in session
            .iter()
            .filter(|r| s(r, "event.action") == "statement")
        {
            assert_eq!(
                s(r, "db.query.text"),
                "SELECT $1 AS seq, name FROM hr.departments WHERE id = $2"
            );
            let full = s(r, "pgwarden.full_text");
            let seq: u64 = full
                .strip_prefix("SELECT ")
                .and_then(|t| t.split(' ').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("sequence number in {full}"));
            *seen.entry(seq).or_insert(0) += 1;
            if s(r, "pgwarden.outcome") == "ok" {
                assert!(ok.contains(&seq), "record {seq} the client never got: {r}");
            }
        }
        let dup: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
        assert!(dup.is_empty(), "duplicated records: {dup:?}");
        let missing: Vec<_> = ok.iter().filter(|q| !seen.contains_key(q)).collect();
        assert!(
            missing.is_empty(),
            "client got results without a record: {missing:?}"
        );
        let last = session.last().expect("records");
        assert_eq!(s(last, "event.action"), "disconnect");
        assert_eq!(
            n(last, "pgwarden.session.statements"),
            Some(seen.len() as u64)
        );
    }
    assert!(
        all_ok < total as usize,
        "shutdown came before the load finished ({all_ok} of {total})"
    );
    assert!(all_ok as u64 >= total / 3);
}

// ---------------------------------------------------------------------------
// 9. Auditing off
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_audit_path_nothing_is_written_and_queries_work() {
    let pg = pg();
    let _admin = hr_database(&pg, "audit_off", 30).await;
    let proxy = Audited::start_with(&pg, |c| c.audit.path = None).await;
    let (client, _) = connect_as(proxy.port, HR_ADMIN, "audit_off").await;
    let rows = client
        .query("SELECT id FROM hr.employees WHERE id <= $1", &[&3i32])
        .await
        .expect("select");
    assert_eq!(rows.len(), 3);
    client
        .batch_execute("SELECT 1; UPDATE hr.salaries SET bonus = bonus WHERE employee_id = 1")
        .await
        .expect("batch");
    drop(client);
    let mut proxy = proxy;
    let server = proxy.server.take().expect("server");
    server.shutdown();
    server.wait().await;
    assert!(!proxy.log.exists(), "no audit file without audit.path");
    let entries = std::fs::read_dir(proxy.dir.path()).expect("dir").count();
    assert_eq!(entries, 0, "nothing written to the temp dir");
}

/// Within one simple Query, RESET search_path / SET search_path = DEFAULT is
/// seen by the statements after it: the SELECT below reads public.employees
/// in PostgreSQL and must be recorded so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_search_path_inside_one_query_applies_to_later_statements() {
    let pg = pg();
    let admin = hr_database(&pg, "audit_reset_path", 30).await;
    admin
        .batch_execute(
            "CREATE TABLE public.employees (id int, nickname text); \
             INSERT INTO public.employees VALUES (1, 'x'); \
             GRANT SELECT ON public.employees TO PUBLIC",
        )
        .await
        .expect("public.employees");
    let proxy = Audited::start(&pg).await;
    let (client, port) = connect_as(proxy.port, HR_ADMIN, "audit_reset_path").await;
    for reset in ["RESET search_path", "SET search_path = DEFAULT"] {
        let rows = client
            .simple_query(&format!(
                "SET search_path = hr; {reset}; SELECT nickname FROM employees"
            ))
            .await
            .expect("batch");
        // PostgreSQL itself read public.employees (hr.employees has no nickname).
        assert!(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))));
    }
    drop(client);

    let records = proxy.records().await;
    let stmts = statements_from(&records, port);
    assert_eq!(stmts.len(), 6, "{:#?}", texts(&stmts));
    for select in [stmts[2], stmts[5]] {
        assert_ok_statement(select, "SELECT", "select", "SELECT nickname FROM employees");
        assert_eq!(
            access(select),
            vec![acc("public.employees", &["nickname"], &[], &[])]
        );
    }
}
