//! Reading a policy directory: every `*.toml` file, parsed, merged and
//! validated completely before anything is used. Errors name the file, the
//! line and the field.

use super::compiled::{Classification, Policy, ReadAction, Rule, Target};
use super::condition::Condition;
use super::file::{Permit, PolicyFile};
use super::pattern::Pattern;
use super::PolicyError;
use crate::config::load::{line_of_field, line_of_offset};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The policy files of a directory (or the one file `path` names), sorted.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let rd = std::fs::read_dir(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// One parsed file, kept with its text for error lines.
struct Parsed {
    origin: String,
    text: String,
    file: PolicyFile,
}

fn invalid(p: &Parsed, field: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        path: p.origin.clone(),
        line: line_of_field(&p.text, field),
        field: field.to_owned(),
        message: message.into(),
    }
}

fn parse_text(text: String, origin: String) -> Result<Parsed, PolicyError> {
    let de = toml::Deserializer::parse(&text).map_err(|e| PolicyError::Invalid {
        line: e.span().map_or(0, |s| line_of_offset(&text, s.start)),
        path: origin.clone(),
        field: "(document)".into(),
        message: e.message().trim().to_owned(),
    })?;
    let file: PolicyFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        PolicyError::Invalid {
            line: e.inner().span().map_or_else(
                || line_of_field(&text, &field),
                |s| line_of_offset(&text, s.start),
            ),
            path: origin.clone(),
            field: if field == "." {
                "(document)".into()
            } else {
                field
            },
            message: e.inner().message().trim().to_owned(),
        }
    })?;
    Ok(Parsed { origin, text, file })
}

/// Loads and validates the policy at `path` (a directory or one file).
pub fn load(path: &Path, generation: u64) -> Result<Policy, PolicyError> {
    let mut parsed = Vec::new();
    for f in policy_files(path)? {
        let text = std::fs::read_to_string(&f).map_err(|source| PolicyError::Read {
            path: f.clone(),
            source,
        })?;
        parsed.push(parse_text(text, f.display().to_string())?);
    }
    compile(parsed, generation)
}

/// Parses and validates policy text (tests and `policy test`).
pub fn load_str(text: &str, origin: &str, generation: u64) -> Result<Policy, PolicyError> {
    compile(
        vec![parse_text(text.to_owned(), origin.to_owned())?],
        generation,
    )
}

