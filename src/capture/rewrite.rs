//! Rewriting a captured write so PostgreSQL itself returns what changed:
//! one extra result column, `pgwarden_capture`, holding a JSON array
//! `[[key...], values...]` per changed row.
//!
//! - INSERT: `RETURNING` the new values.
//! - DELETE: `RETURNING` the old values (the row version actually deleted).
//! - UPDATE: a pre-image CTE (`SELECT key, columns ... FOR UPDATE`, same
//!   target, FROM list and WHERE, so the same parameters) joined on the
//!   primary key, and `RETURNING` old and new values. The CTE locks every
//!   row it returns before the UPDATE touches it, so no other writer can
//!   change a row between its pre-image and its update: the old value is
//!   the one the UPDATE replaced, also under concurrent writers.
//!
//! Positions come from PostgreSQL's own parser and scanner (pg_query): the
//! edits are insertions at clause boundaries; the client's text is kept
//! byte for byte, so its parameters, literals and comments mean what they
//! meant.

use super::CaptureError;
use pg_query::protobuf::{self as pb, Token};
use pg_query::NodeEnum;

/// The name of the extra result column.
pub const COLUMN: &str = "pgwarden_capture";
/// The pre-image CTE's name.
const PRE: &str = "pgwarden_pre";

/// What a rewritten statement changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// INSERT.
    Insert,
    /// INSERT ... ON CONFLICT DO UPDATE: each row says whether it was
    /// inserted or updated.
    Upsert {
        /// Updated rows carry their old values (a pre-image was taken).
        old_values: bool,
    },
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE: each row says whether it was inserted, updated or deleted.
    Merge,
}

impl Op {
    /// The operation's name in the audit record.
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Upsert { .. } => "insert_or_update",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Merge => "merge",
        }
    }
}

/// A statement to rewrite: which statement of the text, its key and the
/// columns captured.
#[derive(Debug, Clone)]
pub struct Target {
    /// Index of the statement in the text.
    pub index: usize,
    /// Primary key columns.
    pub key: Vec<String>,
    /// Captured columns.
    pub columns: Vec<String>,
    /// Per key column, the cast that compares it with text (`None`: as
    /// text).
    pub key_casts: Vec<Option<&'static str>>,
}

/// One rewritten statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Index of the statement in the text.
    pub index: usize,
    /// What it does.
    pub op: Op,
    /// The client's statement had a RETURNING list of its own.
    pub client_returning: bool,
}

/// A position in the text and what is inserted there.
pub(super) struct Edit {
    pub(super) at: usize,
    pub(super) text: String,
}

