//! Analyser unit tests over a hand-built copy of the HR demo catalog. The
//! large accuracy corpus against a real catalog lives in tests/analysis.rs.

use super::*;
use crate::catalog::{Column, Function, RelKind, Relation};

fn rel(
    oid: u32,
    schema: &str,
    name: &str,
    kind: RelKind,
    cols: &[&str],
    view: Option<&str>,
) -> Relation {
    Relation {
        oid,
        schema: schema.into(),
        name: name.into(),
        kind,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                name: (*c).into(),
                attnum: i as i16 + 1,
                type_oid: 25,
                type_name: "text".into(),
            })
            .collect(),
        view_definition: view.map(str::to_owned),
        primary_key: Vec::new(),
        row_security: false,
    }
}

pub(crate) fn hr_catalog() -> Catalog {
    let mut c = Catalog {
        version: 1,
        ..Default::default()
    };
    for (i, s) in ["pg_catalog", "public", "hr"].iter().enumerate() {
        c.schemas.insert((*s).into(), i as u32 + 1);
    }
    let t = RelKind::Table;
    c.insert_relation(rel(
        100,
        "hr",
        "departments",
        t,
        &["id", "name", "cost_center"],
        None,
    ));
    c.insert_relation(rel(
        101,
        "hr",
        "employees",
        t,
        &[
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "department_id",
            "manager_id",
            "job_title",
            "hire_date",
            "date_of_birth",
            "ssn",
            "home_address",
            "bank_account",
        ],
        None,
    ));
    c.insert_relation(rel(
        102,
        "hr",
        "salaries",
        t,
        &[
            "employee_id",
            "amount",
            "bonus",
            "currency",
            "effective_from",
        ],
        None,
    ));
    c.insert_relation(rel(
        103,
        "hr",
        "performance_reviews",
        t,
        &[
            "id",
            "employee_id",
            "reviewer_id",
            "period",
            "rating",
            "comments",
        ],
        None,
    ));
    c.insert_relation(rel(
        104,
        "hr",
        "health_records",
        t,
        &["id", "employee_id", "condition", "accommodation", "notes"],
        None,
    ));
    c.insert_relation(rel(
        105,
        "hr",
        "employee_directory",
        RelKind::View,
        &["id", "first_name", "last_name", "email", "phone", "department", "job_title"],
        Some(
            " SELECT e.id, e.first_name, e.last_name, e.email, e.phone, d.name AS department, e.job_title\n   \
             FROM (hr.employees e\n     JOIN hr.departments d ON ((d.id = e.department_id)));",
        ),
    ));
    c.insert_relation(rel(106, "public", "notes", t, &["id", "body"], None));
    c.insert_relation(rel(
        107,
        "pg_catalog",
        "pg_class",
        t,
        &["oid", "relname", "relnamespace"],
        None,
    ));
    for (schema, name, lang) in [
        ("pg_catalog", "count", "internal"),
        ("pg_catalog", "max", "internal"),
        ("pg_catalog", "sum", "internal"),
        ("pg_catalog", "avg", "internal"),
        ("pg_catalog", "upper", "internal"),
        ("pg_catalog", "lower", "internal"),
        ("pg_catalog", "row_to_json", "internal"),
        ("pg_catalog", "to_jsonb", "internal"),
        ("pg_catalog", "coalesce", "internal"),
        ("pg_catalog", "generate_series", "internal"),
        ("pg_catalog", "now", "internal"),
        ("pg_catalog", "row_number", "internal"),
        ("pg_catalog", "rank", "internal"),
        ("pg_catalog", "date_part", "internal"),
        ("pg_catalog", "unnest", "internal"),
        ("pg_catalog", "query_to_xml", "internal"),
        ("pg_catalog", "set_config", "internal"),
        ("pg_catalog", "length", "internal"),
        ("pg_catalog", "string_agg", "internal"),
        ("public", "hstore", "c"),
        ("hr", "raise_salary", "plpgsql"),
    ] {
        c.insert_function(Function {
            oid: 0,
            schema: schema.into(),
            name: name.into(),
            language: lang.into(),
            security_definer: false,
            returns_set: name == "generate_series" || name == "unnest",
        });
    }
    c
}

fn view() -> SessionView {
    SessionView {
        search_path: vec!["hr".into(), "public".into()],
        temp_relations: Vec::new(),
        created: Vec::new(),
        default_search_path: vec!["public".into()],
        standard_conforming_strings: true,
    }
}

/// Renders an analysis compactly: `schema.table o=a,b f=c w=d del` per access.
fn render(a: &Analysis) -> Vec<String> {
    a.accesses
        .iter()
        .map(|x| {
            let mut s = x.relation.to_string();
            for (tag, set) in [("o", &x.output), ("f", &x.filter), ("w", &x.written)] {
                if !set.is_empty() {
                    s.push_str(&format!(
                        " {tag}={}",
                        set.iter().cloned().collect::<Vec<_>>().join(",")
                    ));
                }
            }
            if x.deletes_rows {
                s.push_str(" del");
            }
            s
        })
        .collect()
}

fn analyse_one(sql: &str, v: &SessionView) -> Arc<Analysis> {
    let catalog = hr_catalog();
    let sql = sql.to_owned();
    let v = v.clone();
    let mut all = parse::on_parser_thread_blocking(move || analyse_text(&sql, &v, &catalog))
        .expect("parser thread");
    assert_eq!(all.len(), 1, "one statement expected");
    all.remove(0)
}

fn check(sql: &str, expected: &[&str]) {
    let a = analyse_one(sql, &view());
    assert_eq!(a.unanalysed, None, "{sql}");
    let mut got = render(&a);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "\n  statement: {sql}");
}