fn compile(parsed: Vec<Parsed>, generation: u64) -> Result<Policy, PolicyError> {
    let mut policy = Policy {
        generation,
        files: parsed.iter().map(|p| p.origin.clone()).collect(),
        ..Policy::default()
    };
    // Settings that may appear once.
    let mut seen: HashMap<&'static str, String> = HashMap::new();
    let mut once = |p: &Parsed, what: &'static str| -> Result<(), PolicyError> {
        if let Some(prev) = seen.insert(what, p.origin.clone()) {
            if prev != p.origin {
                return Err(invalid(
                    p,
                    what,
                    format!("already set in {prev}; set it in one file"),
                ));
            }
        }
        Ok(())
    };
    for p in &parsed {
        if let Some(m) = p.file.mode {
            once(p, "mode")?;
            policy.mode = Some(m);
        }
        if let Some(d) = &p.file.defaults {
            once(p, "defaults")?;
            policy.defaults = d.clone();
        }
        if let Some(sec) = &p.file.security {
            once(p, "security")?;
            policy.security = sec.clone();
            if let Some(w) = &sec.office_hours {
                policy.office_hours = Some(Condition::compile(w).map_err(|(f, m)| {
                    invalid(
                        p,
                        &format!("security.office_hours.{}", f.trim_start_matches("when.")),
                        m,
                    )
                })?);
            }
        }
        if let Some(b) = &p.file.baseline {
            once(p, "baseline")?;
            check_baseline(p, b)?;
            policy.baseline = b.clone();
        }
        if let Some(f) = &p.file.functions {
            once(p, "functions")?;
            for (i, name) in f.allow.iter().enumerate() {
                if name.split('.').count() != 2 {
                    return Err(invalid(
                        p,
                        &format!("functions.allow[{i}]"),
                        format!("\"{name}\" is not schema.function"),
                    ));
                }
                policy.allowed_functions.insert(name.clone());
            }
        }
    }
    // Classifications first: rules refer to them by name.
    let mut class_origin: HashMap<String, String> = HashMap::new();
    for p in &parsed {
        for (name, patterns) in &p.file.classifications {
            let field = format!("classifications.{name}");
            if name.contains('.') || name == "*" || name.is_empty() {
                return Err(invalid(
                    p,
                    &field,
                    "a classification name has no dots and is not *",
                ));
            }
            if let Some(prev) = class_origin.insert(name.clone(), p.origin.clone()) {
                return Err(invalid(
                    p,
                    &field,
                    format!("classification \"{name}\" is also defined in {prev}"),
                ));
            }
            let mut compiled = Vec::new();
            for (i, pat) in patterns.iter().enumerate() {
                compiled.push(
                    Pattern::parse(pat).map_err(|m| invalid(p, &format!("{field}[{i}]"), m))?,
                );
            }
            policy.classifications.push(Classification {
                name: name.clone(),
                patterns: compiled,
            });
        }
    }
    check_overlaps(&policy, &parsed)?;
    for p in &parsed {
        if let Some(c) = &p.file.capture {
            once_capture(&mut policy, p, c)?;
        }
        for (table, spec) in &p.file.subjects {
            let key = super::subjects::compile(table, spec, &policy.subjects).map_err(|m| {
                PolicyError::Invalid {
                    path: p.origin.clone(),
                    line: super::subjects::line_of(&p.text, table),
                    field: format!("subjects.\"{table}\""),
                    message: m,
                }
            })?;
            policy.subjects.push(key);
        }
    }
    let mut names: HashMap<String, String> = HashMap::new();
    for p in &parsed {
        for (i, r) in p.file.rules.iter().enumerate() {
            let at = |f: &str| format!("rule[{i}].{f}");
            if r.name.trim().is_empty() {
                return Err(invalid(p, &at("name"), "must not be empty"));
            }
            if let Some(prev) = names.insert(r.name.clone(), p.origin.clone()) {
                return Err(invalid(
                    p,
                    &at("name"),
                    format!("rule \"{}\" is also defined in {prev}", r.name),
                ));
            }
            if r.roles.is_empty() {
                return Err(invalid(
                    p,
                    &at("roles"),
                    "name at least one role, or \"*\" for everyone",
                ));
            }
            if r.on.is_empty() {
                return Err(invalid(
                    p,
                    &at("on"),
                    "name at least one classification, table or column, or \"*\"",
                ));
            }
            if r.read.is_none() && r.write.is_none() {
                return Err(invalid(
                    p,
                    &at("read"),
                    "a rule must say read, write or both",
                ));
            }
            let targets = parse_targets(&policy, p, &r.on, &at("on"))?;
            let read = match &r.read {
                None => None,
                Some(s) => Some(ReadAction::parse(s).map_err(|m| invalid(p, &at("read"), m))?),
            };
            let when = match &r.when {
                None => None,
                Some(w) => Some(Condition::compile(w).map_err(|(f, m)| invalid(p, &at(f), m))?),
            };
            let everyone = r.roles.iter().any(|x| x == "*");
            policy.rules.push(Rule {
                name: Arc::from(r.name.as_str()),
                roles: if everyone {
                    Vec::new()
                } else {
                    r.roles.clone()
                },
                except_roles: r.except_roles.clone(),
                targets,
                read,
                write: r.write,
                filter: r.filter.unwrap_or(policy.defaults.masked_filters),
                expressions: r.expressions.unwrap_or(policy.defaults.masked_expressions),
                when,
                origin: format!("{}:{}", p.origin, line_of_field(&p.text, &at("name"))),
            });
        }
    }
    for p in &parsed {
        for (i, l) in p.file.limits.iter().enumerate() {
            let at = |f: &str| format!("limit[{i}].{f}");
            if let Some(prev) = names.insert(l.name.clone(), p.origin.clone()) {
                return Err(invalid(
                    p,
                    &at("name"),
                    format!("\"{}\" is also defined in {prev}", l.name),
                ));
            }
            if l.roles.is_empty() {
                return Err(invalid(
                    p,
                    &at("roles"),
                    "name at least one role, or \"*\" for everyone",
                ));
            }
            if l.on.is_empty() {
                return Err(invalid(
                    p,
                    &at("on"),
                    "name at least one table or classification",
                ));
            }
            if l.alert_rows.is_none()
                && l.block_rows.is_none()
                && l.alert_rows_per_window.is_none()
                && l.block_rows_per_window.is_none()
                && l.distinct_subjects_per_window.is_none()
            {
                return Err(invalid(p, &at("block_rows"), "a limit needs at least one of alert_rows, block_rows, alert_rows_per_window, block_rows_per_window, distinct_subjects_per_window"));
            }
            if l.distinct_subjects_per_window.is_some() && policy.subjects.is_empty() {
                return Err(invalid(
                    p,
                    &at("distinct_subjects_per_window"),
                    "needs [subjects] (which key columns identify a subject)",
                ));
            }
            let window = l
                .window
                .map_or(std::time::Duration::from_secs(3600), |w| w.0);
            if window.is_zero() {
                return Err(invalid(p, &at("window"), "must be more than 0s"));
            }
            let targets = parse_targets(&policy, p, &l.on, &at("on"))?;
            let everyone = l.roles.iter().any(|x| x == "*");
            policy.limits.push(Arc::new(super::compiled::Limit {
                name: Arc::from(l.name.as_str()),
                roles: if everyone {
                    Vec::new()
                } else {
                    l.roles.clone()
                },
                except_roles: l.except_roles.clone(),
                targets,
                alert_rows: l.alert_rows,
                block_rows: l.block_rows,
                window,
                alert_rows_per_window: l.alert_rows_per_window,
                block_rows_per_window: l.block_rows_per_window,
                distinct_subjects_per_window: l.distinct_subjects_per_window,
            }));
        }
    }
    if policy.rules.len() > 64 && policy.rules.iter().skip(64).any(|r| r.when.is_some()) {
        tracing::info!("more than 64 rules: conditions past the 64th are evaluated per statement");
    }
    Ok(policy)
}

