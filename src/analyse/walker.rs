//! The walk over PostgreSQL's raw parse tree (from pg_query): queries, FROM
//! items and expressions. It resolves every name the way PostgreSQL does and
//! records, per base relation, which columns reach the output, which act as
//! filters and which are written.

use super::colname::figure_colname;
use super::model::{OpaqueCall, RelationAccess, RelationName};
use super::scope::{merge, rename, ColRef, Lineage, RangeEntry, Scope, ScopeColumn, OPEN_COLUMNS};
use crate::catalog::{Catalog, Oid, RelKind, Relation};
use pg_query::protobuf::{self as pb, SubLinkType};
use pg_query::NodeEnum;
use std::collections::HashMap;

/// How a column is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Its value leaves the statement (to the client or into a written column).
    Output,
    /// It decides which rows are returned or changed.
    Filter,
}

/// Deepest expression or query nesting the walker follows.
pub const MAX_DEPTH: u32 = 400;

/// Built-in functions that run SQL given as text, or touch data no argument
/// shows: the walker cannot see what they read.
const OPAQUE_BUILTINS: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "set_config",
    "dblink",
    "dblink_exec",
    "lo_get",
    "lo_export",
    "lo_import",
    "pg_read_file",
    "pg_read_binary_file",
    "lo_open",
    "loread",
];

/// Parsed view definitions, by definition text: a view is parsed once, not
/// at every use (keyed by the text itself, so a changed view is a new entry).
static VIEW_TREES: std::sync::OnceLock<
    std::sync::Mutex<HashMap<String, std::sync::Arc<pb::SelectStmt>>>,
> = std::sync::OnceLock::new();

/// The SELECT of a view definition, parsed once.
fn parsed_view(def: &str) -> Result<std::sync::Arc<pb::SelectStmt>, String> {
    let cache = VIEW_TREES.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(def).cloned()) {
        return Ok(hit);
    }
    let parsed = super::parse::parse(def, true).map_err(|e| e.to_string())?;
    let Some(NodeEnum::SelectStmt(sel)) = parsed
        .stmts
        .into_iter()
        .next()
        .and_then(|s| s.stmt)
        .and_then(|n| n.node)
    else {
        return Err("definition is not a SELECT".into());
    };
    let sel = std::sync::Arc::new(*sel);
    if let Ok(mut c) = cache.lock() {
        // Bounded: views come and go with DDL; start over rather than grow.
        if c.len() >= 10_000 {
            c.clear();
        }
        c.insert(def.to_owned(), sel.clone());
    }
    Ok(sel)
}

/// Schemas of PostgreSQL's own catalog and information views.
/// Whether a schema holds PostgreSQL's own catalogs.
pub fn is_system_schema(schema: &str) -> bool {
    schema == "pg_catalog" || schema == "information_schema"
}

/// A visible common table expression.
#[derive(Debug, Clone)]
struct Cte {
    name: String,
    columns: Vec<ScopeColumn>,
    /// Still being defined (recursive reference): any column resolves.
    open: Option<Lineage>,
}

/// State of one statement's walk.
pub struct Walker<'a> {
    catalog: &'a Catalog,
    search_path: Vec<String>,
    temp_relations: Vec<String>,
    /// Relations touched, in first-seen order.
    pub accesses: Vec<RelationAccess>,
    /// Schema, then name, to the index in `accesses`.
    index: HashMap<String, HashMap<String, usize>>,
    /// Opaque calls.
    pub opaque: Vec<OpaqueCall>,
    /// Reasons the analysis is incomplete.
    pub problems: Vec<String>,
    ctes: Vec<Cte>,
    depth: u32,
    views: Vec<Oid>,
    created: Vec<super::model::CreatedRelation>,
}

