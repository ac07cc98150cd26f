//! Bulk extraction, inline: row limits from policy files stop statements
//! mid-stream (no row past the limit reaches the client), count cursors and
//! Execute batches together, add up across sessions and (through Redis)
//! across pgwarden instances, and raise alerts to a webhook and the audit log.

mod common;

use common::guarded::{policy_dir, Guarded};
use common::hook::Hook;
use common::raw::Raw;
use common::redis::RedisServer;
use common::{hr_database, pg, Pg, TRUST_USER};
use futures_util::{pin_mut, TryStreamExt};
use pgwarden::config::{BudgetStore, Config};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_postgres::Client;

const DB: &str = "limits_hr";

/// 2,000 employees, loaded once per test binary.
async fn hr(pg: &Pg) {
    static LOADED: OnceCell<()> = OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            let su = hr_database(pg, DB, 2000).await;
            su.batch_execute(&format!(
                "GRANT USAGE ON SCHEMA hr TO {t}; GRANT SELECT ON ALL TABLES IN SCHEMA hr TO {t}",
                t = TRUST_USER
            ))
            .await
            .expect("grant");
        })
        .await;
}

/// A proxy with `policy` in front of the 2,000-employee HR database.
async fn guarded(policy: &Path, tweak: impl FnOnce(&mut Config)) -> Guarded {
    hr(&pg()).await;
    Guarded::start(DB, policy, tweak).await
}

/// Rows that arrive through the extended protocol before the error.
async fn stream_rows(c: &Client, sql: &str) -> (usize, Option<tokio_postgres::Error>) {
    let stream = match c.query_raw(sql, Vec::<i32>::new()).await {
        Ok(s) => s,
        Err(e) => return (0, Some(e)),
    };
    pin_mut!(stream);
    let mut n = 0;
    loop {
        match stream.try_next().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

fn assert_limit(e: &Option<tokio_postgres::Error>, limit: &str) {
    let e = e.as_ref().expect("the statement was stopped");
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e}"));
    assert_eq!(db.code().code(), "53400", "{}", db.message());
    assert!(db.message().contains(limit), "{}", db.message());
}

const BLOCK_500: &str = r#"
[[limit]]
name = "employees-500"
roles = ["*"]
except_roles = ["hr_admin"]
on = ["hr.employees"]
alert_rows = 100
block_rows = 500
"#;

#[tokio::test]
async fn a_statement_is_stopped_mid_stream_and_the_session_goes_on() {
    let pol = policy_dir(BLOCK_500);
    let hook = Hook::start(0).await;
    let url = hook.url();
    let g = guarded(pol.path(), |c| {
        c.alerts.webhooks = vec![url];
        c.alerts.group_window = pgwarden::config::HumanDuration(Duration::ZERO);
    })
    .await;

    // Extended protocol.
    let a = g.login("hr_analyst").await;
    let (n, e) = stream_rows(&a, "SELECT id, first_name FROM hr.employees").await;
    assert!(n <= 500, "{n} rows reached the client");
    assert_limit(&e, "employees-500");
    let one: i32 = a.query_one("SELECT 1::int4", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "session usable");
    // Under the limit: untouched.
    let rows = a
        .query("SELECT id FROM hr.employees WHERE id <= 400", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 400);
    // hr_admin is not limited.
    let admin = g.login("hr_admin").await;
    assert_eq!(
        admin
            .query("SELECT id FROM hr.employees", &[])
            .await
            .unwrap()
            .len(),
        2000
    );

    // Simple protocol, counted on the wire: at most 500 DataRows, then the
    // error, then ReadyForQuery.
    let mut raw = Raw::login_trust(g.port, TRUST_USER, DB).await;
    raw.send_msg(b'Q', b"SELECT * FROM hr.employees\0").await;
    let mut data_rows = 0;
    let mut error = None;
    loop {
        let m = raw.recv().await.expect("message");
        match m.tag {
            b'D' => data_rows += 1,
            b'E' => error = m.sqlstate(),
            b'C' => panic!("the statement completed"),
            b'Z' => break,
            _ => {}
        }
    }
    assert!(data_rows <= 500, "{data_rows} rows on the wire");
    assert_eq!(error.as_deref(), Some("53400"));
    // In a transaction, then ROLLBACK: the session stays usable.
    a.batch_execute("BEGIN").await.unwrap();
    let (_, e) = stream_rows(&a, "SELECT id FROM hr.employees").await;
    assert_limit(&e, "employees-500");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(a.query("SELECT 1", &[]).await.unwrap().len(), 1);

    // The alerts reached the webhook ...
    let got = hook.wait_for(2).await;
    assert!(
        got.iter()
            .any(|r| r.body.to_string().contains("employees-500")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|r| r.body.to_string().contains("blocked")),
        "{got:?}"
    );
    // ... and the audit log, next to the stopped statements' records.
    drop((a, admin, raw));
    let records = g.records().await;
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .collect();
    assert!(alerts.len() >= 2, "alert records: {}", alerts.len());
    assert!(alerts
        .iter()
        .any(|a| a["pgwarden"]["alert"]["action"] == "blocked"));
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|r| r["pgwarden"]["policy"]["action"] == "block")
        .collect();
    assert!(
        blocked.len() >= 3,
        "blocked statements recorded: {}",
        blocked.len()
    );
    assert!(blocked
        .iter()
        .all(|r| r["pgwarden"]["policy"]["rule"] == "employees-500"));
}

