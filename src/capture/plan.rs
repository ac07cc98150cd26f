//! Which writes are captured, and how: the table, its key and the captured
//! columns a statement changes, from its analysis, the policy's
//! `[capture]` and the catalog.

use super::rewrite::{Op, Rewritten};
use super::rows::Changes;
use crate::analyse::{Analysis, RelationName, StatementKind};
use crate::catalog::{Catalog, RelKind};
use crate::policy::Policy;
use std::sync::Arc;

/// A write of captured columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The table written.
    pub relation: RelationName,
    /// Its primary key columns.
    pub key: Vec<String>,
    /// Captured columns the statement changes.
    pub columns: Vec<String>,
    /// Per column: recorded as a keyed hash.
    pub hashed: Vec<bool>,
    /// Why the change cannot be captured, when it cannot.
    pub unavailable: Option<String>,
    /// Most rows recorded per statement.
    pub max_rows: usize,
}

/// How one statement is captured.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What it writes of the captured columns.
    pub wanted: Arc<Wanted>,
    /// Its rewrite, when it is rewritten.
    pub rewritten: Option<Rewritten>,
    /// Why it is not, when it is not.
    pub reason: Option<String>,
}

/// Capture state of one running statement.
#[derive(Debug, Clone)]
pub struct Capture {
    /// How it is captured.
    pub plan: Arc<Plan>,
    /// Rows seen so far.
    pub changes: Changes,
}

impl Capture {
    /// The capture of a statement about to run under `plan`.
    pub fn new(plan: Arc<Plan>) -> Self {
        Self {
            plan,
            changes: Changes::default(),
        }
    }

    /// The same statement, sent unchanged after all (`reason` says why).
    pub fn unrewritten(&self, reason: &str) -> Self {
        let mut p = (*self.plan).clone();
        p.rewritten = None;
        p.reason = Some(reason.to_owned());
        Self::new(Arc::new(p))
    }

    /// Whether the last result column is pgwarden's.
    pub fn strips(&self) -> bool {
        self.plan.rewritten.is_some()
    }

    /// Whether the client expects no rows at all (it had no RETURNING).
    pub fn hides_rows(&self) -> bool {
        self.plan.rewritten.is_some_and(|r| !r.client_returning)
    }

    /// The rewrite's operation, when rewritten.
    pub fn op(&self) -> Option<Op> {
        self.plan.rewritten.map(|r| r.op)
    }
}

/// What `analysis` writes of the captured columns, if anything.
pub fn wanted(analysis: &Analysis, policy: &Policy, catalog: &Catalog) -> Option<Wanted> {
    let capture = &policy.capture;
    // PREPARE and DECLARE only define what EXECUTE and FETCH run.
    let defines = analysis.inner_kind.is_some() && analysis.refers_to.is_none();
    if capture.changes.is_empty() || !analysis.writes() || defines {
        return None;
    }
    let mut hits = Vec::new();
    for a in &analysis.accesses {
        let (schema, table) = (&a.relation.schema, &a.relation.name);
        if (a.written.is_empty() && !a.deletes_rows) || !capture.covers_table(schema, table) {
            continue;
        }
        let rel = catalog.relation_in(schema, table);
        let columns: Vec<String> = match (analysis.kind, rel) {
            // A removed row loses every captured column.
            (StatementKind::Delete | StatementKind::Truncate, Some(r)) => r
                .columns
                .iter()
                .map(|c| c.name.clone())
                .filter(|c| capture.covers(schema, table, c))
                .collect(),
            _ => a
                .written
                .iter()
                .filter(|c| capture.covers(schema, table, c))
                .cloned()
                .collect(),
        };
        if !columns.is_empty() {
            hits.push((a.relation.clone(), columns, rel));
        }
    }
    let (relation, columns, rel) = hits.first().cloned()?;
    let hashed = columns
        .iter()
        .map(|c| policy.capture_hashes(&relation.schema, &relation.name, c))
        .collect();
    let unavailable = if hits.len() > 1 {
        Some("the statement writes captured columns of several tables".into())
    } else {
        match analysis.kind {
            StatementKind::Insert | StatementKind::Update | StatementKind::Delete => None,
            StatementKind::Merge => Some("MERGE returns no rows before PostgreSQL 17".into()),
            StatementKind::Copy => Some("COPY FROM rows are not captured".into()),
            StatementKind::Truncate => Some("TRUNCATE removes rows without row images".into()),
            _ => Some("the write is inside another statement".into()),
        }
    }
    .or_else(|| match rel {
        None => Some("the table is not in the catalog".into()),
        Some(r) if !matches!(r.kind, RelKind::Table | RelKind::PartitionedTable) => {
            Some("writes through a view are not captured".into())
        }
        Some(r) if r.row_security => Some("the table has row-level security".into()),
        Some(r) if r.primary_key.is_empty() && analysis.kind == StatementKind::Update => {
            Some("the table has no primary key".into())
        }
        Some(_) => None,
    });
    Some(Wanted {
        key: rel.map(|r| r.primary_key.clone()).unwrap_or_default(),
        relation,
        columns,
        hashed,
        unavailable,
        max_rows: capture.max_rows.max(1),
    })
}
