//! Column-level policies end to end: the demo policy (policies/hr.toml) in
//! front of the HR demo database, driven by tokio-postgres in the simple and
//! the extended protocol, by psql, and by `pgwarden policy ...`.
//!
//! All tests share one HR database (read-only, or writes rolled back) and
//! start their own proxy.

mod common;

use common::guarded::Guarded;
use common::{crate_path, hr_database, pg, Pg, SUPERUSER};
use pgwarden::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

const DB: &str = "policy_hr";

/// The HR database, loaded once per test binary.
async fn hr(pg: &Pg) {
    static LOADED: OnceCell<()> = OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            let su = hr_database(pg, DB, 300).await;
            // Roles that hold hr_admin and may switch to hr_analyst, one per
            // test that switches (so tests never race on memberships).
            for r in ["switch_a", "switch_b"] {
                su.batch_execute(&format!(
                    "DROP ROLE IF EXISTS {r}; CREATE ROLE {r} LOGIN PASSWORD '{r}' IN ROLE hr_admin, hr_analyst; \
                     GRANT CONNECT ON DATABASE {DB} TO {r}"
                ))
                .await
                .expect("switch role");
            }
        })
        .await;
}

/// A proxy with `policy` in front of the HR database (loaded first).
async fn guarded(policy: &Path, tweak: impl FnOnce(&mut Config)) -> Guarded {
    hr(&pg()).await;
    Guarded::start(DB, policy, |c| {
        c.policy.hash_key = Some("test-key".into());
        tweak(c);
    })
    .await
}

/// Statement records only.
fn statements(records: Vec<Value>) -> Vec<Value> {
    records
        .into_iter()
        .filter(|r| r["event"]["action"] == "statement")
        .collect()
}

fn demo_policy() -> PathBuf {
    crate_path("policies")
}

/// Asserts a pgwarden refusal: SQLSTATE 42501 naming `column`.
fn assert_refused(e: &tokio_postgres::Error, column: &str, sql: &str) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
    assert_eq!(db.code().code(), "42501", "{sql}: {}", db.message());
    assert!(
        db.message().contains(column),
        "{sql}: message should name {column}: {}",
        db.message()
    );
}

async fn simple_rows(
    c: &Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let msgs = c.simple_query(sql).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect())
}

/// Refused in both protocols, and the session goes on.
async fn refused_both(c: &Client, sql: &str, column: &str) {
    let e = c.simple_query(sql).await.expect_err(sql);
    assert_refused(&e, column, sql);
    let e = c.query(sql, &[]).await.expect_err(sql);
    assert_refused(&e, column, sql);
    let one = c
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("session usable");
    assert_eq!(one.get::<_, i32>(0), 1);
}

async fn allowed_both(c: &Client, sql: &str) {
    if let Err(e) = c.simple_query(sql).await {
        panic!("{sql} (simple): {e:?}");
    }
    if let Err(e) = c.query(sql, &[]).await {
        panic!("{sql} (extended): {e:?}");
    }
}