fn str_of(n: &pb::Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

fn names(list: &[pb::Node]) -> Vec<&str> {
    list.iter().filter_map(str_of).collect()
}

impl<'a> Walker<'a> {
    /// A walker resolving unqualified names through `search_path` (schemas,
    /// already expanded) and the session's temporary relations.
    pub fn new(catalog: &'a Catalog, search_path: &[String], temp_relations: &[String]) -> Self {
        Self {
            catalog,
            search_path: search_path.to_vec(),
            temp_relations: temp_relations.to_vec(),
            accesses: Vec::new(),
            index: HashMap::new(),
            opaque: Vec::new(),
            problems: Vec::new(),
            ctes: Vec::new(),
            depth: 0,
            views: Vec::new(),
            created: Vec::new(),
        }
    }

    /// Relations created by the session that the catalog may not show yet.
    pub fn set_created(&mut self, created: &[super::model::CreatedRelation]) {
        self.created = created.to_vec();
    }

    /// A relation this session created that the catalog does not know.
    fn created_relation(&self, rv: &pb::RangeVar) -> Option<&super::model::CreatedRelation> {
        self.created.iter().rev().find(|c| {
            c.name == rv.relname
                && (rv.schemaname.is_empty()
                    || c.schema.as_deref() == Some(rv.schemaname.as_str())
                    || c.schema.is_none())
        })
    }

    /// Notes why the analysis is incomplete (first reason first).
    pub fn problem(&mut self, why: impl Into<String>) {
        let why = why.into();
        if !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }

    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.problem("statement too deeply nested");
            return false;
        }
        true
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Walks an optional expression that picks rows (WHERE, ON, HAVING, ...)
    /// and marks its columns as filters.
    pub fn filter(&mut self, n: Option<&pb::Node>, scope: &Scope<'_>) {
        if let Some(n) = n {
            let l = self.expr(n, scope);
            self.mark(&l, Usage::Filter);
        }
    }

    /// Marks every column of `lineage` as used in `usage`.
    pub fn mark(&mut self, lineage: &Lineage, usage: Usage) {
        for ColRef { rel, col } in lineage {
            if let Some(a) = self.accesses.get_mut(*rel) {
                let set = match usage {
                    Usage::Output => &mut a.output,
                    Usage::Filter => &mut a.filter,
                };
                if !set.contains(col) {
                    set.insert(col.clone());
                }
            }
        }
    }

    /// The access record for a relation, created on first use.
    pub fn access(&mut self, schema: &str, name: &str, oid: Option<Oid>) -> usize {
        // Looked up by &str, so a relation seen before costs no allocation.
        if let Some(i) = self.index.get(schema).and_then(|m| m.get(name)) {
            return *i;
        }
        self.accesses.push(RelationAccess {
            relation: RelationName {
                schema: schema.to_owned(),
                name: name.to_owned(),
            },
            oid,
            ..Default::default()
        });
        let i = self.accesses.len() - 1;
        self.index
            .entry(schema.to_owned())
            .or_default()
            .insert(name.to_owned(), i);
        i
    }

    /// Resolves a relation name like PostgreSQL: explicit schema, else the
    /// session's temp relations, then pg_catalog (unless placed explicitly),
    /// then the search path.
    pub fn resolve_relation(&self, rv: &pb::RangeVar) -> Resolved<'a> {
        let catalog = self.catalog;
        if !rv.schemaname.is_empty() {
            if rv.schemaname == "pg_temp" || rv.schemaname.starts_with("pg_temp_") {
                return Resolved::Temp;
            }
            return match catalog.relation_in(&rv.schemaname, &rv.relname) {
                Some(r) => Resolved::Relation(r),
                None => Resolved::Missing,
            };
        }
        if self.temp_relations.contains(&rv.relname) {
            return Resolved::Temp;
        }
        let explicit_catalog = self.search_path.iter().any(|s| s == "pg_catalog");
        if !explicit_catalog {
            if let Some(r) = catalog.relation_in("pg_catalog", &rv.relname) {
                return Resolved::Relation(r);
            }
        }
        for schema in &self.search_path {
            if let Some(r) = catalog.relation_in(schema, &rv.relname) {
                return Resolved::Relation(r);
            }
        }
        Resolved::Missing
    }

    /// A range entry for a relation named in FROM (or as a DML target).
    pub fn relation_entry(&mut self, rv: &pb::RangeVar) -> RangeEntry {
        let alias = rv.alias.as_ref();
        let mut entry = match self.resolve_relation(rv) {
            // System views are read as tables (their definitions are not loaded).
            Resolved::Relation(r) if r.kind == RelKind::View && !is_system_schema(&r.schema) => {
                self.view_entry(r)
            }
            Resolved::Relation(r) => {
                let rel = self.access(&r.schema, &r.name, Some(r.oid));
                // Altered in the open transaction (columns added or renamed
                // that the catalog cannot see yet): unknown names resolve here.
                let altered = self
                    .created
                    .iter()
                    .any(|c| c.name == r.name && c.schema.as_deref().is_none_or(|s| s == r.schema));
                RangeEntry {
                    open_rel: altered.then_some(rel),
                    refname: Some(r.name.clone()),
                    schema: Some(r.schema.clone()),
                    columns: r
                        .columns
                        .iter()
                        .map(|c| ScopeColumn {
                            name: c.name.clone(),
                            lineage: vec![ColRef {
                                rel,
                                col: c.name.clone(),
                            }],
                            // An altered table's columns may since have been
                            // renamed: the catalog's names are not trusted.
                            direct: !altered,
                        })
                        .collect(),
                    system_rel: Some(rel),
                    ..Default::default()
                }
            }
            Resolved::Temp => {
                let rel = self.access("pg_temp", &rv.relname, None);
                RangeEntry {
                    refname: Some(rv.relname.clone()),
                    schema: Some("pg_temp".into()),
                    open_rel: Some(rel),
                    ..Default::default()
                }
            }
            Resolved::Missing if self.created_relation(rv).is_some() => {
                let c = self.created_relation(rv).cloned().unwrap_or_else(|| {
                    super::model::CreatedRelation {
                        schema: None,
                        name: rv.relname.clone(),
                        columns: None,
                    }
                });
                let schema = c
                    .schema
                    .clone()
                    .or_else(|| self.search_path.first().cloned())
                    .unwrap_or_default();
                let rel = self.access(&schema, &c.name, None);
                RangeEntry {
                    refname: Some(c.name.clone()),
                    schema: Some(schema),
                    columns: c
                        .columns
                        .iter()
                        .flatten()
                        .map(|col| ScopeColumn {
                            name: col.clone(),
                            lineage: vec![ColRef {
                                rel,
                                col: col.clone(),
                            }],
                            direct: true,
                        })
                        .collect(),
                    open_rel: c.columns.is_none().then_some(rel),
                    ..Default::default()
                }
            }
            Resolved::Missing => {
                let shown = if rv.schemaname.is_empty() {
                    rv.relname.clone()
                } else {
                    format!("{}.{}", rv.schemaname, rv.relname)
                };
                self.problem(format!("relation \"{shown}\" does not exist"));
                let rel = self.access(&rv.schemaname, &rv.relname, None);
                RangeEntry {
                    refname: Some(rv.relname.clone()),
                    open_rel: Some(rel),
                    ..Default::default()
                }
            }
        };
        if entry.refname.is_none() {
            entry.refname = Some(rv.relname.clone());
        }
        if let Some(a) = alias {
            apply_alias(&mut entry, a);
        }
        entry
    }

    /// A view is read through: its definition is walked as a subquery, so
    /// the columns it exposes trace back to base columns.
    fn view_entry(&mut self, view: &'a Relation) -> RangeEntry {
        let base = RangeEntry {
            refname: Some(view.name.clone()),
            schema: Some(view.schema.clone()),
            ..Default::default()
        };
        if self.views.contains(&view.oid) {
            self.problem(format!("view {} refers to itself", view.qualified_name()));
            return base;
        }
        let Some(def) = view.view_definition.as_deref() else {
            self.problem(format!(
                "definition of view {} unknown",
                view.qualified_name()
            ));
            return base;
        };
        let sel = match parsed_view(def) {
            Ok(sel) => sel,
            Err(e) => {
                self.problem(format!("view {}: {e}", view.qualified_name()));
                return base;
            }
        };
        // A view body resolves names as it was stored (fully qualified by
        // the catalog loader), and does not see the caller's CTEs.
        let saved_path = std::mem::replace(&mut self.search_path, vec!["pg_catalog".into()]);
        let saved_ctes = std::mem::take(&mut self.ctes);
        self.views.push(view.oid);
        let outputs = self.select(&sel, None);
        self.views.pop();
        self.ctes = saved_ctes;
        self.search_path = saved_path;
        let mut columns = outputs;
        // The view's own column names win over the body's output names.
        let names: Vec<&str> = view.columns.iter().map(|c| c.name.as_str()).collect();
        rename(&mut columns, &names);
        RangeEntry { columns, ..base }
    }

    /// Walks a SELECT (or VALUES, or a set operation) and returns its output
    /// columns with their lineage; nothing is marked as output here, the
    /// caller decides how the outputs are used.
    pub fn select(&mut self, s: &pb::SelectStmt, parent: Option<&Scope<'_>>) -> Vec<ScopeColumn> {
        if !self.enter() {
            return Vec::new();
        }
        let pushed = self.with_clause(s.with_clause.as_ref(), parent);
        let out = self.select_body(s, parent);
        self.ctes.truncate(self.ctes.len() - pushed);
        self.leave();
        out
    }

    fn select_body(&mut self, s: &pb::SelectStmt, parent: Option<&Scope<'_>>) -> Vec<ScopeColumn> {
        let op = pb::SetOperation::try_from(s.op).unwrap_or(pb::SetOperation::SetopNone);
        if !matches!(
            op,
            pb::SetOperation::SetopNone | pb::SetOperation::Undefined
        ) {
            let left = s
                .larg
                .as_deref()
                .map(|l| self.select(l, parent))
                .unwrap_or_default();
            let right = s
                .rarg
                .as_deref()
                .map(|r| self.select(r, parent))
                .unwrap_or_default();
            let mut out = left;
            if op == pb::SetOperation::SetopUnion {
                // Each row comes from one branch: direct only if every
                // branch's column is.
                for (o, r) in out.iter_mut().zip(right) {
                    merge(&mut o.lineage, r.lineage);
                    o.direct &= r.direct;
                }
            } else {
                // EXCEPT and INTERSECT return left rows; the right side only
                // decides which. INTERSECT may emit the right side's copy of
                // an equal row (non-deterministic collations): both must be
                // direct.
                if op == pb::SetOperation::SetopIntersect {
                    for (o, r) in out.iter_mut().zip(&right) {
                        o.direct &= r.direct;
                    }
                }
                for r in right {
                    self.mark(&r.lineage, Usage::Filter);
                }
            }
            // ORDER BY / LIMIT of a set operation refer to its output names.
            let scope = Scope {
                entries: vec![RangeEntry {
                    columns: out.clone(),
                    ..Default::default()
                }],
                parent,
            };
            self.sort_and_limit(s, &scope, &out);
            return out;
        }
        if !s.values_lists.is_empty() {
            let scope = Scope::child(parent);
            let mut out: Vec<ScopeColumn> = Vec::new();
            for row in &s.values_lists {
                let items: &[pb::Node] = match row.node.as_ref() {
                    Some(NodeEnum::List(l)) => &l.items,
                    _ => std::slice::from_ref(row),
                };
                for (i, item) in items.iter().enumerate() {
                    let l = self.expr(item, &scope);
                    if out.len() <= i {
                        out.push(ScopeColumn::derived(format!("column{}", i + 1), Vec::new()));
                    }
                    merge(&mut out[i].lineage, l);
                }
            }
            self.sort_and_limit(s, &scope, &out);
            return out;
        }

        let mut scope = Scope::child(parent);
        for item in &s.from_clause {
            self.range_item(item, &mut scope);
        }
        // SELECT INTO writes a new table: handled by the statement level.
        let mut out = Vec::new();
        for t in &s.target_list {
            let Some(NodeEnum::ResTarget(rt)) = t.node.as_ref() else {
                continue;
            };
            self.target(rt, &scope, &mut out);
        }
        if let Some(w) = &s.where_clause {
            let l = self.expr(w, &scope);
            self.mark(&l, Usage::Filter);
        }
        for g in &s.group_clause {
            let l = self.group_expr(g, &scope, &out);
            self.mark(&l, Usage::Filter);
        }
        if let Some(h) = &s.having_clause {
            let l = self.expr(h, &scope);
            self.mark(&l, Usage::Filter);
        }
        for w in &s.window_clause {
            if let Some(NodeEnum::WindowDef(wd)) = w.node.as_ref() {
                self.window(wd, &scope);
            }
        }
        for d in &s.distinct_clause {
            let l = self.group_expr(d, &scope, &out);
            self.mark(&l, Usage::Filter);
        }
        self.sort_and_limit(s, &scope, &out);
        out
    }

    /// ORDER BY, LIMIT, OFFSET: they decide which rows come back.
    fn sort_and_limit(&mut self, s: &pb::SelectStmt, scope: &Scope<'_>, out: &[ScopeColumn]) {
        for sb in &s.sort_clause {
            if let Some(NodeEnum::SortBy(sb)) = sb.node.as_ref() {
                if let Some(n) = &sb.node {
                    // In ORDER BY an output column name wins over an input column.
                    let l = match n.node.as_ref() {
                        Some(NodeEnum::ColumnRef(cr)) if cr.fields.len() == 1 => {
                            let name = str_of(&cr.fields[0]).unwrap_or_default();
                            match out.iter().find(|o| o.name == name) {
                                Some(o) => o.lineage.clone(),
                                None => self.group_expr(n, scope, out),
                            }
                        }
                        _ => self.group_expr(n, scope, out),
                    };
                    self.mark(&l, Usage::Filter);
                }
            }
        }
        for n in [&s.limit_count, &s.limit_offset].into_iter().flatten() {
            let l = self.expr(n, scope);
            self.mark(&l, Usage::Filter);
        }
    }

    /// A GROUP BY / ORDER BY / DISTINCT ON item: an output column name or
    /// position, or an expression over the FROM items.
    fn group_expr(&mut self, n: &pb::Node, scope: &Scope<'_>, out: &[ScopeColumn]) -> Lineage {
        match n.node.as_ref() {
            Some(NodeEnum::AConst(c)) => {
                if let Some(pb::a_const::Val::Ival(i)) = &c.val {
                    let pos = i.ival as usize;
                    if pos >= 1 && pos <= out.len() {
                        return out[pos - 1].lineage.clone();
                    }
                }
                Vec::new()
            }
            Some(NodeEnum::ColumnRef(cr)) if cr.fields.len() == 1 => {
                let name = str_of(&cr.fields[0]).unwrap_or_default();
                // Input columns win over output names in GROUP BY; either way
                // the conservative answer is both when both exist.
                let mut l = scope.unqualified(name).unwrap_or_default();
                if let Some(o) = out.iter().find(|o| o.name == name) {
                    merge(&mut l, o.lineage.clone());
                }
                if l.is_empty()
                    && scope.unqualified(name).is_none()
                    && !out.iter().any(|o| o.name == name)
                {
                    return self.expr(n, scope);
                }
                l
            }
            Some(NodeEnum::GroupingSet(gs)) => {
                let mut l = Vec::new();
                for c in &gs.content {
                    merge(&mut l, self.group_expr(c, scope, out));
                }
                l
            }
            Some(NodeEnum::List(list)) => {
                let mut l = Vec::new();
                for c in &list.items {
                    merge(&mut l, self.group_expr(c, scope, out));
                }
                l
            }
            _ => self.expr(n, scope),
        }
    }

    fn window(&mut self, wd: &pb::WindowDef, scope: &Scope<'_>) {
        for n in wd.partition_clause.iter() {
            let l = self.expr(n, scope);
            self.mark(&l, Usage::Filter);
        }
        for sb in &wd.order_clause {
            if let Some(NodeEnum::SortBy(sb)) = sb.node.as_ref() {
                if let Some(n) = &sb.node {
                    let l = self.expr(n, scope);
                    self.mark(&l, Usage::Filter);
                }
            }
        }
        for n in [&wd.start_offset, &wd.end_offset].into_iter().flatten() {
            let l = self.expr(n, scope);
            self.mark(&l, Usage::Filter);
        }
    }

    /// One select-list (or RETURNING) item, `*` and `t.*` expanded.
    pub fn target(&mut self, rt: &pb::ResTarget, scope: &Scope<'_>, out: &mut Vec<ScopeColumn>) {
        let Some(val) = rt.val.as_deref() else {
            return;
        };
        if let Some(NodeEnum::ColumnRef(cr)) = val.node.as_ref() {
            if matches!(
                cr.fields.last().and_then(|f| f.node.as_ref()),
                Some(NodeEnum::AStar(_))
            ) {
                let quals = names(&cr.fields);
                let entries: Vec<&RangeEntry> = match quals.as_slice() {
                    [] => scope.visible().collect(),
                    [t] => scope.entry(None, t).into_iter().collect(),
                    [s, t] | [_, s, t] => scope.entry(Some(s), t).into_iter().collect(),
                    _ => Vec::new(),
                };
                if entries.is_empty() {
                    self.problem(format!("cannot expand {}.*", quals.join(".")));
                }
                // Columns not known become a placeholder: a query over this
                // output must accept any name (see `entry_from_outputs`).
                for e in entries {
                    out.extend(e.star());
                }
                return;
            }
        }
        let (lineage, direct) = self.value(val, scope);
        let name = if rt.name.is_empty() {
            figure_colname(val)
        } else {
            rt.name.clone()
        };
        out.push(ScopeColumn {
            name,
            lineage,
            direct,
        });
    }

    /// Processes a WITH clause, making its CTEs visible; returns how many
    /// were pushed (to pop after the query).
    pub fn with_clause(&mut self, w: Option<&pb::WithClause>, parent: Option<&Scope<'_>>) -> usize {
        let Some(w) = w else { return 0 };
        let start = self.ctes.len();
        let ctes: Vec<&pb::CommonTableExpr> = w
            .ctes
            .iter()
            .filter_map(|c| match c.node.as_ref() {
                Some(NodeEnum::CommonTableExpr(c)) => Some(c.as_ref()),
                _ => None,
            })
            .collect();
        if w.recursive {
            for c in &ctes {
                self.ctes.push(Cte {
                    name: c.ctename.clone(),
                    columns: Vec::new(),
                    open: Some(Vec::new()),
                });
            }
            // Lineage flows around the recursion one step per pass.
            for _ in 0..4 {
                let mut changed = false;
                for (i, c) in ctes.iter().enumerate() {
                    let cols = self.cte_query(c, parent);
                    let slot = &mut self.ctes[start + i];
                    let before: usize = slot.columns.iter().map(|c| c.lineage.len()).sum();
                    let direct_before = slot.columns.iter().filter(|c| c.direct).count();
                    let mut merged = cols;
                    // A column is direct only if it is in every pass (the
                    // first pass sees the recursive reference as unknown).
                    for (m, old) in merged.iter_mut().zip(&slot.columns) {
                        merge(&mut m.lineage, old.lineage.clone());
                        m.direct &= old.direct;
                    }
                    let after: usize = merged.iter().map(|c| c.lineage.len()).sum();
                    let direct_after = merged.iter().filter(|c| c.direct).count();
                    changed |=
                        after != before || direct_after != direct_before || slot.open.is_some();
                    slot.columns = merged;
                    slot.open = None;
                }
                if !changed {
                    break;
                }
            }
        } else {
            for c in ctes {
                let columns = self.cte_query(c, parent);
                self.ctes.push(Cte {
                    name: c.ctename.clone(),
                    columns,
                    open: None,
                });
            }
        }
        self.ctes.len() - start
    }

    fn cte_query(
        &mut self,
        c: &pb::CommonTableExpr,
        parent: Option<&Scope<'_>>,
    ) -> Vec<ScopeColumn> {
        let Some(q) = c.ctequery.as_deref() else {
            return Vec::new();
        };
        let mut cols = match q.node.as_ref() {
            Some(NodeEnum::SelectStmt(s)) => self.select(s, parent),
            Some(other) => super::statement::dml_returning(self, other, parent),
            None => Vec::new(),
        };
        rename(&mut cols, &names(&c.aliascolnames));
        cols
    }

    /// Pops the CTEs a WITH clause pushed.
    pub fn pop_ctes(&mut self, n: usize) {
        self.ctes.truncate(self.ctes.len() - n);
    }

    fn cte(&self, name: &str) -> Option<RangeEntry> {
        let c = self.ctes.iter().rev().find(|c| c.name == name)?;
        let mut e = entry_from_outputs(c.columns.clone());
        e.refname = Some(c.name.clone());
        if let Some(l) = &c.open {
            e.open = true;
            merge(&mut e.open_lineage, l.clone());
        }
        Some(e)
    }

    /// Adds the entries of one FROM item to `scope`.
    pub fn range_item(&mut self, item: &pb::Node, scope: &mut Scope<'_>) {
        if !self.enter() {
            return;
        }
        match item.node.as_ref() {
            Some(NodeEnum::RangeVar(rv)) => {
                let entry = match (rv.schemaname.is_empty(), self.cte(&rv.relname)) {
                    (true, Some(mut e)) => {
                        if let Some(a) = &rv.alias {
                            apply_alias(&mut e, a);
                        }
                        e
                    }
                    _ => self.relation_entry(rv),
                };
                scope.entries.push(entry);
            }
            Some(NodeEnum::RangeSubselect(rs)) => {
                let cols = match rs.subquery.as_deref().and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::SelectStmt(s)) => {
                        if rs.lateral {
                            let lateral = Scope {
                                entries: scope.entries.clone(),
                                parent: scope.parent,
                            };
                            self.select(s, Some(&lateral))
                        } else {
                            self.select(s, scope.parent)
                        }
                    }
                    _ => {
                        self.problem("unsupported subquery in FROM");
                        Vec::new()
                    }
                };
                let mut e = entry_from_outputs(cols);
                if let Some(a) = &rs.alias {
                    apply_alias(&mut e, a);
                }
                scope.entries.push(e);
            }
            Some(NodeEnum::JoinExpr(j)) => self.join(j, scope),
            Some(NodeEnum::RangeFunction(rf)) => {
                // Functions in FROM see the items before them (implicit LATERAL).
                let lateral = Scope {
                    entries: scope.entries.clone(),
                    parent: scope.parent,
                };
                let mut lineage = Vec::new();
                for f in &rf.functions {
                    let first = match f.node.as_ref() {
                        Some(NodeEnum::List(l)) => l.items.first(),
                        _ => Some(f),
                    };
                    if let Some(call) = first {
                        merge(&mut lineage, self.expr(call, &lateral));
                    }
                }
                // Its columns are not known: `*` gives one placeholder.
                let mut e = RangeEntry {
                    open: true,
                    open_lineage: lineage.clone(),
                    star_columns: Some(vec![ScopeColumn::derived(OPEN_COLUMNS, lineage.clone())]),
                    ..Default::default()
                };
                // A named function result exposes its alias as a column too.
                if let Some(a) = &rf.alias {
                    apply_alias(&mut e, a);
                    e.columns
                        .push(ScopeColumn::derived(a.aliasname.clone(), lineage));
                } else if let Some(name) = rf.functions.first().and_then(function_name) {
                    e.refname = Some(name.clone());
                    e.columns.push(ScopeColumn::derived(name, lineage));
                }
                scope.entries.push(e);
            }
            Some(NodeEnum::RangeTableSample(ts)) => {
                if let Some(rel) = ts.relation.as_deref() {
                    self.range_item(rel, scope);
                }
                for a in ts.args.iter().chain(ts.repeatable.as_deref()) {
                    let l = self.expr(a, scope);
                    self.mark(&l, Usage::Filter);
                }
            }
            Some(NodeEnum::RangeTableFunc(tf)) => {
                let lateral = Scope {
                    entries: scope.entries.clone(),
                    parent: scope.parent,
                };
                let mut lineage = Vec::new();
                for n in [&tf.docexpr, &tf.rowexpr].into_iter().flatten() {
                    merge(&mut lineage, self.expr(n, &lateral));
                }
                let mut e = RangeEntry {
                    refname: Some("xmltable".into()),
                    open: true,
                    open_lineage: lineage,
                    ..Default::default()
                };
                if let Some(a) = &tf.alias {
                    apply_alias(&mut e, a);
                }
                scope.entries.push(e);
            }
            Some(NodeEnum::JsonTable(jt)) => {
                let lateral = Scope {
                    entries: scope.entries.clone(),
                    parent: scope.parent,
                };
                let mut lineage = Vec::new();
                if let Some(ci) = jt
                    .context_item
                    .as_deref()
                    .and_then(|c| c.raw_expr.as_deref())
                {
                    merge(&mut lineage, self.expr(ci, &lateral));
                }
                let mut e = RangeEntry {
                    refname: Some("json_table".into()),
                    open: true,
                    open_lineage: lineage,
                    ..Default::default()
                };
                if let Some(a) = &jt.alias {
                    apply_alias(&mut e, a);
                }
                scope.entries.push(e);
            }
            _ => self.problem("unsupported FROM item"),
        }
        self.leave();
    }

    fn join(&mut self, j: &pb::JoinExpr, scope: &mut Scope<'_>) {
        let before = scope.entries.len();
        if let Some(l) = j.larg.as_deref() {
            self.range_item(l, scope);
        }
        let mid = scope.entries.len();
        if let Some(r) = j.rarg.as_deref() {
            self.range_item(r, scope);
        }
        let mut using: Vec<String> = names(&j.using_clause)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if using.is_empty() && !j.is_natural && j.alias.is_none() {
            // `JOIN ... ON` or CROSS JOIN: nothing merged, no alias, so the
            // inputs' columns are the join's, in order (the common case; it
            // needs none of the work below).
            self.filter(j.quals.as_deref(), scope);
            return;
        }
        // Borrowed, not cloned: the entries are only read until the join's
        // own entry is built.
        let entries = &scope.entries;
        let (left, right) = (&entries[before..mid], &entries[mid..]);
        let (left_vis, right_vis) = (visible(left), visible(right));
        if j.is_natural {
            // Common names, in the left side's column order.
            for e in &left_vis {
                for c in e.columns.iter().filter(|c| !c.is_placeholder()) {
                    if right_vis.iter().any(|r| r.has_column(&c.name)) && !using.contains(&c.name) {
                        using.push(c.name.clone());
                    }
                }
            }
        }
        let jointype = pb::JoinType::try_from(j.jointype).unwrap_or(pb::JoinType::Undefined);
        let mut merged_cols = Vec::new();
        for name in &using {
            let mut l = Vec::new();
            for e in left.iter().chain(right) {
                if let Some(c) = e.column(name) {
                    merge(&mut l, c);
                }
            }
            self.mark(&l, Usage::Filter);
            let (ld, rd) = (side_direct(&left_vis, name), side_direct(&right_vis, name));
            // PostgreSQL's merged column: LEFT takes the left value, RIGHT
            // the right one, FULL is COALESCE(l, r); INNER takes the left
            // one unless it needs a type coercion, which is not visible
            // here: both sides must then be direct.
            let direct = match jointype {
                pb::JoinType::JoinInner => ld && rd,
                pb::JoinType::JoinLeft => ld,
                pb::JoinType::JoinRight => rd,
                _ => false,
            };
            merged_cols.push(ScopeColumn {
                name: name.clone(),
                lineage: l,
                direct,
            });
        }
        self.filter(j.quals.as_deref(), scope);
        if merged_cols.is_empty() && j.alias.is_none() {
            // The inputs' columns are the join's, in order.
            return;
        }
        // A NATURAL join over unknown columns may merge columns not seen here.
        let unknown = |side: &[&RangeEntry]| {
            side.iter().any(|e| {
                e.open || e.open_rel.is_some() || e.columns.iter().any(|c| c.is_placeholder())
            })
        };
        let uncertain = j.is_natural && (unknown(&left_vis) || unknown(&right_vis));
        let sides: Vec<&RangeEntry> = left_vis.into_iter().chain(right_vis).collect();
        let colnames = j
            .alias
            .as_ref()
            .map(|a| names(&a.colnames))
            .unwrap_or_default();
        let mut entry = join_entry(&merged_cols, &sides, &using, &colnames, uncertain);
        entry.refname = j.alias.as_ref().map(|a| a.aliasname.clone());
        // The inputs stay reachable qualified; unqualified names and `*`
        // see the join's own columns.
        for e in &mut scope.entries[before..] {
            e.cols_hidden = true;
        }
        if let Some(a) = &j.join_using_alias {
            scope.entries.push(RangeEntry {
                refname: Some(a.aliasname.clone()),
                columns: merged_cols,
                cols_hidden: true,
                ..Default::default()
            });
        }
        scope.entries.push(entry);
    }

    /// The lineage of an expression's value; filters inside it (subquery
    /// WHERE clauses, aggregate FILTER, window clauses) are marked on the way.
    pub fn expr(&mut self, n: &pb::Node, scope: &Scope<'_>) -> Lineage {
        let Some(node) = n.node.as_ref() else {
            return Vec::new();
        };
        if !self.enter() {
            return Vec::new();
        }
        let out = self.expr_inner(node, scope);
        self.leave();
        out
    }

    fn exprs(&mut self, list: &[pb::Node], scope: &Scope<'_>) -> Lineage {
        let mut out = Vec::new();
        for n in list {
            merge(&mut out, self.expr(n, scope));
        }
        out
    }

    fn opt(&mut self, n: &Option<Box<pb::Node>>, scope: &Scope<'_>) -> Lineage {
        n.as_deref()
            .map(|n| self.expr(n, scope))
            .unwrap_or_default()
    }

    fn expr_inner(&mut self, node: &NodeEnum, scope: &Scope<'_>) -> Lineage {
        match node {
            NodeEnum::ColumnRef(cr) => self.column_ref(cr, scope),
            NodeEnum::AConst(_) | NodeEnum::ParamRef(_) | NodeEnum::SqlvalueFunction(_) => {
                Vec::new()
            }
            NodeEnum::SetToDefault(_) | NodeEnum::CurrentOfExpr(_) => Vec::new(),
            NodeEnum::TypeCast(t) => self.opt(&t.arg, scope),
            NodeEnum::CollateClause(c) => self.opt(&c.arg, scope),
            NodeEnum::AExpr(a) => {
                let mut l = self.opt(&a.lexpr, scope);
                merge(&mut l, self.opt(&a.rexpr, scope));
                l
            }
            NodeEnum::BoolExpr(b) => self.exprs(&b.args, scope),
            NodeEnum::NullTest(t) => self.opt(&t.arg, scope),
            NodeEnum::BooleanTest(t) => self.opt(&t.arg, scope),
            NodeEnum::List(l) => self.exprs(&l.items, scope),
            NodeEnum::RowExpr(r) => self.exprs(&r.args, scope),
            NodeEnum::AArrayExpr(a) => self.exprs(&a.elements, scope),
            NodeEnum::CoalesceExpr(c) => self.exprs(&c.args, scope),
            NodeEnum::MinMaxExpr(m) => self.exprs(&m.args, scope),
            NodeEnum::GroupingFunc(g) => self.exprs(&g.args, scope),
            NodeEnum::NamedArgExpr(a) => self.opt(&a.arg, scope),
            NodeEnum::XmlExpr(x) => {
                let mut l = self.exprs(&x.args, scope);
                merge(&mut l, self.exprs(&x.named_args, scope));
                l
            }
            NodeEnum::XmlSerialize(x) => self.opt(&x.expr, scope),
            NodeEnum::JsonObjectConstructor(j) => self.exprs(&j.exprs, scope),
            NodeEnum::JsonArrayConstructor(j) => self.exprs(&j.exprs, scope),
            NodeEnum::JsonKeyValue(kv) => {
                let mut l = self.opt(&kv.key, scope);
                if let Some(v) = kv.value.as_deref() {
                    merge(&mut l, self.opt(&v.raw_expr, scope));
                }
                l
            }
            NodeEnum::JsonValueExpr(v) => self.opt(&v.raw_expr, scope),
            NodeEnum::ResTarget(r) => self.opt(&r.val, scope),
            NodeEnum::CaseExpr(c) => {
                let mut l = self.opt(&c.arg, scope);
                for w in &c.args {
                    if let Some(NodeEnum::CaseWhen(w)) = w.node.as_ref() {
                        merge(&mut l, self.opt(&w.expr, scope));
                        merge(&mut l, self.opt(&w.result, scope));
                    }
                }
                merge(&mut l, self.opt(&c.defresult, scope));
                l
            }
            NodeEnum::AIndirection(ind) => {
                // `(e).ssn` and `(e.*).ssn` read one column, not the row.
                if let (Some(entry), Some(field)) = (
                    ind.arg.as_deref().and_then(|a| row_reference(a, scope)),
                    ind.indirection.first().and_then(str_of),
                ) {
                    if let Some(l) = entry.column(field) {
                        return l;
                    }
                }
                let mut l = self.opt(&ind.arg, scope);
                for i in &ind.indirection {
                    if let Some(NodeEnum::AIndices(ix)) = i.node.as_ref() {
                        let mut f = self.opt(&ix.lidx, scope);
                        merge(&mut f, self.opt(&ix.uidx, scope));
                        merge(&mut l, f);
                    }
                }
                l
            }
            NodeEnum::FuncCall(f) => self.func_call(f, scope),
            NodeEnum::SubLink(s) => self.sublink(s, scope),
            NodeEnum::MultiAssignRef(m) => self.opt(&m.source, scope),
            NodeEnum::SelectStmt(s) => {
                let cols = self.select(s, Some(scope));
                let mut l = Vec::new();
                for c in cols {
                    merge(&mut l, c.lineage);
                }
                l
            }
            other => self.generic_expr(other, scope),
        }
    }

    /// Expression nodes without a dedicated case (JSON and XML constructors,
    /// ...): every column inside counts as a value; a subquery inside
    /// cannot be placed in a scope, so the analysis is marked incomplete.
    fn generic_expr(&mut self, node: &NodeEnum, scope: &Scope<'_>) -> Lineage {
        let mut l = Vec::new();
        for (child, _, _, _) in node.nodes() {
            match child {
                pg_query::NodeRef::ColumnRef(cr) => merge(&mut l, self.column_ref(cr, scope)),
                pg_query::NodeRef::SelectStmt(_) => {
                    self.problem("subquery inside an unsupported expression");
                }
                pg_query::NodeRef::FuncCall(f) => {
                    let _ = self.function_kind(f);
                }
                _ => {}
            }
        }
        l
    }

    fn sublink(&mut self, s: &pb::SubLink, scope: &Scope<'_>) -> Lineage {
        let cols = match s.subselect.as_deref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::SelectStmt(sel)) => self.select(sel, Some(scope)),
            _ => Vec::new(),
        };
        let mut inner = Vec::new();
        for c in cols {
            merge(&mut inner, c.lineage);
        }
        match SubLinkType::try_from(s.sub_link_type).unwrap_or(SubLinkType::Undefined) {
            // EXISTS only tells whether rows exist: its select list is a filter.
            SubLinkType::ExistsSublink => {
                self.mark(&inner, Usage::Filter);
                Vec::new()
            }
            // `x IN (SELECT y ...)`: y only decides the answer about x.
            SubLinkType::AnySublink | SubLinkType::AllSublink | SubLinkType::RowcompareSublink => {
                self.mark(&inner, Usage::Filter);
                self.opt(&s.testexpr, scope)
            }
            _ => inner,
        }
    }

    fn column_ref(&mut self, cr: &pb::ColumnRef, scope: &Scope<'_>) -> Lineage {
        self.column_value(cr, scope).0
    }

    /// An output value's lineage, and whether it is direct: only a bare
    /// column reference can be (`x`, `t.x`, `s.t.x`; parentheses leave no
    /// trace in the tree); anything computed is not.
    pub fn value(&mut self, n: &pb::Node, scope: &Scope<'_>) -> (Lineage, bool) {
        match n.node.as_ref() {
            Some(NodeEnum::ColumnRef(cr)) => {
                if !self.enter() {
                    return (Vec::new(), false);
                }
                let out = self.column_value(cr, scope);
                self.leave();
                out
            }
            _ => (self.expr(n, scope), false),
        }
    }

    /// Resolves a column reference like PostgreSQL; direct only when it
    /// names one column of a FROM item (not a whole row, not a field of a
    /// composite column).
    fn column_value(&mut self, cr: &pb::ColumnRef, scope: &Scope<'_>) -> (Lineage, bool) {
        let star = matches!(
            cr.fields.last().and_then(|f| f.node.as_ref()),
            Some(NodeEnum::AStar(_))
        );
        let parts = names(&cr.fields);
        let derived = |l: Lineage| (l, false);
        if star {
            return derived(match parts.as_slice() {
                [] => {
                    let mut l = Vec::new();
                    for e in &scope.entries {
                        merge(&mut l, e.whole_row());
                    }
                    l
                }
                [t] => self.entry_row(scope, None, t),
                [s, t] | [_, s, t] => self.entry_row(scope, Some(s), t),
                _ => self.unresolved(&parts),
            });
        }
        match parts.as_slice() {
            [c] => {
                if let Some(found) = scope.lookup(c) {
                    return found;
                }
                // Not a column: a whole-row reference to a FROM item (`SELECT e FROM emp e`).
                if let Some(e) = scope.entry(None, c) {
                    return derived(e.whole_row());
                }
                derived(self.unresolved(&parts))
            }
            [t, c] => {
                if let Some(found) = scope.entry(None, t).and_then(|e| e.lookup(c)) {
                    return found;
                }
                // `composite_column.field`.
                if let Some(l) = scope.unqualified(t) {
                    return derived(l);
                }
                derived(self.unresolved(&parts))
            }
            [s, t, c] | [_, s, t, c] => {
                if let Some(found) = scope.entry(Some(s), t).and_then(|e| e.lookup(c)) {
                    return found;
                }
                // `table.composite_column.field`.
                if let Some(l) = scope.entry(None, s).and_then(|e| e.column(t)) {
                    return derived(l);
                }
                derived(self.unresolved(&parts))
            }
            _ => derived(self.unresolved(&parts)),
        }
    }

    fn entry_row(&mut self, scope: &Scope<'_>, schema: Option<&str>, t: &str) -> Lineage {
        match scope.entry(schema, t) {
            Some(e) => e.whole_row(),
            None => self.unresolved(&[t, "*"]),
        }
    }

    fn unresolved(&mut self, parts: &[&str]) -> Lineage {
        self.problem(format!("column \"{}\" does not exist", parts.join(".")));
        Vec::new()
    }

    fn func_call(&mut self, f: &pb::FuncCall, scope: &Scope<'_>) -> Lineage {
        let mut args = self.exprs(&f.args, scope);
        // Aggregate ORDER BY and FILTER, and window clauses, pick rows; but
        // in an ordered-set aggregate (WITHIN GROUP) the ordered values are
        // what the result is made of.
        for sb in &f.agg_order {
            if let Some(NodeEnum::SortBy(sb)) = sb.node.as_ref() {
                let l = self.opt(&sb.node, scope);
                if f.agg_within_group {
                    merge(&mut args, l);
                } else {
                    self.mark(&l, Usage::Filter);
                }
            }
        }
        let filter = self.opt(&f.agg_filter, scope);
        self.mark(&filter, Usage::Filter);
        if let Some(w) = f.over.as_deref() {
            self.window(w, scope);
        }
        if self.function_kind(f) == FunctionKind::Opaque {
            let columns = args
                .iter()
                .filter_map(|c| {
                    self.accesses
                        .get(c.rel)
                        .map(|a| format!("{}.{}", a.relation, c.col))
                })
                .collect();
            let function = names(&f.funcname).join(".");
            let call = OpaqueCall { function, columns };
            if !self.opaque.contains(&call) {
                self.opaque.push(call);
            }
        }
        args
    }

    /// Whether a function is a built-in whose result derives only from its
    /// arguments, or code the walker cannot see into.
    fn function_kind(&mut self, f: &pb::FuncCall) -> FunctionKind {
        let parts = names(&f.funcname);
        let (schema, name) = match parts.as_slice() {
            [n] => (None, *n),
            [s, n] => (Some(*s), *n),
            [_, s, n] => (Some(*s), *n),
            _ => return FunctionKind::Opaque,
        };
        let catalog = self.catalog;
        let in_catalog = |s: &str| !catalog.functions_in(s, name).is_empty();
        let found = match schema {
            Some(s) => in_catalog(s).then_some(s.to_owned()),
            None => std::iter::once("pg_catalog")
                .chain(self.search_path.iter().map(String::as_str))
                .find(|s| in_catalog(s))
                .map(str::to_owned),
        };
        match found.as_deref() {
            Some("pg_catalog") if !OPAQUE_BUILTINS.contains(&name) => FunctionKind::Builtin,
            // Without a loaded function list, well-known built-ins still count as such.
            None if catalog.functions.is_empty()
                && schema.is_none()
                && !OPAQUE_BUILTINS.contains(&name) =>
            {
                FunctionKind::Builtin
            }
            _ => FunctionKind::Opaque,
        }
    }
}

