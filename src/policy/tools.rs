//! Policy tooling behind `pgwarden policy check | explain | test`: all of
//! it works on a loaded [`Policy`] and a catalog snapshot, so tests call it
//! without the binary.

use super::compiled::{Policy, ReadAction, RoleSet, Target};
use super::condition::Env;
use super::decide::{Asker, Decision};
use super::file::Permit;
use crate::analyse::{analyse_text, Analysis, SessionView};
use crate::catalog::Catalog;
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

/// Analyses `sql` as `role` would send it (default search path).
pub fn analyse_as(sql: &str, role: &str, catalog: &Catalog) -> Vec<Arc<Analysis>> {
    let path = vec![role.to_owned(), "public".to_owned()];
    let view = SessionView {
        search_path: path.clone(),
        temp_relations: Vec::new(),
        created: Vec::new(),
        default_search_path: path,
        standard_conforming_strings: true,
    };
    analyse_text(sql, &view, catalog)
}

/// Decides one analysed statement for `role`, at `now`, from `addr`/`app`.
pub fn decide_as(
    policy: &Policy,
    catalog: &Catalog,
    a: &Analysis,
    role: &str,
    env: &Env<'_>,
) -> Decision {
    let roles = RoleSet::of(role, catalog);
    let bits = policy.condition_bits(env);
    policy.decide(
        a,
        catalog,
        &Asker {
            roles: &roles,
            env,
            bits,
        },
    )
}

/// The decision for a whole text: the first refusal, else every mask.
pub fn decide_text(
    policy: &Policy,
    catalog: &Catalog,
    sql: &str,
    role: &str,
    env: &Env<'_>,
) -> (Vec<Arc<Analysis>>, Vec<Decision>) {
    let all = analyse_as(sql, role, catalog);
    let decisions = all
        .iter()
        .map(|a| decide_as(policy, catalog, a, role, env))
        .collect();
    (all, decisions)
}

fn action_name(d: &Decision) -> &'static str {
    if d.refusal.is_some() {
        "deny"
    } else if d.masks.is_empty() {
        "allow"
    } else {
        "mask"
    }
}

fn rule_origin<'p>(policy: &'p Policy, name: &str) -> Option<&'p str> {
    policy
        .rules
        .iter()
        .find(|r| &*r.name == name)
        .map(|r| r.origin.as_str())
}

