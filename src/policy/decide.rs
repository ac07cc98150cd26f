//! Deciding one statement: every column it reads, picks rows by or writes
//! is looked up for the session's roles; the first refusal wins, masks are
//! planned per result column.

use super::compiled::{Limit, Policy, ReadAction, RoleSet};
use super::condition::Env;
use super::file::Permit;
use crate::analyse::{Analysis, StatementKind};
use crate::catalog::{Catalog, Oid};
use crate::mask::MaskMethod;
use std::sync::Arc;

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The deciding rule, or the default (`defaults.classified`, ...).
    pub rule: String,
    /// The column concerned (`schema.table.column`), when one is.
    pub column: Option<String>,
    /// What the statement did with it, for the error message.
    pub reason: String,
}

impl Refusal {
    /// The primary message of the client's ErrorResponse.
    pub fn message(&self) -> String {
        match &self.column {
            Some(c) => format!("permission denied for column {c}: {}", self.reason),
            None => format!("permission denied: {}", self.reason),
        }
    }
}

/// How one result column is masked.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMask {
    /// Result position (0-based).
    pub position: usize,
    /// The method.
    pub method: Arc<MaskMethod>,
    /// The stored column's type (the result's type unless RowDescription says otherwise).
    pub type_oid: Oid,
    /// `schema.table.column` the values come from.
    pub column: String,
    /// The rule that masks it.
    pub rule: String,
}

/// The decision for one statement.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Refused, and why; `None` = it may run.
    pub refusal: Option<Refusal>,
    /// Result columns to mask (empty when refused or nothing is masked).
    pub masks: Vec<PlannedMask>,
    /// Row limits on what it reads, with the table each one is for.
    pub limits: Vec<(Arc<Limit>, String)>,
}

impl Decision {
    /// Nothing to do: forward untouched.
    pub fn allows_untouched(&self) -> bool {
        self.refusal.is_none() && self.masks.is_empty() && self.limits.is_empty()
    }
}

/// A masked column a statement reads into its output.
struct MaskedRead {
    schema: String,
    table: String,
    column: String,
    method: Arc<MaskMethod>,
    rule: Arc<str>,
    expressions: Permit,
}

impl MaskedRead {
    fn name(&self) -> String {
        col_name(&self.schema, &self.table, &self.column)
    }
}

/// Who is asking, where and when.
pub struct Asker<'a> {
    /// Effective role and memberships.
    pub roles: &'a RoleSet,
    /// Conditions' inputs.
    pub env: &'a Env<'a>,
    /// `Policy::condition_bits(env)`.
    pub bits: u64,
}

fn col_name(schema: &str, table: &str, col: &str) -> String {
    format!("{schema}.{table}.{col}")
}

fn deny(
    rule: Option<&Arc<str>>,
    default: &str,
    column: String,
    reason: impl Into<String>,
) -> Decision {
    Decision {
        refusal: Some(Refusal {
            rule: rule.map_or_else(|| default.to_owned(), |r| r.to_string()),
            column: Some(column),
            reason: reason.into(),
        }),
        ..Decision::default()
    }
}

/// The columns of an access: as named, or every column when the analysis
/// only knows "some column" (`*`).
fn columns_of<'c>(
    catalog: &'c Catalog,
    schema: &str,
    table: &str,
    names: impl Iterator<Item = &'c str>,
) -> Vec<&'c str> {
    let mut out = Vec::new();
    for n in names {
        if n == "*" {
            if let Some(r) = catalog.relation_in(schema, table) {
                out.extend(r.columns.iter().map(|c| c.name.as_str()));
            }
        } else {
            out.push(n);
        }
    }
    out
}

impl Policy {
    /// Decides a statement for `who`.
    pub fn decide(&self, a: &Analysis, catalog: &Catalog, who: &Asker<'_>) -> Decision {
        if self.is_empty() {
            return Decision::default();
        }
        let mut d = self.decide_access(a, catalog, who);
        if d.refusal.is_none() && !self.limits.is_empty() {
            // Rows returned count against the limits of every table whose
            // columns reach the output.
            for acc in a.accesses.iter().filter(|acc| !acc.output.is_empty()) {
                let (schema, table) = (acc.relation.schema.as_str(), acc.relation.name.as_str());
                for l in self.limits_for(who.roles, schema, table, catalog) {
                    if !d.limits.iter().any(|(x, _)| Arc::ptr_eq(x, l)) {
                        d.limits.push((l.clone(), format!("{schema}.{table}")));
                    }
                }
            }
        }
        d
    }

