//! Accuracy corpus for the statement analyser against a real catalog: the
//! HR demo schema plus extra objects (views over views, SQL and PL/pgSQL
//! functions, a materialized view, a partitioned table, tables in other
//! schemas) loaded into a throwaway cluster, then every statement of
//! `tests/analysis_corpus.txt` analysed and compared with its expected
//! access sets. The same statements are run on PostgreSQL itself (in a
//! rolled-back transaction) so the corpus cannot drift from what the server
//! accepts.
//!
//! Corpus format (one case per `sql:` line, see the file's header).

mod common;

use common::{hr_database, pg, superuser, Pg, SUPERUSER};
use pgwarden::analyse::{analyse_text, parse, Analysis, SessionView};
use pgwarden::catalog::{Catalog, Catalogs};
use pgwarden::config::{Config, UpstreamTls};
use std::fmt::Write as _;
use std::sync::Arc;
use tokio_postgres::Client;

/// The database the corpus runs against.
const DB: &str = "hr_corpus";

/// Objects added to the HR demo schema so the corpus covers more relation
/// kinds, name forms and function languages.
const EXTRA_SCHEMA: &str = r#"
CREATE VIEW hr.directory_names AS
    SELECT id, first_name || ' ' || last_name AS full_name, department
    FROM hr.employee_directory
    WHERE department <> 'Nowhere';
CREATE VIEW hr.salary_view AS
    SELECT e.id AS employee_id, e.last_name, s.amount, s.currency
    FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id;
CREATE VIEW hr.us_salaries AS
    SELECT employee_id, amount FROM hr.salaries WHERE currency = 'USD';
CREATE FUNCTION hr.annual_pay(emp integer) RETURNS numeric
    LANGUAGE sql STABLE
    AS $$ SELECT amount * 12 FROM hr.salaries WHERE employee_id = emp
          ORDER BY effective_from DESC LIMIT 1 $$;
CREATE FUNCTION hr.give_raise(emp integer, pct numeric) RETURNS void
    LANGUAGE plpgsql
    AS $$ BEGIN
        UPDATE hr.salaries SET amount = amount * (1 + pct / 100) WHERE employee_id = emp;
    END $$;
CREATE FUNCTION hr.team_of(mgr integer) RETURNS SETOF hr.employees
    LANGUAGE sql STABLE
    AS $$ SELECT * FROM hr.employees WHERE manager_id = mgr $$;
CREATE PROCEDURE hr.archive_reviews(before text)
    LANGUAGE sql
    AS $$ DELETE FROM hr.performance_reviews WHERE period < before $$;
CREATE MATERIALIZED VIEW hr.payroll_summary AS
    SELECT d.name AS department, sum(s.amount) AS total
    FROM hr.salaries s
    JOIN hr.employees e ON e.id = s.employee_id
    JOIN hr.departments d ON d.id = e.department_id
    GROUP BY d.name;
CREATE TABLE hr.timesheets (
    employee_id integer NOT NULL,
    day date NOT NULL,
    hours numeric NOT NULL
) PARTITION BY RANGE (day);
CREATE TABLE hr.timesheets_2024 PARTITION OF hr.timesheets
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TYPE hr.address AS (street text, city text);
CREATE TABLE hr.profiles (
    employee_id integer PRIMARY KEY,
    skills text[],
    prefs jsonb,
    badge xml,
    address hr.address
);
CREATE TABLE hr."Audit Log" ("Id" integer, "Event" text, at timestamptz);
CREATE TABLE public.notes (id serial PRIMARY KEY, body text, author_id integer);
CREATE TABLE public.departments (id integer, label text);
CREATE SCHEMA payroll;
CREATE TABLE payroll.transfers (employee_id integer, iban text, amount numeric);
CREATE SEQUENCE hr.badge_seq;
INSERT INTO hr.profiles
    SELECT id, ARRAY['sql', 'rust'], '{"theme": "dark", "tags": ["a"]}', '<b>x</b>', ROW('Main St', 'Springfield')::hr.address
    FROM hr.employees;
