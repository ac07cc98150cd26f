//! Behaviour baselines and pre-statement extraction flags through the
//! proxy: a baseline learnt from one pattern (a user reading
//! hr.departments in office hours from 127.0.0.1) survives a restart and
//! flags a different one (hr.salaries, at 03:00, with far more rows, and a
//! login from 127.0.0.2); statements that look like extraction are flagged
//! in their audit records and alerts, and ordinary ones are not.

mod common;

use common::guarded::{policy_dir, Guarded};
use common::{hr_database, pg};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const DB: &str = "baseline_hr";

const POLICY: &str = r#"
[classifications]
personal = ["hr.employees"]
pay = ["hr.salaries"]

[[rule]]
name = "analyst-reads"
roles = ["hr_analyst"]
on = ["hr.employees", "hr.salaries", "hr.departments"]
read = "allow"

[security]
large_fetch = 10000

[baseline]
learning_period = "1h"
min_statements = 20
alert_score = 0.8
cooldown = "1h"
volume_min_rows = 100
"#;

/// 300 employees, loaded once per test binary.
async fn hr() {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            hr_database(&pg(), DB, 300).await;
        })
        .await;
}

/// A proxy with [`POLICY`], baselines kept in `state`, the clock at `now`.
async fn start(policy: &Path, state: &Path, now: &str) -> Guarded {
    hr().await;
    let now = humantime::parse_rfc3339(now).expect("RFC 3339");
    let state = state.to_owned();
    Guarded::start(DB, policy, move |c| {
        c.policy.fixed_time = Some(now);
        c.baseline.path = Some(state);
        c.audit.log_full_text = true;
    })
    .await
}

/// Logs in as `role` from the local address `ip` (all of 127/8 is local).
async fn login_from(ip: &str, port: u16, role: &str) -> Client {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{ip}:0").parse().expect("address"))
        .expect("bind");
    let stream = sock
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let mut config = tokio_postgres::Config::new();
    config.user(role).password(role).dbname(DB);
    let (client, conn) = config
        .connect_raw(stream, NoTls)
        .await
        .unwrap_or_else(|e| panic!("login from {ip}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn alerts_of<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"]["kind"] == "alert" && r["pgwarden"]["alert"]["kind"] == kind)
        .collect()
}

fn rule<'a>(alerts: &[&'a Value], rule: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .copied()
        .filter(|a| a["pgwarden"]["alert"]["rule"] == rule)
        .collect()
}

fn saved(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("baseline file")).expect("JSON")
}

#[tokio::test]
async fn a_learnt_baseline_survives_a_restart_and_flags_another_pattern() {
    let policy = policy_dir(POLICY);
    let state_dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir.path().join("baselines.json");

    // Learning: Monday 10:00 UTC, one department's name at a time, from 127.0.0.1.
    let g = start(policy.path(), &state, "2026-11-23T10:00:00Z").await;
    let a = g.login("hr_analyst").await;
    for _ in 0..25 {
        a.simple_query("SELECT name FROM hr.departments WHERE id = 1")
            .await
            .expect("usual read");
    }
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = g.records().await;
    assert!(alerts_of(&records, "baseline_deviation").is_empty());
    assert!(alerts_of(&records, "new_address").is_empty());
    let learnt = saved(&state);
    let user = &learnt["users"]["hr_analyst"];
    assert_eq!(user["statements"], 25, "{learnt}");
    assert!(user["learned_at"].is_null(), "still learning: {user}");
    assert_eq!(user["addresses"]["127.0.0.1"], 1);
    let tables: Vec<&String> = user["tables"].as_object().unwrap().keys().collect();
    assert_eq!(tables, ["hr.departments"]);

    // A restart on Tuesday 03:00 UTC: learning is over (the period has
    // passed), nothing is learnt again, and the other pattern is flagged.
    let g = start(policy.path(), &state, "2026-11-24T03:00:00Z").await;
    let a = g.login("hr_analyst").await;
    for _ in 0..2 {
        a.simple_query("SELECT * FROM hr.salaries")
            .await
            .expect("unusual read");
    }
    let b = login_from("127.0.0.2", g.port, "hr_analyst").await;
    b.simple_query("SELECT 1").await.expect("second address");
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = g.records().await;
    let deviations = alerts_of(&records, "baseline_deviation");

    let table = rule(&deviations, "baseline.table");
    assert_eq!(table.len(), 1, "one alert per cooldown: {deviations:#?}");
    let t = &table[0]["pgwarden"]["alert"];
    assert_eq!(t["severity"], "warning");
    assert_eq!(t["user"], "hr_analyst");
    assert_eq!(t["evidence"]["seen"], "hr.salaries");
    assert_eq!(
        t["evidence"]["usual_tables"],
        serde_json::json!(["hr.departments"])
    );
    assert_eq!(t["evidence"]["score"], 1.0);

    let hour = rule(&deviations, "baseline.hour");
    assert_eq!(hour.len(), 1, "{deviations:#?}");
    let h = &hour[0]["pgwarden"]["alert"]["evidence"];
    assert_eq!(h["seen_hour_utc"], "03");
    assert_eq!(h["usual_hours_utc"], serde_json::json!(["10"]));

    let volume = rule(&deviations, "baseline.volume");
    assert_eq!(volume.len(), 1, "{deviations:#?}");
    let v = &volume[0]["pgwarden"]["alert"]["evidence"];
    assert_eq!(v["usual_max_rows_per_hour"], 25);
    assert!(v["rows_this_hour"].as_u64().unwrap() >= 300, "{v}");
    assert!(v["score"].as_f64().unwrap() >= 0.9, "{v}");

    let new = alerts_of(&records, "new_address");
    assert_eq!(new.len(), 1, "{new:#?}");
    let n = &new[0]["pgwarden"]["alert"];
    assert_eq!(n["rule"], "baseline.new_address");
    assert_eq!(n["evidence"]["seen"], "127.0.0.2");
    assert_eq!(
        n["evidence"]["usual_addresses"],
        serde_json::json!(["127.0.0.1"])
    );

    let after = saved(&state);
    let user = &after["users"]["hr_analyst"];
    assert_eq!(user["statements"], 25, "no new learning: {user}");
    assert!(user["learned_at"].is_u64(), "{user}");
    assert_eq!(user["addresses"]["127.0.0.2"], 1, "{user}");
}