    /// Column access: deny, mask or allow.
    fn decide_access(&self, a: &Analysis, catalog: &Catalog, who: &Asker<'_>) -> Decision {
        if let Some(d) = self.decide_unanalysed(a, catalog) {
            return d;
        }
        if let Some(d) = self.decide_opaque(a, catalog, who) {
            return d;
        }
        let mut masked_outputs: Vec<MaskedRead> = Vec::new();
        for acc in &a.accesses {
            let (schema, table) = (acc.relation.schema.as_str(), acc.relation.name.as_str());
            let unknown_relation = catalog.relation_in(schema, table).is_none();

            let touches_star =
                acc.output.contains("*") || acc.filter.contains("*") || acc.written.contains("*");
            if unknown_relation
                && (touches_star || acc.deletes_rows)
                && self.protects_table(schema, table)
            {
                return deny(
                    None,
                    "defaults.unanalysed",
                    format!("{schema}.{table}.*"),
                    "the statement uses columns of a protected table pgwarden cannot list",
                );
            }
            // Reads: output and filter.
            for (set, as_filter) in [(&acc.output, false), (&acc.filter, true)] {
                for col in columns_of(catalog, schema, table, set.iter().map(String::as_str)) {
                    let v = self.read(who.roles, who.bits, who.env, (schema, table, col));
                    match v.action {
                        ReadAction::Allow => {}
                        ReadAction::Deny => {
                            let what = if as_filter {
                                "used to pick rows"
                            } else {
                                "read"
                            };
                            return deny(
                                v.rule.as_ref(),
                                "defaults.classified",
                                col_name(schema, table, col),
                                format!("{what}, denied for role {}", who.roles.role),
                            );
                        }
                        ReadAction::Mask(m) => {
                            if as_filter && v.filter == Permit::Deny {
                                return deny(
                                    v.rule.as_ref(),
                                    "defaults.masked_filters",
                                    col_name(schema, table, col),
                                    "masked column used to pick, order or group rows (the rows that come back would reveal its values)",
                                );
                            }
                            if !as_filter {
                                masked_outputs.push(MaskedRead {
                                    schema: schema.to_owned(),
                                    table: table.to_owned(),
                                    column: col.to_owned(),
                                    method: m,
                                    rule: v.rule.clone().unwrap_or_else(|| Arc::from("defaults")),
                                    expressions: v.expressions,
                                });
                            }
                        }
                    }
                }
            }
            // Writes.
            let written: Vec<&str> = if acc.deletes_rows {
                catalog
                    .relation_in(schema, table)
                    .map(|r| r.columns.iter().map(|c| c.name.as_str()).collect())
                    .unwrap_or_default()
            } else {
                columns_of(
                    catalog,
                    schema,
                    table,
                    acc.written.iter().map(String::as_str),
                )
            };
            for col in written {
                let v = self.write(who.roles, who.bits, who.env, (schema, table, col));
                if v.permit == Permit::Deny {
                    let what = if acc.deletes_rows {
                        "rows removed"
                    } else {
                        "written"
                    };
                    return deny(
                        v.rule.as_ref(),
                        "defaults.classified",
                        col_name(schema, table, col),
                        format!("{what}, denied for role {}", who.roles.role),
                    );
                }
            }
        }
        if masked_outputs.is_empty() {
            return Decision::default();
        }
        if a.writes() {
            // A statement that writes could copy masked values into a
            // column or table where they are no longer masked.
            let m = &masked_outputs[0];
            return deny(
                Some(&m.rule),
                "",
                m.name(),
                "masked column read by a statement that also writes (the values could be copied where they are not masked)",
            );
        }
        self.plan_masks(a, catalog, &masked_outputs)
    }

    /// A statement pgwarden could not analyse: forwarded when the server
    /// will reject it anyway (a syntax error) or it touches nothing
    /// protected; otherwise `defaults.unanalysed`.
    fn decide_unanalysed(&self, a: &Analysis, catalog: &Catalog) -> Option<Decision> {
        let why = a.unanalysed.as_deref()?;
        if why.starts_with("syntax error") {
            return None;
        }
        // Not knowing what it touches counts as touching what is protected,
        // when this database holds anything protected at all.
        // A relation missing from the snapshot is missing from the server:
        // sessions reload the catalog before analysing a statement that
        // names one (see `session::relay`), so PostgreSQL will refuse it too.
        let protected = if a.accesses.is_empty() {
            self.protects_anything(catalog)
        } else {
            a.accesses
                .iter()
                .any(|acc| self.protects_table(&acc.relation.schema, &acc.relation.name))
        };
        if !protected || self.defaults.unanalysed == Permit::Allow {
            return None;
        }
        Some(Decision {
            refusal: Some(Refusal {
                rule: "defaults.unanalysed".into(),
                column: None,
                reason: format!("pgwarden cannot fully analyse this statement ({why}), and it may touch protected data"),
            }),
            ..Decision::default()
        })
    }

    /// Opaque code: allowed for roles with full access and for allow-listed
    /// functions, refused otherwise (`defaults.opaque`).
    fn decide_opaque(&self, a: &Analysis, catalog: &Catalog, who: &Asker<'_>) -> Option<Decision> {
        if self.defaults.opaque == Permit::Allow {
            return None;
        }
        let call = a
            .opaque_calls
            .iter()
            .find(|c| !self.allowed_functions.contains(c.function.as_str()))?;
        // Nothing protected in this database: opaque code cannot reach it.
        if !self.protects_anything(catalog) || self.full_access(catalog, who) {
            return None;
        }
        Some(Decision {
            refusal: Some(Refusal {
                rule: "defaults.opaque".into(),
                column: None,
                reason: format!(
                    "{} runs code pgwarden cannot see into, and role {} does not have full access to protected data (add it to [functions] allow if it is safe)",
                    call.function, who.roles.role
                ),
            }),
            ..Decision::default()
        })
    }