INSERT INTO hr.timesheets SELECT id, '2024-03-01', 8 FROM hr.employees;
"#;

/// One statement's expectations inside a case.
#[derive(Debug, Default, Clone)]
struct Expect {
    /// Rendered accesses (`schema.table o=.. f=.. w=.. del`), sorted.
    accesses: Vec<String>,
    /// Rendered opaque calls (`function(col,col)`), sorted.
    opaque: Vec<String>,
    /// `Debug` of each session effect, in order.
    effects: Vec<String>,
    /// Substring of the `unanalysed` reason; `None` = must be fully analysed.
    unanalysed: Option<String>,
    /// Command name, checked only when given.
    command: Option<String>,
}

/// One corpus case: a text (possibly several statements) and a session.
#[derive(Debug, Default, Clone)]
struct Case {
    /// Line in the corpus file.
    line: usize,
    sql: String,
    search_path: Vec<String>,
    temp: Vec<String>,
    /// Run before the statement on PostgreSQL only (creates temp tables,
    /// prepared statements, cursors).
    setup: Vec<String>,
    /// Not run on PostgreSQL (side effects outside a transaction, or not
    /// meant to be valid).
    skip_pg: bool,
    /// Known analyser bug: the case must still fail until it is fixed.
    bug: Option<String>,
    stmts: Vec<Expect>,
}

/// Parses the corpus file (see its header for the syntax).
fn parse_corpus(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(':') {
            Some((k, v)) if !k.contains(' ') && !k.starts_with('=') => (k, v.trim()),
            _ => (line, ""),
        };
        if key == "sql" {
            cases.push(Case {
                line: i + 1,
                sql: value.to_owned(),
                search_path: vec!["hr".into(), "public".into()],
                stmts: vec![Expect::default()],
                ..Default::default()
            });
            continue;
        }
        let case = cases
            .last_mut()
            .unwrap_or_else(|| panic!("corpus line {}: no sql: before it", i + 1));
        let stmt = case.stmts.last_mut().expect("one statement");
        match key {
            "+" => {
                case.sql.push('\n');
                case.sql.push_str(value);
            }
            _ if line.starts_with("= ") => stmt.accesses.push(line[2..].trim().to_owned()),
            _ if line.starts_with("+ ") => {
                case.sql.push('\n');
                case.sql.push_str(&line[2..]);
            }
            "next" => case.stmts.push(Expect::default()),
            "opaque" => stmt.opaque.push(value.to_owned()),
            "effect" => stmt.effects.push(value.to_owned()),
            "unanalysed" => stmt.unanalysed = Some(value.to_owned()),
            "command" => stmt.command = Some(value.to_owned()),
            "path" => {
                case.search_path = value
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "temp" => case.temp = value.split(',').map(|s| s.trim().to_owned()).collect(),
            "setup" => case.setup.push(value.to_owned()),
            "pg" if value == "skip" => case.skip_pg = true,
            "bug" => case.bug = Some(value.to_owned()),
            _ => panic!("corpus line {}: cannot read {line:?}", i + 1),
        }
    }
    for c in &mut cases {
        for s in &mut c.stmts {
            s.accesses.sort();
            s.opaque.sort();
        }
    }
    cases
}

/// Renders one access set compactly, as src/analyse/tests.rs does.
fn render_accesses(a: &Analysis) -> Vec<String> {
    let mut v: Vec<String> = a
        .accesses
        .iter()
        .map(|x| {
            let mut s = x.relation.to_string();
            for (tag, set) in [("o", &x.output), ("f", &x.filter), ("w", &x.written)] {
                if !set.is_empty() {
                    let cols: Vec<&str> = set.iter().map(String::as_str).collect();
                    let _ = write!(s, " {tag}={}", cols.join(","));
                }
            }
            if x.deletes_rows {
                s.push_str(" del");
            }
            s
        })
        .collect();
    v.sort();
    v
}

/// Renders opaque calls as `function(col,col)`, sorted.
fn render_opaque(a: &Analysis) -> Vec<String> {
    let mut v: Vec<String> = a
        .opaque_calls
        .iter()
        .map(|o| format!("{}({})", o.function, o.columns.join(",")))
        .collect();
    v.sort();
    v
}

