//! Markdown (GitHub-flavoured tables). Every value from the audit trail is
//! escaped: user names and query texts are attacker-controlled.

use super::{by_user, value_text, Clock};
use crate::report::model::Report;
use std::fmt::Write;

/// The report as Markdown.
pub fn render(r: &Report) -> String {
    let c = Clock::of(r);
    let mut o = String::new();
    let p = &r.period;
    let _ = writeln!(o, "# pgwarden compliance report\n");
    let _ = writeln!(
        o,
        "Period: {} to {} (end excluded; time zone {}; office hours {} Monday to Friday).\n",
        c.show(p.from),
        c.show(p.to),
        text(&p.time_zone),
        p.office_hours
    );
    let i = &r.input;
    let _ = writeln!(
        o,
        "Input: {} file(s), {} lines, {} records in the period, {} outside it, {} checkpoints skipped, {} malformed lines.\n",
        i.files.len(), i.lines, i.records, i.outside_period, i.checkpoints, i.malformed
    );
    for m in &i.malformed_examples {
        let _ = writeln!(o, "- malformed: {}", text(m));
    }
    summary(&mut o, r);
    users(&mut o, r);
    tables(&mut o, r);
    classifications(&mut o, r);
    decisions(&mut o, r);
    extractions(&mut o, r, &c);
    off_hours(&mut o, r, &c);
    changes(&mut o, r, &c);
    logins(&mut o, r, &c);
    days(&mut o, r);
    o
}

fn summary(o: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(o, "\n## Summary\n");
    table(
        o,
        &["what", "count"],
        [
            ("users", t.users),
            ("statements", t.statements),
            ("reads", t.reads),
            ("writes", t.writes),
            ("refusals", t.refusals),
            ("errors", t.errors),
            ("masked results", t.masks),
            ("alerts", t.alerts),
            ("rows returned", t.rows_returned),
            ("rows changed", t.rows_affected),
            ("logins", t.logins),
            ("failed logins", t.login_failures),
        ]
        .iter()
        .map(|(k, v)| vec![(*k).to_owned(), v.to_string()]),
    );
}

fn users(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\n## Users\n");
    table(
        o,
        &[
            "user",
            "statements",
            "reads",
            "writes",
            "refusals",
            "errors",
            "masks",
            "alerts",
            "rows returned",
            "rows changed",
            "off hours",
            "tables",
            "roles used",
        ],
        r.users.iter().map(|u| {
            vec![
                text(&u.user),
                u.statements.to_string(),
                u.reads.to_string(),
                u.writes.to_string(),
                u.refusals.to_string(),
                u.errors.to_string(),
                u.masks.to_string(),
                u.alerts.to_string(),
                u.rows_returned.to_string(),
                u.rows_affected.to_string(),
                u.off_hours.to_string(),
                format!("{}: {}", u.distinct_tables, text(&u.tables.join(", "))),
                text(&u.effective_roles.join(", ")),
            ]
        }),
    );
}

fn tables(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\n## Tables and columns");
    for t in &r.tables {
        let _ = writeln!(
            o,
            "\n### {}\n\nreads {} (output {}, filter {}), writes {}, refusals {}, masks {}; users: {}\n",
            text(&t.table), t.reads, t.output_reads, t.filter_reads, t.writes, t.refusals,
            t.masks, text(&by_user(&t.users))
        );
        table(
            o,
            &[
                "column", "output", "filter", "writes", "refusals", "masks", "users",
            ],
            t.columns.iter().map(|c| {
                vec![
                    text(&c.column),
                    c.output_reads.to_string(),
                    c.filter_reads.to_string(),
                    c.writes.to_string(),
                    c.refusals.to_string(),
                    c.masks.to_string(),
                    text(&by_user(&c.users)),
                ]
            }),
        );
    }
}

fn classifications(o: &mut String, r: &Report) {
    let source = if r.classifications.source == "policy" {
        "classifications of the policy"
    } else {
        "no policy given: one group per table"
    };
    let _ = writeln!(o, "\n## Classifications ({source})\n");
    table(
        o,
        &[
            "classification",
            "reads",
            "writes",
            "refusals",
            "masks",
            "users",
            "columns",
        ],
        r.classifications.groups.iter().map(|g| {
            vec![
                text(&g.name),
                g.reads.to_string(),
                g.writes.to_string(),
                g.refusals.to_string(),
                g.masks.to_string(),
                text(&by_user(&g.users)),
                text(&g.columns.join(", ")),
            ]
        }),
    );
}