/// The statement record whose full text (or, for extended-protocol
/// statements, normalized text) is `text`.
fn statement<'a>(records: &'a [Value], text: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["pgwarden"]["full_text"] == text)
        .or_else(|| records.iter().find(|r| r["db"]["query"]["text"] == text))
        .unwrap_or_else(|| panic!("no record of {text}"))
}

fn flags(r: &Value) -> Vec<&str> {
    r["pgwarden"]["flags"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn extraction_is_flagged_before_statements_run() {
    let policy = policy_dir(POLICY);
    hr().await;
    let g = Guarded::start(DB, policy.path(), |c| c.audit.log_full_text = true).await;
    let a = g.login("hr_analyst").await;
    let ordinary = [
        "SELECT * FROM hr.employees WHERE id = 1",
        "SELECT id FROM hr.employees LIMIT 5",
        "SELECT count(*) FROM hr.employees",
        "SELECT * FROM hr.departments WHERE id = 2",
    ];
    for sql in ordinary {
        a.simple_query(sql).await.expect(sql);
    }
    let suspicious = [
        ("SELECT * FROM hr.employees", "unfiltered_read"),
        // Shares its cached analysis with `LIMIT 5` above: the count is
        // read from this text.
        ("SELECT id FROM hr.employees LIMIT 1000000", "large_limit"),
        ("FETCH 100000 FROM c", "large_fetch"),
        ("COPY hr.employees TO STDOUT", "copy_to"),
    ];
    a.simple_query(suspicious[0].0).await.expect("select *");
    a.simple_query(suspicious[1].0).await.expect("limit");
    a.simple_query("BEGIN").await.unwrap();
    a.simple_query("DECLARE c CURSOR FOR SELECT id, first_name FROM hr.employees WHERE id > 0")
        .await
        .unwrap();
    a.simple_query(suspicious[2].0).await.expect("fetch");
    a.simple_query("COMMIT").await.unwrap();
    let rows = a.copy_out(suspicious[3].0).await.expect("copy");
    futures_util::pin_mut!(rows);
    let mut chunks = 0;
    while let Some(chunk) = futures_util::TryStreamExt::try_next(&mut rows)
        .await
        .expect("copy data")
    {
        assert!(!chunk.is_empty());
        chunks += 1;
    }
    assert!(chunks > 0);
    // `LIMIT $1`: the count arrives with Bind (binary int8 here).
    let limited = a
        .prepare("SELECT id FROM hr.employees LIMIT $1")
        .await
        .unwrap();
    assert_eq!(a.query(&limited, &[&10i64]).await.unwrap().len(), 10);
    a.query(&limited, &[&1_000_000i64]).await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = g.records().await;
    for sql in ordinary {
        assert!(
            flags(statement(&records, sql)).is_empty(),
            "{sql}: {}",
            statement(&records, sql)
        );
    }
    for (sql, flag) in suspicious {
        assert_eq!(flags(statement(&records, sql)), [flag], "{sql}");
    }
    let bound: Vec<&Value> = records
        .iter()
        .filter(|r| r["db"]["query"]["text"] == "SELECT id FROM hr.employees LIMIT $1")
        // Not the simple-protocol LIMIT 5 / LIMIT 1000000 above, which
        // normalize to the same text.
        .filter(|r| r["pgwarden"]["full_text"].is_null())
        .collect();
    assert_eq!(
        bound.iter().map(|r| flags(r)).collect::<Vec<_>>(),
        [vec![], vec!["large_limit"]],
        "LIMIT $1 records: {bound:#?}"
    );
    let alerts = alerts_of(&records, "extraction_suspected");
    assert_eq!(alerts.len(), 5, "{alerts:#?}");
    let by_flag = |f: &str| {
        alerts
            .iter()
            .find(|a| a["pgwarden"]["alert"]["evidence"]["flags"][0] == f)
            .map(|a| &a["pgwarden"]["alert"])
            .unwrap_or_else(|| panic!("no {f} alert"))
    };
    let limit = by_flag("large_limit");
    assert_eq!(limit["severity"], "warning");
    assert_eq!(limit["rule"], "security.extraction");
    assert_eq!(limit["action"], "alerted");
    assert_eq!(limit["evidence"]["limit"], 1_000_000);
    assert_eq!(
        limit["evidence"]["tables"],
        serde_json::json!(["hr.employees"])
    );
    assert_eq!(by_flag("large_fetch")["evidence"]["fetch"], 100_000);
    assert_eq!(
        by_flag("unfiltered_read")["evidence"]["tables"],
        serde_json::json!(["hr.employees"])
    );
}
