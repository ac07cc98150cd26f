//! Change capture: writes of captured columns through pgwarden record, per
//! changed row, the key and the old and new values, in the statement's
//! audit record, with how its transaction ended. Clients see exactly what
//! they would see without pgwarden.

mod common;

use common::guarded::{policy_dir, Guarded};
use common::raw::Raw;
use common::{hr_database, pg, SUPERUSER, TRUST_USER};
use serde_json::Value;
use std::collections::HashMap;
use tokio::sync::OnceCell;

const DB: &str = "capture_hr";

const POLICY: &str = r#"
[classifications]
restricted = ["hr.employees.ssn"]

[[rule]]
name = "everyone-everything"
roles = ["*"]
on = ["*"]
read = "allow"
write = "allow"

[capture]
changes = ["hr.salaries.amount", "hr.salaries.bonus", "hr.employees.phone", "hr.employees.ssn"]
"#;

async fn hr() {
    static LOADED: OnceCell<()> = OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            let su = hr_database(&pg(), DB, 50).await;
            // A role that may change amounts but not read them back.
            su.batch_execute(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'blind_clerk') THEN
                     CREATE ROLE blind_clerk LOGIN PASSWORD 'blind_clerk';
                   END IF;
                 END $$;
                 GRANT USAGE ON SCHEMA hr TO blind_clerk;
                 GRANT SELECT (employee_id, effective_from), UPDATE (amount)
                   ON hr.salaries TO blind_clerk;
                 GRANT USAGE ON SCHEMA hr TO trust_user;
                 GRANT INSERT ON hr.salaries TO trust_user;",
            )
            .await
            .expect("blind clerk");
        })
        .await;
}

async fn guarded() -> (Guarded, tempfile::TempDir) {
    hr().await;
    let dir = policy_dir(POLICY);
    (Guarded::start(DB, dir.path(), |_| {}).await, dir)
}

/// Statement records that carry changes, in log order.
fn changes(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["pgwarden"]["changes"].is_object())
        .collect()
}

fn amount(v: &Value) -> f64 {
    v.as_str().expect("text value").parse().expect("number")
}

#[tokio::test]
async fn simple_update_records_old_and_new_values_and_the_client_sees_no_rows() {
    let (g, _d) = guarded().await;
    let c = g.login("payroll").await;
    let su = common::superuser(&pg(), DB).await;
    let before: Vec<(String, f64)> = su
        .query(
            "SELECT effective_from::text, amount::float8 FROM hr.salaries WHERE employee_id = 3 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!before.is_empty());
    let msgs = c
        .simple_query("UPDATE hr.salaries SET amount = amount + 100 WHERE employee_id = 3 -- raise")
        .await
        .unwrap();
    // Only the CommandComplete: no rows, no row description.
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    match &msgs[0] {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => {
            assert_eq!(*n as usize, before.len())
        }
        m => panic!("unexpected {m:?}"),
    }
    drop(c);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 1, "{ch:?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(x["operation"], "update");
    assert_eq!(x["transaction"], "committed");
    assert_eq!(x["table"], "hr.salaries");
    assert_eq!(
        x["key_columns"],
        serde_json::json!(["employee_id", "effective_from"])
    );
    assert_eq!(x["columns"], serde_json::json!(["amount"]));
    let rows = x["rows"].as_array().unwrap();
    assert_eq!(rows.len(), before.len());
    for (row, (from, old)) in rows.iter().zip(&before) {
        assert_eq!(row["key"][0], "3");
        assert_eq!(row["key"][1].as_str(), Some(from.as_str()), "{x}");
        assert_eq!(amount(&row["old"]["amount"]), *old);
        assert_eq!(amount(&row["new"]["amount"]), old + 100.0);
    }
    assert_eq!(
        ch[0]["pgwarden"]["rows_affected"].as_u64(),
        Some(before.len() as u64)
    );
}

#[tokio::test]
async fn extended_protocol_with_parameters_and_returning() {
    let (g, _d) = guarded().await;
    let c = g.login("payroll").await;
    // The client's own RETURNING comes back as it asked, nothing more.
    let rows = c
        .query(
            "UPDATE hr.salaries SET bonus = $1::text::numeric WHERE employee_id = $2 \
             RETURNING employee_id, bonus::text",
            &[&"1234", &4i32],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r.columns().len(), 2);
        assert_eq!(r.get::<_, i32>(0), 4);
        assert_eq!(r.get::<_, String>(1), "1234.00");
    }
    // A prepared write describes no result columns, as without pgwarden.
    let st = c
        .prepare(
            "UPDATE hr.salaries SET amount = amount * $1::text::numeric WHERE employee_id = $2",
        )
        .await
        .unwrap();
    assert!(st.columns().is_empty());
    assert_eq!(st.params().len(), 2);
    let n = c.execute(&st, &[&"2", &5i32]).await.unwrap();
    assert!(n > 0);
    drop(c);
    let records = g.records().await;
    let ch = changes(&records);
    assert!(ch.len() >= 2, "{ch:?}");
    let bonus = &ch[0]["pgwarden"]["changes"];
    assert_eq!(bonus["columns"], serde_json::json!(["bonus"]));
    assert_eq!(bonus["rows"].as_array().unwrap().len(), rows.len());
    for r in bonus["rows"].as_array().unwrap() {
        assert_eq!(r["new"]["bonus"], "1234.00");
        assert!(r["old"]["bonus"].is_string());
    }
    let doubled = &ch.last().unwrap()["pgwarden"]["changes"];
    for r in doubled["rows"].as_array().unwrap() {
        assert_eq!(
            amount(&r["new"]["amount"]),
            2.0 * amount(&r["old"]["amount"])
        );
    }
}