    /// Whether any relation of the catalog has a classified or ruled column.
    pub fn protects_anything(&self, catalog: &Catalog) -> bool {
        let key = (String::new(), catalog.version, u64::MAX);
        if let Some(v) = self.memo(&key) {
            return v;
        }
        let v = catalog.relations.values().any(|r| {
            !crate::analyse::is_system_schema(&r.schema) && self.protects_table(&r.schema, &r.name)
        });
        self.remember(key, v)
    }

    /// Whether the roles may read and write every column in the catalog
    /// (remembered per role, catalog version and condition bits).
    pub fn full_access(&self, catalog: &Catalog, who: &Asker<'_>) -> bool {
        let key = (who.roles.role.clone(), catalog.version, who.bits);
        if let Some(v) = self.memo(&key) {
            return v;
        }
        let v = self.compute_full_access(catalog, who);
        self.remember(key, v)
    }

    fn compute_full_access(&self, catalog: &Catalog, who: &Asker<'_>) -> bool {
        catalog.relations.values().all(|r| {
            crate::analyse::is_system_schema(&r.schema)
                || r.columns.iter().all(|c| {
                    let at = (r.schema.as_str(), r.name.as_str(), c.name.as_str());
                    self.read(who.roles, who.bits, who.env, at).action == ReadAction::Allow
                        && self.write(who.roles, who.bits, who.env, at).permit == Permit::Allow
                })
        })
    }

    /// Masks for the result columns; refuses masked values that cannot be
    /// masked cell by cell.
    fn plan_masks(&self, a: &Analysis, catalog: &Catalog, masked: &[MaskedRead]) -> Decision {
        let find = |schema: &str, table: &str, col: &str| {
            masked.iter().position(|m| {
                m.schema == schema && m.table == table && (m.column == col || col == "*")
            })
        };
        let refuse = |m: &MaskedRead, why: &str| deny(Some(&m.rule), "", m.name(), why.to_owned());
        let results = match (&a.results, a.kind) {
            (_, StatementKind::Copy) => {
                return refuse(&masked[0], "masked column in COPY TO (query it with SELECT instead)")
            }
            (Some(r), _) => r,
            (None, _) => {
                return refuse(
                    &masked[0],
                    "masked column whose values would not reach the client as a plain column (copied into a table, or used by EXPLAIN)",
                )
            }
        };
        let mut masks = Vec::new();
        let mut covered = vec![false; masked.len()];
        // Past a `*` over a relation whose columns are unknown, positions
        // cannot be trusted: a mask there could hit the wrong column.
        let reliable = results
            .iter()
            .position(|rc| rc.name == "*")
            .unwrap_or(results.len());
        for (pos, rc) in results.iter().enumerate() {
            let hits: Vec<usize> = rc
                .sources
                .iter()
                .filter_map(|s| find(&s.relation.schema, &s.relation.name, &s.column))
                .collect();
            let Some(&first) = hits.first() else { continue };
            let first = &masked[first];
            if !rc.direct {
                if let Some(&i) = hits
                    .iter()
                    .find(|&&i| masked[i].expressions == Permit::Deny)
                {
                    return refuse(
                        &masked[i],
                        "masked column inside an expression, aggregate or whole-row value (it cannot be masked cell by cell)",
                    );
                }
                for &i in &hits {
                    covered[i] = true;
                }
                continue;
            }
            if pos >= reliable {
                return refuse(
                    first,
                    "masked column after a `*` whose columns pgwarden cannot list",
                );
            }
            if hits.iter().any(|&i| masked[i].method != first.method) {
                return refuse(
                    first,
                    "result column mixes columns masked in different ways",
                );
            }
            for &i in &hits {
                covered[i] = true;
            }
            let type_oid = catalog
                .relation_in(&first.schema, &first.table)
                .and_then(|r| r.column(&first.column))
                .map_or(0, |c| c.type_oid);
            masks.push(PlannedMask {
                position: pos,
                method: first.method.clone(),
                type_oid,
                column: first.name(),
                rule: first.rule.to_string(),
            });
        }
        // Masked values read somewhere that is not a result column (a
        // scalar subquery feeding an expression, a CTE written elsewhere).
        if let Some((i, _)) = covered
            .iter()
            .enumerate()
            .find(|(i, c)| !**c && masked[*i].expressions == Permit::Deny)
        {
            return refuse(
                &masked[i],
                "masked column used where pgwarden cannot mask it (inside an expression or copied elsewhere)",
            );
        }
        Decision {
            refusal: None,
            masks,
            limits: Vec::new(),
        }
    }
}
