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
