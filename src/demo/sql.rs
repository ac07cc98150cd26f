//! Renders [`HrData`] as batched multi-row INSERT statements.
//!
//! Multi-row INSERTs sent with the simple query protocol load thousands of
//! rows per round trip without needing COPY support in the client.

use super::data::{Date, HrData};
use std::fmt::Write;

/// Rows per INSERT statement: large enough to be fast, small enough to keep
/// each message modest.
const ROWS_PER_INSERT: usize = 1000;

/// A string as an SQL literal. `standard_conforming_strings` is on (the
/// default since 9.1), so only single quotes need doubling.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        // NUL cannot be stored in text; the generated data never has it.
        if c != '\0' {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn date(d: Date) -> String {
    format!("'{d}'")
}

fn opt_int(v: Option<i32>) -> String {
    v.map_or_else(|| "NULL".into(), |v| v.to_string())
}

/// Cents as an exact numeric literal.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Appends `INSERT INTO table (columns) VALUES ...;` statements, one per
/// chunk of rows, to `out`.
fn inserts(out: &mut Vec<String>, table: &str, columns: &str, rows: Vec<String>) {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut s = format!("INSERT INTO {table} ({columns}) VALUES\n");
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                s.push_str(",\n");
            }
            let _ = write!(s, "({row})");
        }
        s.push_str(";\n");
        out.push(s);
    }
}

/// The SQL that loads `data` into the (empty) demo tables, as a list of
/// statements to send one batch at a time.
pub fn insert_statements(data: &HrData) -> Vec<String> {
    let mut out = Vec::new();
    let rows = data
        .departments
        .iter()
        .map(|d| format!("{}, {}, {}", d.id, quote(&d.name), quote(&d.cost_center)))
        .collect();
    inserts(&mut out, "hr.departments", "id, name, cost_center", rows);

    let rows = data
        .employees
        .iter()
        .map(|e| {
            format!(
                "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
                e.id,
                quote(&e.first_name),
                quote(&e.last_name),
                quote(&e.email),
                quote(&e.phone),
                e.department_id,
                opt_int(e.manager_id),
                quote(&e.job_title),
                date(e.hire_date),
                date(e.date_of_birth),
                quote(&e.ssn),
                quote(&e.home_address),
                quote(&e.bank_account)
            )
        })
        .collect();
    inserts(
        &mut out,
        "hr.employees",
        "id, first_name, last_name, email, phone, department_id, manager_id, job_title, \
         hire_date, date_of_birth, ssn, home_address, bank_account",
        rows,
    );

    let rows = data
        .salaries
        .iter()
        .map(|s| {
            format!(
                "{}, {}, {}, {}, {}",
                s.employee_id,
                money(s.amount_cents),
                money(s.bonus_cents),
                quote(s.currency),
                date(s.effective_from)
            )
        })
        .collect();
    inserts(
        &mut out,
        "hr.salaries",
        "employee_id, amount, bonus, currency, effective_from",
        rows,
    );

    let rows = data
        .reviews
        .iter()
        .map(|r| {
            format!(
                "{}, {}, {}, {}, {}, {}",
                r.id,
                r.employee_id,
                opt_int(r.reviewer_id),
                quote(&r.period),
                r.rating,
                quote(&r.comments)
            )
        })
        .collect();
    inserts(
        &mut out,
        "hr.performance_reviews",
        "id, employee_id, reviewer_id, period, rating, comments",
        rows,
    );

    let rows = data
        .health_records
        .iter()
        .map(|h| {
            format!(
                "{}, {}, {}, {}, {}",
                h.id,
                h.employee_id,
                quote(&h.condition),
                quote(&h.accommodation),
                quote(&h.notes)
            )
        })
        .collect();
    inserts(
        &mut out,
        "hr.health_records",
        "id, employee_id, condition, accommodation, notes",
        rows,
    );

    // Explicit ids were inserted, so move the identity sequences past them
    // for rows added later through the proxy.
    let mut fix = String::new();
    for table in [
        "departments",
        "employees",
        "performance_reviews",
        "health_records",
    ] {
        let _ = writeln!(
            fix,
            "SELECT setval(pg_get_serial_sequence('hr.{table}', 'id'), \
             coalesce((SELECT max(id) FROM hr.{table}), 0) + 1, false);"
        );
    }
    out.push(fix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_strings() {
        assert_eq!(quote("O'Brien"), "'O''Brien'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\\b"), "'a\\b'");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(money(12_345_600), "123456.00");
        assert_eq!(money(5), "0.05");
    }

    #[test]
    fn batches_rows() {
        let stmts = insert_statements(&super::super::data::generate(2500, 1));
        let employees = stmts
            .iter()
            .filter(|s| s.starts_with("INSERT INTO hr.employees "))
            .count();
        assert_eq!(employees, 3);
    }
}