fn check_problem(sql: &str, needle: &str) {
    let a = analyse_one(sql, &view());
    let p = a.unanalysed.clone().unwrap_or_default();
    assert!(
        p.contains(needle),
        "{sql}: expected problem containing {needle:?}, got {p:?}"
    );
}

#[test]
fn selects() {
    check(
        "SELECT first_name, last_name FROM employees WHERE id = 1",
        &["hr.employees o=first_name,last_name f=id"],
    );
    check("select E.SSN from HR.Employees e", &["hr.employees o=ssn"]);
    check(
        "SELECT \"ssn\" FROM hr.\"employees\"",
        &["hr.employees o=ssn"],
    );
    check(
        "SELECT U&\"\\0073sn\" FROM hr.employees",
        &["hr.employees o=ssn"],
    );
    check("SELECT count(*) FROM hr.salaries", &["hr.salaries"]);
    check(
        "SELECT max(amount) FROM salaries GROUP BY currency HAVING sum(bonus) > 10",
        &["hr.salaries o=amount f=bonus,currency"],
    );
    check(
        "SELECT e.first_name, s.amount FROM employees e JOIN salaries s ON s.employee_id = e.id ORDER BY s.amount DESC LIMIT 10",
        &["hr.employees o=first_name f=id", "hr.salaries o=amount f=amount,employee_id"],
    );
    check(
        "SELECT * FROM departments",
        &["hr.departments o=cost_center,id,name"],
    );
    check(
        "SELECT d.* FROM departments d, employees e WHERE e.department_id = d.id",
        &[
            "hr.departments o=cost_center,id,name f=id",
            "hr.employees f=department_id",
        ],
    );
    check(
        "SELECT 1 FROM employees e WHERE EXISTS (SELECT 1 FROM salaries s WHERE s.employee_id = e.id AND s.amount > 100000)",
        &["hr.employees f=id", "hr.salaries f=amount,employee_id"],
    );
    check(
        "SELECT first_name FROM employees WHERE id IN (SELECT employee_id FROM health_records)",
        &[
            "hr.employees o=first_name f=id",
            "hr.health_records f=employee_id",
        ],
    );
    check(
        "SELECT e.last_name, (SELECT max(amount) FROM salaries s WHERE s.employee_id = e.id) FROM employees e",
        &["hr.employees o=last_name f=id", "hr.salaries o=amount f=employee_id"],
    );
    check(
        "SELECT ssn FROM employees ORDER BY 1",
        &["hr.employees o=ssn f=ssn"],
    );
    check(
        "SELECT job_title AS t FROM employees GROUP BY t",
        &["hr.employees o=job_title f=job_title"],
    );
    check(
        "SELECT first_name, rank() OVER (PARTITION BY department_id ORDER BY hire_date) FROM employees",
        &["hr.employees o=first_name f=department_id,hire_date"],
    );
    check(
        "SELECT DISTINCT ON (department_id) first_name FROM employees ORDER BY department_id, hire_date",
        &["hr.employees o=first_name f=department_id,hire_date"],
    );
    check(
        "SELECT upper(ssn) || '!' FROM employees",
        &["hr.employees o=ssn"],
    );
    check(
        "SELECT CASE WHEN amount > 100 THEN 'high' ELSE 'low' END FROM salaries",
        &["hr.salaries o=amount"],
    );
    check(
        "SELECT count(*) FILTER (WHERE amount > 5) FROM salaries",
        &["hr.salaries f=amount"],
    );
    check(
        "SELECT string_agg(first_name, ',' ORDER BY ssn) FROM employees",
        &["hr.employees o=first_name f=ssn"],
    );
    check("SELECT 1", &[]);
    check("VALUES (1, 'a'), (2, 'b')", &[]);
}

#[test]
fn whole_rows_and_stars() {
    let all_emp = "hr.employees o=bank_account,date_of_birth,department_id,email,first_name,hire_date,home_address,id,job_title,last_name,manager_id,phone,ssn";
    check("SELECT e FROM hr.employees e", &[all_emp]);
    check("SELECT row_to_json(e) FROM employees e", &[all_emp]);
    check("SELECT to_jsonb(e.*) FROM employees AS e", &[all_emp]);
    check("SELECT * FROM employees", &[all_emp]);
    check(
        "SELECT e.* FROM employees e JOIN departments d ON d.id = e.department_id",
        &[&format!("{all_emp} f=department_id"), "hr.departments f=id"],
    );
    check(
        "SELECT s FROM (SELECT ssn, id FROM employees) s",
        &["hr.employees o=id,ssn"],
    );
}

#[test]
fn opaque_functions() {
    let a = analyse_one("SELECT hstore(e) FROM employees e", &view());
    assert_eq!(a.opaque_calls.len(), 1);
    assert_eq!(a.opaque_calls[0].function, "hstore");
    assert!(a.opaque_calls[0]
        .columns
        .contains(&"hr.employees.ssn".to_owned()));
    let a = analyse_one("SELECT raise_salary(id, 10) FROM employees", &view());
    assert_eq!(a.opaque_calls[0].function, "raise_salary");
    assert_eq!(
        a.opaque_calls[0].columns,
        vec!["hr.employees.id".to_owned()]
    );
    let a = analyse_one(
        "SELECT query_to_xml('select ssn from hr.employees', true, false, '')",
        &view(),
    );
    assert_eq!(a.opaque_calls[0].function, "query_to_xml");
    let a = analyse_one("SELECT nosuchfunction(1)", &view());
    assert_eq!(a.opaque_calls[0].function, "nosuchfunction");
    let a = analyse_one("DO $$ BEGIN PERFORM 1; END $$", &view());
    assert_eq!(a.opaque_calls[0].function, "DO");
    let a = analyse_one("SELECT upper(first_name) FROM employees", &view());
    assert!(a.opaque_calls.is_empty());
}