fn decisions(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\n## Refusals and masks by rule\n");
    table(
        o,
        &["rule", "action", "statements", "users"],
        r.rules.iter().map(|x| {
            vec![
                text(&x.rule),
                text(&x.action),
                x.statements.to_string(),
                text(&by_user(&x.users)),
            ]
        }),
    );
    let _ = writeln!(o, "\n## Alerts by rule\n");
    table(
        o,
        &["rule", "alerts", "users"],
        r.alerts.iter().map(|a| {
            vec![
                text(&a.rule),
                a.alerts.to_string(),
                text(&by_user(&a.users)),
            ]
        }),
    );
}

fn extractions(o: &mut String, r: &Report, c: &Clock) {
    let _ = writeln!(o, "\n## Largest extractions\n");
    table(
        o,
        &["rows", "when", "user", "from", "tables", "query"],
        r.largest_extractions.iter().map(|e| {
            let who = match &e.effective_role {
                Some(role) => format!("{} as {}", e.user, role),
                None => e.user.clone(),
            };
            vec![
                e.rows.to_string(),
                c.show(e.timestamp),
                text(&who),
                text(e.source_ip.as_deref().unwrap_or("-")),
                text(&e.tables.join(", ")),
                code(&e.query),
            ]
        }),
    );
}

fn off_hours(o: &mut String, r: &Report, c: &Clock) {
    let _ = writeln!(
        o,
        "\n## Off-hours access (outside {} Monday to Friday)\n\n{} statement(s).",
        r.period.office_hours, r.off_hours.statements
    );
    for u in &r.off_hours.users {
        let _ = writeln!(
            o,
            "\n### {}: {} statement(s), {} row(s) returned\n",
            text(&u.user),
            u.statements,
            u.rows_returned
        );
        table(
            o,
            &["when", "outcome", "rows", "query"],
            u.examples.iter().map(|e| {
                vec![
                    c.show(e.timestamp),
                    e.outcome.clone(),
                    e.rows.to_string(),
                    code(&e.query),
                ]
            }),
        );
    }
}

fn changes(o: &mut String, r: &Report, c: &Clock) {
    let ch = &r.changes;
    let _ = writeln!(o, "\n## Changes to {}\n", text(&ch.table));
    if !ch.with_values && !ch.statements.is_empty() {
        let _ = writeln!(
            o,
            "The records carry no old/new values (no change capture): the statements follow.\n"
        );
    }
    table(
        o,
        &[
            "when",
            "user",
            "operation",
            "outcome",
            "rows",
            "query",
            "old",
            "new",
        ],
        ch.statements.iter().map(|e| {
            let who = match &e.effective_role {
                Some(role) => format!("{} as {}", e.user, role),
                None => e.user.clone(),
            };
            let old: Vec<String> = e.values.iter().map(|v| value_text(&v.old)).collect();
            let new: Vec<String> = e.values.iter().map(|v| value_text(&v.new)).collect();
            vec![
                c.show(e.timestamp),
                text(&who),
                text(&e.operation),
                e.outcome.clone(),
                e.rows_affected.to_string(),
                code(&e.query),
                code(&old.join("; ")),
                code(&new.join("; ")),
            ]
        }),
    );
    if ch.omitted > 0 {
        let _ = writeln!(o, "\n{} more statement(s) not listed.", ch.omitted);
    }
}

fn logins(o: &mut String, r: &Report, c: &Clock) {
    let _ = writeln!(o, "\n## Failed logins\n");
    table(
        o,
        &["user", "from", "failures", "first", "last", "SQLSTATE"],
        r.login_failures.iter().map(|f| {
            vec![
                text(&f.user),
                text(&f.source_ip),
                f.failures.to_string(),
                c.show(f.first),
                c.show(f.last),
                text(&f.sqlstates.join(", ")),
            ]
        }),
    );
}

fn days(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\n## Trends per day\n");
    table(
        o,
        &[
            "day",
            "statements",
            "rows returned",
            "rows changed",
            "refusals",
            "alerts",
            "failed logins",
        ],
        r.days.iter().map(|d| {
            vec![
                d.day.to_string(),
                d.statements.to_string(),
                d.rows_returned.to_string(),
                d.rows_affected.to_string(),
                d.refusals.to_string(),
                d.alerts.to_string(),
                d.login_failures.to_string(),
            ]
        }),
    );
}

/// A table with `head`; `(none)` when there are no rows.
fn table(o: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        let _ = writeln!(o, "(none)");
        return;
    }
    let _ = writeln!(o, "| {} |", head.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(head.len()));
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
}

/// Plain text in a table cell: Markdown and HTML syntax neutralised.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\n' | '\r' | '\t' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// Query text as a code span in a table cell.
fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        // GFM splits cells at `|` even inside code spans unless escaped.
        .replace('|', "\\|");
    // A fence longer than any run of backticks inside.
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    format!("{fence} {flat} {fence}")
}