/// `policy explain`: what the statement reads and writes, the decision and
/// the rule behind it.
pub fn explain(policy: &Policy, catalog: &Catalog, sql: &str, role: &str, env: &Env<'_>) -> String {
    let (all, decisions) = decide_text(policy, catalog, sql, role, env);
    let roles = RoleSet::of(role, catalog);
    let bits = policy.condition_bits(env);
    let mut out = String::new();
    let _ = writeln!(out, "role {role} (acting with: {})", roles.all.join(", "));
    for (i, (a, d)) in all.iter().zip(&decisions).enumerate() {
        let _ = writeln!(out, "\nstatement {}: {}", i + 1, a.command);
        if let Some(why) = &a.unanalysed {
            let _ = writeln!(out, "  not fully analysed: {why}");
        }
        for acc in &a.accesses {
            let _ = writeln!(out, "  {}", acc.relation);
            for (what, set) in [
                ("output", &acc.output),
                ("filter", &acc.filter),
                ("written", &acc.written),
            ] {
                for col in set {
                    let at = (
                        acc.relation.schema.as_str(),
                        acc.relation.name.as_str(),
                        col.as_str(),
                    );
                    let class = policy
                        .classify(at.0, at.1, at.2)
                        .map_or("unclassified", |c| policy.classifications[c].name.as_str());
                    let verdict = if what == "written" {
                        let w = policy.write(&roles, bits, env, at);
                        format!(
                            "write {} ({})",
                            super::load::permit_name(w.permit),
                            w.rule.as_deref().unwrap_or("default")
                        )
                    } else {
                        let r = policy.read(&roles, bits, env, at);
                        let action = match &r.action {
                            ReadAction::Allow => "allow".to_owned(),
                            ReadAction::Deny => "deny".to_owned(),
                            ReadAction::Mask(m) => format!("mask:{m}"),
                        };
                        format!("read {action} ({})", r.rule.as_deref().unwrap_or("default"))
                    };
                    let _ = writeln!(out, "    {what:7} {col:20} [{class}] {verdict}");
                }
            }
            if acc.deletes_rows {
                let _ = writeln!(out, "    removes rows");
            }
        }
        for o in &a.opaque_calls {
            let _ = writeln!(out, "  opaque: {}", o.function);
        }
        let _ = writeln!(out, "  decision: {}", action_name(d).to_uppercase());
        if let Some(r) = &d.refusal {
            let origin = rule_origin(policy, &r.rule).unwrap_or("defaults");
            let _ = writeln!(out, "    rule: {} ({origin})", r.rule);
            let _ = writeln!(out, "    error: ERROR 42501 {}", r.message());
        }
        for m in &d.masks {
            let _ = writeln!(
                out,
                "    result column {} from {}: mask:{} (rule {}, {})",
                m.position + 1,
                m.column,
                m.method,
                m.rule,
                rule_origin(policy, &m.rule).unwrap_or("defaults")
            );
        }
    }
    if policy.mode == Some(super::Mode::Monitor) {
        out.push_str("\n(monitor mode: this is recorded, not enforced)\n");
    }
    out
}

/// A `policy test` case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The cases.
    #[serde(rename = "case")]
    pub cases: Vec<TestCase>,
}

/// One case: a role runs a statement; the decision expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// PostgreSQL role.
    pub role: String,
    /// SQL text (several statements: the first refusal counts).
    pub sql: String,
    /// `allow`, `deny` or `mask`.
    pub expect: String,
    /// The rule expected to decide (refusals and masks).
    pub rule: Option<String>,
    /// For `mask`: the columns expected masked (`schema.table.column`).
    pub masked: Option<Vec<String>>,
    /// For `deny`: the column expected in the refusal.
    pub column: Option<String>,
    /// Client address for conditions (default 127.0.0.1).
    pub addr: Option<String>,
    /// application_name for conditions.
    pub application: Option<String>,
    /// RFC 3339 time for conditions (default now).
    pub at: Option<String>,
}

/// Outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// 1-based case number.
    pub number: usize,
    /// Passed?
    pub passed: bool,
    /// What happened, for the report.
    pub message: String,
}

/// `policy test`: runs every case; results in order.
pub fn run_tests(policy: &Policy, catalog: &Catalog, file: &TestFile) -> Vec<CaseResult> {
    file.cases
        .iter()
        .enumerate()
        .map(|(i, c)| run_case(policy, catalog, i + 1, c))
        .collect()
}

