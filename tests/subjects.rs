//! Who saw whom: the keys of `[subjects]` tables each result returned go
//! into its audit record (simple and extended protocol, text and binary
//! keys, psql too), results without the key are "possibly seen", writes name
//! the columns they changed, `pgwarden audit subject` lists who saw a
//! subject, and distinct subjects per user and window raise an alert.

mod common;

use common::guarded::{policy_dir, Guarded};
use common::{hr_database, pg, Pg};
use pgwarden::cli::{Cli, Command};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::sync::OnceCell;

const DB: &str = "subjects_hr";

/// The demo policy (with its `[subjects]`) plus a tight distinct-subject
/// limit for hr_analyst.
fn policy_text() -> String {
    let demo =
        std::fs::read_to_string(common::crate_path("policies/hr.toml")).expect("demo policy");
    format!(
        "{demo}\n[[limit]]\nname = \"analyst-distinct\"\nroles = [\"hr_analyst\"]\n\
         on = [\"hr.employees\"]\nwindow = \"1h\"\ndistinct_subjects_per_window = 100\n"
    )
}

async fn hr(pg: &Pg) {
    static LOADED: OnceCell<()> = OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            hr_database(pg, DB, 300).await;
        })
        .await;
}

/// The statement records whose normalized text contains `needle`.
fn statements<'a>(records: &'a [Value], needle: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"]["action"] == "statement")
        .filter(|r| {
            r["db"]["query"]["text"]
                .as_str()
                .is_some_and(|t| t.contains(needle))
        })
        .collect()
}

fn one<'a>(records: &'a [Value], needle: &str) -> &'a Value {
    let found = statements(records, needle);
    assert_eq!(found.len(), 1, "records for {needle}: {found:#?}");
    found[0]
}