#[tokio::test]
async fn demo_rules_allow_deny_in_both_protocols() {
    let g = guarded(&demo_policy(), |_| {}).await;
    let admin = g.login("hr_admin").await;
    allowed_both(
        &admin,
        "SELECT ssn, bank_account, date_of_birth FROM hr.employees",
    )
    .await;
    allowed_both(&admin, "SELECT condition FROM hr.health_records").await;

    let payroll = g.login("payroll").await;
    allowed_both(
        &payroll,
        "SELECT employee_id, amount, bonus FROM hr.salaries",
    )
    .await;
    allowed_both(&payroll, "SELECT bank_account FROM hr.employees").await;
    refused_both(
        &payroll,
        "SELECT condition FROM hr.health_records",
        "hr.health_records.condition",
    )
    .await;

    let analyst = g.login("hr_analyst").await;
    allowed_both(
        &analyst,
        "SELECT first_name, job_title, hire_date FROM hr.employees",
    )
    .await;
    refused_both(&analyst, "SELECT ssn FROM hr.employees", "hr.employees.ssn").await;
    refused_both(
        &analyst,
        "SELECT bank_account FROM hr.employees",
        "hr.employees.bank_account",
    )
    .await;
    refused_both(
        &analyst,
        "SELECT notes FROM hr.health_records",
        "hr.health_records.notes",
    )
    .await;
    refused_both(
        &analyst,
        "UPDATE hr.salaries SET bonus = 0 WHERE employee_id = -1",
        "hr.salaries.bonus",
    )
    .await;

    let manager = g.login("manager_app").await;
    allowed_both(
        &manager,
        "SELECT id, first_name, last_name, email, phone FROM hr.employee_directory",
    )
    .await;
    allowed_both(&manager, "SELECT rating FROM hr.performance_reviews").await;
    refused_both(
        &manager,
        "SELECT hire_date FROM hr.employees",
        "hr.employees.hire_date",
    )
    .await;
    refused_both(
        &manager,
        "SELECT amount FROM hr.salaries",
        "hr.salaries.amount",
    )
    .await;
    refused_both(
        &manager,
        "DELETE FROM hr.salaries WHERE employee_id = -1",
        "hr.salaries",
    )
    .await;
    // Writes to performance reviews are allowed (rolled back).
    manager.simple_query("BEGIN").await.unwrap();
    manager
        .execute(
            "INSERT INTO hr.performance_reviews (employee_id, period, rating) VALUES (1, 'T', 3)",
            &[],
        )
        .await
        .expect("manager writes reviews");
    manager.simple_query("ROLLBACK").await.unwrap();

    let directory = g.login("directory_app").await;
    allowed_both(&directory, "SELECT * FROM hr.employee_directory").await;
    refused_both(
        &directory,
        "SELECT date_of_birth FROM hr.employees",
        "hr.employees.date_of_birth",
    )
    .await;
    refused_both(
        &directory,
        "SELECT rating FROM hr.performance_reviews",
        "hr.performance_reviews.rating",
    )
    .await;

    // The refusals are in the audit trail with their rule and column.
    let records = statements(g.records().await);
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["pgwarden"]["policy"]["action"] == "deny")
        .collect();
    assert!(refused.len() >= 20, "refusals recorded: {}", refused.len());
    let ssn = refused
        .iter()
        .find(|r| r["pgwarden"]["policy"]["columns"][0] == "hr.employees.ssn")
        .expect("ssn refusal recorded");
    assert_eq!(ssn["pgwarden"]["policy"]["rule"], "analyst-no-identifiers");
    assert_eq!(ssn["event"]["outcome"], "failure");
}

/// Raw bytes of a binary result cell, whatever its type.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Raw bytes sent as a binary parameter of any type.
#[derive(Debug)]
struct RawParam(Vec<u8>);

impl ToSql for RawParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// What PostgreSQL makes of binary `bytes` as `ty`, in text.
async fn decode_binary(c: &Client, ty: &str, bytes: Vec<u8>) -> String {
    let sql = format!("SELECT $1::{ty}::text");
    let stmt = c.prepare(&sql).await.expect("prepare decode");
    c.query_one(&stmt, &[&RawParam(bytes)])
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL cannot decode the masked {ty}: {e}"))
        .get(0)
}

