//! A policy compiled from its files: classifications as patterns, rules with
//! their targets, and the lookups a decision needs.

use super::condition::{Condition, Env};
use super::file::{Defaults, Mode, Permit};
use super::pattern::Pattern;
use crate::mask::MaskMethod;
use std::collections::HashSet;
use std::sync::Arc;

/// What a rule says about reading.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadAction {
    /// Values pass.
    Allow,
    /// Values are rewritten.
    Mask(Arc<MaskMethod>),
    /// The statement is refused.
    Deny,
}

impl ReadAction {
    /// Higher is more restrictive (ties between equally specific rules go
    /// to the most restrictive).
    pub fn severity(&self) -> u8 {
        match self {
            ReadAction::Allow => 0,
            ReadAction::Mask(_) => 1,
            ReadAction::Deny => 2,
        }
    }

    /// Parses `allow`, `deny`, `mask:<method>`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            _ => match s.strip_prefix("mask:") {
                Some(m) => MaskMethod::parse(m)
                    .map(|m| Self::Mask(Arc::new(m)))
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "\"{s}\" is not allow, deny or mask:<method> (null, redact, partial:N, hash, year, bucket:W)"
                )),
            },
        }
    }
}

/// What a rule covers.
#[derive(Debug, Clone)]
pub enum Target {
    /// Everything.
    All,
    /// A classification (index into `Policy::classifications`).
    Class(usize),
    /// Columns or tables by name.
    Name(Pattern),
}

/// Specificity of a classification target: between a table (20) and a
/// schema (10).
const CLASS_SPECIFICITY: u32 = 15;

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name.
    pub name: Arc<str>,
    /// Roles it applies to; empty = everyone.
    pub roles: Vec<String>,
    /// Roles it never applies to.
    pub except_roles: Vec<String>,
    /// What it covers.
    pub targets: Vec<Target>,
    /// Reading.
    pub read: Option<ReadAction>,
    /// Writing.
    pub write: Option<Permit>,
    /// Masked columns as filters.
    pub filter: Permit,
    /// Masked columns in expressions.
    pub expressions: Permit,
    /// Conditions.
    pub when: Option<Condition>,
    /// File and line, for `explain` and `check`.
    pub origin: String,
}

/// A compiled `[[limit]]`.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Its name.
    pub name: Arc<str>,
    /// Roles it applies to; empty = everyone.
    pub roles: Vec<String>,
    /// Roles it never applies to.
    pub except_roles: Vec<String>,
    /// Tables it covers.
    pub targets: Vec<Target>,
    /// Per-statement alert threshold.
    pub alert_rows: Option<u64>,
    /// Per-statement block threshold.
    pub block_rows: Option<u64>,
    /// Window length.
    pub window: std::time::Duration,
    /// Per-window alert threshold.
    pub alert_rows_per_window: Option<u64>,
    /// Per-window block threshold.
    pub block_rows_per_window: Option<u64>,
    /// Per-window alert threshold on distinct subjects seen.
    pub distinct_subjects_per_window: Option<u64>,
}

/// A classification.
#[derive(Debug, Clone)]
pub struct Classification {
    /// Its name.
    pub name: String,
    /// Patterns assigned to it.
    pub patterns: Vec<Pattern>,
}

