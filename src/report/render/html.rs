//! One self-contained HTML file: inline CSS, charts as inline SVG, no
//! external resource of any kind (a Content-Security-Policy forbids them, so
//! the file can be opened offline or mailed). Everything from the audit
//! trail is escaped: user names and query texts are attacker-controlled.
//!
//! A few lines of inline script only measure the drawn charts and note the
//! count on `<html data-drawn-bars=N data-drawn-lines=M>`, for automated
//! checks; the report reads the same without script.

use super::svg::{self, Series};
use super::{by_user, value_text, Clock};
use crate::report::model::Report;
use std::fmt::Write;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#1d2330}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #d8dce5;padding-bottom:.2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d8dce5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #d8dce5;border-radius:6px;padding:.5em 1em;min-width:7em}
.card b{display:block;font-size:1.4em}.muted{color:#667}
svg.chart{display:block;margin:1em 0;max-width:100%;height:auto}
svg .title{font-weight:600;font-size:13px}svg .label,svg .value{font-size:11px}svg .axis{font-size:10px;fill:#667}
svg .grid{stroke:#e3e6ee;stroke-width:1}
";

const MEASURE: &str = "(function(){var b=0,l=0;\
document.querySelectorAll('svg.chart .bar').forEach(function(e){var r=e.getBBox();if(r.width>0&&r.height>0)b++;});\
document.querySelectorAll('svg.chart .line').forEach(function(e){if(e.getTotalLength()>0)l++;});\
document.documentElement.setAttribute('data-drawn-bars',b);\
document.documentElement.setAttribute('data-drawn-lines',l);})();";

/// The report as one HTML document.
pub fn render(r: &Report) -> String {
    let c = Clock::of(r);
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    // Nothing may be fetched: no fonts, images, scripts or styles from anywhere.
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    let _ = write!(
        o,
        "<title>pgwarden compliance report {} to {}</title><style>{STYLE}</style></head><body>",
        esc(&c.show(r.period.from)),
        esc(&c.show(r.period.to))
    );
    header(&mut o, r, &c);
    summary(&mut o, r);
    charts(&mut o, r);
    users(&mut o, r);
    tables(&mut o, r);
    classifications(&mut o, r);
    decisions(&mut o, r);
    extractions(&mut o, r, &c);
    off_hours(&mut o, r, &c);
    changes(&mut o, r, &c);
    logins(&mut o, r, &c);
    days(&mut o, r);
    let _ = writeln!(o, "<script>{MEASURE}</script></body></html>");
    o
}

fn header(o: &mut String, r: &Report, c: &Clock) {
    let p = &r.period;
    let i = &r.input;
    let _ = write!(
        o,
        "<h1>pgwarden compliance report</h1><p>Period: <b>{}</b> to <b>{}</b> (end excluded; time zone {}; office hours {} Monday to Friday).</p>\
         <p class=\"muted\">Input: {} file(s) ({}), {} lines, {} records in the period, {} outside it, {} checkpoints skipped, {} malformed lines.</p>",
        esc(&c.show(p.from)), esc(&c.show(p.to)), esc(&p.time_zone), esc(&p.office_hours),
        i.files.len(), esc(&i.files.join(", ")), i.lines, i.records, i.outside_period,
        i.checkpoints, i.malformed
    );
    if !i.malformed_examples.is_empty() {
        o.push_str("<ul class=\"muted\">");
        for m in &i.malformed_examples {
            let _ = write!(o, "<li>{}</li>", esc(m));
        }
        o.push_str("</ul>");
    }
}

fn summary(o: &mut String, r: &Report) {
    let t = &r.totals;
    o.push_str("<h2>Summary</h2><div class=\"cards\">");
    for (k, v) in [
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
    ] {
        let _ = write!(o, "<div class=\"card\"><b>{v}</b>{k}</div>");
    }
    o.push_str("</div>");
}

fn charts(o: &mut String, r: &Report) {
    o.push_str("<h2>Charts</h2>");
    let labels: Vec<String> = r
        .days
        .iter()
        .map(|d| d.day.format("%m-%d").to_string())
        .collect();
    o.push_str(&svg::vbars(
        "Per day: statements, refusals, alerts",
        &labels,
        &[
            Series {
                name: "statements",
                color: "#3b6fd4",
                values: r.days.iter().map(|d| d.statements).collect(),
            },
            Series {
                name: "refusals",
                color: "#d43b3b",
                values: r.days.iter().map(|d| d.refusals).collect(),
            },
            Series {
                name: "alerts",
                color: "#e0952b",
                values: r.days.iter().map(|d| d.alerts).collect(),
            },
        ],
    ));
    let rows: Vec<u64> = r.days.iter().map(|d| d.rows_returned).collect();
    o.push_str(&svg::line(
        "Per day: rows returned",
        &labels,
        "rows returned",
        &rows,
        "#2b9e6b",
    ));
    let top: Vec<(String, u64)> = r
        .users
        .iter()
        .take(15)
        .map(|u| (u.user.clone(), u.statements))
        .collect();
    o.push_str(&svg::hbars("Top users by statements", &top, "#3b6fd4"));
    let mut refusals: Vec<(String, u64)> = r
        .rules
        .iter()
        .filter(|x| x.action == "deny" || x.action == "would_deny")
        .map(|x| {
            let name = if x.action == "deny" {
                x.rule.clone()
            } else {
                format!("{} (monitor)", x.rule)
            };
            (name, x.statements)
        })
        .collect();
    refusals.truncate(15);
    o.push_str(&svg::hbars("Refusals by rule", &refusals, "#d43b3b"));
}

fn users(o: &mut String, r: &Report) {
    o.push_str("<h2>Users</h2>");
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
                Cell::Text(u.user.clone()),
                Cell::Num(u.statements),
                Cell::Num(u.reads),
                Cell::Num(u.writes),
                Cell::Num(u.refusals),
                Cell::Num(u.errors),
                Cell::Num(u.masks),
                Cell::Num(u.alerts),
                Cell::Num(u.rows_returned),
                Cell::Num(u.rows_affected),
                Cell::Num(u.off_hours),
                Cell::Text(format!("{}: {}", u.distinct_tables, u.tables.join(", "))),
                Cell::Text(u.effective_roles.join(", ")),
            ]
        }),
    );
}