#[tokio::test]
async fn masks_in_text_and_binary_stay_decodable() {
    let pg = pg();
    let g = guarded(&demo_policy(), |_| {}).await;
    hr(&pg).await;
    let direct = common::superuser(&pg, DB).await;
    let truth = direct
        .query_one(
            "SELECT e.ssn::text, e.date_of_birth::text, s.amount::text \
             FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id WHERE e.id = 7 \
             ORDER BY s.effective_from DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (ssn, dob, amount): (String, String, String) = (truth.get(0), truth.get(1), truth.get(2));

    // payroll: ssn keeps its last 4 characters (text, simple protocol).
    let payroll = g.login("payroll").await;
    let rows = simple_rows(
        &payroll,
        "SELECT first_name, ssn FROM hr.employees WHERE id = 7",
    )
    .await
    .unwrap();
    let masked = rows[0][1].clone().expect("masked ssn is not NULL");
    assert_ne!(masked, ssn, "ssn must be masked");
    assert!(
        masked.ends_with(&ssn[ssn.len() - 4..]),
        "{masked} keeps the last 4 of {ssn}"
    );
    assert!(masked.starts_with('*'), "{masked}");
    // ... and in binary (extended protocol: tokio-postgres asks for binary).
    let row = payroll
        .query_one("SELECT ssn FROM hr.employees WHERE id = 7", &[])
        .await
        .unwrap();
    let bin: String = row.get(0);
    assert_eq!(bin.trim_end(), masked.trim_end());

    // hr_analyst: birth dates to the year, pay to 10,000 buckets.
    let analyst = g.login("hr_analyst").await;
    let rows = simple_rows(
        &analyst,
        "SELECT date_of_birth FROM hr.employees WHERE id = 7",
    )
    .await
    .unwrap();
    assert_eq!(
        rows[0][0].as_deref(),
        Some(format!("{}-01-01", &dob[..4]).as_str())
    );
    let row = analyst
        .query_one("SELECT date_of_birth FROM hr.employees WHERE id = 7", &[])
        .await
        .unwrap();
    let raw: Raw = row.get(0);
    assert_eq!(
        decode_binary(&direct, "date", raw.0).await,
        format!("{}-01-01", &dob[..4])
    );

    let expected_bucket = (amount.parse::<f64>().unwrap() / 10_000.0).floor() * 10_000.0;
    let rows = simple_rows(
        &analyst,
        "SELECT amount FROM hr.salaries WHERE employee_id = 7 ORDER BY effective_from DESC LIMIT 1",
    )
    .await;
    // ORDER BY effective_from is fine (not masked); the bucket comes back.
    let rows = rows.expect("bucketed read allowed");
    let got: f64 = rows[0][0].as_deref().unwrap().parse().unwrap();
    assert_eq!(got, expected_bucket);
    let row = analyst
        .query_one(
            "SELECT amount FROM hr.salaries WHERE employee_id = 7 ORDER BY effective_from DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let raw: Raw = row.get(0);
    let text = decode_binary(&direct, "numeric", raw.0).await;
    assert_eq!(text.parse::<f64>().unwrap(), expected_bucket);

    // Masked columns as filters or inside expressions are refused.
    refused_both(
        &analyst,
        "SELECT id FROM hr.employees WHERE date_of_birth < '1980-01-01'",
        "hr.employees.date_of_birth",
    )
    .await;
    refused_both(
        &analyst,
        "SELECT avg(amount) FROM hr.salaries",
        "hr.salaries.amount",
    )
    .await;
    refused_both(
        &analyst,
        "SELECT amount * 1 FROM hr.salaries",
        "hr.salaries.amount",
    )
    .await;
    refused_both(
        &analyst,
        "SELECT employee_id FROM hr.salaries ORDER BY amount DESC LIMIT 5",
        "hr.salaries.amount",
    )
    .await;
    refused_both(
        &payroll,
        "SELECT upper(ssn) FROM hr.employees",
        "hr.employees.ssn",
    )
    .await;

    let records = statements(g.records().await);
    let masked: Vec<&Value> = records
        .iter()
        .filter(|r| r["pgwarden"]["policy"]["action"] == "mask")
        .collect();
    assert!(
        masked.len() >= 4,
        "mask decisions recorded: {}",
        masked.len()
    );
    assert!(masked.iter().any(
        |r| r["pgwarden"]["policy"]["columns"][0] == "hr.employees.ssn"
            && r["pgwarden"]["policy"]["rule"] == "payroll-ssn-last-4"
    ));
}

#[tokio::test]
async fn refusal_has_postgres_transaction_semantics() {
    let g = guarded(&demo_policy(), |_| {}).await;
    let analyst = g.login("hr_analyst").await;
    // Simple protocol inside a transaction: the refusal aborts it.
    analyst.simple_query("BEGIN").await.unwrap();
    analyst
        .simple_query("SELECT first_name FROM hr.employees LIMIT 1")
        .await
        .unwrap();
    let e = analyst
        .simple_query("SELECT ssn FROM hr.employees")
        .await
        .unwrap_err();
    assert_refused(&e, "hr.employees.ssn", "in transaction");
    let e = analyst.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("25P02"), "{e}");
    analyst.simple_query("ROLLBACK").await.unwrap();
    analyst.simple_query("SELECT 1").await.unwrap();

    // A multi-statement string: statements before the refused one run (and
    // are rolled back with the implicit transaction), later ones never run.
    let e = analyst
        .simple_query("CREATE TEMP TABLE t1 (x int); SELECT ssn FROM hr.employees; CREATE TEMP TABLE t2 (x int)")
        .await
        .unwrap_err();
    assert_refused(&e, "hr.employees.ssn", "multi-statement");
    let e = analyst.simple_query("SELECT * FROM t1").await.unwrap_err();
    assert_eq!(
        e.code().map(|c| c.code()),
        Some("42P01"),
        "t1 rolled back: {e}"
    );

    // Extended protocol inside a transaction.
    let mut analyst = g.login("hr_analyst").await;
    let tx = analyst.transaction().await.unwrap();
    let e = tx
        .query("SELECT ssn FROM hr.employees", &[])
        .await
        .unwrap_err();
    assert_refused(&e, "hr.employees.ssn", "extended in transaction");
    let e = tx.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("25P02"), "{e}");
    tx.rollback().await.unwrap();
    let n: i64 = analyst
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);

    // A prepared statement allowed at Parse is refused at Bind after the
    // role changes. switch_a holds hr_admin (roles add up: full access).
    let admin = g.login("switch_a").await;
    let stmt = admin
        .prepare("SELECT ssn FROM hr.employees WHERE id = 1")
        .await
        .unwrap();
    admin
        .query(&stmt, &[])
        .await
        .expect("hr_admin member reads ssn");
    admin.simple_query("SET ROLE hr_analyst").await.unwrap();
    let e = admin.query(&stmt, &[]).await.unwrap_err();
    assert_refused(&e, "hr.employees.ssn", "EXECUTE after SET ROLE");
    admin.simple_query("RESET ROLE").await.unwrap();
    admin.query(&stmt, &[]).await.expect("back to full access");
}