#[test]
fn ctes_subqueries_set_operations() {
    check(
        "WITH rich AS (SELECT employee_id FROM salaries WHERE amount > 200000) SELECT e.email FROM employees e JOIN rich r ON r.employee_id = e.id",
        &["hr.employees o=email f=id", "hr.salaries f=amount,employee_id"],
    );
    check(
        "WITH RECURSIVE chain AS (SELECT id, manager_id, first_name FROM employees WHERE id = 1 UNION ALL SELECT e.id, e.manager_id, e.first_name FROM employees e JOIN chain c ON e.manager_id = c.id) SELECT first_name FROM chain",
        &["hr.employees o=first_name f=id,manager_id"],
    );
    check(
        "SELECT x FROM (SELECT ssn AS x FROM employees UNION SELECT name FROM departments) u",
        &["hr.employees o=ssn", "hr.departments o=name"],
    );
    check(
        "SELECT e.first_name, l.amount FROM employees e, LATERAL (SELECT amount FROM salaries s WHERE s.employee_id = e.id ORDER BY effective_from DESC LIMIT 1) l",
        &["hr.employees o=first_name f=id", "hr.salaries o=amount f=effective_from,employee_id"],
    );
    check("SELECT g FROM generate_series(1, 3) g", &[]);
    check(
        "WITH d AS (DELETE FROM performance_reviews WHERE rating < 2 RETURNING employee_id) SELECT count(*) FROM d",
        &["hr.performance_reviews f=rating del"],
    );
    check(
        "WITH d AS (DELETE FROM performance_reviews WHERE rating < 2 RETURNING employee_id) SELECT * FROM d",
        &["hr.performance_reviews o=employee_id f=rating del"],
    );
}

#[test]
fn joins_using_and_natural() {
    check(
        "SELECT amount FROM salaries JOIN health_records USING (employee_id)",
        &[
            "hr.salaries o=amount f=employee_id",
            "hr.health_records f=employee_id",
        ],
    );
    check(
        "SELECT employee_id, condition FROM salaries NATURAL JOIN health_records",
        &[
            "hr.salaries o=employee_id f=employee_id",
            "hr.health_records o=condition,employee_id f=employee_id",
        ],
    );
    check(
        "SELECT j.amount FROM (salaries s JOIN health_records h USING (employee_id)) AS j",
        &[
            "hr.salaries o=amount f=employee_id",
            "hr.health_records f=employee_id",
        ],
    );
}

#[test]
fn views_resolve_to_base_columns() {
    check(
        "SELECT first_name, department FROM employee_directory WHERE job_title = 'x'",
        &[
            "hr.employees o=first_name f=department_id,job_title",
            "hr.departments o=name f=id",
        ],
    );
    check(
        "SELECT * FROM hr.employee_directory",
        &[
            "hr.employees o=email,first_name,id,job_title,last_name,phone f=department_id",
            "hr.departments o=name f=id",
        ],
    );
}

#[test]
fn writes() {
    check(
        "INSERT INTO salaries (employee_id, amount, effective_from) VALUES (1, 100, now())",
        &["hr.salaries w=amount,effective_from,employee_id"],
    );
    check(
        "INSERT INTO salaries VALUES (1, 2, 3, 'USD', now())",
        &["hr.salaries w=amount,bonus,currency,effective_from,employee_id"],
    );
    check(
        "UPDATE salaries SET amount = amount * 1.1 WHERE employee_id = 7 RETURNING bonus",
        &["hr.salaries o=amount,bonus f=employee_id w=amount"],
    );
    check(
        "UPDATE salaries s SET bonus = e.id FROM employees e WHERE e.id = s.employee_id AND e.job_title = 'CEO'",
        &["hr.salaries f=employee_id w=bonus", "hr.employees o=id f=id,job_title"],
    );
    check(
        "DELETE FROM health_records WHERE employee_id = 3",
        &["hr.health_records f=employee_id del"],
    );
    check(
        "DELETE FROM salaries s USING employees e WHERE e.id = s.employee_id AND e.ssn = '9'",
        &["hr.salaries f=employee_id del", "hr.employees f=id,ssn"],
    );
    check(
        "TRUNCATE salaries, hr.health_records",
        &["hr.salaries del", "hr.health_records del"],
    );
    check(
        "INSERT INTO notes (body) SELECT ssn FROM employees",
        &["public.notes w=body", "hr.employees o=ssn"],
    );
    check(
        "INSERT INTO salaries (employee_id, amount, effective_from) VALUES (1, 2, now()) ON CONFLICT (employee_id, effective_from) DO UPDATE SET amount = EXCLUDED.amount WHERE salaries.bonus < 5",
        &["hr.salaries o=amount f=bonus,effective_from,employee_id w=amount,effective_from,employee_id"],
    );
    check(
        "UPDATE employees SET (phone, email) = (SELECT phone, email FROM employees WHERE id = 2) WHERE id = 1",
        &["hr.employees o=email,phone f=id w=email,phone"],
    );
    check(
        "MERGE INTO salaries t USING (SELECT id FROM employees) s ON t.employee_id = s.id \
         WHEN MATCHED AND t.amount < 10 THEN UPDATE SET amount = 10 \
         WHEN NOT MATCHED THEN INSERT (employee_id, amount, effective_from) VALUES (s.id, 1, now()) \
         WHEN MATCHED THEN DELETE",
        &["hr.salaries f=amount,employee_id w=amount,effective_from,employee_id del", "hr.employees o=id f=id"],
    );
}