fn tables(o: &mut String, r: &Report) {
    o.push_str("<h2>Tables and columns</h2>");
    for t in &r.tables {
        let _ = write!(
            o,
            "<h3>{}</h3><p>reads {} (output {}, filter {}), writes {}, refusals {}, masks {}; users: {}</p>",
            esc(&t.table), t.reads, t.output_reads, t.filter_reads, t.writes, t.refusals,
            t.masks, esc(&by_user(&t.users))
        );
        table(
            o,
            &[
                "column", "output", "filter", "writes", "refusals", "masks", "users",
            ],
            t.columns.iter().map(|c| {
                vec![
                    Cell::Text(c.column.clone()),
                    Cell::Num(c.output_reads),
                    Cell::Num(c.filter_reads),
                    Cell::Num(c.writes),
                    Cell::Num(c.refusals),
                    Cell::Num(c.masks),
                    Cell::Text(by_user(&c.users)),
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
    let _ = write!(o, "<h2>Classifications</h2><p class=\"muted\">{source}</p>");
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
                Cell::Text(g.name.clone()),
                Cell::Num(g.reads),
                Cell::Num(g.writes),
                Cell::Num(g.refusals),
                Cell::Num(g.masks),
                Cell::Text(by_user(&g.users)),
                Cell::Text(g.columns.join(", ")),
            ]
        }),
    );
}

fn decisions(o: &mut String, r: &Report) {
    o.push_str("<h2>Refusals and masks by rule</h2>");
    table(
        o,
        &["rule", "action", "statements", "users"],
        r.rules.iter().map(|x| {
            vec![
                Cell::Text(x.rule.clone()),
                Cell::Text(x.action.clone()),
                Cell::Num(x.statements),
                Cell::Text(by_user(&x.users)),
            ]
        }),
    );
    o.push_str("<h2>Alerts by rule</h2>");
    table(
        o,
        &["rule", "alerts", "users"],
        r.alerts.iter().map(|a| {
            vec![
                Cell::Text(a.rule.clone()),
                Cell::Num(a.alerts),
                Cell::Text(by_user(&a.users)),
            ]
        }),
    );
}

fn who(user: &str, role: &Option<String>) -> String {
    match role {
        Some(role) => format!("{user} as {role}"),
        None => user.to_owned(),
    }
}

fn extractions(o: &mut String, r: &Report, c: &Clock) {
    o.push_str("<h2>Largest extractions</h2>");
    table(
        o,
        &["rows", "when", "user", "from", "tables", "query"],
        r.largest_extractions.iter().map(|e| {
            vec![
                Cell::Num(e.rows),
                Cell::Text(c.show(e.timestamp)),
                Cell::Text(who(&e.user, &e.effective_role)),
                Cell::Text(e.source_ip.clone().unwrap_or_else(|| "-".into())),
                Cell::Text(e.tables.join(", ")),
                Cell::Code(e.query.clone()),
            ]
        }),
    );
}

fn off_hours(o: &mut String, r: &Report, c: &Clock) {
    let _ = write!(
        o,
        "<h2>Off-hours access</h2><p>{} statement(s) outside {} Monday to Friday ({}).</p>",
        r.off_hours.statements,
        esc(&r.period.office_hours),
        esc(&r.period.time_zone)
    );
    for u in &r.off_hours.users {
        let _ = write!(
            o,
            "<h3>{}: {} statement(s), {} row(s) returned</h3>",
            esc(&u.user),
            u.statements,
            u.rows_returned
        );
        table(
            o,
            &["when", "outcome", "rows", "query"],
            u.examples.iter().map(|e| {
                vec![
                    Cell::Text(c.show(e.timestamp)),
                    Cell::Text(e.outcome.clone()),
                    Cell::Num(e.rows),
                    Cell::Code(e.query.clone()),
                ]
            }),
        );
    }
}

fn changes(o: &mut String, r: &Report, c: &Clock) {
    let ch = &r.changes;
    let _ = write!(o, "<h2>Changes to {}</h2>", esc(&ch.table));
    if !ch.with_values && !ch.statements.is_empty() {
        o.push_str("<p class=\"muted\">The records carry no old/new values (no change capture): the statements follow.</p>");
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
            let old: Vec<String> = e.values.iter().map(|v| value_text(&v.old)).collect();
            let new: Vec<String> = e.values.iter().map(|v| value_text(&v.new)).collect();
            vec![
                Cell::Text(c.show(e.timestamp)),
                Cell::Text(who(&e.user, &e.effective_role)),
                Cell::Text(e.operation.clone()),
                Cell::Text(e.outcome.clone()),
                Cell::Num(e.rows_affected),
                Cell::Code(e.query.clone()),
                Cell::Code(old.join("\n")),
                Cell::Code(new.join("\n")),
            ]
        }),
    );
    if ch.omitted > 0 {
        let _ = write!(o, "<p>{} more statement(s) not listed.</p>", ch.omitted);
    }
}