#[tokio::test]
async fn evasions_are_refused() {
    let g = guarded(&demo_policy(), |_| {}).await;
    let a = g.login("hr_analyst").await;
    let ssn = "hr.employees.ssn";
    for sql in [
        // aliases
        "SELECT e.ssn AS harmless FROM hr.employees AS e",
        // quoted and Unicode-escaped identifiers
        "SELECT \"ssn\" FROM \"hr\".\"employees\"",
        "SELECT U&\"\\0073sn\" FROM hr.employees",
        // CTEs and subqueries
        "WITH x AS (SELECT ssn AS s FROM hr.employees) SELECT s FROM x",
        "SELECT s FROM (SELECT ssn AS s FROM hr.employees) sub",
        "SELECT (SELECT ssn FROM hr.employees e2 WHERE e2.id = e.id) FROM hr.employees e",
        "SELECT id FROM hr.employees WHERE ssn LIKE '9%'",
        // functions and expressions
        "SELECT upper(ssn) FROM hr.employees",
        "SELECT ssn || '' FROM hr.employees",
        "SELECT md5(ssn) FROM hr.employees",
        // comments and dollar quoting
        "SELECT /* innocent */ ssn -- really\n FROM hr.employees",
        "SELECT $q$x$q$, ssn FROM hr.employees",
        // EXPLAIN ANALYZE runs it
        "EXPLAIN ANALYZE SELECT ssn FROM hr.employees",
        // copying into another table
        "CREATE TEMP TABLE stash AS SELECT ssn FROM hr.employees",
        "SELECT ssn INTO TEMP stash2 FROM hr.employees",
        // set operations
        "SELECT first_name FROM hr.employees UNION SELECT ssn FROM hr.employees",
    ] {
        refused_both(&a, sql, ssn).await;
    }
    // Whole-row references read every column (bank_account is refused
    // first: columns are checked in name order).
    for sql in [
        "SELECT e FROM hr.employees e",
        "SELECT row_to_json(e) FROM hr.employees e",
        "SELECT to_jsonb(e.*) FROM hr.employees e",
    ] {
        refused_both(&a, sql, "hr.employees.bank_account").await;
    }
    // A function pgwarden does not know (hstore is not installed here) is
    // opaque: refused for a role without full access.
    refused_both(&a, "SELECT hstore(e) FROM hr.employees e", "").await;
    // COPY (query) TO, simple protocol only.
    let e = a
        .simple_query("COPY (SELECT ssn FROM hr.employees) TO STDOUT")
        .await
        .unwrap_err();
    assert_refused(&e, ssn, "COPY TO");
    let e = a
        .simple_query("COPY hr.employees TO STDOUT")
        .await
        .unwrap_err();
    assert_refused(&e, "hr.employees", "COPY table TO");

    // RETURNING what the role may not read.
    let payroll = g.login("payroll").await;
    refused_both(
        &payroll,
        "UPDATE hr.salaries SET bonus = bonus WHERE employee_id = -1 RETURNING (SELECT condition FROM hr.health_records LIMIT 1)",
        "hr.health_records.condition",
    )
    .await;
    refused_both(
        &payroll,
        "UPDATE hr.salaries s SET bonus = bonus FROM hr.employees e WHERE e.id = s.employee_id AND s.employee_id = -1 RETURNING e.ssn",
        "hr.employees.ssn",
    )
    .await;
    // INSERT ... SELECT of protected data into another table.
    payroll
        .simple_query("CREATE TEMP TABLE copied (s text)")
        .await
        .unwrap();
    refused_both(
        &payroll,
        "INSERT INTO copied SELECT ssn FROM hr.employees",
        "hr.employees.ssn",
    )
    .await;
    // (Masked for payroll, so not even an UPDATE may read it: the value
    // could be copied where it is not masked.)
    refused_both(
        &payroll,
        "UPDATE hr.salaries SET currency = currency WHERE employee_id = -1 RETURNING (SELECT ssn FROM hr.employees LIMIT 1)",
        "hr.employees.ssn",
    )
    .await;

    // Cursors and SQL-level PREPARE/EXECUTE, also in one string.
    let e = a
        .simple_query("BEGIN; DECLARE c CURSOR FOR SELECT ssn FROM hr.employees; FETCH 5 FROM c")
        .await
        .unwrap_err();
    assert_refused(&e, ssn, "cursor");
    a.simple_query("ROLLBACK").await.unwrap();
    let e = a
        .simple_query("PREPARE p AS SELECT ssn FROM hr.employees; EXECUTE p")
        .await
        .unwrap_err();
    assert_refused(&e, ssn, "prepare");
    // Multi-statement: the forbidden one is not the first.
    let e = a
        .simple_query(
            "SELECT 1; SELECT first_name FROM hr.employees LIMIT 1; SELECT ssn FROM hr.employees",
        )
        .await
        .unwrap_err();
    assert_refused(&e, ssn, "multi");

    // search_path and unqualified names.
    a.simple_query("SET search_path = hr, public")
        .await
        .unwrap();
    refused_both(&a, "SELECT ssn FROM employees", ssn).await;
    // A temporary table of the same name shadows nothing protected ...
    a.simple_query("CREATE TEMP TABLE employees (ssn text)")
        .await
        .unwrap();
    a.simple_query("INSERT INTO employees VALUES ('mine')")
        .await
        .unwrap();
    let rows = simple_rows(&a, "SELECT ssn FROM pg_temp.employees")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("mine"));
    // ... while the real one stays protected.
    refused_both(&a, "SELECT ssn FROM hr.employees", ssn).await;
    // A view made to hide the column cannot even be created (a temporary
    // view's definition never reaches the catalog, so it is decided here).
    refused_both(
        &a,
        "CREATE TEMP VIEW innocent AS SELECT ssn AS x FROM hr.employees",
        ssn,
    )
    .await;
    // A permanent one made by someone allowed to is seen through.
    let pg = pg();
    let su = common::superuser(&pg, DB).await;
    su.batch_execute("CREATE OR REPLACE VIEW public.innocent AS SELECT id, ssn AS x FROM hr.employees; GRANT SELECT ON public.innocent TO hr_analyst")
        .await
        .unwrap();
    // Until this session's catalog snapshot shows the new view, it is
    // refused as unknown; the snapshot reloads at most every 500 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    refused_both(&a, "SELECT x FROM public.innocent", ssn).await;
    allowed_both(&a, "SELECT id FROM public.innocent").await;

    // Opaque code is refused for roles without full access ...
    refused_both(&a, "DO $$ BEGIN PERFORM 1; END $$", "").await;
    // ... and runs for hr_admin.
    let admin = g.login("hr_admin").await;
    admin
        .simple_query("DO $$ BEGIN PERFORM 1; END $$")
        .await
        .unwrap();

    // SET ROLE: an hr_admin member switching to hr_analyst gets hr_analyst's rules.
    let admin = g.login("switch_b").await;
    admin
        .simple_query("SELECT ssn FROM hr.employees LIMIT 1")
        .await
        .unwrap();
    admin.simple_query("SET ROLE hr_analyst").await.unwrap();
    refused_both(&admin, "SELECT ssn FROM hr.employees", ssn).await;
    let e = admin
        .simple_query("RESET ROLE; SET ROLE hr_analyst; SELECT ssn FROM hr.employees")
        .await
        .unwrap_err();
    assert_refused(&e, ssn, "SET ROLE in the same string");
    admin.simple_query("RESET ROLE").await.unwrap();
    admin
        .simple_query("SELECT ssn FROM hr.employees LIMIT 1")
        .await
        .unwrap();
    // The switch to a privileged role is in the audit trail.
    admin.simple_query("SET ROLE hr_admin").await.unwrap();
    drop((a, admin));
    let records = statements(g.records().await);
    assert!(
        records
            .iter()
            .any(|r| r["pgwarden"]["policy"]["privileged_role"] == "hr_admin"),
        "privileged switch recorded"
    );
}