/// Reads one simple-protocol request's answer: DataRows, the SQLSTATE of
/// its error and the transaction status of its ReadyForQuery.
async fn answer(raw: &mut Raw, sql: &str) -> (usize, Option<String>, u8) {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    raw.send_msg(b'Q', &q).await;
    let (mut rows, mut error) = (0, None);
    loop {
        let m = raw.recv().await.expect("message");
        match m.tag {
            b'D' => rows += 1,
            b'E' => error = m.sqlstate(),
            b'Z' => return (rows, error, m.body.first().copied().unwrap_or(0)),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_stopped_statement_is_cancelled_and_the_cancel_never_hits_the_next_one() {
    let pol = policy_dir(BLOCK_500);
    let g = guarded(pol.path(), |_| {}).await;
    let su = common::superuser(&pg(), DB).await;
    su.batch_execute(
        "DROP SEQUENCE IF EXISTS ticks; CREATE SEQUENCE ticks; \
         GRANT USAGE ON SEQUENCE ticks TO PUBLIC",
    )
    .await
    .unwrap();
    let a = g.login("hr_analyst").await;

    // Run to its end, this would take 4 s and tick 2,000 times; cancelled
    // after row 501, it stops within a few hundred.
    let (n, e) = stream_rows(
        &a,
        "SELECT e.id, nextval('ticks'), pg_sleep(0.002) FROM hr.employees e",
    )
    .await;
    assert!(n <= 500, "{n} rows reached the client");
    assert_limit(&e, "employees-500");
    let ticks: i64 = su
        .query_one("SELECT last_value FROM ticks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        ticks < 2000,
        "the backend query ran to its end ({ticks} rows)"
    );

    // Fast reads end before their cancel can land; the statement right
    // after each must never be the one cancelled.
    for i in 0..25i32 {
        let (_, e) = stream_rows(&a, "SELECT id FROM hr.employees").await;
        assert_limit(&e, "employees-500");
        let v: i32 = a
            .query_one("SELECT $1::int4, pg_sleep(0.02)", &[&i])
            .await
            .unwrap_or_else(|e| panic!("statement after stop {i}: {e}"))
            .get(0);
        assert_eq!(v, i);
    }

    // In a transaction the client is told it failed, and it has.
    let mut raw = Raw::login_trust(g.port, TRUST_USER, DB).await;
    assert_eq!(answer(&mut raw, "BEGIN").await, (0, None, b'T'));
    let (rows, error, status) = answer(&mut raw, "SELECT * FROM hr.employees").await;
    assert!(rows <= 500, "{rows} rows on the wire");
    assert_eq!((error.as_deref(), status), (Some("53400"), b'E'));
    let (_, error, status) = answer(&mut raw, "SELECT 1").await;
    assert_eq!((error.as_deref(), status), (Some("25P02"), b'E'));
    assert_eq!(answer(&mut raw, "ROLLBACK").await, (0, None, b'I'));
    assert_eq!(answer(&mut raw, "SELECT 1").await, (1, None, b'I'));

    let body = common::http_get(g.server().metrics_addr.expect("metrics"), "/metrics")
        .await
        .1;
    assert!(
        common::metric(&body, "pgwarden_stopped_statements_cancelled_total") >= 27.0,
        "{body}"
    );
}

#[tokio::test]
async fn cursor_fetches_and_execute_batches_add_up() {
    let pol = policy_dir(BLOCK_500);
    let g = guarded(pol.path(), |_| {}).await;
    let mut a = g.login("hr_analyst").await;
    // FETCH in batches of 200 from one cursor: the third stops at 500.
    a.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM hr.employees")
        .await
        .unwrap();
    let mut fetched = 0;
    let mut stopped = None;
    for _ in 0..3 {
        match a.query("FETCH 200 FROM c", &[]).await {
            Ok(rows) => fetched += rows.len(),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    assert_eq!(fetched, 400, "{stopped:?}");
    assert_limit(&stopped, "employees-500");
    a.batch_execute("ROLLBACK").await.unwrap();

    // Execute with a row limit on one portal.
    let tx = a.transaction().await.unwrap();
    let stmt = tx.prepare("SELECT id FROM hr.employees").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut got = 0;
    let mut stopped = None;
    for _ in 0..4 {
        match tx.query_portal(&portal, 150).await {
            Ok(rows) => got += rows.len(),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    assert_eq!(got, 450, "{stopped:?}");
    assert_limit(&stopped, "employees-500");
    drop(tx);
    assert_eq!(a.query("SELECT 1", &[]).await.unwrap().len(), 1);
}

const WINDOW_5000: &str = r#"
[[limit]]
name = "employees-hourly"
roles = ["*"]
on = ["hr.employees"]
window = "1h"
block_rows_per_window = 5000
"#;

/// Reads every employee id as hr_analyst in a new session on `port`.
async fn read_all(port: u16) -> (usize, Option<tokio_postgres::Error>) {
    let c = common::connect(port, "hr_analyst", "hr_analyst", DB).await;
    let r = stream_rows(&c, "SELECT id FROM hr.employees").await;
    // Let the session's window update reach the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    r
}

#[tokio::test]
async fn a_window_budget_spans_sessions() {
    let pol = policy_dir(WINDOW_5000);
    let g = guarded(pol.path(), |_| {}).await;
    assert_eq!(read_all(g.port).await.0, 2000);
    assert_eq!(read_all(g.port).await.0, 2000);
    let (n, e) = read_all(g.port).await;
    assert!(n <= 1000, "third session read {n} rows");
    assert_limit(&e, "employees-hourly");
    // Another user has a budget of their own.
    let other = g.login("payroll").await;
    assert_eq!(
        stream_rows(&other, "SELECT id FROM hr.employees").await.0,
        2000
    );
}

#[tokio::test]
async fn two_instances_share_one_budget_through_redis() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("redis-server not installed: skipping the shared-budget test");
        return;
    };
    let pol = policy_dir(WINDOW_5000);
    let url = redis.url();
    let with_redis = |c: &mut Config| {
        c.budget.store = BudgetStore::Redis;
        c.budget.redis_url = Some(url.clone());
    };
    let a = guarded(pol.path(), with_redis).await;
    let b = guarded(pol.path(), with_redis).await;
    assert_eq!(read_all(a.port).await.0, 2000);
    assert_eq!(read_all(b.port).await.0, 2000);
    let (n, e) = read_all(a.port).await;
    assert!(n <= 1000, "{n} rows past the shared budget");
    assert_limit(&e, "employees-hourly");
}
