//! Which writes are captured, and how: the table, its key and the captured
//! columns a statement changes, from its analysis, the policy's
//! `[capture]` and the catalog.

use super::copy::{CopyIn, Layout};
use super::merge::{Images, MergeRun};
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
    /// Per key column, the cast that compares it with text, where it has
    /// an index-friendly one (`None`: compared as text).
    pub key_casts: Vec<Option<&'static str>>,
    /// The statement is a MERGE (captured around it, simple protocol only).
    pub merge: bool,
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
    /// A COPY FROM STDIN captured from its data: how the rows are laid out.
    pub copy: Option<Arc<Layout>>,
    /// A MERGE in a prepared statement: the images pgwarden runs around
    /// each execution (in a Query they are part of the rewritten text).
    pub merge: Option<Arc<Images>>,
}

/// Capture state of one running statement.
#[derive(Debug, Clone)]
pub struct Capture {
    /// How it is captured.
    pub plan: Arc<Plan>,
    /// Rows seen so far.
    pub changes: Changes,
    /// A COPY FROM STDIN's data being read.
    pub copy: Option<CopyIn>,
    /// A MERGE's images being read.
    pub merge: Option<MergeRun>,
}

impl Capture {
    /// The capture of a statement about to run under `plan`.
    pub fn new(plan: Arc<Plan>) -> Self {
        let merge = plan.rewritten.is_some_and(|r| r.op == Op::Merge) || plan.merge.is_some();
        Self {
            copy: plan.copy.clone().map(CopyIn::new),
            merge: merge.then(MergeRun::default),
            plan,
            changes: Changes::default(),
        }
    }

    /// The same statement, sent unchanged after all (`reason` says why).
    pub fn unrewritten(&self, reason: &str) -> Self {
        let mut p = (*self.plan).clone();
        p.rewritten = None;
        p.merge = None;
        p.reason = Some(reason.to_owned());
        Self::new(Arc::new(p))
    }

    /// Whether the last result column is pgwarden's (a MERGE's statement
    /// is sent unchanged between pgwarden's own).
    pub fn strips(&self) -> bool {
        self.plan.rewritten.is_some_and(|r| r.op != Op::Merge)
    }

    /// Whether the client expects no rows at all (it had no RETURNING).
    pub fn hides_rows(&self) -> bool {
        self.plan
            .rewritten
            .is_some_and(|r| !r.client_returning && r.op != Op::Merge)
    }

    /// The rewrite's operation, when rewritten (a captured COPY FROM
    /// inserts).
    pub fn op(&self) -> Option<Op> {
        let copy = self.plan.copy.as_ref().map(|_| Op::Insert);
        let merge = self.plan.merge.as_ref().map(|_| Op::Merge);
        self.plan.rewritten.map(|r| r.op).or(copy).or(merge)
    }

    /// PostgreSQL answered CopyInResponse: the client's data follows.
    pub fn copy_started(&mut self) {
        if let Some(c) = &mut self.copy {
            c.start();
        }
    }

    /// One CopyData message from the client.
    pub fn copy_data(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.copy {
            c.data(bytes, &mut self.changes, self.plan.wanted.max_rows);
        }
    }

    /// CopyDone from the client.
    pub fn copy_done(&mut self) {
        if let Some(c) = &mut self.copy {
            c.finish(&mut self.changes, self.plan.wanted.max_rows);
        }
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
            // A removed row loses every captured column (a MERGE with a
            // DELETE action too).
            (StatementKind::Delete | StatementKind::Truncate | StatementKind::Merge, Some(r))
                if a.deletes_rows || analysis.kind != StatementKind::Merge =>
            {
                r.columns
                    .iter()
                    .map(|c| c.name.clone())
                    .filter(|c| capture.covers(schema, table, c))
                    .collect()
            }
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
            StatementKind::Insert
            | StatementKind::Update
            | StatementKind::Delete
            | StatementKind::Merge => None,
            // The server reads the file or program: pgwarden sees no rows.
            StatementKind::Copy
                if analysis
                    .opaque_calls
                    .iter()
                    .any(|o| o.function.starts_with("COPY")) =>
            {
                Some("COPY FROM a server file or program is not captured".into())
            }
            StatementKind::Copy => None,
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
        Some(r)
            if r.primary_key.is_empty()
                && matches!(analysis.kind, StatementKind::Update | StatementKind::Merge) =>
        {
            Some("the table has no primary key".into())
        }
        Some(_) => None,
    });
    let key: Vec<String> = rel.map(|r| r.primary_key.clone()).unwrap_or_default();
    let key_casts = key
        .iter()
        .map(|k| {
            let c = rel?.columns.iter().find(|c| &c.name == k)?;
            key_cast(c.type_oid)
        })
        .collect();
    Some(Wanted {
        key_casts,
        merge: analysis.kind == StatementKind::Merge,
        key,
        relation,
        columns,
        hashed,
        unavailable,
        max_rows: capture.max_rows.max(1),
    })
}

/// The cast back from text for key types whose comparison with the cast
/// value can use the key's index; other types are compared as text.
fn key_cast(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        16 => "pg_catalog.bool",
        20 => "pg_catalog.int8",
        21 => "pg_catalog.int2",
        23 => "pg_catalog.int4",
        25 | 1043 => "pg_catalog.text",
        26 => "pg_catalog.oid",
        1082 => "pg_catalog.date",
        1114 => "pg_catalog.timestamp",
        1184 => "pg_catalog.timestamptz",
        1700 => "pg_catalog.numeric",
        2950 => "pg_catalog.uuid",
        _ => return None,
    })
}