#[test]
fn copy_and_table_creation() {
    check(
        "COPY employees (id, ssn) TO STDOUT",
        &["hr.employees o=id,ssn"],
    );
    check(
        "COPY salaries FROM STDIN",
        &["hr.salaries w=amount,bonus,currency,effective_from,employee_id"],
    );
    check(
        "COPY (SELECT ssn FROM employees WHERE id < 5) TO STDOUT WITH CSV",
        &["hr.employees o=ssn f=id"],
    );
    check(
        "CREATE TABLE stolen AS SELECT ssn, bank_account FROM employees",
        &[
            "hr.employees o=bank_account,ssn",
            "(default).stolen w=bank_account,ssn",
        ],
    );
    check(
        "SELECT ssn INTO TEMP loot FROM employees",
        &["hr.employees o=ssn", "pg_temp.loot w=ssn"],
    );
}

#[test]
fn search_path_and_temp_shadowing() {
    let mut v = view();
    v.search_path = vec!["public".into()];
    let a = analyse_one("SELECT ssn FROM employees", &v);
    assert!(
        a.unanalysed
            .as_deref()
            .unwrap_or_default()
            .contains("does not exist"),
        "{a:?}"
    );
    v.temp_relations = vec!["employees".into()];
    let a = analyse_one("SELECT ssn FROM employees", &v);
    assert_eq!(render(&a), vec!["pg_temp.employees o=ssn"]);
    // pg_catalog is searched first unless placed explicitly.
    check(
        "SELECT relname FROM pg_class",
        &["pg_catalog.pg_class o=relname"],
    );
}

#[test]
fn session_statements() {
    let a = analyse_one("SET search_path TO hr, public", &view());
    assert_eq!(
        a.effects,
        vec![SessionEffect::SearchPath {
            value: Some(vec!["hr".into(), "public".into()]),
            local: false
        }]
    );
    let a = analyse_one("SET LOCAL search_path = 'x'", &view());
    assert_eq!(
        a.effects,
        vec![SessionEffect::SearchPath {
            value: Some(vec!["x".into()]),
            local: true
        }]
    );
    let a = analyse_one("RESET search_path", &view());
    assert_eq!(
        a.effects,
        vec![SessionEffect::SearchPath {
            value: None,
            local: false
        }]
    );
    let a = analyse_one("SET ROLE hr_admin", &view());
    assert_eq!(
        a.effects,
        vec![SessionEffect::Role {
            role: Some("hr_admin".into()),
            local: false,
            session_authorization: false
        }]
    );
    let a = analyse_one("RESET ROLE", &view());
    assert_eq!(
        a.effects,
        vec![SessionEffect::Role {
            role: None,
            local: false,
            session_authorization: false
        }]
    );
    let a = analyse_one("SET SESSION AUTHORIZATION payroll", &view());
    assert_eq!(a.command, "SET SESSION AUTHORIZATION");
    let a = analyse_one(
        "PREPARE p(int) AS SELECT ssn FROM employees WHERE id = $1",
        &view(),
    );
    assert_eq!(render(&a), vec!["hr.employees o=ssn f=id"]);
    assert!(a.effects.contains(&SessionEffect::Prepare("p".into())));
    let a = analyse_one("EXECUTE p(1)", &view());
    assert_eq!(a.refers_to.as_deref(), Some("p"));
    let a = analyse_one(
        "DECLARE c CURSOR FOR SELECT bank_account FROM employees",
        &view(),
    );
    assert_eq!(render(&a), vec!["hr.employees o=bank_account"]);
    let a = analyse_one("FETCH 10 FROM c", &view());
    assert_eq!(
        (a.command.as_str(), a.refers_to.as_deref()),
        ("FETCH", Some("c"))
    );
    let a = analyse_one("BEGIN ISOLATION LEVEL SERIALIZABLE", &view());
    assert_eq!(a.kind, StatementKind::Transaction);
    let a = analyse_one("CREATE INDEX ON employees (ssn)", &view());
    assert_eq!(a.kind, StatementKind::Ddl);
    assert!(a.effects.contains(&SessionEffect::CatalogChanged));
    let a = analyse_one("EXPLAIN ANALYZE SELECT ssn FROM employees", &view());
    assert_eq!(render(&a), vec!["hr.employees f=ssn"]);
}

#[test]
fn problems_are_reported_not_guessed() {
    check_problem(
        "SELECT nosuchcolumn FROM employees",
        "column \"nosuchcolumn\" does not exist",
    );
    check_problem(
        "SELECT * FROM nosuchtable",
        "relation \"nosuchtable\" does not exist",
    );
    check_problem("SELEC 1", "syntax error");
    let deep = format!("SELECT {}1{}", "(".repeat(1000), ")".repeat(1000));
    check_problem(&deep, "nested too deeply");
}

#[test]
fn multi_statement_texts_are_split() {
    let catalog = hr_catalog();
    let v = view();
    let all = parse::on_parser_thread_blocking(move || {
        analyse_text(
            "SELECT ssn FROM employees; UPDATE salaries SET amount = 1; SELECT 'x'",
            &v,
            &catalog,
        )
    })
    .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].normalized.as_ref(), "SELECT ssn FROM employees");
    assert_eq!(all[1].kind, StatementKind::Update);
    assert_eq!(all[2].normalized.as_ref(), "SELECT $1");
}

