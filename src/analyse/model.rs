//! What the analyser says about one statement: its kind, the tables and
//! columns it reads (into the output, or as filters) and writes, the opaque
//! code it calls, and what it changes in the session.

use crate::catalog::Oid;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The kind of statement, as the audit record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// SELECT, VALUES, TABLE, and SELECT INTO.
    Select,
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// COPY (either direction).
    Copy,
    /// TRUNCATE.
    Truncate,
    /// CREATE, ALTER, DROP, GRANT, COMMENT, ... (changes the catalog).
    Ddl,
    /// SET, RESET, SET ROLE, SET SESSION AUTHORIZATION.
    Set,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...
    Transaction,
    /// Everything else (EXPLAIN, PREPARE, EXECUTE, DECLARE, FETCH, CALL, DO, LISTEN, ...).
    Other,
}

/// A relation as named by the statement and resolved against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RelationName {
    /// Schema the name resolved to.
    pub schema: String,
    /// Relation name.
    pub name: String,
}

impl std::fmt::Display for RelationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// How a statement touches one real relation (a base table, or a view it
/// could not see through).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelationAccess {
    /// The relation.
    pub relation: RelationName,
    /// pg_class oid, when resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<Oid>,
    /// Columns whose values reach the client (select list, RETURNING, COPY TO).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub output: BTreeSet<String>,
    /// Columns that decide which rows come back or are changed (WHERE, JOIN,
    /// GROUP BY, HAVING, ORDER BY, window clauses, ...).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub filter: BTreeSet<String>,
    /// Columns given new values (INSERT, UPDATE SET, MERGE, COPY FROM).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub written: BTreeSet<String>,
    /// Whole rows removed (DELETE, TRUNCATE, MERGE ... DELETE).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deletes_rows: bool,
}

/// One column of the rows a statement returns to the client, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultColumn {
    /// Output name (`*`: an unknown number of columns of a relation whose
    /// columns are not known; positions from there on are not reliable).
    pub name: String,
    /// Values are exactly one stored base column's values (maskable cell by cell).
    pub direct: bool,
    /// Base columns the values derive from.
    pub sources: Vec<ColumnSource>,
}

/// A base column, by relation and name (`*`: every column of the relation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ColumnSource {
    /// The relation.
    pub relation: RelationName,
    /// Column name.
    pub column: String,
}

/// A function the analyser cannot see into (PL code, C, SQL functions,
/// dynamic SQL), with the columns passed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpaqueCall {
    /// Qualified function name (`schema.name` when resolved).
    pub function: String,
    /// Columns passed to it, as `schema.table.column`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// A relation created by this session that the catalog snapshot may not
/// show yet (uncommitted, or not reloaded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreatedRelation {
    /// Schema, if the statement named one.
    pub schema: Option<String>,
    /// Relation name.
    pub name: String,
    /// Its columns, when the statement lists them all.
    pub columns: Option<Vec<String>>,
}

/// A change a statement makes to the session that later statements depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    /// SET [LOCAL] search_path; `None` resets to the default.
    SearchPath {
        /// New search path (`None` = RESET / DEFAULT).
        value: Option<Vec<String>>,
        /// SET LOCAL: lasts until the end of the transaction.
        local: bool,
    },
    /// SET [LOCAL] ROLE / SET SESSION AUTHORIZATION; `None` = RESET/NONE.
    Role {
        /// The role now in effect.
        role: Option<String>,
        /// SET LOCAL.
        local: bool,
        /// SET SESSION AUTHORIZATION (also changes session_user).
        session_authorization: bool,
    },
    /// RESET ALL / DISCARD ALL.
    ResetAll,
    /// A temporary relation was created with this name.
    TempRelation(String),
    /// A permanent relation was created; until its transaction commits and
    /// the catalog is reloaded, only this session knows it.
    CreatedRelation(CreatedRelation),
    /// PREPARE name AS statement.
    Prepare(String),
    /// DEALLOCATE name (`None` = ALL).
    Deallocate(Option<String>),
    /// DECLARE cursor.
    DeclareCursor(String),
    /// CLOSE cursor (`None` = ALL).
    CloseCursor(Option<String>),
    /// The catalog changed (DDL): reload it.
    CatalogChanged,
    /// SAVEPOINT, RELEASE or ROLLBACK TO: the savepoint it names.
    Savepoint(String),
}

/// A LIMIT or FETCH count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShapeCount {
    /// The count (`u64::MAX` for `FETCH ALL`).
    pub value: u64,
    /// Which literal token of the text holds it (0-based), when written as
    /// a literal: texts sharing a cached analysis differ there.
    #[serde(skip)]
    pub literal: Option<u32>,
    /// The parameter (`$n`, 1-based) that holds it: the count arrives with
    /// Bind, and `value` is 0 until then.
    #[serde(skip)]
    pub param: Option<u16>,
}

/// What a statement looks like to an extraction check, from its parse
/// tree: see `analyse::shape`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Tables whose rows a top-level SELECT (or COPY query, or cursor)
    /// returns with no WHERE, LIMIT, GROUP BY or HAVING.
    pub unfiltered_reads: Vec<RelationName>,
    /// The top-level LIMIT / FETCH FIRST count, when a constant.
    pub limit: Option<ShapeCount>,
    /// The row count a FETCH asks for.
    pub fetch: Option<ShapeCount>,
    /// A COPY ... TO (a table or a query's rows leave the database).
    pub copy_to: bool,
}

/// The analysis of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Kind.
    pub kind: StatementKind,
    /// Command tag-like name, e.g. `SELECT`, `CREATE TABLE`, `SET ROLE`.
    pub command: String,
    /// Relations touched, in first-seen order.
    pub accesses: Vec<RelationAccess>,
    /// Calls into code the analyser cannot see into.
    pub opaque_calls: Vec<OpaqueCall>,
    /// Why the statement could not be fully analysed, if it could not.
    pub unanalysed: Option<String>,
    /// Statement text with literals replaced by `$n`-style placeholders.
    pub normalized: Arc<str>,
    /// 64-bit fingerprint of the normalised text, as 16 hex digits.
    pub fingerprint: Arc<str>,
    /// Session changes to apply once the statement succeeds.
    pub effects: Vec<SessionEffect>,
    /// For EXECUTE/FETCH: the prepared statement or cursor it runs.
    pub refers_to: Option<String>,
    /// For PREPARE/DECLARE: the kind of the statement they hold (what an
    /// EXECUTE or FETCH of it will be).
    pub inner_kind: Option<StatementKind>,
    /// The columns of the rows returned to the client, in RowDescription
    /// order (PREPARE / DECLARE: what EXECUTE / FETCH will return); `None`
    /// when the statement returns no rows from base tables.
    pub results: Option<Vec<ResultColumn>>,
    /// Structural facts for extraction checks.
    pub shape: Shape,
}

impl Analysis {
    /// Whether the statement writes anything.
    pub fn writes(&self) -> bool {
        self.accesses
            .iter()
            .any(|a| !a.written.is_empty() || a.deletes_rows)
    }
}