/// Rewrites the statements of `sql` named by `targets`; returns the new
/// text and, per target, what it does.
pub fn rewrite(sql: &str, targets: &[Target]) -> Result<(String, Vec<Rewritten>), CaptureError> {
    let parsed = Parsed::new(sql)?;
    let mut edits = Vec::new();
    let mut done = Vec::new();
    for t in targets {
        let (start, toks, node) = parsed.statement(sql, t.index)?;
        let (op, client_returning) = match node {
            NodeEnum::InsertStmt(s) => insert(&toks, s, t, &mut edits)?,
            NodeEnum::DeleteStmt(s) => delete(&toks, s, t, &mut edits)?,
            NodeEnum::UpdateStmt(s) => update(sql, &toks, s, t, &mut edits)?,
            NodeEnum::MergeStmt(s) => {
                super::merge::rewrite(sql, start, &toks, s, t, &mut edits)?;
                (Op::Merge, false)
            }
            _ => {
                return Err(CaptureError::Unsupported(
                    "not INSERT, UPDATE, DELETE or MERGE",
                ))
            }
        };
        done.push(Rewritten {
            index: t.index,
            op,
            client_returning,
        });
    }
    // Stable: edits at one position keep the order they were made in.
    edits.sort_by_key(|e| e.at);
    let mut out =
        String::with_capacity(sql.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut pos = 0;
    for e in &edits {
        out.push_str(sql.get(pos..e.at).ok_or(CaptureError::Position)?);
        out.push_str(&e.text);
        pos = e.at;
    }
    out.push_str(sql.get(pos..).ok_or(CaptureError::Position)?);
    Ok((out, done))
}

/// The pre- and post-image statements for the MERGE at `target.index` of
/// `sql`, to run around it (extended protocol: the MERGE's own text stays).
pub fn merge_images(sql: &str, target: &Target) -> Result<super::merge::Images, CaptureError> {
    let parsed = Parsed::new(sql)?;
    match parsed.statement(sql, target.index)? {
        (start, toks, NodeEnum::MergeStmt(s)) => super::merge::images(sql, start, &toks, s, target),
        _ => Err(CaptureError::Unsupported("not MERGE")),
    }
}

/// A text parsed and scanned by PostgreSQL's parser, for clause positions.
struct Parsed {
    tree: pb::ParseResult,
    tokens: Vec<pb::ScanToken>,
}

impl Parsed {
    fn new(sql: &str) -> Result<Self, CaptureError> {
        let tree = crate::analyse::parse::parse(sql, true)
            .map_err(|e| CaptureError::Rewrite(e.to_string()))?;
        let tokens =
            pg_query::scan_tokens(sql).map_err(|e| CaptureError::Rewrite(e.to_string()))?;
        Ok(Self { tree, tokens })
    }

    /// Statement `index`: where it starts, its tokens and its node.
    fn statement(
        &self,
        sql: &str,
        index: usize,
    ) -> Result<(usize, Tokens, &NodeEnum), CaptureError> {
        let raw = self
            .tree
            .stmts
            .get(index)
            .ok_or_else(|| CaptureError::Rewrite("statement index out of range".into()))?;
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(n) => start + n,
        };
        let node = raw
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .ok_or_else(|| CaptureError::Rewrite("empty statement".into()))?;
        Ok((start, Tokens::new(&self.tokens, start, end), node))
    }
}

/// The tokens of one statement, with their parenthesis depth.
pub(super) struct Tokens {
    /// (start, end, token, depth) of code tokens (no comments).
    list: Vec<(usize, usize, i32, u32)>,
}

impl Tokens {
    fn new(all: &[pb::ScanToken], start: usize, end: usize) -> Self {
        let mut depth = 0u32;
        let mut list = Vec::new();
        for t in all {
            let (a, b) = (t.start as usize, t.end as usize);
            if a < start || b > end {
                continue;
            }
            if t.token == Token::CComment as i32 || t.token == Token::SqlComment as i32 {
                continue;
            }
            let open = t.token == Token::Ascii40 as i32 || t.token == Token::Ascii91 as i32;
            let close = t.token == Token::Ascii41 as i32 || t.token == Token::Ascii93 as i32;
            if close {
                depth = depth.saturating_sub(1);
            }
            list.push((a, b, t.token, depth));
            if open {
                depth += 1;
            }
        }
        // A trailing ';' is not part of the statement.
        while list.last().is_some_and(|t| t.2 == Token::Ascii59 as i32) {
            list.pop();
        }
        Self { list }
    }

    /// End of the statement's last code token.
    pub(super) fn end(&self) -> usize {
        self.list.last().map_or(0, |t| t.1)
    }

    /// First top-level `token` starting at or after `from`.
    pub(super) fn first(&self, token: Token, from: usize) -> Option<(usize, usize)> {
        self.list
            .iter()
            .find(|t| t.3 == 0 && t.0 >= from && t.2 == token as i32)
            .map(|t| (t.0, t.1))
    }

    /// Last top-level `token` starting before `before`.
    fn last_before(&self, token: Token, before: usize) -> Option<(usize, usize)> {
        self.list
            .iter()
            .rev()
            .find(|t| t.3 == 0 && t.0 < before && t.2 == token as i32)
            .map(|t| (t.0, t.1))
    }

    /// First top-level FROM after `from` that is not `IS DISTINCT FROM`.
    fn find_from(&self, from: usize) -> Option<(usize, usize)> {
        let mut prev: Option<i32> = None;
        for t in &self.list {
            if t.3 == 0
                && t.0 >= from
                && t.2 == Token::From as i32
                && prev != Some(Token::Distinct as i32)
            {
                return Some((t.0, t.1));
            }
            prev = Some(t.2);
        }
        None
    }