#[test]
fn cache_ignores_literals_but_not_catalog_version_or_path() {
    let analyser = Arc::new(Analyser::new(1000));
    let mut catalog = hr_catalog();
    let v = view();
    let a1 = analyser.analyse_here("SELECT ssn FROM employees WHERE id = 1", &v, &catalog);
    assert!(analyser
        .cached(
            "SELECT ssn FROM employees WHERE id = 2",
            &v,
            catalog.version
        )
        .is_some());
    assert!(Arc::ptr_eq(
        &a1,
        &analyser
            .cached("SELECT ssn FROM employees WHERE id = 99", &v, 1)
            .unwrap()
    ));
    assert!(analyser
        .cached("SELECT ssn FROM employees WHERE id = 2", &v, 2)
        .is_none());
    let mut other = v.clone();
    other.search_path = vec!["public".into()];
    assert!(analyser
        .cached("SELECT ssn FROM employees WHERE id = 2", &other, 1)
        .is_none());
    // SET with a literal value is never served from the cache.
    catalog.version = 3;
    analyser.analyse_here("SET search_path = 'hr'", &v, &catalog);
    assert!(analyser
        .cached("SET search_path = 'public'", &v, 3)
        .is_none());
}

#[test]
fn set_operations_other_than_union_read_the_right_side_as_filter() {
    check(
        "SELECT id FROM employees EXCEPT SELECT employee_id FROM health_records",
        &["hr.employees o=id", "hr.health_records f=employee_id"],
    );
    check(
        "SELECT id FROM employees INTERSECT SELECT employee_id FROM salaries",
        &["hr.employees o=id", "hr.salaries f=employee_id"],
    );
}

#[test]
fn temp_table_creation_is_an_effect() {
    let a = analyse_one(
        "CREATE TEMPORARY TABLE regr_test (x float8, y float8)",
        &view(),
    );
    assert!(
        a.effects
            .contains(&SessionEffect::TempRelation("regr_test".into())),
        "{:?}",
        a.effects
    );
}

#[test]
fn relations_created_in_the_session_resolve_before_the_catalog_shows_them() {
    let catalog = hr_catalog();
    let v = view();
    let all = parse::on_parser_thread_blocking(move || {
        analyse_text(
            "CREATE TABLE hr.bonus_plan (employee_id int, pct numeric); INSERT INTO bonus_plan SELECT id, 1 FROM employees; \
             CREATE VIEW v_new AS SELECT 1 AS x; SELECT x FROM v_new",
            &v,
            &catalog,
        )
    })
    .unwrap();
    assert_eq!(all[1].unanalysed, None);
    assert_eq!(
        render(&all[1]),
        vec!["hr.bonus_plan w=employee_id,pct", "hr.employees o=id"]
    );
    assert_eq!(all[3].unanalysed, None);
    assert_eq!(render(&all[3]), vec!["hr.v_new o=x"]);
}

#[test]
fn reset_search_path_within_one_text() {
    let catalog = hr_catalog();
    let v = view();
    let all = parse::on_parser_thread_blocking(move || {
        analyse_text(
            "SET search_path = hr; RESET search_path; SELECT body FROM notes",
            &v,
            &catalog,
        )
    })
    .unwrap();
    assert_eq!(all[2].unanalysed, None, "{:?}", all[2]);
    assert_eq!(render(&all[2]), vec!["public.notes o=body"]);
}

#[test]
fn subquery_over_relation_with_unknown_columns_accepts_any_name() {
    let mut v = view();
    v.temp_relations = vec!["scratch".into()];
    let a = analyse_one(
        "SELECT ss.a FROM (SELECT *, 1 AS phv FROM scratch) ss WHERE ss.b > 0",
        &v,
    );
    assert_eq!(a.unanalysed, None, "{a:?}");
    assert_eq!(render(&a), vec!["pg_temp.scratch o=* f=*"]);
}

/// Renders result columns as `name = sources` (direct) or `name ~ sources`
/// (derived), sources as `schema.table.column` joined by commas.
fn results_with(sql: &str, v: &SessionView) -> Option<Vec<String>> {
    let a = analyse_one(sql, v);
    a.results.as_ref().map(|cols| {
        cols.iter()
            .map(|c| {
                let sources: Vec<String> = c
                    .sources
                    .iter()
                    .map(|s| format!("{}.{}", s.relation, s.column))
                    .collect();
                let mark = if c.direct { "=" } else { "~" };
                format!("{} {mark} {}", c.name, sources.join(","))
                    .trim_end()
                    .to_owned()
            })
            .collect()
    })
}

fn check_results(sql: &str, expected: Option<&[&str]>) {
    let got = results_with(sql, &view());
    let want = expected.map(|e| e.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(got, want, "\n  statement: {sql}");
}

const EMP: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "department_id",
    "manager_id",
    "job_title",
    "hire_date",
    "date_of_birth",
    "ssn",
    "home_address",
    "bank_account",
];

/// `name = hr.employees.name` for every employees column, in table order.
fn emp_direct() -> Vec<String> {
    EMP.iter()
        .map(|c| format!("{c} = hr.employees.{c}"))
        .collect()
}