/// Runs `pgwarden audit subject ARGS` in-process: (exit code, stdout).
fn cli(args: &[&str]) -> (u8, String) {
    let mut all = vec!["pgwarden", "audit", "subject"];
    all.extend_from_slice(args);
    let Ok(Cli {
        command: Command::Audit(audit),
    }) = <Cli as clap::Parser>::try_parse_from(all)
    else {
        panic!("audit subject arguments must parse");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = pgwarden::audit::cli::run_with(audit, &mut out, &mut err);
    let mut text = String::from_utf8(out).expect("utf-8");
    text.push_str(&String::from_utf8(err).expect("utf-8"));
    (code, text)
}

fn psql(pg: &Pg, port: u16, role: &str, sql: &str) -> String {
    let out = common::run_pg_tool(
        pg,
        "psql",
        &[
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            role,
            "-d",
            DB,
            "-c",
            sql,
        ],
        role,
    );
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_log(dir: &Path, records: &[Value]) -> PathBuf {
    let path = dir.join("audit.log");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).expect("log");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_record_the_subjects_they_returned() {
    let pg = pg();
    hr(&pg).await;
    let policy = policy_dir(&policy_text());
    let g = Guarded::start(DB, policy.path(), |_| {}).await;

    // Simple protocol, text keys.
    let analyst = g.login("hr_analyst").await;
    analyst
        .simple_query(
            "SELECT id, first_name FROM hr.employees WHERE id <= 40 OR id IN (52, 77) ORDER BY id DESC",
        )
        .await
        .expect("select");
    // Extended protocol, binary int4 keys, through a table mapped to the subject.
    let payroll = g.login("payroll").await;
    let rows = payroll
        .query(
            "SELECT employee_id, amount FROM hr.salaries WHERE employee_id BETWEEN $1 AND $2",
            &[&5i32, &9i32],
        )
        .await
        .expect("salaries");
    assert!(!rows.is_empty());
    // A write by key, without and with the key returned.
    payroll
        .execute(
            "UPDATE hr.salaries SET bonus = bonus WHERE employee_id = $1",
            &[&3i32],
        )
        .await
        .expect("update");
    payroll
        .simple_query(
            "UPDATE hr.salaries SET bonus = bonus WHERE employee_id IN (4) RETURNING employee_id",
        )
        .await
        .expect("update returning");
    // psql, reading a subject's columns without its key.
    let out = psql(
        &pg,
        g.port,
        "hr_analyst",
        "SELECT first_name, last_name FROM hr.employees WHERE id = 3",
    );
    assert!(!out.trim().is_empty());
    // No rows: nobody seen.
    analyst
        .simple_query("SELECT id FROM hr.employees WHERE id < 0")
        .await
        .expect("empty");
    drop((analyst, payroll));
    let records = g.records().await;

    let r = one(&records, "id <= $1 OR id IN");
    let s = &r["pgwarden"]["subjects"]["hr.employees"];
    assert_eq!(s["keys"], "1-40,52,77", "{r}");
    assert_eq!(s["count"], 42);
    let cols: Vec<&str> = s["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(cols.contains(&"hr.employees.first_name"), "{cols:?}");

    let r = one(&records, "FROM hr.salaries WHERE employee_id BETWEEN");
    let s = &r["pgwarden"]["subjects"]["hr.employees"];
    assert_eq!(s["keys"], "5-9", "{r}");
    assert!(s["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .any(|c| c == "hr.salaries.amount"));

    let r = one(&records, "SET bonus = bonus WHERE employee_id = $1");
    let s = &r["pgwarden"]["subjects"]["hr.employees"];
    assert!(s["keys"].is_null(), "{r}");
    assert_eq!(s["written"][0], "hr.salaries.bonus", "{r}");
    let r = one(&records, "RETURNING employee_id");
    assert_eq!(
        r["pgwarden"]["subjects"]["hr.employees"]["keys"], "4",
        "{r}"
    );

    let r = one(&records, "SELECT first_name, last_name FROM hr.employees");
    assert_eq!(r["pgwarden"]["application_name"], "psql");
    let s = &r["pgwarden"]["subjects"]["hr.employees"];
    assert!(s["keys"].is_null(), "{r}");
    assert_eq!(s["columns"].as_array().map(Vec::len), Some(2), "{r}");

    let r = one(&records, "FROM hr.employees WHERE id < $1");
    assert!(r["pgwarden"]["subjects"].is_null(), "{r}");

    // Who saw employee 3: the psql read (possibly) and the write (possibly);
    // employee 52: the analyst's list; employee 41: nobody's list.
    let dir = tempfile::tempdir().expect("dir");
    let log = write_log(dir.path(), &records);
    let log = log.to_str().expect("utf-8");
    let (code, text) = cli(&["--table", "hr.employees", "--key", "52", log]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("hr_analyst") && text.contains("seen"),
        "{text}"
    );
    assert!(text.contains("1 seen"), "{text}");
    let (_, text) = cli(&[
        "--table",
        "hr.employees",
        "--key",
        "3",
        "--format",
        "json",
        log,
    ]);
    let doc: Value = serde_json::from_str(&text).expect("json");
    let found = doc["statements"].as_array().expect("statements");
    assert!(found.iter().any(|s| s["user"] == "hr_analyst"
        && s["application"] == "psql"
        && s["certainty"] == "possibly"));
    assert!(found.iter().any(|s| s["user"] == "payroll"
        && s["written"][0] == "hr.salaries.bonus"
        && s["certainty"] == "possibly"));
    assert!(found
        .iter()
        .any(|s| s["user"] == "hr_analyst" && s["certainty"] == "seen"));
    let (_, text) = cli(&[
        "--table",
        "hr.employees",
        "--key",
        "4",
        "--format",
        "json",
        log,
    ]);
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert!(doc["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .any(|s| s["user"] == "payroll" && s["certainty"] == "seen" && s["command"] == "UPDATE"));
    let (_, text) = cli(&[
        "--table",
        "hr.employees",
        "--key",
        "52",
        "--from",
        "2999-01-01",
        log,
    ]);
    assert!(text.contains("0 statement(s)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_subjects_per_window_raise_an_alert() {
    let pg = pg();
    hr(&pg).await;
    let policy = policy_dir(&policy_text());
    let g = Guarded::start(DB, policy.path(), |_| {}).await;
    let analyst = g.login("hr_analyst").await;
    // 60 distinct, then the same 60 again: 60, no alert.
    for _ in 0..2 {
        analyst
            .simple_query("SELECT id, first_name FROM hr.employees WHERE id <= 60")
            .await
            .expect("select");
    }
    // 60 more from another session of the same user: 120 > 100.
    let again = g.login("hr_analyst").await;
    again
        .query(
            "SELECT id FROM hr.employees WHERE id > $1 AND id <= $2",
            &[&60i32, &120i32],
        )
        .await
        .expect("select");
    drop((analyst, again));
    let records = g.records().await;
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter(|r| r["pgwarden"]["alert"]["rule"] == "analyst-distinct")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let evidence = &alerts[0]["pgwarden"]["alert"]["evidence"];
    assert_eq!(evidence["measure"], "distinct_subjects_per_window");
    assert_eq!(evidence["threshold"], 100);
    assert_eq!(evidence["distinct_subjects"], 101);
}

/// ZCARD of a distinct-subject window in Redis (0 when absent).
async fn redis_count(url: &str, key: &str) -> (u64, bool) {
    let client = redis::Client::open(url).expect("redis url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let n: u64 = redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap_or(0);
    let alerted: bool = redis::cmd("EXISTS")
        .arg(format!("{key}:alerted"))
        .query_async(&mut c)
        .await
        .unwrap_or(false);
    (n, alerted)
}

/// Waits until the window `key` holds `n` subjects (the count is added off
/// the relay, after the statement's answer).
async fn wait_for_count(url: &str, key: &str, n: u64, alerted: bool) {
    for _ in 0..200 {
        if redis_count(url, key).await == (n, alerted) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "{key} never reached {n} (alerted {alerted}): {:?}",
        redis_count(url, key).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_subjects_add_up_across_replicas_through_redis() {
    let Some(redis) = common::redis::RedisServer::start() else {
        eprintln!("redis-server not installed: skipping the shared distinct-subject test");
        return;
    };
    let pg = pg();
    hr(&pg).await;
    let policy = policy_dir(&policy_text());
    let url = redis.url();
    let with_redis = |c: &mut pgwarden::config::Config| {
        c.budget.store = pgwarden::config::BudgetStore::Redis;
        c.budget.redis_url = Some(url.clone());
    };
    let a = Guarded::start(DB, policy.path(), with_redis).await;
    let b = Guarded::start(DB, policy.path(), with_redis).await;
    let key = "pgwarden:budget:distinct:hr_analyst:analyst-distinct";
    // 60 through one replica, then 41..120 through the other: 120 distinct.
    let on_a = a.login("hr_analyst").await;
    on_a.simple_query("SELECT id FROM hr.employees WHERE id <= 60")
        .await
        .expect("select");
    wait_for_count(&url, key, 60, false).await;
    let on_b = b.login("hr_analyst").await;
    on_b.query(
        "SELECT id FROM hr.employees WHERE id > 40 AND id <= 120",
        &[],
    )
    .await
    .expect("select");
    // Kept exact up to the threshold + 1.
    wait_for_count(&url, key, 101, true).await;
    drop((on_a, on_b));
    let alerts = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["pgwarden"]["alert"]["rule"] == "analyst-distinct")
            .cloned()
            .collect()
    };
    assert!(alerts(&a.records().await).is_empty());
    let on_b = alerts(&b.records().await);
    assert_eq!(on_b.len(), 1, "{on_b:#?}");
    assert_eq!(
        on_b[0]["pgwarden"]["alert"]["evidence"]["distinct_subjects"],
        101
    );
}

#[test]
fn subjects_are_validated_with_file_and_line() {
    let bad = "[subjects]\n\"hr.employees\" = \"id\"\n\"hr.*\" = \"id\"\n";
    let e = pgwarden::policy::load::load_str(bad, "p.toml", 1).expect_err("refused");
    assert!(e.to_string().starts_with("p.toml:3: "), "{e}");
    let bad = "[subjects]\n\"hr.salaries\" = { key = \"employee_id\", subject = \"employees\" }\n";
    let e = pgwarden::policy::load::load_str(bad, "p.toml", 1).expect_err("refused");
    assert!(e.to_string().starts_with("p.toml:2: "), "{e}");
    let bad = "[[limit]]\nname = \"x\"\nroles = [\"*\"]\non = [\"hr.employees\"]\ndistinct_subjects_per_window = 5\n";
    let e = pgwarden::policy::load::load_str(bad, "p.toml", 1).expect_err("refused");
    assert!(
        e.to_string().contains("distinct_subjects_per_window"),
        "{e}"
    );
}