    /// Whether a parameter (`$n`) appears outside every one of `spans`.
    pub(super) fn param_outside(&self, spans: &[(usize, usize)]) -> bool {
        self.list.iter().any(|t| {
            t.2 == Token::Param as i32 && !spans.iter().any(|&(a, b)| t.0 >= a && t.1 <= b)
        })
    }

    /// First top-level WHEN after `from` that does not belong to a CASE.
    pub(super) fn first_when_outside_case(&self, from: usize) -> Option<(usize, usize)> {
        let mut cases = 0u32;
        for t in self.list.iter().filter(|t| t.3 == 0 && t.0 >= from) {
            if t.2 == Token::Case as i32 {
                cases += 1;
            } else if t.2 == Token::EndP as i32 {
                cases = cases.saturating_sub(1);
            } else if t.2 == Token::When as i32 && cases == 0 {
                return Some((t.0, t.1));
            }
        }
        None
    }

    /// Start of the first code token at or after `from`.
    pub(super) fn start_after(&self, from: usize) -> usize {
        self.list.iter().find(|t| t.0 >= from).map_or(from, |t| t.0)
    }

    /// End of the last code token ending at or before `limit`.
    pub(super) fn end_before(&self, limit: usize) -> usize {
        self.list
            .iter()
            .rev()
            .find(|t| t.1 <= limit)
            .map_or(limit, |t| t.1)
    }
}

/// A double-quoted identifier.
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How the statement refers to its target: the alias, else the name.
pub(super) fn target_ref(rel: &pb::RangeVar) -> String {
    match &rel.alias {
        Some(a) => ident(&a.aliasname),
        None => ident(&rel.relname),
    }
}

pub(super) fn has_returning(r: &Option<pb::ReturningClause>) -> bool {
    r.as_ref().is_some_and(|r| !r.exprs.is_empty())
}

/// `RETURNING ...` (or `, ...` after the client's own list) at the end.
fn returning(toks: &Tokens, client: bool, json: String, edits: &mut Vec<Edit>) {
    let text = if client {
        format!(", {json} AS {COLUMN}")
    } else {
        format!(" RETURNING {json} AS {COLUMN}")
    };
    edits.push(Edit {
        at: toks.end(),
        text,
    });
}

/// `json_build_array(json_build_array(keys), values...)::text`, every
/// value as PostgreSQL prints it (JSON numbers would lose numeric's digits).
fn json(keys: &[String], values: &[String]) -> String {
    let text = |x: &String| format!("{x}::pg_catalog.text");
    let keys: Vec<String> = keys.iter().map(text).collect();
    let mut v = format!(
        "pg_catalog.json_build_array(pg_catalog.json_build_array({})",
        keys.join(", ")
    );
    for x in values {
        v.push_str(", ");
        v.push_str(&text(x));
    }
    v.push_str(")::pg_catalog.text");
    v
}

fn qualified(r: &str, cols: &[String]) -> Vec<String> {
    cols.iter().map(|c| format!("{r}.{}", ident(c))).collect()
}