#[test]
fn results_plain_columns_aliases_and_stars() {
    // `ssn` is in both FROM items: ambiguous, so never direct.
    check_results(
        "SELECT ssn, e.first_name AS f, hr.employees.id FROM hr.employees, employees e",
        Some(&[
            "ssn ~ hr.employees.ssn",
            "f = hr.employees.first_name",
            "id = hr.employees.id",
        ]),
    );
    check_results(
        "SELECT ssn, e.first_name AS f, hr.employees.id FROM hr.employees, departments e",
        Some(&["ssn = hr.employees.ssn", "f ~", "id = hr.employees.id"]),
    );
    check_results(
        "SELECT (ssn), ctid FROM employees",
        Some(&["ssn = hr.employees.ssn", "ctid = hr.employees.ctid"]),
    );
    let all: Vec<String> = emp_direct();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    check_results("SELECT * FROM employees", Some(&all));
    check_results("TABLE employees", Some(&all));
    let mut with_dept = vec![
        "id = hr.departments.id",
        "name = hr.departments.name",
        "cost_center = hr.departments.cost_center",
    ];
    with_dept.extend(&all);
    with_dept.push("x = hr.departments.name");
    check_results(
        "SELECT d.*, e.*, d.name AS x FROM departments d JOIN employees e ON e.department_id = d.id",
        Some(&with_dept),
    );
}

#[test]
fn results_expressions_are_not_direct() {
    check_results(
        "SELECT amount * 1, upper(currency), currency::text, coalesce(currency, 'x'), count(bonus) OVER (), \
         CASE WHEN amount > 1 THEN bonus END, currency COLLATE \"C\", -amount FROM salaries",
        Some(&[
            "?column? ~ hr.salaries.amount",
            "upper ~ hr.salaries.currency",
            "currency ~ hr.salaries.currency",
            "coalesce ~ hr.salaries.currency",
            "count ~ hr.salaries.bonus",
            "case ~ hr.salaries.amount,hr.salaries.bonus",
            "currency ~ hr.salaries.currency",
            "?column? ~ hr.salaries.amount",
        ]),
    );
    check_results(
        "SELECT count(ssn), max(ssn), 1, NULL FROM employees",
        Some(&[
            "count ~ hr.employees.ssn",
            "max ~ hr.employees.ssn",
            "?column? ~",
            "?column? ~",
        ]),
    );
    // A scalar subquery is computed per row, even when it picks one column.
    check_results(
        "SELECT (SELECT ssn FROM employees e2 WHERE e2.id = e.manager_id) FROM employees e",
        Some(&["ssn ~ hr.employees.ssn"]),
    );
    check_results("VALUES (1, 'a')", Some(&["column1 ~", "column2 ~"]));
    // Grouping keeps stored values; an aggregate does not.
    check_results(
        "SELECT currency, sum(amount) FROM salaries GROUP BY currency",
        Some(&[
            "currency = hr.salaries.currency",
            "sum ~ hr.salaries.amount",
        ]),
    );
}

#[test]
fn results_whole_rows_and_fields_are_not_direct() {
    let all = EMP
        .iter()
        .map(|c| format!("hr.employees.{c}"))
        .collect::<Vec<_>>()
        .join(",");
    check_results(
        "SELECT e FROM hr.employees e",
        Some(&[&format!("e ~ {all}")]),
    );
    check_results(
        "SELECT row_to_json(e) FROM employees e",
        Some(&[&format!("row_to_json ~ {all}")]),
    );
    check_results(
        "SELECT (e).ssn, (e.*).email FROM employees e",
        Some(&["ssn ~ hr.employees.ssn", "email ~ hr.employees.email"]),
    );
}

#[test]
fn results_pass_through_subqueries_ctes_and_views() {
    check_results(
        "SELECT x, y FROM (SELECT ssn AS x, upper(email) AS y FROM employees) s",
        Some(&["x = hr.employees.ssn", "y ~ hr.employees.email"]),
    );
    check_results(
        "SELECT s.* FROM (SELECT ssn, id FROM employees) AS s (a)",
        Some(&["a = hr.employees.ssn", "id = hr.employees.id"]),
    );
    check_results(
        "WITH c AS (SELECT ssn, length(ssn) AS n FROM employees) SELECT * FROM c",
        Some(&["ssn = hr.employees.ssn", "n ~ hr.employees.ssn"]),
    );
    check_results(
        "SELECT e.first_name, l.x FROM employees e, LATERAL (SELECT e.ssn AS x) l",
        Some(&[
            "first_name = hr.employees.first_name",
            "x = hr.employees.ssn",
        ]),
    );
    // The recursive term passes first_name through the CTE itself: direct
    // only where both the anchor and the recursive term are.
    check_results(
        "WITH RECURSIVE chain AS (SELECT id, manager_id, first_name FROM employees WHERE id = '1' \
         UNION ALL SELECT e.id, e.manager_id, c.first_name FROM employees e JOIN chain c ON e.manager_id = c.id) \
         SELECT * FROM chain",
        Some(&[
            "id = hr.employees.id",
            "manager_id = hr.employees.manager_id",
            "first_name ~ hr.employees.first_name",
        ]),
    );
    check_results(
        "SELECT first_name, department FROM employee_directory",
        Some(&[
            "first_name = hr.employees.first_name",
            "department = hr.departments.name",
        ]),
    );
    check_results(
        "SELECT * FROM hr.employee_directory",
        Some(&[
            "id = hr.employees.id",
            "first_name = hr.employees.first_name",
            "last_name = hr.employees.last_name",
            "email = hr.employees.email",
            "phone = hr.employees.phone",
            "department = hr.departments.name",
            "job_title = hr.employees.job_title",
        ]),
    );
}