/// A policy directory with the demo policy, `edit` applied to its text.
fn policy_copy(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate_path("policies/hr.toml")).unwrap();
    std::fs::write(dir.path().join("hr.toml"), edit(text)).unwrap();
    dir
}

#[tokio::test]
async fn monitor_mode_records_and_changes_nothing() {
    let pol = policy_copy(|t| t.replace("mode = \"enforce\"", "mode = \"monitor\""));
    let g = guarded(pol.path(), |_| {}).await;
    let a = g.login("hr_analyst").await;
    let pg = pg();
    let direct = common::superuser(&pg, DB).await;
    let truth: String = direct
        .query_one("SELECT ssn::text FROM hr.employees WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    let rows = simple_rows(&a, "SELECT ssn FROM hr.employees WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(
        rows[0][0].as_deref(),
        Some(truth.as_str()),
        "monitor mode changes nothing"
    );
    let dob_direct: String = direct
        .query_one(
            "SELECT date_of_birth::text FROM hr.employees WHERE id = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows = simple_rows(&a, "SELECT date_of_birth FROM hr.employees WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some(dob_direct.as_str()));
    let records = statements(g.records().await);
    let actions: Vec<&str> = records
        .iter()
        .filter_map(|r| r["pgwarden"]["policy"]["action"].as_str())
        .collect();
    assert!(actions.contains(&"would_deny"), "{actions:?}");
    assert!(actions.contains(&"would_mask"), "{actions:?}");
}

#[tokio::test]
async fn policy_reloads_when_files_change_and_keeps_the_old_on_errors() {
    let pol = policy_copy(|t| t);
    let g = guarded(pol.path(), |c| {
        c.policy.watch_interval = pgwarden::config::HumanDuration(Duration::from_millis(100));
    })
    .await;
    let a = g.login("hr_analyst").await;
    a.simple_query("SELECT hire_date FROM hr.employees LIMIT 1")
        .await
        .unwrap();
    let file = pol.path().join("hr.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    // Deny hire_date to analysts.
    let stricter = format!(
        "{text}\n[[rule]]\nname = \"analyst-no-hire-date\"\nroles = [\"hr_analyst\"]\non = [\"hr.employees.hire_date\"]\nread = \"deny\"\n"
    );
    std::fs::write(&file, &stricter).unwrap();
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = a
            .simple_query("SELECT hire_date FROM hr.employees LIMIT 1")
            .await
        {
            assert_refused(&e, "hr.employees.hire_date", "after reload");
            refused = true;
            break;
        }
    }
    assert!(refused, "the changed policy took effect");
    // A broken file: the stricter policy stays in force.
    std::fs::write(&file, format!("{stricter}\n[[rule]]\nname = \"broken\"\nroles = [\"x\"]\non = [\"nope\"]\nread = \"allow\"\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let e = a
        .simple_query("SELECT hire_date FROM hr.employees LIMIT 1")
        .await
        .unwrap_err();
    assert_refused(&e, "hr.employees.hire_date", "old policy kept");
    let server = g.server();
    let (_, body) = common::http_get(server.metrics_addr.unwrap(), "/metrics").await;
    assert!(
        common::metric(&body, "pgwarden_policy_reloads_total{result=\"error\"}") >= 1.0,
        "{body}"
    );
    assert!(
        common::metric(&body, "pgwarden_policy_reloads_total{result=\"ok\"}") >= 2.0,
        "{body}"
    );
}

#[test]
fn bad_policy_files_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.toml");
    std::fs::write(
        &f,
        "[classifications]\nsecret = [\"hr.employees.ssn\"]\n\n[[rule]]\nname = \"a\"\nroles = [\"x\"]\non = [\"secret\"]\nread = \"mask:sparkle\"\n",
    )
    .unwrap();
    let e = pgwarden::policy::load::load(dir.path(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("p.toml:8: rule[0].read"), "{e}");
    std::fs::write(
        &f,
        "[[rule]]\nname = \"a\"\nroles = [\"x\"]\non = [\"unknown_class\"]\nread = \"deny\"\n",
    )
    .unwrap();
    let e = pgwarden::policy::load::load(dir.path(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p.toml:4: rule[0].on[0]") && e.contains("unknown_class"),
        "{e}"
    );
    std::fs::write(&f, "[[rule]]\nname = \"a\"\nroles = [\"x\"]\non = [\"*\"]\nread = \"deny\"\nwrite = \"maybe\"\n").unwrap();
    let e = pgwarden::policy::load::load(dir.path(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("p.toml:6") && e.contains("rule[0].write"), "{e}");
}

fn pgwarden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pgwarden")
}

#[tokio::test]
async fn policy_tools_check_explain_and_test() {
    let pg = pg();
    hr(&pg).await;
    let db_args = |cmd: &mut std::process::Command| {
        cmd.args([
            "--upstream",
            &pg.addr(),
            "--user",
            SUPERUSER.0,
            "--database",
            DB,
        ])
        .env("PGWARDEN_CATALOG_PASSWORD", SUPERUSER.1);
    };
    // The shipped regression suite passes against the demo database.
    let mut cmd = std::process::Command::new(pgwarden_bin());
    cmd.args(["policy", "test"])
        .arg(crate_path("policies/tests/hr.toml"))
        .arg("--policy")
        .arg(crate_path("policies"));
    db_args(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    // A case that does not hold fails the run.
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(&cases, "[[case]]\nrole = \"hr_analyst\"\nsql = \"SELECT ssn FROM hr.employees\"\nexpect = \"allow\"\n").unwrap();
    let mut cmd = std::process::Command::new(pgwarden_bin());
    cmd.args(["policy", "test"])
        .arg(&cases)
        .arg("--policy")
        .arg(crate_path("policies"));
    db_args(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("expected allow, got deny"));

    // explain names the rule and where it is written.
    let mut cmd = std::process::Command::new(pgwarden_bin());
    cmd.args([
        "policy",
        "explain",
        "--role",
        "payroll",
        "--sql",
        "SELECT first_name, ssn FROM hr.employees",
        "--policy",
    ])
    .arg(crate_path("policies"));
    db_args(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("decision: MASK"), "{stdout}");
    assert!(
        stdout.contains("payroll-ssn-last-4") && stdout.contains("hr.toml:"),
        "{stdout}"
    );

    // check: valid, and every name exists in the database.
    let mut cmd = std::process::Command::new(pgwarden_bin());
    cmd.args(["policy", "check"]).arg(crate_path("policies"));
    db_args(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // A rule naming a missing column and role is reported.
    let pol = policy_copy(|t| {
        format!("{t}\n[[rule]]\nname = \"stale\"\nroles = [\"nobody\"]\non = [\"hr.employees.salary_band\"]\nread = \"deny\"\n")
    });
    let mut cmd = std::process::Command::new(pgwarden_bin());
    cmd.args(["policy", "check"]).arg(pol.path());
    db_args(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("role \"nobody\" does not exist"),
        "{stdout}"
    );
    assert!(stdout.contains("rule stale"), "{stdout}");
}