fn insert(
    toks: &Tokens,
    s: &pb::InsertStmt,
    t: &Target,
    edits: &mut Vec<Edit>,
) -> Result<(Op, bool), CaptureError> {
    let rel = s.relation.as_ref().ok_or(CaptureError::Position)?;
    let r = target_ref(rel);
    let upsert = s
        .on_conflict_clause
        .as_ref()
        .is_some_and(|c| c.action == pb::OnConflictAction::OnconflictUpdate as i32);
    let client = has_returning(&s.returning_clause);
    let keys = qualified(&r, &t.key);
    let news = qualified(&r, &t.columns);
    if !upsert {
        returning(toks, client, json(&keys, &news), edits);
        return Ok((Op::Insert, client));
    }
    // Updated rows' old values come from a locked pre-image of the rows
    // the VALUES list conflicts with; `xmax` tells updated from inserted.
    let pre = upsert_pre_image(s, t, rel, &r);
    let old = match &pre {
        Some(select) => {
            let insert_kw = toks
                .last_before(Token::Insert, usize::try_from(rel.location).unwrap_or(0))
                .ok_or(CaptureError::Position)?;
            let cte = format!("{PRE} AS MATERIALIZED ({select})");
            edits.push(Edit {
                at: insert_kw.0,
                text: match s.with_clause {
                    Some(_) => format!(", {cte} "),
                    None => format!("WITH {cte} "),
                },
            });
            // A CTE runs when first read, and the RETURNING list reads it
            // only after the row was updated (then FOR UPDATE skips it).
            // The DO UPDATE's WHERE is checked after the conflicting row
            // is locked and before it is updated: reading the pre-image
            // there, with an always-true test, takes it in time.
            upsert_guard(toks, s, edits)?;
            let olds: Vec<String> = (0..t.columns.len())
                .map(|i| format!("{PRE}.pgwarden_o{i}::pg_catalog.text"))
                .collect();
            format!(
                "(SELECT pg_catalog.json_build_array({}) FROM {PRE} WHERE {})",
                olds.join(", "),
                key_join(&r, &t.key)
            )
        }
        None => "NULL".into(),
    };
    let mut all = json(&keys, &news);
    let close = ")::pg_catalog.text";
    all.truncate(all.len() - close.len());
    all.push_str(&format!(
        ", {old}, ({r}.xmax::pg_catalog.text <> '0'){close}"
    ));
    returning(toks, client, all, edits);
    Ok((
        Op::Upsert {
            old_values: pre.is_some(),
        },
        client,
    ))
}

/// Adds `(SELECT count(*) FROM pgwarden_pre) >= 0` to the DO UPDATE's
/// WHERE (or as its WHERE), so the pre-image is read at the first conflict.
fn upsert_guard(
    toks: &Tokens,
    s: &pb::InsertStmt,
    edits: &mut Vec<Edit>,
) -> Result<(), CaptureError> {
    let guard = format!("(SELECT pg_catalog.count(*) FROM {PRE}) >= 0");
    let c = s
        .on_conflict_clause
        .as_ref()
        .ok_or(CaptureError::Position)?;
    let last_set = c
        .target_list
        .last()
        .and_then(location)
        .ok_or(CaptureError::Position)?;
    let clause_end = toks
        .first(Token::Returning, last_set)
        .map_or(toks.end(), |k| k.0);
    let end = toks.end_before(clause_end);
    match c.where_clause {
        Some(_) => {
            let w = toks
                .first(Token::Where, last_set)
                .ok_or(CaptureError::Position)?;
            edits.push(Edit {
                at: toks.start_after(w.1),
                text: "(".into(),
            });
            edits.push(Edit {
                at: end,
                text: format!(") AND {guard}"),
            });
        }
        None => edits.push(Edit {
            at: end,
            text: format!(" WHERE {guard}"),
        }),
    }
    Ok(())
}

/// A pre-image's select list: the key as `pgwarden_k<i>`, the captured
/// columns' old values as `pgwarden_o<i>`.
pub(super) fn pre_columns(r: &str, t: &Target) -> String {
    let keys = t
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{r}.{} AS pgwarden_k{i}", ident(k)));
    let olds = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{r}.{} AS pgwarden_o{i}", ident(c)));
    keys.chain(olds).collect::<Vec<_>>().join(", ")
}