#[test]
fn results_of_set_operations() {
    check_results(
        "SELECT ssn FROM employees UNION SELECT name FROM departments",
        Some(&["ssn = hr.employees.ssn,hr.departments.name"]),
    );
    check_results(
        "SELECT ssn, id FROM employees UNION ALL SELECT upper(name), id FROM departments",
        Some(&[
            "ssn ~ hr.employees.ssn,hr.departments.name",
            "id = hr.employees.id,hr.departments.id",
        ]),
    );
    // EXCEPT returns left rows only.
    check_results(
        "SELECT ssn FROM employees EXCEPT SELECT upper(name) FROM departments",
        Some(&["ssn = hr.employees.ssn"]),
    );
    check_results(
        "SELECT ssn FROM employees INTERSECT SELECT upper(name) FROM departments",
        Some(&["ssn ~ hr.employees.ssn"]),
    );
}

#[test]
fn results_of_joins_using_and_natural() {
    let rest = [
        "amount = hr.salaries.amount",
        "bonus = hr.salaries.bonus",
        "currency = hr.salaries.currency",
        "effective_from = hr.salaries.effective_from",
        "id = hr.health_records.id",
        "condition = hr.health_records.condition",
        "accommodation = hr.health_records.accommodation",
        "notes = hr.health_records.notes",
    ];
    let merged = "hr.salaries.employee_id,hr.health_records.employee_id";
    // Merged columns first, then each side's others, as PostgreSQL does.
    for (sql, direct) in [
        (
            "SELECT * FROM salaries JOIN health_records USING (employee_id)",
            true,
        ),
        (
            "SELECT * FROM salaries NATURAL LEFT JOIN health_records",
            true,
        ),
        (
            "SELECT * FROM salaries s RIGHT JOIN health_records h USING (employee_id)",
            true,
        ),
        // FULL JOIN merges with COALESCE.
        (
            "SELECT * FROM salaries FULL JOIN health_records USING (employee_id)",
            false,
        ),
        (
            "SELECT j.* FROM (salaries NATURAL JOIN health_records) AS j",
            true,
        ),
    ] {
        let mut want = vec![format!(
            "employee_id {} {merged}",
            if direct { "=" } else { "~" }
        )];
        want.extend(rest.iter().map(|s| (*s).to_owned()));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check_results(sql, Some(&want));
    }
    // A side's own column stays direct; the merged one follows the join type.
    check_results(
        "SELECT s.employee_id, h.employee_id, employee_id FROM salaries s FULL JOIN health_records h USING (employee_id)",
        Some(&[
            "employee_id = hr.salaries.employee_id",
            "employee_id = hr.health_records.employee_id",
            &format!("employee_id ~ {merged}"),
        ]),
    );
    // LEFT JOIN takes the left value: not direct when that one is computed.
    check_results(
        "SELECT employee_id FROM (SELECT employee_id::text AS employee_id FROM salaries) s \
         LEFT JOIN health_records USING (employee_id)",
        Some(&[&format!("employee_id ~ {merged}")]),
    );
    check_results(
        "SELECT j.a, j.amount FROM (salaries JOIN health_records USING (employee_id)) AS j (a)",
        Some(&[&format!("a = {merged}"), "amount = hr.salaries.amount"]),
    );
    // Ambiguous names (an error in PostgreSQL) are never direct.
    check_results(
        "SELECT id FROM employees, departments",
        Some(&["id ~ hr.employees.id,hr.departments.id"]),
    );
}

#[test]
fn results_of_unknown_columns_are_not_direct() {
    let temp = SessionView {
        temp_relations: vec!["scratch".into()],
        ..view()
    };
    // Past a relation of unknown width, positions are not known either.
    assert_eq!(
        results_with("SELECT ssn, s.*, id, s.a FROM employees, scratch s", &temp),
        Some(vec![
            "ssn = hr.employees.ssn".to_owned(),
            "* ~ pg_temp.scratch.*".to_owned(),
            "id ~ hr.employees.id".to_owned(),
            "a ~ pg_temp.scratch.a".to_owned(),
        ])
    );
    // An alias list running into unknown columns: `b` may be any column
    // from the placeholder on.
    assert_eq!(
        results_with(
            "SELECT s.b, s.ssn FROM (SELECT t.*, e.ssn FROM scratch t, employees e) AS s (a, b)",
            &temp
        ),
        Some(vec![
            "b ~ pg_temp.scratch.*,hr.employees.ssn".to_owned(),
            "ssn = hr.employees.ssn".to_owned(),
        ])
    );
    check_results("SELECT * FROM generate_series(1, 3) g", Some(&["* ~"]));
    check_results(
        "SELECT g, e.ssn FROM employees e, unnest(ARRAY[e.ssn]) g",
        Some(&["g ~ hr.employees.ssn", "ssn = hr.employees.ssn"]),
    );
}

#[test]
fn results_of_writes_and_copy() {
    check_results("INSERT INTO notes VALUES (1, 'x')", None);
    check_results("UPDATE employees SET ssn = 'x'", None);
    check_results(
        "INSERT INTO notes VALUES (1, 'x') RETURNING *",
        Some(&["id = public.notes.id", "body = public.notes.body"]),
    );
    check_results(
        "UPDATE employees e SET ssn = upper(ssn) FROM departments d WHERE d.id = e.department_id \
         RETURNING e.ssn, d.*, lower(e.email) AS m",
        Some(&[
            "ssn = hr.employees.ssn",
            "id = hr.departments.id",
            "name = hr.departments.name",
            "cost_center = hr.departments.cost_center",
            "m ~ hr.employees.email",
        ]),
    );
    check_results(
        "DELETE FROM salaries WHERE amount < 0 RETURNING employee_id, amount + bonus",
        Some(&[
            "employee_id = hr.salaries.employee_id",
            "?column? ~ hr.salaries.amount,hr.salaries.bonus",
        ]),
    );
    check_results(
        "COPY employees (ssn, id) TO STDOUT",
        Some(&["ssn = hr.employees.ssn", "id = hr.employees.id"]),
    );
    check_results(
        "COPY departments TO STDOUT",
        Some(&[
            "id = hr.departments.id",
            "name = hr.departments.name",
            "cost_center = hr.departments.cost_center",
        ]),
    );
    check_results(
        "COPY (SELECT ssn, upper(email) FROM employees) TO STDOUT",
        Some(&["ssn = hr.employees.ssn", "upper ~ hr.employees.email"]),
    );
    check_results("COPY departments TO '/tmp/d.csv'", None);
    check_results("COPY departments FROM STDIN", None);
}

