//! `[subjects]`: which tables hold rows about a data subject (an employee,
//! a customer) and which key column says whose row it is, so the audit
//! record can say which subjects each result returned ("who saw whom").
//!
//! ```toml
//! [subjects]
//! "hr.employees" = "id"
//! "hr.salaries" = { key = "employee_id", subject = "hr.employees" }
//! ```

use serde::Deserialize;
use std::sync::Arc;

/// One `[subjects]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SubjectSpec {
    /// The key column; the table is its own subject.
    Key(String),
    /// The key column and the subject it identifies.
    Full(SubjectRef),
}

/// `{ key = "employee_id", subject = "hr.employees" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRef {
    /// The key column of this table.
    pub key: String,
    /// The subject (`schema.table`) it identifies; default the table itself.
    pub subject: Option<String>,
}

/// A compiled entry: rows of `schema.table` are about the subject that
/// `column` identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// Its key column.
    pub column: String,
    /// The subject (`schema.table`) the key identifies.
    pub subject: Arc<str>,
}

/// Whether `s` is a plain `schema.table` (no wildcards, no empty parts).
fn split_table(s: &str) -> Option<(&str, &str)> {
    let (schema, table) = s.split_once('.')?;
    let ok = |p: &str| !p.is_empty() && !p.contains(['.', '*', ' ']);
    (ok(schema) && ok(table)).then_some((schema, table))
}

/// Checks one entry against those compiled so far; the error says why.
pub fn compile(
    table: &str,
    spec: &SubjectSpec,
    so_far: &[SubjectKey],
) -> Result<SubjectKey, String> {
    let Some((schema, name)) = split_table(table) else {
        return Err(format!(
            "\"{table}\" is not schema.table (no wildcards: name each table)"
        ));
    };
    let (key, subject) = match spec {
        SubjectSpec::Key(k) => (k.as_str(), None),
        SubjectSpec::Full(r) => (r.key.as_str(), r.subject.as_deref()),
    };
    if key.is_empty() || key.contains(['.', '*']) {
        return Err(format!("key \"{key}\" is not a column name of {table}"));
    }
    let subject = subject.unwrap_or(table);
    if split_table(subject).is_none() {
        return Err(format!("subject \"{subject}\" is not schema.table"));
    }
    if so_far.iter().any(|k| k.schema == schema && k.table == name) {
        return Err(format!("{table} is declared twice"));
    }
    Ok(SubjectKey {
        schema: schema.to_owned(),
        table: name.to_owned(),
        column: key.to_owned(),
        subject: Arc::from(subject),
    })
}

/// The 1-based line of `table`'s entry in a policy file's text (0 if not found).
pub fn line_of(text: &str, table: &str) -> usize {
    let quoted = [format!("\"{table}\""), format!("'{table}'")];
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            quoted.iter().any(|q| l.starts_with(q.as_str()))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let k = compile("hr.employees", &SubjectSpec::Key("id".into()), &[]).expect("valid");
        assert_eq!(&*k.subject, "hr.employees");
        let s = compile(
            "hr.salaries",
            &SubjectSpec::Full(SubjectRef {
                key: "employee_id".into(),
                subject: Some("hr.employees".into()),
            }),
            std::slice::from_ref(&k),
        )
        .expect("valid");
        assert_eq!(
            (s.column.as_str(), &*s.subject),
            ("employee_id", "hr.employees")
        );
        assert!(compile("hr.*", &SubjectSpec::Key("id".into()), &[]).is_err());
        assert!(compile("employees", &SubjectSpec::Key("id".into()), &[]).is_err());
        assert!(compile("hr.x", &SubjectSpec::Key("a.b".into()), &[]).is_err());
        assert!(compile("hr.employees", &SubjectSpec::Key("id".into()), &[k]).is_err());
        assert_eq!(line_of("[subjects]\n\"hr.x\" = \"id\"\n", "hr.x"), 2);
    }
}