/// Compares one analysis with its expectation; `None` when they agree.
fn compare(want: &Expect, got: &Analysis) -> Option<String> {
    let accesses = render_accesses(got);
    let opaque = render_opaque(got);
    let effects: Vec<String> = got.effects.iter().map(|e| format!("{e:?}")).collect();
    let mut diffs = Vec::new();
    if accesses != want.accesses {
        diffs.push("accesses");
    }
    if opaque != want.opaque {
        diffs.push("opaque calls");
    }
    if effects != want.effects {
        diffs.push("effects");
    }
    match (&want.unanalysed, &got.unanalysed) {
        (None, None) => {}
        (Some(needle), Some(why)) if why.contains(needle.as_str()) => {}
        _ => diffs.push("unanalysed"),
    }
    if want.command.as_ref().is_some_and(|c| *c != got.command) {
        diffs.push("command");
    }
    if diffs.is_empty() {
        return None;
    }
    // Printed in corpus syntax so a reviewed result can be pasted back.
    let mut s = format!("    differs in: {}\n    got:\n", diffs.join(", "));
    for a in &accesses {
        let _ = writeln!(s, "      = {a}");
    }
    for o in &opaque {
        let _ = writeln!(s, "      opaque: {o}");
    }
    for e in &effects {
        let _ = writeln!(s, "      effect: {e}");
    }
    if let Some(u) = &got.unanalysed {
        let _ = writeln!(s, "      unanalysed: {u}");
    }
    let _ = writeln!(s, "      command: {}", got.command);
    let _ = writeln!(s, "    expected:");
    for a in &want.accesses {
        let _ = writeln!(s, "      = {a}");
    }
    for o in &want.opaque {
        let _ = writeln!(s, "      opaque: {o}");
    }
    for e in &want.effects {
        let _ = writeln!(s, "      effect: {e}");
    }
    if let Some(u) = &want.unanalysed {
        let _ = writeln!(s, "      unanalysed: {u}");
    }
    Some(s)
}

/// Analyses a text on a parser thread (the parser needs a big stack).
fn analyse(
    sql: &str,
    search_path: &[String],
    temp: &[String],
    catalog: &Arc<Catalog>,
) -> Vec<Arc<Analysis>> {
    let view = SessionView {
        search_path: search_path.to_vec(),
        temp_relations: temp.to_vec(),
        created: Vec::new(),
        default_search_path: vec!["public".into()],
        standard_conforming_strings: true,
    };
    let (sql, catalog) = (sql.to_owned(), catalog.clone());
    parse::on_parser_thread_blocking(move || analyse_text(&sql, &view, &catalog))
        .expect("parser thread")
}