/// `target.key = pgwarden_pre.pgwarden_k<i>` for every key column.
fn key_join(r: &str, key: &[String]) -> String {
    key.iter()
        .enumerate()
        .map(|(i, k)| format!("{r}.{} = {PRE}.pgwarden_k{i}", ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The pre-image of the rows an upsert's VALUES list will conflict with:
/// only when the conflict target is the primary key, the column list names
/// it, and each key value is a constant or a parameter (anything else
/// could differ when evaluated twice); `None` otherwise.
fn upsert_pre_image(s: &pb::InsertStmt, t: &Target, rel: &pb::RangeVar, r: &str) -> Option<String> {
    let infer = s.on_conflict_clause.as_ref()?.infer.as_ref()?;
    if !infer.conname.is_empty() || t.key.is_empty() {
        return None;
    }
    let conflict: Vec<&str> = infer
        .index_elems
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(NodeEnum::IndexElem(e)) if e.expr.is_none() => Some(e.name.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if conflict.len() != t.key.len() || !t.key.iter().all(|k| conflict.contains(&k.as_str())) {
        return None;
    }
    let cols: Vec<&str> = s
        .cols
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(NodeEnum::ResTarget(c)) if c.indirection.is_empty() => Some(c.name.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let at: Vec<usize> = t
        .key
        .iter()
        .map(|k| cols.iter().position(|c| c == k))
        .collect::<Option<_>>()?;
    let Some(NodeEnum::SelectStmt(select)) = s.select_stmt.as_ref()?.node.as_ref() else {
        return None;
    };
    if select.values_lists.is_empty() {
        return None;
    }
    let mut tuples = Vec::with_capacity(select.values_lists.len());
    for row in &select.values_lists {
        let Some(NodeEnum::List(l)) = row.node.as_ref() else {
            return None;
        };
        let vals: Vec<String> = at
            .iter()
            .map(|&i| constant(l.items.get(i)?))
            .collect::<Option<_>>()?;
        tuples.push(format!("({})", vals.join(", ")));
    }
    let mut table = String::new();
    if !rel.schemaname.is_empty() {
        table.push_str(&ident(&rel.schemaname));
        table.push('.');
    }
    table.push_str(&ident(&rel.relname));
    if let Some(a) = &rel.alias {
        table.push_str(" AS ");
        table.push_str(&ident(&a.aliasname));
    }
    Some(format!(
        "SELECT {} FROM {table} WHERE ({}) IN ({}) FOR UPDATE OF {r}",
        pre_columns(r, t),
        qualified(r, &t.key).join(", "),
        tuples.join(", ")
    ))
}

/// A constant or parameter as SQL text; `None` for anything that could
/// evaluate differently a second time. Casts are kept: the pre-image comes
/// first in the text, so it is where a parameter's type is inferred.
fn constant(n: &pb::Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::ParamRef(p) => Some(format!("${}", p.number)),
        NodeEnum::TypeCast(c) => {
            let t = c.type_name.as_ref()?;
            if !t.typmods.is_empty() || !t.array_bounds.is_empty() || t.setof || t.pct_type {
                return None;
            }
            let names: Vec<String> = t
                .names
                .iter()
                .map(|n| match n.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(ident(&s.sval)),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(format!(
                "{}::{}",
                constant(c.arg.as_deref()?)?,
                names.join(".")
            ))
        }
        NodeEnum::AConst(c) if c.isnull => Some("NULL".into()),
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            pb::a_const::Val::Ival(i) => Some(i.ival.to_string()),
            pb::a_const::Val::Fval(f) => Some(f.fval.clone()),
            pb::a_const::Val::Boolval(b) => Some(b.boolval.to_string()),
            // An escape string, whatever standard_conforming_strings says.
            pb::a_const::Val::Sval(s) => Some(format!(
                "E'{}'",
                s.sval.replace('\\', "\\\\").replace('\'', "''")
            )),
            pb::a_const::Val::Bsval(_) => None,
        },
        _ => None,
    }
}

fn delete(
    toks: &Tokens,
    s: &pb::DeleteStmt,
    t: &Target,
    edits: &mut Vec<Edit>,
) -> Result<(Op, bool), CaptureError> {
    let rel = s.relation.as_ref().ok_or(CaptureError::Position)?;
    let r = target_ref(rel);
    let client = has_returning(&s.returning_clause);
    returning(
        toks,
        client,
        json(&qualified(&r, &t.key), &qualified(&r, &t.columns)),
        edits,
    );
    Ok((Op::Delete, client))
}

fn is_current_of(n: &Option<Box<pb::Node>>) -> bool {
    matches!(
        n.as_ref().and_then(|n| n.node.as_ref()),
        Some(NodeEnum::CurrentOfExpr(_))
    )
}

/// `RETURNING *` (unqualified) expands to every FROM item, the pre-image too.
fn returns_star(r: &Option<pb::ReturningClause>) -> bool {
    let Some(r) = r else { return false };
    r.exprs.iter().any(|e| match e.node.as_ref() {
        Some(NodeEnum::ResTarget(t)) => match t.val.as_ref().and_then(|v| v.node.as_ref()) {
            Some(NodeEnum::ColumnRef(c)) => {
                c.fields.len() == 1 && matches!(c.fields[0].node, Some(NodeEnum::AStar(_)))
            }
            _ => false,
        },
        _ => false,
    })
}

fn location(n: &pb::Node) -> Option<usize> {
    match n.node.as_ref()? {
        NodeEnum::ResTarget(t) => usize::try_from(t.location).ok(),
        _ => None,
    }
}

fn update(
    sql: &str,
    toks: &Tokens,
    s: &pb::UpdateStmt,
    t: &Target,
    edits: &mut Vec<Edit>,
) -> Result<(Op, bool), CaptureError> {
    if t.key.is_empty() {
        return Err(CaptureError::Unsupported("the table has no primary key"));
    }
    if is_current_of(&s.where_clause) {
        return Err(CaptureError::Unsupported("UPDATE ... WHERE CURRENT OF"));
    }
    if returns_star(&s.returning_clause) {
        return Err(CaptureError::Unsupported("UPDATE ... RETURNING *"));
    }
    let rel = s.relation.as_ref().ok_or(CaptureError::Position)?;
    let r = target_ref(rel);
    let rel_at = usize::try_from(rel.location).map_err(|_| CaptureError::Position)?;
    let first_set = s
        .target_list
        .first()
        .and_then(location)
        .ok_or(CaptureError::Position)?;
    let last_set = s
        .target_list
        .last()
        .and_then(location)
        .ok_or(CaptureError::Position)?;
    let update_kw = toks
        .last_before(Token::Update, rel_at)
        .ok_or(CaptureError::Position)?;
    let set_kw = toks
        .last_before(Token::Set, first_set)
        .ok_or(CaptureError::Position)?;
    let end = toks.end();
    let returning_kw = toks.first(Token::Returning, last_set);
    let where_kw = match s.where_clause {
        Some(_) => Some(
            toks.first(Token::Where, last_set)
                .ok_or(CaptureError::Position)?,
        ),
        None => None,
    };
    let from_kw = match s.from_clause.is_empty() {
        true => None,
        false => Some(toks.find_from(last_set).ok_or(CaptureError::Position)?),
    };
    let clause_end = returning_kw.map_or(end, |k| k.0);
    let piece = |a: usize, b: usize| -> Result<&str, CaptureError> {
        sql.get(a..toks.end_before(b))
            .map(str::trim)
            .ok_or(CaptureError::Position)
    };
    // The pre-image: same target, FROM list and WHERE, locked.
    let target_text = piece(update_kw.1, set_kw.0)?;
    let mut pre = String::from("SELECT ");
    pre.push_str(&pre_columns(&r, t));
    pre.push_str(" FROM ");
    pre.push_str(target_text);
    if let Some(f) = from_kw {
        let upto = where_kw.map_or(clause_end, |w| w.0);
        pre.push_str(", ");
        pre.push_str(piece(f.1, upto)?);
    }
    if let Some(w) = where_kw {
        pre.push_str(" WHERE ");
        pre.push_str(piece(w.1, clause_end)?);
    }
    pre.push_str(" FOR UPDATE OF ");
    pre.push_str(&r);
    let cte = format!("{PRE} AS MATERIALIZED ({pre})");
    edits.push(Edit {
        at: update_kw.0,
        text: match s.with_clause {
            Some(_) => format!(", {cte} "),
            None => format!("WITH {cte} "),
        },
    });
    // Join the target to its pre-image on the key.
    let join = key_join(&r, &t.key);
    let after_from = toks.end_before(where_kw.map_or(clause_end, |w| w.0));
    edits.push(Edit {
        at: after_from,
        text: match from_kw {
            Some(_) => format!(", {PRE}"),
            None => format!(" FROM {PRE}"),
        },
    });
    match where_kw {
        Some(w) => {
            edits.push(Edit {
                at: toks.start_after(w.1),
                text: "(".into(),
            });
            edits.push(Edit {
                at: toks.end_before(clause_end),
                text: format!(") AND {join}"),
            });
        }
        None => edits.push(Edit {
            at: after_from,
            text: format!(" WHERE {join}"),
        }),
    }
    let mut values = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        values.push(format!("{PRE}.pgwarden_o{i}"));
        values.push(format!("{r}.{}", ident(c)));
    }
    let keys: Vec<String> = (0..t.key.len())
        .map(|i| format!("{PRE}.pgwarden_k{i}"))
        .collect();
    let client = has_returning(&s.returning_clause);
    returning(toks, client, json(&keys, &values), edits);
    Ok((Op::Update, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(index: usize) -> Target {
        Target {
            index,
            key: vec!["id".into()],
            columns: vec!["amount".into()],
            key_casts: vec![Some("pg_catalog.int4")],
        }
    }

    fn one(sql: &str) -> String {
        rewrite(sql, &[target(0)]).unwrap().0
    }

    #[test]
    fn update_gets_a_locked_pre_image() {
        assert_eq!(
            one("UPDATE hr.salaries SET amount = amount * 2 WHERE id = $1 OR id = 3"),
            "WITH pgwarden_pre AS MATERIALIZED (SELECT \"salaries\".\"id\" AS pgwarden_k0, \
             \"salaries\".\"amount\" AS pgwarden_o0 FROM hr.salaries WHERE id = $1 OR id = 3 \
             FOR UPDATE OF \"salaries\") UPDATE hr.salaries SET amount = amount * 2 \
             FROM pgwarden_pre WHERE (id = $1 OR id = 3) AND \"salaries\".\"id\" = pgwarden_pre.pgwarden_k0 \
             RETURNING pg_catalog.json_build_array(pg_catalog.json_build_array(pgwarden_pre.pgwarden_k0::pg_catalog.text), \
             pgwarden_pre.pgwarden_o0::pg_catalog.text, \"salaries\".\"amount\"::pg_catalog.text)::pg_catalog.text AS pgwarden_capture"
        );
    }

    #[test]
    fn update_keeps_with_from_and_returning() {
        let out = one(
            "WITH r AS (SELECT 2 AS f) UPDATE ONLY hr.salaries s SET amount = amount * r.f \
             FROM r WHERE s.id IS DISTINCT FROM 4 RETURNING s.id -- done\n;",
        );
        assert!(
            out.starts_with(
                "WITH r AS (SELECT 2 AS f) , pgwarden_pre AS MATERIALIZED (SELECT \"s\".\"id\""
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "FROM ONLY hr.salaries s, r WHERE s.id IS DISTINCT FROM 4 FOR UPDATE OF \"s\")"
            ),
            "{out}"
        );
        assert!(out.contains("FROM r, pgwarden_pre WHERE (s.id IS DISTINCT FROM 4) AND \"s\".\"id\" = pgwarden_pre.pgwarden_k0 RETURNING s.id, pg_catalog"), "{out}");
        assert!(out.ends_with("AS pgwarden_capture -- done\n;"), "{out}");
    }

    #[test]
    fn update_without_where() {
        let out = one("update hr.salaries set amount = 1");
        assert!(out.ends_with("set amount = 1 FROM pgwarden_pre WHERE \"salaries\".\"id\" = pgwarden_pre.pgwarden_k0 RETURNING pg_catalog.json_build_array(pg_catalog.json_build_array(pgwarden_pre.pgwarden_k0::pg_catalog.text), pgwarden_pre.pgwarden_o0::pg_catalog.text, \"salaries\".\"amount\"::pg_catalog.text)::pg_catalog.text AS pgwarden_capture"), "{out}");
    }

    #[test]
    fn delete_and_insert_return_their_rows() {
        assert_eq!(
            one("DELETE FROM hr.salaries WHERE id = 1"),
            "DELETE FROM hr.salaries WHERE id = 1 RETURNING pg_catalog.json_build_array(pg_catalog.json_build_array(\"salaries\".\"id\"::pg_catalog.text), \"salaries\".\"amount\"::pg_catalog.text)::pg_catalog.text AS pgwarden_capture"
        );
        let (out, done) = rewrite(
            "SELECT 1; INSERT INTO hr.salaries AS x VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET amount = 3 RETURNING id;",
            &[target(1)],
        )
        .unwrap();
        assert!(out.ends_with("RETURNING id, pg_catalog.json_build_array(pg_catalog.json_build_array(\"x\".\"id\"::pg_catalog.text), \"x\".\"amount\"::pg_catalog.text, NULL, (\"x\".xmax::pg_catalog.text <> '0'))::pg_catalog.text AS pgwarden_capture;"), "{out}");
        // No column list: the key's place in VALUES is not known here.
        assert_eq!(done[0].op, Op::Upsert { old_values: false });
        assert!(done[0].client_returning);
    }

    #[test]
    fn upserts_of_constant_keys_take_a_pre_image() {
        let out = one(
            "INSERT INTO hr.salaries AS x (id, amount) VALUES ($1, 2), (-3, 4), ('it''s'::text, 5) \
             ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount",
        );
        assert!(out.starts_with("WITH pgwarden_pre AS MATERIALIZED (SELECT \"x\".\"id\" AS pgwarden_k0, \"x\".\"amount\" AS pgwarden_o0 FROM \"hr\".\"salaries\" AS \"x\" WHERE (\"x\".\"id\") IN (($1), (-3), (E'it''s'::\"text\")) FOR UPDATE OF \"x\") INSERT INTO"), "{out}");
        assert!(out.contains("SET amount = EXCLUDED.amount WHERE (SELECT pg_catalog.count(*) FROM pgwarden_pre) >= 0 RETURNING"), "{out}");
        let with_where = one(
            "INSERT INTO hr.salaries (id, amount) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET amount = 3 WHERE salaries.amount < 5 RETURNING id",
        );
        assert!(with_where.contains("SET amount = 3 WHERE (salaries.amount < 5) AND (SELECT pg_catalog.count(*) FROM pgwarden_pre) >= 0 RETURNING id, "), "{with_where}");
        assert!(out.ends_with(", (SELECT pg_catalog.json_build_array(pgwarden_pre.pgwarden_o0::pg_catalog.text) FROM pgwarden_pre WHERE \"x\".\"id\" = pgwarden_pre.pgwarden_k0), (\"x\".xmax::pg_catalog.text <> '0'))::pg_catalog.text AS pgwarden_capture"), "{out}");
        let (_, done) = rewrite(
            "INSERT INTO hr.salaries (id, amount) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET amount = 3",
            &[target(0)],
        )
        .unwrap();
        assert_eq!(done[0].op, Op::Upsert { old_values: true });
        // A key that could differ when evaluated twice, or a conflict target
        // other than the key: new values and inserted/updated only.
        for sql in [
            "INSERT INTO hr.salaries (id, amount) VALUES (nextval('s'), 2) ON CONFLICT (id) DO UPDATE SET amount = 3",
            "INSERT INTO hr.salaries (id, amount) VALUES (1, 2) ON CONFLICT (amount) DO UPDATE SET amount = 3",
            "INSERT INTO hr.salaries (id, amount) SELECT 1, 2 ON CONFLICT (id) DO UPDATE SET amount = 3",
            "INSERT INTO hr.salaries (id, amount) VALUES (1, 2) ON CONFLICT ON CONSTRAINT pk DO UPDATE SET amount = 3",
        ] {
            let (out, done) = rewrite(sql, &[target(0)]).unwrap();
            assert_eq!(done[0].op, Op::Upsert { old_values: false }, "{sql}");
            assert!(out.contains(", NULL, (\"salaries\".xmax"), "{out}");
        }
    }

    #[test]
    fn unsupported_forms_are_named() {
        for sql in [
            "UPDATE hr.salaries SET amount = 1 WHERE CURRENT OF c",
            "UPDATE hr.salaries SET amount = 1 RETURNING *",
            "SELECT 1",
        ] {
            assert!(
                matches!(
                    rewrite(sql, &[target(0)]),
                    Err(CaptureError::Unsupported(_))
                ),
                "{sql}"
            );
        }
    }
}