/// How the walker treats a function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FunctionKind {
    Builtin,
    Opaque,
}

/// The FROM item a whole-row reference (`e` or `e.*`) designates, when
/// `e` is not also a column name.
fn row_reference<'s>(n: &pb::Node, scope: &'s Scope<'_>) -> Option<&'s RangeEntry> {
    let NodeEnum::ColumnRef(cr) = n.node.as_ref()? else {
        return None;
    };
    let parts = names(&cr.fields);
    let star = matches!(
        cr.fields.last().and_then(|f| f.node.as_ref()),
        Some(NodeEnum::AStar(_))
    );
    match (parts.as_slice(), star) {
        ([t], false) if scope.unqualified(t).is_none() => scope.entry(None, t),
        ([t], true) => scope.entry(None, t),
        ([s, t], true) => scope.entry(Some(s), t),
        _ => None,
    }
}

/// A range entry over a query's outputs; an unknown-columns placeholder
/// makes the entry accept any column name, with that placeholder's lineage.
fn entry_from_outputs(cols: Vec<ScopeColumn>) -> RangeEntry {
    let mut e = RangeEntry::default();
    for c in cols {
        if c.is_placeholder() {
            e.open = true;
            merge(&mut e.open_lineage, c.lineage.clone());
        }
        // Placeholders stay in place: `*` over this entry keeps positions.
        e.columns.push(c);
    }
    e
}