#[tokio::test]
async fn rolled_back_changes_are_recorded_as_rolled_back() {
    let (g, _d) = guarded().await;
    let c = g.login("payroll").await;
    c.batch_execute(
        "BEGIN;
         UPDATE hr.salaries SET bonus = 1 WHERE employee_id = 6;
         ROLLBACK;
         BEGIN;
         UPDATE hr.salaries SET bonus = 2 WHERE employee_id = 7;
         SAVEPOINT a;
         UPDATE hr.salaries SET bonus = 3 WHERE employee_id = 8;
         SAVEPOINT b;
         UPDATE hr.salaries SET bonus = 4 WHERE employee_id = 9;
         ROLLBACK TO SAVEPOINT a;
         UPDATE hr.salaries SET bonus = 5 WHERE employee_id = 10;
         COMMIT;",
    )
    .await
    .unwrap();
    // An implicit transaction that fails rolls back its earlier statement.
    let e = c
        .batch_execute("UPDATE hr.salaries SET bonus = 6 WHERE employee_id = 11; SELECT 1/0")
        .await;
    assert!(e.is_err());
    drop(c);
    let records = g.records().await;
    let by_bonus: HashMap<String, String> = changes(&records)
        .iter()
        .map(|r| {
            let x = &r["pgwarden"]["changes"];
            (
                x["rows"][0]["new"]["bonus"].as_str().unwrap().to_owned(),
                x["transaction"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("1.00", "rolled_back"),
        ("2.00", "committed"),
        ("3.00", "rolled_back"),
        ("4.00", "rolled_back"),
        ("5.00", "committed"),
        ("6.00", "rolled_back"),
    ];
    for (bonus, outcome) in want {
        assert_eq!(
            by_bonus.get(bonus).map(String::as_str),
            Some(outcome),
            "{by_bonus:?}"
        );
    }
}

#[tokio::test]
async fn inserts_and_deletes_and_hashed_restricted_values() {
    let (g, _d) = guarded().await;
    let su = common::connect(g.port, SUPERUSER.0, SUPERUSER.1, DB).await;
    su.batch_execute(
        "INSERT INTO hr.salaries (employee_id, amount, effective_from) VALUES (12, 777, '2031-01-01');
         DELETE FROM hr.salaries WHERE employee_id = 12 AND effective_from = '2031-01-01';
         UPDATE hr.employees SET ssn = '999-99-9999', phone = '555-0100' WHERE id = 13;",
    )
    .await
    .unwrap();
    drop(su);
    let records = g.records().await;
    let ch: Vec<&Value> = changes(&records)
        .into_iter()
        .map(|r| &r["pgwarden"]["changes"])
        .collect();
    assert_eq!(ch.len(), 3, "{ch:?}");
    assert_eq!(ch[0]["operation"], "insert");
    assert_eq!(ch[0]["rows"][0]["new"]["amount"], "777.00");
    assert_eq!(
        ch[0]["rows"][0]["key"],
        serde_json::json!(["12", "2031-01-01"])
    );
    assert!(ch[0]["rows"][0]["old"].is_null());
    assert_eq!(ch[1]["operation"], "delete");
    // A deleted row loses every captured column.
    assert_eq!(ch[1]["columns"], serde_json::json!(["amount", "bonus"]));
    assert_eq!(ch[1]["rows"][0]["old"]["amount"], "777.00");
    assert_eq!(ch[2]["table"], "hr.employees");
    let row = &ch[2]["rows"][0];
    assert_eq!(row["new"]["phone"], "555-0100");
    for v in [&row["old"]["ssn"], &row["new"]["ssn"]] {
        let s = v.as_str().unwrap();
        // A keyed hash: 64 hex digits (which may hold "999" by chance),
        // never the value itself.
        let hex = s.strip_prefix("hmac-sha256:").unwrap_or_default();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{s}"
        );
    }
    assert_ne!(row["old"]["ssn"], row["new"]["ssn"]);
}

#[tokio::test]
async fn a_role_that_cannot_read_back_still_writes_and_the_record_says_why() {
    let (g, _d) = guarded().await;
    let c = g.login("blind_clerk").await;
    let n = c
        .execute(
            "UPDATE hr.salaries SET amount = 1000 WHERE employee_id = 14",
            &[],
        )
        .await
        .unwrap();
    assert!(n > 0);
    drop(c);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 1);
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["status"], "unavailable");
    assert!(
        x["reason"].as_str().unwrap().contains("may not read back"),
        "{x}"
    );
}