/// A compiled, validated policy.
#[derive(Debug, Default)]
pub struct Policy {
    /// Enforce or monitor.
    pub mode: Option<Mode>,
    /// Defaults.
    pub defaults: Defaults,
    /// Classifications.
    pub classifications: Vec<Classification>,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Opaque functions allowed for everyone (`schema.name`).
    pub allowed_functions: HashSet<String>,
    /// Subject keys (`[subjects]`), by table.
    pub subjects: Vec<super::subjects::SubjectKey>,
    /// Bulk-extraction limits.
    pub limits: Vec<Arc<Limit>>,
    /// Security events (defaults when the policy has no `[security]`).
    pub security: super::file::SecuritySpec,
    /// `[baseline]` (defaults when the policy has none).
    pub baseline: super::file::BaselineSpec,
    /// `security.office_hours`, compiled.
    pub office_hours: Option<Condition>,
    /// Change capture (`[capture]`).
    pub capture: Capture,
    /// Increases with every load, so nothing cached outlives its policy.
    pub generation: u64,
    /// Files it came from.
    pub files: Vec<String>,
    /// Whole-catalog answers (full access per role, anything protected),
    /// by (role, catalog version, condition bits); dies with the policy.
    pub(crate) memo: std::sync::Mutex<std::collections::HashMap<(String, u64, u64), bool>>,
}

/// `[capture]`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// Captured columns.
    pub changes: Vec<Pattern>,
    /// Classifications (indexes) whose values are hashed.
    pub hashed: Vec<usize>,
    /// Most rows recorded per statement.
    pub max_rows: usize,
}

impl Capture {
    /// Whether changes of `schema.table.column` are captured.
    pub fn covers(&self, schema: &str, table: &str, column: &str) -> bool {
        self.changes
            .iter()
            .any(|p| p.matches(schema, table, column))
    }

    /// Whether any column of `schema.table` is captured.
    pub fn covers_table(&self, schema: &str, table: &str) -> bool {
        self.changes.iter().any(|p| p.matches_table(schema, table))
    }
}

/// The roles a session acts as: the effective role and every role it is a
/// member of (inheriting), as the catalog says.
#[derive(Debug, Clone)]
pub struct RoleSet {
    /// Effective role.
    pub role: String,
    /// It and its memberships.
    pub all: Vec<String>,
}

impl RoleSet {
    /// The role set of `role` in `catalog`.
    pub fn of(role: &str, catalog: &crate::catalog::Catalog) -> Self {
        let mut all = vec![role.to_owned()];
        if let Some(r) = catalog.role(role) {
            all.extend(r.member_of.iter().cloned());
        }
        Self {
            role: role.to_owned(),
            all,
        }
    }

    fn has(&self, role: &str) -> bool {
        self.all.iter().any(|r| r == role)
    }
}

/// How one column may be read, and the rule that said so.
#[derive(Debug, Clone)]
pub struct ReadVerdict {
    /// The action.
    pub action: ReadAction,
    /// Deciding rule (`None` = a default).
    pub rule: Option<Arc<str>>,
    /// For masks: may the column pick rows?
    pub filter: Permit,
    /// For masks: may it appear in expressions?
    pub expressions: Permit,
}

/// How one column may be written, and the rule that said so.
#[derive(Debug, Clone)]
pub struct WriteVerdict {
    /// Allowed or not.
    pub permit: Permit,
    /// Deciding rule (`None` = a default).
    pub rule: Option<Arc<str>>,
}

impl Policy {
    pub(crate) fn memo(&self, key: &(String, u64, u64)) -> Option<bool> {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    pub(crate) fn remember(&self, key: (String, u64, u64), v: bool) -> bool {
        let mut m = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 4096 {
            m.clear();
        }
        m.insert(key, v);
        v
    }

    /// Whether the policy protects anything at all (no classifications,
    /// rules or limits: every statement passes untouched).
    pub fn is_empty(&self) -> bool {
        self.classifications.is_empty()
            && self.rules.is_empty()
            && self.limits.is_empty()
            && self.capture.changes.is_empty()
            && self.subjects.is_empty()
    }

    /// Whether a captured value of this column is recorded as a hash.
    pub fn capture_hashes(&self, schema: &str, table: &str, column: &str) -> bool {
        self.classify(schema, table, column)
            .is_some_and(|c| self.capture.hashed.contains(&c))
    }

    /// The limits that apply to `roles` reading `schema.table`.
    pub fn limits_for<'p>(
        &'p self,
        roles: &'p RoleSet,
        schema: &'p str,
        table: &'p str,
        catalog: &'p crate::catalog::Catalog,
    ) -> impl Iterator<Item = &'p Arc<Limit>> + 'p {
        self.limits.iter().filter(move |l| {
            (l.roles.is_empty() || l.roles.iter().any(|r| roles.has(r)))
                && !l.except_roles.iter().any(|r| roles.has(r))
                && l.targets.iter().any(|t| match t {
                    Target::All => true,
                    Target::Name(p) => p.matches_table(schema, table),
                    Target::Class(c) => catalog.relation_in(schema, table).is_some_and(|r| {
                        r.columns
                            .iter()
                            .any(|col| self.classify(schema, table, &col.name) == Some(*c))
                    }),
                })
        })
    }