#[test]
fn results_only_for_rows_sent_to_the_client() {
    check_results("SELECT ssn INTO TEMP loot FROM employees", None);
    check_results(
        "SELECT ssn INTO loot FROM employees UNION SELECT name FROM departments",
        None,
    );
    check_results("CREATE TABLE loot AS SELECT ssn FROM employees", None);
    check_results("EXPLAIN SELECT ssn FROM employees", None);
    check_results("EXPLAIN ANALYZE SELECT ssn FROM employees", None);
    check_results("SET search_path = hr", None);
    // What EXECUTE and FETCH will return.
    check_results(
        "PREPARE p(int) AS SELECT ssn, upper(email) FROM employees WHERE id = $1",
        Some(&["ssn = hr.employees.ssn", "upper ~ hr.employees.email"]),
    );
    check_results(
        "DECLARE c CURSOR FOR SELECT d.name FROM departments d",
        Some(&["name = hr.departments.name"]),
    );
    check_results("PREPARE q AS INSERT INTO notes VALUES (1, 'x')", None);
    check_results("EXECUTE p(1)", None);
}

/// The unfiltered reads, LIMIT, FETCH and COPY TO of a statement's shape.
fn shape_of(sql: &str) -> (Vec<String>, Option<u64>, Option<u64>, bool) {
    let s = analyse_one(sql, &view()).shape.clone();
    (
        s.unfiltered_reads.iter().map(ToString::to_string).collect(),
        s.limit.map(|c| c.value),
        s.fetch.map(|c| c.value),
        s.copy_to,
    )
}

#[test]
fn shapes_come_from_the_parse_tree() {
    let emp = || vec!["hr.employees".to_owned()];
    assert_eq!(
        shape_of("SELECT * FROM hr.employees"),
        (emp(), None, None, false)
    );
    assert_eq!(
        shape_of(
            "SELECT e.ssn, d.name FROM employees e JOIN departments d ON d.id = e.department_id"
        ),
        (
            vec!["hr.departments".to_owned(), "hr.employees".to_owned()],
            None,
            None,
            false
        )
    );
    // Views count as their base tables.
    assert_eq!(
        shape_of("SELECT * FROM hr.employee_directory").0,
        ["hr.departments", "hr.employees"]
    );
    // Filters, limits, aggregates, subqueries and CTEs are not unfiltered reads.
    for sql in [
        "SELECT * FROM hr.employees WHERE id = 1",
        "SELECT count(*) FROM hr.employees",
        "SELECT department_id, count(*) FROM hr.employees GROUP BY 1",
        "SELECT * FROM (SELECT * FROM hr.employees WHERE id = 1) s",
        "WITH x AS (SELECT * FROM hr.employees WHERE id < 5) SELECT * FROM x",
        "SELECT 'hr.employees'",
        "SELECT * FROM hr.employees LIMIT 5",
    ] {
        assert!(shape_of(sql).0.is_empty(), "{sql}");
    }
    assert_eq!(
        shape_of("SELECT id FROM hr.employees LIMIT 1000000").1,
        Some(1_000_000)
    );
    assert_eq!(
        shape_of("SELECT id FROM hr.employees FETCH FIRST 50000 ROWS ONLY").1,
        Some(50_000)
    );
    assert_eq!(
        shape_of("SELECT id FROM hr.employees LIMIT ALL"),
        (vec!["hr.employees".to_owned()], None, None, false)
    );
    assert_eq!(shape_of("FETCH 100000 FROM c").2, Some(100_000));
    assert_eq!(shape_of("FETCH ALL FROM c").2, Some(u64::MAX));
    assert_eq!(shape_of("FETCH NEXT FROM c").2, Some(1));
    assert_eq!(shape_of("FETCH ABSOLUTE 5000000 FROM c").2, None);
    assert_eq!(shape_of("MOVE 100000 FROM c").2, None);
    assert!(shape_of("COPY hr.employees TO STDOUT").3);
    assert!(!shape_of("COPY hr.employees FROM STDIN").3);
    assert_eq!(
        shape_of("COPY (SELECT * FROM hr.employees) TO STDOUT"),
        (emp(), None, None, true)
    );
    assert_eq!(
        shape_of("DECLARE c CURSOR FOR SELECT * FROM hr.employees").0,
        emp()
    );
}

#[test]
fn literal_counts_are_located_for_texts_sharing_an_analysis() {
    let a = analyse_one("SELECT id FROM hr.employees WHERE id > 3 LIMIT 10", &view());
    let limit = a.shape.limit.expect("limit");
    assert_eq!((limit.value, limit.literal), (10, Some(1)));
    let other = a
        .shape
        .with_counts_from("SELECT id FROM hr.employees WHERE id > 0 LIMIT 99999", true)
        .expect("another count");
    assert_eq!(other.limit.map(|c| c.value), Some(99_999));
    let f = analyse_one("FETCH FORWARD 7 IN c", &view())
        .shape
        .fetch
        .expect("fetch");
    assert_eq!((f.value, f.literal), (7, Some(0)));
}