fn logins(o: &mut String, r: &Report, c: &Clock) {
    o.push_str("<h2>Failed logins</h2>");
    table(
        o,
        &["user", "from", "failures", "first", "last", "SQLSTATE"],
        r.login_failures.iter().map(|f| {
            vec![
                Cell::Text(f.user.clone()),
                Cell::Text(f.source_ip.clone()),
                Cell::Num(f.failures),
                Cell::Text(c.show(f.first)),
                Cell::Text(c.show(f.last)),
                Cell::Text(f.sqlstates.join(", ")),
            ]
        }),
    );
}

fn days(o: &mut String, r: &Report) {
    o.push_str("<h2>Trends per day</h2>");
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
                Cell::Text(d.day.to_string()),
                Cell::Num(d.statements),
                Cell::Num(d.rows_returned),
                Cell::Num(d.rows_affected),
                Cell::Num(d.refusals),
                Cell::Num(d.alerts),
                Cell::Num(d.login_failures),
            ]
        }),
    );
}

/// A table cell.
enum Cell {
    Text(String),
    Num(u64),
    Code(String),
}

/// A table with `head`; "(none)" when there are no rows.
fn table(o: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<Cell>>) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        o.push_str("<p class=\"muted\">(none)</p>");
        return;
    }
    o.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for row in rows {
        o.push_str("<tr>");
        for cell in row {
            let _ = match cell {
                Cell::Text(t) => write!(o, "<td>{}</td>", esc(&t)),
                Cell::Num(n) => write!(o, "<td class=\"n\">{n}</td>"),
                Cell::Code(t) => write!(o, "<td><code>{}</code></td>", esc(&t)),
            };
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
}

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