/// `[baseline]` values that cannot work.
fn check_baseline(p: &Parsed, b: &super::file::BaselineSpec) -> Result<(), PolicyError> {
    if !(b.alert_score > 0.0 && b.alert_score <= 1.0) {
        return Err(invalid(
            p,
            "baseline.alert_score",
            format!("{} is not in (0, 1]", b.alert_score),
        ));
    }
    if b.min_statements == 0 {
        return Err(invalid(p, "baseline.min_statements", "must be at least 1"));
    }
    let w = &b.weights;
    for (name, v) in [
        ("table", w.table),
        ("column", w.column),
        ("volume", w.volume),
        ("hour", w.hour),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(
                p,
                &format!("baseline.weights.{name}"),
                format!("{v} is not in [0, 1]"),
            ));
        }
    }
    Ok(())
}

/// Parses an `on` list: `*`, `schema.table[.column]` patterns, or
/// classification names; `field` names the list in errors.
fn parse_targets(
    policy: &Policy,
    p: &Parsed,
    on: &[String],
    field: &str,
) -> Result<Vec<Target>, PolicyError> {
    on.iter()
        .enumerate()
        .map(|(j, t)| {
            let at = format!("{field}[{j}]");
            if t == "*" {
                Ok(Target::All)
            } else if t.contains('.') {
                Pattern::parse(t)
                    .map(Target::Name)
                    .map_err(|m| invalid(p, &at, m))
            } else {
                policy
                    .classifications
                    .iter()
                    .position(|c| &c.name == t)
                    .map(Target::Class)
                    .ok_or_else(|| {
                        invalid(
                            p,
                            &at,
                            format!("\"{t}\" is not a classification (tables and columns are written schema.table[.column])"),
                        )
                    })
            }
        })
        .collect()
}