fn run_case(policy: &Policy, catalog: &Catalog, number: usize, c: &TestCase) -> CaseResult {
    let now = match c.at.as_deref().map(humantime::parse_rfc3339_weak) {
        None => SystemTime::now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return CaseResult {
                number,
                passed: false,
                message: format!("bad `at`: {e}"),
            }
        }
    };
    let addr = c.addr.as_deref().unwrap_or("127.0.0.1").parse().ok();
    let env = Env {
        now,
        addr,
        application: c.application.as_deref().unwrap_or(""),
    };
    let (_, decisions) = decide_text(policy, catalog, &c.sql, &c.role, &env);
    // The statement that decides: the first refusal, else the first mask.
    let d = decisions
        .iter()
        .find(|d| d.refusal.is_some())
        .or_else(|| decisions.iter().find(|d| !d.masks.is_empty()))
        .or(decisions.first())
        .cloned()
        .unwrap_or_default();
    let got = action_name(&d);
    let mut problems = Vec::new();
    if got != c.expect {
        problems.push(format!("expected {}, got {got}", c.expect));
    }
    let rule = d
        .refusal
        .as_ref()
        .map(|r| r.rule.clone())
        .or_else(|| d.masks.first().map(|m| m.rule.clone()));
    if let Some(want) = &c.rule {
        if rule.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "expected rule {want}, got {}",
                rule.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(want) = &c.column {
        let got = d.refusal.as_ref().and_then(|r| r.column.clone());
        if got.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "expected column {want}, got {}",
                got.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(want) = &c.masked {
        let mut got: Vec<String> = d.masks.iter().map(|m| m.column.clone()).collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        if got != want {
            problems.push(format!("expected masked {want:?}, got {got:?}"));
        }
    }
    let detail = match (&d.refusal, d.masks.is_empty()) {
        (Some(r), _) => format!("deny by {}: {}", r.rule, r.message()),
        (None, false) => format!(
            "mask {}",
            d.masks
                .iter()
                .map(|m| format!("{}→{}", m.column, m.method))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, true) => "allow".into(),
    };
    CaseResult {
        number,
        passed: problems.is_empty(),
        message: if problems.is_empty() {
            format!("{} as {}: {detail}", c.sql, c.role)
        } else {
            format!(
                "{} as {}: {} ({detail})",
                c.sql,
                c.role,
                problems.join("; ")
            )
        },
    }
}

/// `policy check` with a catalog: patterns and rules that match nothing,
/// roles that do not exist, masks that do not fit their column's type.
pub fn check_against(policy: &Policy, catalog: &Catalog) -> Vec<String> {
    let mut warnings = Vec::new();
    let columns: Vec<(&str, &str, &str, u32)> = catalog
        .relations
        .values()
        .filter(|r| !crate::analyse::is_system_schema(&r.schema))
        .flat_map(|r| {
            r.columns.iter().map(move |c| {
                (
                    r.schema.as_str(),
                    r.name.as_str(),
                    c.name.as_str(),
                    c.type_oid,
                )
            })
        })
        .collect();
    for c in &policy.classifications {
        for p in &c.patterns {
            if !columns.iter().any(|(s, t, col, _)| p.matches(s, t, col)) {
                warnings.push(format!(
                    "classification {}: \"{}\" matches no column in the database",
                    c.name,
                    p.text()
                ));
            }
        }
    }
    for r in &policy.rules {
        for role in r.roles.iter().chain(&r.except_roles) {
            if catalog.role(role).is_none() {
                warnings.push(format!(
                    "rule {} ({}): role \"{role}\" does not exist",
                    r.name, r.origin
                ));
            }
        }
        for t in &r.targets {
            let hits: Vec<&(&str, &str, &str, u32)> = columns
                .iter()
                .filter(|(s, tb, col, _)| match t {
                    Target::All => true,
                    Target::Class(i) => policy.classify(s, tb, col) == Some(*i),
                    Target::Name(p) => p.matches(s, tb, col),
                })
                .collect();
            if hits.is_empty() {
                warnings.push(format!(
                    "rule {} ({}): a target matches no column, so the rule can never apply to it",
                    r.name, r.origin
                ));
            }
            if let Some(ReadAction::Mask(m)) = &r.read {
                for (s, tb, col, ty) in hits {
                    if !m.applies_to(*ty) {
                        warnings.push(format!(
                            "rule {} ({}): mask:{m} does not fit {s}.{tb}.{col} (type oid {ty}); its values will be masked as NULL",
                            r.name, r.origin
                        ));
                    }
                }
            }
        }
        if r.read.is_none()
            && r.write == Some(Permit::Allow)
            && r.roles.is_empty()
            && r.except_roles.is_empty()
        {
            warnings.push(format!(
                "rule {} ({}): lets everyone write what it covers",
                r.name, r.origin
            ));
        }
    }
    warnings
}