    /// The most specific classification of a column, if any.
    pub fn classify(&self, schema: &str, table: &str, column: &str) -> Option<usize> {
        let mut best: Option<(u32, usize)> = None;
        for (i, c) in self.classifications.iter().enumerate() {
            for p in &c.patterns {
                if p.matches(schema, table, column) && best.is_none_or(|(s, _)| p.specificity() > s)
                {
                    best = Some((p.specificity(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Whether any classification or rule pattern names something in this
    /// table (used when a statement's columns are unknown).
    pub fn protects_table(&self, schema: &str, table: &str) -> bool {
        self.classifications
            .iter()
            .flat_map(|c| c.patterns.iter())
            .chain(self.rules.iter().flat_map(|r| {
                r.targets.iter().filter_map(|t| match t {
                    Target::Name(p) => Some(p),
                    _ => None,
                })
            }))
            .any(|p| p.matches_table(schema, table))
    }

    /// Whether the policy protects a table: a classification or rule names
    /// something in it, or a limit covers it (extraction checks).
    pub fn guards_table(
        &self,
        schema: &str,
        table: &str,
        catalog: &crate::catalog::Catalog,
    ) -> bool {
        self.protects_table(schema, table)
            || catalog.relation_in(schema, table).is_some_and(|r| {
                r.columns
                    .iter()
                    .any(|c| self.classify(schema, table, &c.name).is_some())
            })
            || self.limits.iter().any(|l| {
                l.targets.iter().any(|t| match t {
                    Target::All => true,
                    Target::Name(p) => p.matches_table(schema, table),
                    Target::Class(c) => catalog.relation_in(schema, table).is_some_and(|r| {
                        r.columns
                            .iter()
                            .any(|col| self.classify(schema, table, &col.name) == Some(*c))
                    }),
                })
            })
    }

    /// Bit `i` set = rule `i`'s conditions hold (rules without conditions
    /// always hold). Part of every cached decision's key.
    pub fn condition_bits(&self, env: &Env<'_>) -> u64 {
        let mut bits = 0u64;
        for (i, r) in self.rules.iter().enumerate().take(64) {
            if r.when.as_ref().is_none_or(|c| c.holds(env)) {
                bits |= 1 << i;
            }
        }
        bits
    }

    fn rule_holds(&self, i: usize, bits: u64, env: &Env<'_>) -> bool {
        if i < 64 {
            bits & (1 << i) != 0
        } else {
            self.rules[i].when.as_ref().is_none_or(|c| c.holds(env))
        }
    }

    /// Whether a rule speaks for `role` (one role of the session's set);
    /// `except_roles` excludes the whole session if it holds any of them.
    fn applies_to(r: &Rule, role: &str, roles: &RoleSet) -> bool {
        (r.roles.is_empty() || r.roles.iter().any(|x| x == role))
            && !r.except_roles.iter().any(|x| roles.has(x))
    }

    /// How specifically a rule covers a column (`None` = not at all).
    fn covers(r: &Rule, class: Option<usize>, schema: &str, table: &str, col: &str) -> Option<u32> {
        r.targets
            .iter()
            .filter_map(|t| match t {
                Target::All => Some(0),
                Target::Class(c) => (Some(*c) == class).then_some(CLASS_SPECIFICITY),
                Target::Name(p) => p.matches(schema, table, col).then(|| p.specificity()),
            })
            .max()
    }

    /// For one role of the set: the rules that apply and say something
    /// (`says` picks the action), reduced to the most specific and, among
    /// those, the most restrictive. Roles add up like PostgreSQL's
    /// privileges: the caller takes the most permissive over the set.
    fn best_for<'p, A: Clone>(
        &'p self,
        role: &str,
        roles: &RoleSet,
        bits: u64,
        env: &Env<'_>,
        at: (&str, &str, &str),
        says: impl Fn(&'p Rule) -> Option<(A, u8)>,
    ) -> Option<(&'p Rule, A, u8)> {
        let class = self.classify(at.0, at.1, at.2);
        let mut best: Option<(u32, &Rule, A, u8)> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if !Self::applies_to(r, role, roles) || !self.rule_holds(i, bits, env) {
                continue;
            }
            let Some(spec) = Self::covers(r, class, at.0, at.1, at.2) else {
                continue;
            };
            let Some((action, severity)) = says(r) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((s, _, _, sev)) => spec > *s || (spec == *s && severity > *sev),
            };
            if better {
                best = Some((spec, r, action, severity));
            }
        }
        best.map(|(_, r, a, s)| (r, a, s))
    }

    /// The most permissive of the per-role answers.
    fn over_roles<'p, A: Clone>(
        &'p self,
        roles: &RoleSet,
        bits: u64,
        env: &Env<'_>,
        at: (&str, &str, &str),
        says: impl Fn(&'p Rule) -> Option<(A, u8)> + Copy,
    ) -> Option<(&'p Rule, A, u8)> {
        let mut out: Option<(&Rule, A, u8)> = None;
        for role in &roles.all {
            if let Some(found) = self.best_for(role, roles, bits, env, at, says) {
                if out.as_ref().is_none_or(|o| found.2 < o.2) {
                    out = Some(found);
                }
            }
        }
        out
    }

    /// How `roles` may read a column.
    pub fn read(
        &self,
        roles: &RoleSet,
        bits: u64,
        env: &Env<'_>,
        at: (&str, &str, &str),
    ) -> ReadVerdict {
        let found = self.over_roles(roles, bits, env, at, |r: &Rule| {
            r.read.as_ref().map(|a| (a.clone(), a.severity()))
        });
        match found {
            Some((r, a, _)) => ReadVerdict {
                action: a,
                rule: Some(r.name.clone()),
                filter: r.filter,
                expressions: r.expressions,
            },
            None => {
                let permit = self.default_for(at);
                ReadVerdict {
                    action: match permit {
                        Permit::Allow => ReadAction::Allow,
                        Permit::Deny => ReadAction::Deny,
                    },
                    rule: None,
                    filter: self.defaults.masked_filters,
                    expressions: self.defaults.masked_expressions,
                }
            }
        }
    }

    /// Whether `roles` may write a column.
    pub fn write(
        &self,
        roles: &RoleSet,
        bits: u64,
        env: &Env<'_>,
        at: (&str, &str, &str),
    ) -> WriteVerdict {
        let found = self.over_roles(roles, bits, env, at, |r: &Rule| {
            r.write.map(|p| (p, u8::from(p == Permit::Deny)))
        });
        match found {
            Some((r, p, _)) => WriteVerdict {
                permit: p,
                rule: Some(r.name.clone()),
            },
            None => WriteVerdict {
                permit: self.default_for(at),
                rule: None,
            },
        }
    }

    /// `defaults.classified` or `defaults.unclassified`.
    fn default_for(&self, (schema, table, col): (&str, &str, &str)) -> Permit {
        if self.classify(schema, table, col).is_some() {
            self.defaults.classified
        } else {
            self.defaults.unclassified
        }
    }
}