/// Two classifications claiming the same pattern with the same specificity
/// would make a column's class depend on file order: refuse that.
fn check_overlaps(policy: &Policy, parsed: &[Parsed]) -> Result<(), PolicyError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for c in &policy.classifications {
        for pat in &c.patterns {
            if let Some(other) = seen.insert(pat.text(), &c.name) {
                if other != c.name {
                    let Some(p) = parsed
                        .iter()
                        .find(|p| p.file.classifications.contains_key(&c.name))
                    else {
                        continue;
                    };
                    return Err(invalid(
                        p,
                        &format!("classifications.{}", c.name),
                        format!("\"{}\" is also classified as {other}", pat.text()),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `Permit` from text, for `policy test` case files.
pub fn permit_name(p: Permit) -> &'static str {
    match p {
        Permit::Allow => "allow",
        Permit::Deny => "deny",
    }
}

/// `[capture]`: patterns, hashed classifications (which must exist) and the
/// row cap; set in one file only.
fn once_capture(
    policy: &mut Policy,
    p: &Parsed,
    c: &super::file::CaptureSpec,
) -> Result<(), PolicyError> {
    if !policy.capture.changes.is_empty() || policy.capture.max_rows != 0 {
        return Err(invalid(
            p,
            "capture",
            "already set in another file; set it in one file",
        ));
    }
    for (i, pat) in c.changes.iter().enumerate() {
        policy.capture.changes.push(
            Pattern::parse(pat).map_err(|m| invalid(p, &format!("capture.changes[{i}]"), m))?,
        );
    }
    for (i, name) in c.hashed.iter().enumerate() {
        match policy.classifications.iter().position(|k| &k.name == name) {
            Some(k) => policy.capture.hashed.push(k),
            // The default names "restricted", which a policy need not define.
            None if c.hashed == super::file::CaptureSpec::default().hashed => {}
            None => {
                return Err(invalid(
                    p,
                    &format!("capture.hashed[{i}]"),
                    format!("no classification named \"{name}\""),
                ))
            }
        }
    }
    if c.max_rows == 0 {
        return Err(invalid(p, "capture.max_rows", "must be at least 1"));
    }
    policy.capture.max_rows = c.max_rows;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_and_extraction_settings_load_and_are_validated() {
        let p = load_str(
            "[security]\nlarge_fetch = 500\n\n[baseline]\nlearning_period = \"7d\"\nmin_statements = 50\nweights = { hour = 0.5 }\n",
            "p.toml",
            1,
        )
        .unwrap();
        assert_eq!(p.security.large_fetch, Some(500));
        assert!(p.security.extraction_flags);
        assert_eq!(p.baseline.learning_period.0.as_secs(), 7 * 86_400);
        assert_eq!(p.baseline.min_statements, 50);
        assert_eq!(p.baseline.weights.hour, 0.5);
        assert_eq!(p.baseline.weights.table, 1.0);
        assert_eq!(p.baseline.alert_score, 0.8);
        let e = load_str("[baseline]\n\nalert_score = 1.5\n", "p.toml", 1)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "p.toml:3: baseline.alert_score: 1.5 is not in (0, 1]");
        let e = load_str("[baseline]\nweights = { table = 2.0 }\n", "p.toml", 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2: baseline.weights.table: 2"), "{e}");
        let e = load_str("[baseline]\nlearning = \"1d\"\n", "p.toml", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("baseline"), "{e}");
    }
}