/// The entries of a join side that unqualified names and `*` see.
fn visible(side: &[RangeEntry]) -> Vec<&RangeEntry> {
    side.iter().filter(|e| !e.cols_hidden).collect()
}

/// Whether the one column `name` of a join side is direct (false when the
/// name is missing, repeated or found only through unknown columns).
fn side_direct(side: &[&RangeEntry], name: &str) -> bool {
    let mut hits = side.iter().filter(|e| e.has_column(name));
    match (hits.next(), hits.next()) {
        (Some(e), None) => e.lookup(name).is_some_and(|(_, d)| d),
        _ => false,
    }
}

/// The entry of a join with USING / NATURAL or an alias: PostgreSQL's
/// column order (merged columns, then each input's others), renamed by the
/// alias' column list.
fn join_entry(
    merged: &[ScopeColumn],
    sides: &[&RangeEntry],
    using: &[String],
    colnames: &[&str],
    uncertain: bool,
) -> RangeEntry {
    let kept = |c: &ScopeColumn| c.is_placeholder() || !using.contains(&c.name);
    let mut star = merged.to_vec();
    let mut extra = Vec::new();
    for e in sides {
        let side_star = e.star();
        // Names that resolve but are not in `*` (a function's alias).
        extra.extend(
            e.columns
                .iter()
                .filter(|c| kept(c) && !c.is_placeholder())
                .filter(|c| !side_star.iter().any(|s| s.name == c.name))
                .cloned(),
        );
        star.extend(side_star.into_iter().filter(|c| kept(c)));
    }
    rename(&mut star, colnames);
    if uncertain {
        for c in star.iter_mut().chain(extra.iter_mut()) {
            c.direct = false;
        }
    }
    let mut columns: Vec<ScopeColumn> = star
        .iter()
        .filter(|c| !c.is_placeholder())
        .cloned()
        .collect();
    columns.extend(extra);
    RangeEntry {
        columns,
        star_columns: Some(star),
        ..Default::default()
    }
}

/// What a relation name resolved to.
pub enum Resolved<'a> {
    /// A catalog relation.
    Relation(&'a Relation),
    /// A temporary relation of this session (columns not in the snapshot).
    Temp,
    /// Nothing by that name.
    Missing,
}

/// Applies `AS alias (c1, c2, ...)` to an entry.
fn apply_alias(e: &mut RangeEntry, a: &pb::Alias) {
    e.refname = Some(a.aliasname.clone());
    e.schema = None;
    rename(&mut e.columns, &names(&a.colnames));
    let widened: Lineage = e
        .columns
        .iter()
        .filter(|c| c.is_placeholder())
        .flat_map(|c| c.lineage.clone())
        .collect();
    merge(&mut e.open_lineage, widened);
}

fn function_name(f: &pb::Node) -> Option<String> {
    let call = match f.node.as_ref()? {
        NodeEnum::List(l) => l.items.first()?,
        _ => f,
    };
    match call.node.as_ref()? {
        NodeEnum::FuncCall(fc) => names(&fc.funcname).last().map(|s| (*s).to_owned()),
        _ => None,
    }
}