#[tokio::test]
async fn concurrent_writers_with_rollbacks_chain_exactly() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    let start: f64 = su
        .query_one(
            "SELECT amount::float8 FROM hr.salaries WHERE employee_id = 15 ORDER BY effective_from LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let first: String = su
        .query_one(
            "SELECT effective_from::text FROM hr.salaries WHERE employee_id = 15 ORDER BY effective_from LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = g.login("payroll").await;
        let first = first.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                c.batch_execute("BEGIN").await.unwrap();
                c.execute(
                    "UPDATE hr.salaries SET amount = amount + 1 WHERE employee_id = 15 AND effective_from = $1::text::date",
                    &[&first],
                )
                .await
                .unwrap();
                // Every other transaction rolls back.
                let end = if i % 2 == 0 { "COMMIT" } else { "ROLLBACK" };
                c.batch_execute(end).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end: f64 = su
        .query_one(
            "SELECT amount::float8 FROM hr.salaries WHERE employee_id = 15 AND effective_from = $1::text::date",
            &[&first],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(end, start + 52.0);
    let records = g.records().await;
    let chain: Vec<(&str, f64, f64)> = changes(&records)
        .into_iter()
        .map(|r| {
            let x = &r["pgwarden"]["changes"];
            let row = &x["rows"][0];
            let (old, new) = (amount(&row["old"]["amount"]), amount(&row["new"]["amount"]));
            (x["transaction"].as_str().unwrap_or("?"), old, new)
        })
        .collect();
    assert_chain(&chain, start);
}

/// Four writers' 100 transactions on one row, every other one rolled back:
/// 48 records `rolled_back`, each change adds 1, and the old values the 52
/// committed ones replaced are exactly start, start + 1, ... (a stale
/// pre-image would repeat one and skip another). `changes` holds
/// (transaction outcome, old, new) per record.
fn assert_chain(changes: &[(&str, f64, f64)], start: f64) {
    let mut olds: Vec<f64> = Vec::new();
    let mut rolled_back = 0;
    for &(outcome, old, new) in changes {
        assert_eq!(new, old + 1.0, "{outcome}: {old} -> {new}");
        match outcome {
            "committed" => olds.push(old),
            "rolled_back" => rolled_back += 1,
            o => panic!("unexpected outcome {o:?}"),
        }
    }
    assert_eq!(rolled_back, 48);
    olds.sort_by(f64::total_cmp);
    let want: Vec<f64> = (0..52).map(|i| start + f64::from(i)).collect();
    assert_eq!(olds, want);
}

#[tokio::test]
async fn concurrent_upserts_with_rollbacks_chain_exactly() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    su.execute(
        "INSERT INTO hr.salaries (employee_id, effective_from, amount) VALUES (16, '2036-01-01', 100)",
        &[],
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = g.login("payroll").await;
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                c.batch_execute("BEGIN").await.unwrap();
                c.execute(
                    "INSERT INTO hr.salaries (employee_id, effective_from, amount) \
                     VALUES ($1, $2::text::date, 1) ON CONFLICT (employee_id, effective_from) \
                     DO UPDATE SET amount = hr.salaries.amount + 1",
                    &[&16i32, &"2036-01-01"],
                )
                .await
                .unwrap();
                let end = if i % 2 == 0 { "COMMIT" } else { "ROLLBACK" };
                c.batch_execute(end).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end: f64 = su
        .query_one(
            "SELECT amount::float8 FROM hr.salaries WHERE employee_id = 16 AND effective_from = '2036-01-01'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(end, 152.0);
    let records = g.records().await;
    let chain: Vec<(&str, f64, f64)> = changes(&records)
        .into_iter()
        .map(|r| {
            let x = &r["pgwarden"]["changes"];
            let row = &x["rows"][0];
            assert_eq!(row["action"], "updated", "{x}");
            let (old, new) = (amount(&row["old"]["amount"]), amount(&row["new"]["amount"]));
            (x["transaction"].as_str().unwrap_or("?"), old, new)
        })
        .collect();
    // The old value each committed upsert replaced: 100, 101, ... 151.
    assert_chain(&chain, 100.0);
}

#[tokio::test]
async fn upserts_record_inserted_and_updated_rows_with_old_values() {
    let (g, _d) = guarded().await;
    let c = g.login("payroll").await;
    let su = common::superuser(&pg(), DB).await;
    let old: f64 = su
        .query_one(
            "SELECT amount::float8 FROM hr.salaries WHERE employee_id = 5 ORDER BY effective_from DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let since: String = su
        .query_one(
            "SELECT max(effective_from)::text FROM hr.salaries WHERE employee_id = 5",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // One row updated (the current salary), one inserted; parameters.
    let n = c
        .execute(
            "INSERT INTO hr.salaries (employee_id, effective_from, amount) \
             VALUES ($1, $2::text::date, 90000), ($1, '2031-01-01', 91000) \
             ON CONFLICT (employee_id, effective_from) DO UPDATE SET amount = EXCLUDED.amount",
            &[&5i32, &since],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    // A conflict target the pre-image cannot follow: updated, old unknown.
    c.batch_execute(
        "INSERT INTO hr.salaries (employee_id, effective_from, amount) \
         SELECT 5, '2031-01-01'::date, 92000 \
         ON CONFLICT (employee_id, effective_from) DO UPDATE SET amount = EXCLUDED.amount",
    )
    .await
    .unwrap();
    drop(c);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 2, "{ch:#?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["operation"], "insert_or_update", "{x}");
    assert_eq!(x["transaction"], "committed");
    assert!(x["old_values"].is_null(), "{x}");
    let rows = x["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{x}");
    assert_eq!(rows[0]["action"], "updated");
    assert_eq!(rows[0]["key"], serde_json::json!(["5", since]));
    assert!(rows[0]["old"]["amount"].is_string(), "{x}");
    assert_eq!(amount(&rows[0]["old"]["amount"]), old);
    assert_eq!(amount(&rows[0]["new"]["amount"]), 90000.0);
    assert_eq!(rows[1]["action"], "inserted");
    assert!(rows[1].get("old").is_none(), "{x}");
    assert_eq!(amount(&rows[1]["new"]["amount"]), 91000.0);
    let y = &ch[1]["pgwarden"]["changes"];
    assert!(y["old_values"].is_string(), "{y}");
    let row = &y["rows"][0];
    assert_eq!(row["action"], "updated", "{y}");
    assert!(row["old"].is_null(), "{y}");
    assert_eq!(amount(&row["new"]["amount"]), 92000.0);
}

/// `n` salary rows of COPY text data and what their capture records:
/// (key, new amount, new bonus).
fn copy_rows(n: usize, from: u32, csv: bool) -> (String, Vec<(Value, String, Option<String>)>) {
    let mut data = String::new();
    let mut want = Vec::new();
    for i in 0..n {
        let id = 20 + i % 10;
        let day = format!("{from}-{:02}-{:02}", 1 + i / 28, 1 + i % 28);
        let amount = format!("{}.{:02}", 1000 + i, i % 100);
        let key = serde_json::json!([id.to_string(), day]);
        if csv {
            // Quoted fields, one with the delimiter quoted away, no bonus.
            data.push_str(&format!("{id},\"{day}\",\"{amount}\"\n"));
            want.push((key, amount, None));
        } else {
            // bonus is NOT NULL: always given.
            let bonus = (i % 7).to_string();
            data.push_str(&format!("{id}\t{amount}\t{bonus}\t{day}\n"));
            want.push((key, amount, Some(bonus)));
        }
    }
    (data, want)
}

fn assert_copy_rows(x: &Value, want: &[(Value, String, Option<String>)]) {
    let rows = x["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), want.len(), "{x}");
    assert_eq!(x["rows_total"].as_u64(), Some(want.len() as u64));
    assert_eq!(x["rows_omitted"].as_u64(), Some(0));
    assert!(x.get("rows_unreadable").is_none(), "{x}");
    for (row, (key, amount, bonus)) in rows.iter().zip(want) {
        assert_eq!(&row["key"], key);
        assert!(row.get("old").is_none(), "{row}");
        let mut new = serde_json::json!({ "amount": amount });
        if let Some(b) = bonus {
            new["bonus"] = Value::String(b.clone());
        }
        assert_eq!(row["new"], new, "{row}");
    }
}

#[tokio::test]
async fn copy_from_stdin_rows_are_captured_in_text_and_csv() {
    use futures_util::SinkExt;
    let (g, _d) = guarded().await;
    let c = g.login("payroll").await;
    // Text, committed; two CopyData messages (each over tokio-postgres'
    // 4 KiB batching) split inside a row.
    let (text, want_text) = copy_rows(250, 2041, false);
    let cut = 4500;
    assert!(!text[..cut].ends_with('\n'));
    c.batch_execute("BEGIN").await.unwrap();
    let sink = c
        .copy_in("COPY hr.salaries (employee_id, amount, bonus, effective_from) FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(text[..cut].to_owned()))
        .await
        .unwrap();
    sink.send(bytes::Bytes::from(text[cut..].to_owned()))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 250);
    c.batch_execute("COMMIT").await.unwrap();
    // CSV with a header, rolled back.
    let (csv, want_csv) = copy_rows(30, 2042, true);
    c.batch_execute("BEGIN").await.unwrap();
    let sink = c
        .copy_in(
            "COPY hr.salaries (employee_id, effective_from, amount) FROM STDIN \
             WITH (FORMAT csv, HEADER)",
        )
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    let data = format!("employee_id,effective_from,amount\n{csv}");
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 30);
    c.batch_execute("ROLLBACK").await.unwrap();
    drop(c);
    let su = common::superuser(&pg(), DB).await;
    let kept: i64 = su
        .query_one(
            "SELECT count(*) FROM hr.salaries WHERE effective_from BETWEEN '2041-01-01' AND '2042-12-31'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 250);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 2, "{ch:?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(x["operation"], "insert");
    assert_eq!(x["transaction"], "committed");
    assert_eq!(x["table"], "hr.salaries");
    assert_eq!(
        x["key_columns"],
        serde_json::json!(["employee_id", "effective_from"])
    );
    assert_eq!(x["columns"], serde_json::json!(["amount", "bonus"]));
    assert_copy_rows(x, &want_text);
    assert_eq!(ch[0]["pgwarden"]["rows_affected"].as_u64(), Some(250));
    let x = &ch[1]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(x["transaction"], "rolled_back");
    assert_eq!(x["columns"], serde_json::json!(["amount"]));
    assert_copy_rows(x, &want_csv);
}

#[tokio::test]
async fn copy_from_a_server_file_is_unavailable_and_a_failed_copy_rolls_back() {
    use futures_util::SinkExt;
    let (g, _d) = guarded().await;
    let su = common::connect(g.port, SUPERUSER.0, SUPERUSER.1, DB).await;
    // The file does not exist: the statement fails, the record says why
    // nothing was captured.
    let e = su
        .batch_execute("COPY hr.salaries (employee_id, amount, effective_from) FROM '/nonexistent/pgwarden.csv'")
        .await;
    assert!(e.is_err());
    // A bad row: PostgreSQL rejects the COPY; the rows read before it are
    // recorded as rolled back, the bad one as unreadable.
    let sink = su
        .copy_in("COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"24\t5.5\t2043-01-01\n24\t6\n"))
        .await
        .unwrap();
    assert!(sink.finish().await.is_err());
    drop(su);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 2, "{ch:?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["status"], "unavailable", "{x}");
    assert!(x["reason"].as_str().unwrap().contains("server file"), "{x}");
    let x = &ch[1]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(x["transaction"], "rolled_back");
    assert_eq!(x["rows_total"].as_u64(), Some(2));
    assert_eq!(x["rows_unreadable"].as_u64(), Some(1));
    assert_eq!(
        x["rows"],
        serde_json::json!([{ "key": ["24", "2043-01-01"], "new": { "amount": "5.5" } }])
    );
}

#[tokio::test]
async fn binary_copy_over_the_simple_protocol() {
    let (g, _d) = guarded().await;
    let mut raw = Raw::login_trust(g.port, TRUST_USER, DB).await;
    let mut q =
        b"COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN (FORMAT binary)"
            .to_vec();
    q.push(0);
    raw.send_msg(b'Q', &q).await;
    let m = raw.recv().await.expect("CopyInResponse");
    assert_eq!(m.tag, b'G', "{:?}", m.sqlstate());
    let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
    data.extend_from_slice(&[0; 8]);
    for (id, day) in [(25i32, 16_071i32), (26, 16_072)] {
        data.extend_from_slice(&3i16.to_be_bytes());
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(&id.to_be_bytes());
        // numeric 12.50: 2 digits, weight 0, positive, scale 2: 12 5000.
        data.extend_from_slice(&12i32.to_be_bytes());
        for w in [2u16, 0, 0, 2, 12, 5000] {
            data.extend_from_slice(&w.to_be_bytes());
        }
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(&day.to_be_bytes());
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    // Three CopyData messages, cut inside the header and inside a tuple.
    for piece in [&data[..7], &data[7..40], &data[40..]] {
        raw.send_msg(b'd', piece).await;
    }
    raw.send_msg(b'c', &[]).await;
    let done = raw.recv().await.expect("CommandComplete");
    assert_eq!(done.tag, b'C', "{:?}", done.field(b'M'));
    assert_eq!(done.body, b"COPY 2\0");
    raw.recv_until(b'Z').await.expect("ReadyForQuery");
    raw.send_msg(b'X', &[]).await;
    drop(raw);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 1, "{ch:?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(x["transaction"], "committed");
    assert!(x.get("note").is_none(), "{x}");
    assert_eq!(
        x["rows"],
        serde_json::json!([
            { "key": ["25", "2044-01-01"], "new": { "amount": "12.50" } },
            { "key": ["26", "2044-01-02"], "new": { "amount": "12.50" } },
        ])
    );
}

/// A MERGE over salaries of `employee`: updates 1000 → 1100, deletes the
/// 2000 row, leaves the 3000 row (no WHEN matches it), inserts 4000.
fn merge_text(employee: i32, year: i32) -> String {
    format!(
        "MERGE INTO hr.salaries AS s \
         USING (VALUES ({employee}, '{year}-01-01'::date, 1100), ({employee}, '{year}-02-01'::date, 0), \
                       ({employee}, '{year}-03-01'::date, -1), ({employee}, '{year}-04-01'::date, 4000)) \
               AS v (e, f, a) \
         ON s.employee_id = v.e AND s.effective_from = v.f \
         WHEN MATCHED AND v.a = 0 THEN DELETE \
         WHEN MATCHED AND v.a > 0 THEN UPDATE SET amount = v.a \
         WHEN NOT MATCHED AND v.a > 0 THEN INSERT (employee_id, effective_from, amount) \
              VALUES (v.e, v.f, v.a)"
    )
}

async fn merge_rows(su: &tokio_postgres::Client, employee: i32, year: i32) {
    su.batch_execute(&format!(
        "DELETE FROM hr.salaries WHERE employee_id = {employee} AND effective_from >= '{year}-01-01';
         INSERT INTO hr.salaries (employee_id, effective_from, amount) VALUES
           ({employee}, '{year}-01-01', 1000), ({employee}, '{year}-02-01', 2000),
           ({employee}, '{year}-03-01', 3000);"
    ))
    .await
    .unwrap();
}

/// The rows of a MERGE record by action: (key date, old amount, new amount).
fn merge_actions(x: &Value) -> Vec<(String, String, Option<f64>, Option<f64>)> {
    x["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("?").to_owned(),
                r["key"][1].as_str().unwrap_or("?").to_owned(),
                r.get("old").map(|o| amount(&o["amount"])),
                r.get("new").map(|n| amount(&n["amount"])),
            )
        })
        .collect()
}

#[tokio::test]
async fn merge_records_updated_deleted_and_inserted_rows() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    merge_rows(&su, 40, 2040).await;
    merge_rows(&su, 41, 2041).await;
    let c = g.login("payroll").await;
    let msgs = c.simple_query(&merge_text(40, 2040)).await.unwrap();
    // Exactly what PostgreSQL answers a MERGE: its CommandComplete.
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        matches!(
            msgs[0],
            tokio_postgres::SimpleQueryMessage::CommandComplete(3)
        ),
        "{msgs:?}"
    );
    // Around other statements of one Query, and with pgwarden's setting
    // gone once the transaction ends.
    let msgs = c
        .simple_query(&format!(
            "SELECT 1 AS a; {}; SELECT pg_catalog.current_setting('pgwarden.merge', true) AS b",
            merge_text(41, 2041)
        ))
        .await
        .unwrap();
    let rows: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec!["1".to_owned(), String::new()], "{msgs:?}");
    let done: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![1, 3, 1], "{msgs:?}");
    let left: Vec<(String, f64)> = su
        .query(
            "SELECT effective_from::text, amount::float8 FROM hr.salaries \
             WHERE employee_id = 40 AND effective_from >= '2040-01-01' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        left,
        vec![
            ("2040-01-01".to_owned(), 1100.0),
            ("2040-03-01".to_owned(), 3000.0),
            ("2040-04-01".to_owned(), 4000.0)
        ]
    );
    drop(c);
    let records = g.records().await;
    let merges: Vec<&Value> = changes(&records)
        .into_iter()
        .filter(|r| r["pgwarden"]["changes"]["operation"] == "merge")
        .collect();
    assert_eq!(merges.len(), 2, "{merges:#?}");
    for (m, year) in merges.iter().zip([2040, 2041]) {
        let x = &m["pgwarden"]["changes"];
        assert_eq!(x["status"], "captured", "{x}");
        assert_eq!(x["transaction"], "committed", "{x}");
        assert!(x.get("incomplete").is_none(), "{x}");
        assert_eq!(x["rows_total"], 3, "{x}");
        assert_eq!(
            merge_actions(x),
            vec![
                (
                    "updated".into(),
                    format!("{year}-01-01"),
                    Some(1000.0),
                    Some(1100.0)
                ),
                (
                    "deleted".into(),
                    format!("{year}-02-01"),
                    Some(2000.0),
                    None
                ),
                (
                    "inserted".into(),
                    format!("{year}-04-01"),
                    None,
                    Some(4000.0)
                ),
            ],
            "{x}"
        );
        assert_eq!(m["pgwarden"]["statement_kind"], "merge", "{m}");
    }
}

#[tokio::test]
async fn merge_in_savepoints_and_over_the_extended_protocol() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    merge_rows(&su, 42, 2042).await;
    let c = g.login("payroll").await;
    // The first MERGE is undone by ROLLBACK TO; the second, in a
    // subtransaction of its own, commits (its inserted row has the
    // subtransaction's xid).
    c.batch_execute(&format!(
        "BEGIN; SAVEPOINT a; {m}; ROLLBACK TO a; SAVEPOINT b; {m}; RELEASE b; COMMIT",
        m = merge_text(42, 2042)
    ))
    .await
    .unwrap();
    // Over the extended protocol, with parameters (binary, as tokio-postgres
    // sends them): pgwarden's images run beside the prepared MERGE.
    merge_rows(&su, 43, 2043).await;
    let typed = "MERGE INTO hr.salaries AS s \
                 USING (VALUES ($1::int, $2::text::date, $3::text::numeric), ($1, $4::text::date, 0)) \
                       AS v (e, f, a) \
                 ON s.employee_id = v.e AND s.effective_from = v.f \
                 WHEN MATCHED AND v.a = 0 THEN DELETE \
                 WHEN MATCHED THEN UPDATE SET amount = v.a \
                 WHEN NOT MATCHED THEN INSERT (employee_id, effective_from, amount) \
                      VALUES (v.e, v.f, v.a)";
    let m = c.prepare(typed).await.unwrap();
    let amount = "1300";
    let n = c
        .execute(&m, &[&43i32, &"2043-01-01", &amount, &"2043-02-01"])
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Again, in a transaction rolled back: a row deleted, one inserted.
    c.batch_execute("BEGIN").await.unwrap();
    let n = c
        .execute(&m, &[&43i32, &"2043-05-01", &amount, &"2043-03-01"])
        .await
        .unwrap();
    assert_eq!(n, 2);
    c.batch_execute("ROLLBACK").await.unwrap();
    // The session is in step: a plain query still answers.
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // A parameter outside USING and ON: the images could not type it.
    c.execute(
        "MERGE INTO hr.salaries AS s USING (SELECT 43 AS e) AS v ON s.employee_id = v.e \
         AND s.effective_from = '2043-03-01' WHEN MATCHED THEN UPDATE SET amount = $1::int",
        &[&3500i32],
    )
    .await
    .unwrap();
    // A failing execution: the client gets PostgreSQL's error (raised in
    // pgwarden's pre-image here, as the MERGE would raise it) and the
    // session goes on.
    let e = c
        .execute(&m, &[&43i32, &"not a date", &amount, &"2043-03-01"])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_DATETIME_FORMAT)
    );
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(c);
    let records = g.records().await;
    let merges: Vec<&Value> = changes(&records)
        .into_iter()
        .filter(|r| r["pgwarden"]["statement_kind"] == "merge")
        .collect();
    assert_eq!(merges.len(), 6, "{merges:#?}");
    let outcomes: Vec<&str> = merges
        .iter()
        .map(|m| {
            m["pgwarden"]["changes"]["transaction"]
                .as_str()
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "rolled_back",
            "committed",
            "committed",
            "rolled_back",
            "committed",
            "rolled_back"
        ]
    );
    for m in &merges[..2] {
        let x = &m["pgwarden"]["changes"];
        let actions: Vec<String> = merge_actions(x).into_iter().map(|a| a.0).collect();
        assert_eq!(actions, ["updated", "deleted", "inserted"], "{x}");
        assert!(x.get("incomplete").is_none(), "{x}");
    }
    let x = &merges[2]["pgwarden"]["changes"];
    assert_eq!(x["status"], "captured", "{x}");
    assert_eq!(
        merge_actions(x),
        vec![
            (
                "updated".into(),
                "2043-01-01".into(),
                Some(1000.0),
                Some(1300.0)
            ),
            ("deleted".into(), "2043-02-01".into(), Some(2000.0), None),
        ],
        "{x}"
    );
    let x = &merges[3]["pgwarden"]["changes"];
    assert_eq!(
        merge_actions(x),
        vec![
            ("deleted".into(), "2043-03-01".into(), Some(3000.0), None),
            ("inserted".into(), "2043-05-01".into(), None, Some(1300.0))
        ],
        "{x}"
    );
    let x = &merges[4]["pgwarden"]["changes"];
    assert_eq!(x["status"], "unavailable", "{x}");
    assert!(
        x["reason"]
            .as_str()
            .unwrap_or("")
            .contains("parameter outside"),
        "{x}"
    );
}

#[tokio::test]
async fn concurrent_merges_with_rollbacks_chain_exactly() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    su.batch_execute(
        "DELETE FROM hr.salaries WHERE employee_id = 44 AND effective_from = '2044-01-01';
         INSERT INTO hr.salaries (employee_id, effective_from, amount) VALUES (44, '2044-01-01', 100)",
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = g.login("payroll").await;
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let end = if i % 2 == 0 { "COMMIT" } else { "ROLLBACK" };
                c.batch_execute(&format!(
                    "BEGIN; MERGE INTO hr.salaries s USING (SELECT 44 AS e, '2044-01-01'::date AS f) v \
                     ON s.employee_id = v.e AND s.effective_from = v.f \
                     WHEN MATCHED THEN UPDATE SET amount = s.amount + 1; {end}"
                ))
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end: f64 = su
        .query_one(
            "SELECT amount::float8 FROM hr.salaries WHERE employee_id = 44 AND effective_from = '2044-01-01'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(end, 152.0);
    let records = g.records().await;
    let chain: Vec<(&str, f64, f64)> = changes(&records)
        .into_iter()
        .map(|r| {
            let x = &r["pgwarden"]["changes"];
            assert_eq!(x["operation"], "merge", "{x}");
            let rows = merge_actions(x);
            assert_eq!(rows.len(), 1, "{x}");
            let (action, _, old, new) = &rows[0];
            assert_eq!(action, "updated");
            let old = old.expect("old value");
            let new = new.expect("new value");
            (x["transaction"].as_str().unwrap_or("?"), old, new)
        })
        .collect();
    assert_chain(&chain, 100.0);
}

#[tokio::test]
async fn a_merge_whose_rows_cannot_all_be_found_says_so() {
    let (g, _d) = guarded().await;
    let su = common::superuser(&pg(), DB).await;
    su.batch_execute(
        "DELETE FROM hr.salaries WHERE employee_id = 45 AND effective_from >= '2045-01-01'",
    )
    .await
    .unwrap();
    let c = g.login("payroll").await;
    // The row inserted does not match the ON condition afterwards (its date
    // is a day later than the source's): the post-image cannot see it.
    c.batch_execute(
        "MERGE INTO hr.salaries AS s USING (SELECT 45 AS e, '2045-01-01'::date AS f) AS v \
         ON s.employee_id = v.e AND s.effective_from = v.f \
         WHEN NOT MATCHED THEN INSERT (employee_id, effective_from, amount) \
              VALUES (v.e, v.f + 1, 500)",
    )
    .await
    .unwrap();
    drop(c);
    let records = g.records().await;
    let ch = changes(&records);
    assert_eq!(ch.len(), 1, "{ch:#?}");
    let x = &ch[0]["pgwarden"]["changes"];
    assert_eq!(x["operation"], "merge", "{x}");
    assert_eq!(
        x["incomplete"], "MERGE changed 1 rows; pgwarden identified 0",
        "{x}"
    );
    assert_eq!(x["rows"], serde_json::json!([]), "{x}");
}