/// Checks one case; `None` when the analyser agrees with the corpus.
fn check_case(case: &Case, catalog: &Arc<Catalog>) -> Option<String> {
    let got = analyse(&case.sql, &case.search_path, &case.temp, catalog);
    if got.len() != case.stmts.len() {
        return Some(format!(
            "    expected {} statement(s), got {}: {:#?}\n",
            case.stmts.len(),
            got.len(),
            got
        ));
    }
    let mut out = String::new();
    for (i, (want, a)) in case.stmts.iter().zip(&got).enumerate() {
        if let Some(d) = compare(want, a) {
            if case.stmts.len() > 1 {
                let _ = writeln!(out, "    statement {}:", i + 1);
            }
            out.push_str(&d);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Creates the corpus database once per test binary: HR demo data plus the
/// extra objects.
async fn corpus_database(pg: &Pg) {
    // load_hr creates cluster-wide roles: two loads at once would race.
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            let client = hr_database(pg, DB, 30).await;
            client
                .batch_execute(EXTRA_SCHEMA)
                .await
                .expect("extra corpus objects");
        })
        .await;
}

/// The catalog of the corpus database as pgwarden loads it.
async fn corpus_catalog(pg: &Pg) -> Arc<Catalog> {
    corpus_database(pg).await;
    let mut config = Config::default();
    config.upstream.address = pg.addr();
    config.upstream.tls = UpstreamTls::Disable;
    config.catalog.user = SUPERUSER.0.into();
    config.catalog.password = Some(SUPERUSER.1.into());
    let catalogs = Catalogs::new(&config);
    let catalog = catalogs.get(DB).await.expect("catalog");
    catalogs.shutdown();
    catalog
}

/// The corpus, parsed.
fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(common::crate_path("tests/analysis_corpus.txt"))
        .expect("tests/analysis_corpus.txt");
    parse_corpus(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_matches_expected_access_sets() {
    let pg = pg();
    let catalog = corpus_catalog(&pg).await;
    let cases = corpus();
    assert!(cases.len() >= 220, "corpus has only {} cases", cases.len());
    let mut failures = String::new();
    let (mut passed, mut failed, mut known, mut fixed) = (0, 0, 0, 0);
    for case in &cases {
        let diff = check_case(case, &catalog);
        match (&case.bug, diff) {
            (None, None) => passed += 1,
            (None, Some(d)) => {
                failed += 1;
                let _ = write!(
                    failures,
                    "\nline {}: {}\n{d}",
                    case.line,
                    case.sql.replace('\n', "\n    ")
                );
            }
            (Some(_), Some(_)) => known += 1,
            (Some(bug), None) => {
                // A fixed bug: move the case into the main corpus.
                fixed += 1;
                let _ = write!(
                    failures,
                    "\nline {}: {}\n    marked as known bug ({bug}) but now passes: remove the bug: line\n",
                    case.line, case.sql
                );
            }
        }
    }
    let summary = format!(
        "{} cases: {passed} pass, {failed} fail, {known} known bugs still failing, {fixed} known bugs now passing",
        cases.len()
    );
    eprintln!("{summary}");
    assert!(failures.is_empty(), "{summary}\n{failures}");
}

/// SQLSTATE classes a statement may fail with on the sample data without
/// the corpus being wrong (constraint violations, bad values, a subquery
/// returning more rows than expected).
fn acceptable_runtime_error(code: &str) -> bool {
    ["21", "22", "23"].iter().any(|c| code.starts_with(c))
}

/// Runs one case on PostgreSQL in a transaction that is rolled back.
async fn run_on_postgres(client: &Client, case: &Case) -> Result<(), String> {
    let upper = case.sql.to_ascii_uppercase();
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| format!("BEGIN: {e}"))?;
    let path = case
        .search_path
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut result = client
        .batch_execute(&format!(
            "SET LOCAL search_path = {}",
            if path.is_empty() { "''" } else { &path }
        ))
        .await
        .map_err(|e| format!("search_path: {e}"));
    for s in &case.setup {
        if result.is_ok() {
            result = client
                .batch_execute(s)
                .await
                .map_err(|e| format!("setup {s:?}: {e:?}"));
        }
    }
    if result.is_ok() {
        // COPY with the client as the other end needs the COPY sub-protocol.
        result = if upper.starts_with("COPY") && upper.contains("STDOUT") {
            match client.copy_out(case.sql.as_str()).await {
                Ok(stream) => {
                    drop(stream);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if upper.starts_with("COPY") && upper.contains("STDIN") {
            match client.copy_in::<_, bytes::Bytes>(case.sql.as_str()).await {
                Ok(sink) => {
                    let mut sink = Box::pin(sink);
                    futures_util::SinkExt::close(&mut sink).await.map(|_| ())
                }
                Err(e) => Err(e),
            }
        } else {
            client.batch_execute(&case.sql).await
        }
        .or_else(|e| match e.code() {
            Some(c) if acceptable_runtime_error(c.code()) => Ok(()),
            _ => Err(format!("{e:?}")),
        });
    }
    // After an error the transaction is aborted; ROLLBACK ends it either way.
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| format!("ROLLBACK: {e}"))?;
    // Prepared statements and cursors outlive a rollback in some forms.
    client
        .batch_execute("DISCARD ALL")
        .await
        .map_err(|e| format!("DISCARD ALL: {e}"))?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_statements_are_valid_postgresql() {
    let pg = pg();
    corpus_database(&pg).await;
    let client = superuser(&pg, DB).await;
    let mut failures = String::new();
    let mut ran = 0;
    for case in corpus() {
        let expects_problem = case.stmts.iter().any(|s| s.unanalysed.is_some());
        if case.skip_pg || expects_problem {
            continue;
        }
        ran += 1;
        if let Err(e) = run_on_postgres(&client, &case).await {
            let _ = write!(failures, "\nline {}: {}\n    {e}\n", case.line, case.sql);
        }
    }
    eprintln!("{ran} corpus statements ran on PostgreSQL");
    assert!(failures.is_empty(), "rejected by PostgreSQL:{failures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_input_is_an_error_not_a_crash() {
    let pg = pg();
    let catalog = corpus_catalog(&pg).await;
    let path = vec!["hr".to_owned(), "public".to_owned()];
    let deep_parens = format!("SELECT {}1{}", "(".repeat(2000), ")".repeat(2000));
    let deep_subqueries = format!("SELECT {}1{}", "(SELECT ".repeat(2000), ")".repeat(2000));
    let deep_arrays = format!("SELECT {}1{}", "ARRAY[".repeat(2000), "]".repeat(2000));
    let long_chain = format!("SELECT 1{}", " + 1".repeat(100_000));
    for (name, sql) in [
        ("2,000 parentheses", deep_parens),
        ("2,000 nested subqueries", deep_subqueries),
        ("2,000 nested arrays", deep_arrays),
    ] {
        let got = analyse(&sql, &path, &[], &catalog);
        assert_eq!(got.len(), 1, "{name}");
        let why = got[0].unanalysed.clone().unwrap_or_default();
        assert!(
            why.contains("too deep") || why.contains("nested too deeply"),
            "{name}: {why:?}"
        );
    }
    // A long flat chain is deep for the parser's recursion too: it must
    // come back as a result (analysed or refused), never crash.
    let got = analyse(&long_chain, &path, &[], &catalog);
    assert_eq!(got.len(), 1);
}

#[test]
fn corpus_file_parses() {
    let cases = corpus();
    assert!(cases.iter().all(|c| !c.sql.is_empty()));
    let bugs = cases.iter().filter(|c| c.bug.is_some()).count();
    assert!(bugs < cases.len());
}

/// The result columns PostgreSQL describes for `case` (prepared in a
/// rolled-back transaction after the case's setup), as names.
async fn described_columns(client: &Client, case: &Case) -> Result<Vec<String>, String> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| format!("BEGIN: {e}"))?;
    let path = case
        .search_path
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut setup = vec![format!(
        "SET LOCAL search_path = {}",
        if path.is_empty() { "''" } else { &path }
    )];
    setup.extend(case.setup.iter().cloned());
    let mut result = Ok(Vec::new());
    for s in &setup {
        if let Err(e) = client.batch_execute(s).await {
            result = Err(format!("setup {s:?}: {e:?}"));
            break;
        }
    }
    if result.is_ok() {
        result = match client.prepare(&case.sql).await {
            Ok(st) => Ok(st.columns().iter().map(|c| c.name().to_owned()).collect()),
            Err(e) => Err(format!("{e:?}")),
        };
    }
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| format!("ROLLBACK: {e}"))?;
    // Not DISCARD ALL: it would also drop the client's own cached
    // statements (type lookups for composite columns).
    let prepared = client
        .query(
            "SELECT name FROM pg_prepared_statements WHERE from_sql",
            &[],
        )
        .await
        .map_err(|e| format!("prepared statements: {e}"))?;
    for row in prepared {
        let name: String = row.get(0);
        client
            .batch_execute(&format!("DEALLOCATE \"{name}\""))
            .await
            .map_err(|e| format!("DEALLOCATE: {e}"))?;
    }
    result
}

/// Statements beyond the corpus whose result column order is easy to get
/// wrong (star expansion over joins, merged USING columns, RETURNING *).
const RESULT_ORDER_CASES: &[&str] = &[
    "SELECT * FROM hr.salaries JOIN hr.health_records USING (employee_id)",
    "SELECT * FROM hr.salaries s NATURAL FULL JOIN hr.health_records h",
    "SELECT * FROM hr.employees e JOIN hr.departments d USING (id) JOIN hr.salaries s ON s.employee_id = e.id",
    "SELECT * FROM hr.departments d RIGHT JOIN (hr.employees e JOIN hr.salaries s ON s.employee_id = e.id) USING (id)",
    "SELECT * FROM (hr.salaries s JOIN hr.health_records h USING (employee_id)) AS j (a, b, c)",
    "SELECT j.*, j.employee_id FROM (hr.salaries s LEFT JOIN hr.health_records h USING (employee_id)) AS j",
    "SELECT x.* FROM hr.salaries JOIN hr.health_records USING (employee_id) AS x",
    "SELECT * FROM hr.employee_directory NATURAL JOIN hr.employees",
    "SELECT d.*, e.ssn, 1, e.ssn::text, CASE WHEN true THEN e.ssn ELSE e.email END FROM hr.departments d, hr.employees e",
    "SELECT * FROM (SELECT id, name AS n FROM hr.departments) AS q (a)",
    "WITH c (a) AS (SELECT id, name FROM hr.departments) SELECT * FROM c",
    "SELECT * FROM hr.departments d, LATERAL (SELECT d.name AS x, d.id) l",
    "SELECT id FROM hr.departments UNION SELECT employee_id FROM hr.salaries ORDER BY 1",
    "UPDATE hr.employees e SET ssn = e.ssn FROM hr.departments d WHERE d.id = e.department_id AND false RETURNING *",
    "UPDATE hr.employees e SET ssn = e.ssn FROM hr.departments d WHERE false RETURNING d.*, e.id",
    "DELETE FROM hr.salaries s USING hr.employees e WHERE false RETURNING *",
    "INSERT INTO notes (body) VALUES ('x') RETURNING *, id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_result_columns_match_row_description() {
    let pg = pg();
    let catalog = corpus_catalog(&pg).await;
    let client = superuser(&pg, DB).await;
    let mut failures = String::new();
    let mut compared = 0;
    let extra = RESULT_ORDER_CASES.iter().map(|sql| Case {
        sql: (*sql).to_owned(),
        search_path: vec!["hr".into(), "public".into()],
        stmts: vec![Expect::default()],
        ..Default::default()
    });
    for case in corpus().into_iter().chain(extra) {
        let expects_problem = case.stmts.iter().any(|s| s.unanalysed.is_some());
        if case.skip_pg || expects_problem || case.stmts.len() != 1 {
            continue;
        }
        let got = analyse(&case.sql, &case.search_path, &case.temp, &catalog);
        let Some(a) = got.first() else { continue };
        // Only statements PostgreSQL can describe directly (not COPY,
        // PREPARE, DECLARE).
        let describable = [
            "SELECT",
            "SELECT FOR UPDATE",
            "INSERT",
            "UPDATE",
            "DELETE",
            "MERGE",
        ];
        let Some(results) = a
            .results
            .as_ref()
            .filter(|_| describable.contains(&a.command.as_str()))
        else {
            continue;
        };
        let want = match described_columns(&client, &case).await {
            Ok(w) => w,
            Err(e) => {
                let _ = write!(failures, "\nline {}: {}\n    {e}\n", case.line, case.sql);
                continue;
            }
        };
        compared += 1;
        let names: Vec<&str> = results.iter().map(|c| c.name.as_str()).collect();
        // Past an unknown-width placeholder only the prefix is comparable.
        let known = names.iter().position(|n| *n == "*");
        let ok = match known {
            None => names == want,
            Some(k) => want.len() >= k && names[..k] == want[..k],
        };
        if !ok {
            let _ = write!(
                failures,
                "\nline {}: {}\n    analyser:   {names:?}\n    postgresql: {want:?}\n",
                case.line, case.sql
            );
        }
    }
    eprintln!("{compared} corpus statements' result columns compared");
    assert!(compared > 100, "only {compared} statements compared");
    assert!(failures.is_empty(), "result columns differ:{failures}");
}
