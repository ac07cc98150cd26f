//! Statement level: what kind a statement is, its DML targets, and the
//! utility statements that change the session.

use super::model::{SessionEffect, StatementKind};
use super::scope::{merge, ColRef, Lineage, RangeEntry, Scope, ScopeColumn};
use super::walker::{Resolved, Usage, Walker};
use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// Statement-level facts the walk cannot put in access sets.
#[derive(Debug, Default)]
pub struct StatementFacts {
    /// Kind for the audit record.
    pub kind: Option<StatementKind>,
    /// Command name.
    pub command: String,
    /// Session effects.
    pub effects: Vec<SessionEffect>,
    /// EXECUTE / FETCH target.
    pub refers_to: Option<String>,
    /// PREPARE / DECLARE: the kind of the statement they hold.
    pub inner_kind: Option<StatementKind>,
    /// The columns of the rows returned to the client (for PREPARE and
    /// DECLARE: those of their statement); `None` when no rows from base
    /// tables come back.
    pub results: Option<Vec<ScopeColumn>>,
}

fn strings(list: &[pb::Node]) -> Vec<String> {
    list.iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// Marks every output column of a query as `usage`.
fn mark_outputs(w: &mut Walker<'_>, cols: &[ScopeColumn], usage: Usage) {
    for c in cols {
        w.mark(&c.lineage, usage);
    }
}

/// Where a DML statement's writes land.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// Nothing resolved.
    None,
    /// A table (index into the accesses).
    Rel(usize),
    /// An updatable view: each view column writes the base column it shows.
    View(RangeEntry),
}

/// The entry for a DML target relation, and where its writes land.
fn target_entry(w: &mut Walker<'_>, rv: &pb::RangeVar) -> (RangeEntry, Target) {
    let is_view = matches!(
        w.resolve_relation(rv),
        Resolved::Relation(r) if r.kind == crate::catalog::RelKind::View && r.view_definition.is_some()
    );
    let e = w.relation_entry(rv);
    if is_view {
        return (e.clone(), Target::View(e));
    }
    let idx = e
        .columns
        .first()
        .and_then(|c| c.lineage.first())
        .map(|c| c.rel)
        .or(e.open_rel);
    (e, idx.map_or(Target::None, Target::Rel))
}

fn mark_written(w: &mut Walker<'_>, target: &Target, cols: impl IntoIterator<Item = String>) {
    match target {
        Target::None => {}
        Target::Rel(rel) => {
            if let Some(a) = w.accesses.get_mut(*rel) {
                for c in cols {
                    a.written.insert(c);
                }
            }
        }
        Target::View(entry) => {
            for c in cols {
                let lineage = entry.column(&c).unwrap_or_else(|| entry.whole_row());
                for r in lineage {
                    if let Some(a) = w.accesses.get_mut(r.rel) {
                        a.written.insert(r.col);
                    }
                }
            }
        }
    }
}

/// DELETE, TRUNCATE, MERGE ... DELETE: whole rows go.
fn mark_deletes(w: &mut Walker<'_>, target: &Target) {
    let rels: Vec<usize> = match target {
        Target::None => Vec::new(),
        Target::Rel(rel) => vec![*rel],
        Target::View(entry) => entry.whole_row().into_iter().map(|c| c.rel).collect(),
    };
    for rel in rels {
        if let Some(a) = w.accesses.get_mut(rel) {
            a.deletes_rows = true;
        }
    }
}

fn all_columns(e: &RangeEntry) -> Vec<String> {
    if e.columns.is_empty() && e.open_rel.is_some() {
        return vec!["*".into()];
    }
    e.columns.iter().map(|c| c.name.clone()).collect()
}

/// The name of a SET target in `UPDATE ... SET col[1].f = ...` (the column).
fn res_target_column(n: &pb::Node) -> Option<(String, &pb::ResTarget)> {
    match n.node.as_ref()? {
        NodeEnum::ResTarget(rt) => Some((rt.name.clone(), rt)),
        _ => None,
    }
}

/// `SET col = value, ...` (UPDATE, ON CONFLICT DO UPDATE, MERGE): the
/// columns are written, the values' sources flow into them, and subscripts
/// (`SET a[i] = ...`) pick what is written.
fn set_clause(w: &mut Walker<'_>, targets: &[pb::Node], scope: &Scope<'_>, rel: &Target) {
    let mut cols = Vec::new();
    for t in targets {
        if let Some((name, rt)) = res_target_column(t) {
            cols.push(name);
            if let Some(v) = rt.val.as_deref() {
                let l = w.expr(v, scope);
                w.mark(&l, Usage::Output);
            }
            for ind in &rt.indirection {
                let l = w.expr(ind, scope);
                w.mark(&l, Usage::Filter);
            }
        }
    }
    mark_written(w, rel, cols);
}

/// RETURNING: its values reach the client.
fn returning(
    w: &mut Walker<'_>,
    r: Option<&pb::ReturningClause>,
    scope: &Scope<'_>,
) -> Vec<ScopeColumn> {
    let Some(r) = r else { return Vec::new() };
    let mut out = Vec::new();
    // Same as a select list: `*` is the target's columns, then the FROM /
    // USING items', as PostgreSQL orders them.
    for t in &r.exprs {
        if let Some(NodeEnum::ResTarget(rt)) = t.node.as_ref() {
            w.target(rt, scope, &mut out);
        }
    }
    out
}

/// INSERT / UPDATE / DELETE / MERGE: walks it and returns its RETURNING
/// columns (for data-modifying CTEs and the top level alike).
pub fn dml_returning(
    w: &mut Walker<'_>,
    node: &NodeEnum,
    parent: Option<&Scope<'_>>,
) -> Vec<ScopeColumn> {
    match node {
        NodeEnum::InsertStmt(s) => insert(w, s, parent),
        NodeEnum::UpdateStmt(s) => update(w, s, parent),
        NodeEnum::DeleteStmt(s) => delete(w, s, parent),
        NodeEnum::MergeStmt(s) => merge_stmt(w, s, parent),
        NodeEnum::SelectStmt(s) => w.select(s, parent),
        _ => {
            w.problem("unsupported statement in WITH");
            Vec::new()
        }
    }
}

fn insert(w: &mut Walker<'_>, s: &pb::InsertStmt, parent: Option<&Scope<'_>>) -> Vec<ScopeColumn> {
    let pushed = w.with_clause(s.with_clause.as_ref(), parent);
    let Some(rv) = &s.relation else {
        w.problem("INSERT without target");
        return Vec::new();
    };
    let (target, rel) = target_entry(w, rv);
    let cols: Vec<String> = s
        .cols
        .iter()
        .filter_map(res_target_column)
        .map(|(n, _)| n)
        .collect();
    let written = if cols.is_empty() {
        all_columns(&target)
    } else {
        cols
    };
    mark_written(w, &rel, written.iter().cloned());
    // The source rows' values flow into the table.
    if let Some(NodeEnum::SelectStmt(sel)) = s.select_stmt.as_deref().and_then(|n| n.node.as_ref())
    {
        let src = w.select(sel, parent);
        mark_outputs(w, &src, Usage::Output);
    }
    let mut scope = Scope::child(parent);
    scope.entries.push(target.clone());
    if let Some(oc) = &s.on_conflict_clause {
        if let Some(inf) = &oc.infer {
            for e in &inf.index_elems {
                if let Some(NodeEnum::IndexElem(ie)) = e.node.as_ref() {
                    if let Some(l) = target.column(&ie.name) {
                        w.mark(&l, Usage::Filter);
                    }
                    w.filter(ie.expr.as_deref(), &scope);
                }
            }
            w.filter(inf.where_clause.as_deref(), &scope);
        }
        // EXCLUDED.* carries the proposed row: the target's columns.
        let mut excluded = target.clone();
        excluded.refname = Some("excluded".into());
        excluded.schema = None;
        scope.entries.push(excluded);
        set_clause(w, &oc.target_list, &scope, &rel);
        w.filter(oc.where_clause.as_deref(), &scope);
        scope.entries.pop();
    }
    let out = returning(w, s.returning_clause.as_ref(), &scope);
    w.pop_ctes(pushed);
    out
}

fn update(w: &mut Walker<'_>, s: &pb::UpdateStmt, parent: Option<&Scope<'_>>) -> Vec<ScopeColumn> {
    let pushed = w.with_clause(s.with_clause.as_ref(), parent);
    let Some(rv) = &s.relation else {
        w.problem("UPDATE without target");
        return Vec::new();
    };
    let (target, rel) = target_entry(w, rv);
    let mut scope = Scope::child(parent);
    scope.entries.push(target);
    for f in &s.from_clause {
        w.range_item(f, &mut scope);
    }
    set_clause(w, &s.target_list, &scope, &rel);
    w.filter(s.where_clause.as_deref(), &scope);
    let out = returning(w, s.returning_clause.as_ref(), &scope);
    w.pop_ctes(pushed);
    out
}

fn delete(w: &mut Walker<'_>, s: &pb::DeleteStmt, parent: Option<&Scope<'_>>) -> Vec<ScopeColumn> {
    let pushed = w.with_clause(s.with_clause.as_ref(), parent);
    let Some(rv) = &s.relation else {
        w.problem("DELETE without target");
        return Vec::new();
    };
    let (target, rel) = target_entry(w, rv);
    mark_deletes(w, &rel);
    let mut scope = Scope::child(parent);
    scope.entries.push(target);
    for f in &s.using_clause {
        w.range_item(f, &mut scope);
    }
    w.filter(s.where_clause.as_deref(), &scope);
    let out = returning(w, s.returning_clause.as_ref(), &scope);
    w.pop_ctes(pushed);
    out
}

fn merge_stmt(
    w: &mut Walker<'_>,
    s: &pb::MergeStmt,
    parent: Option<&Scope<'_>>,
) -> Vec<ScopeColumn> {
    let pushed = w.with_clause(s.with_clause.as_ref(), parent);
    let Some(rv) = &s.relation else {
        w.problem("MERGE without target");
        return Vec::new();
    };
    let (target, rel) = target_entry(w, rv);
    let mut scope = Scope::child(parent);
    scope.entries.push(target.clone());
    if let Some(src) = s.source_relation.as_deref() {
        w.range_item(src, &mut scope);
    }
    w.filter(s.join_condition.as_deref(), &scope);
    for wc in &s.merge_when_clauses {
        let Some(NodeEnum::MergeWhenClause(c)) = wc.node.as_ref() else {
            continue;
        };
        w.filter(c.condition.as_deref(), &scope);
        match pb::CmdType::try_from(c.command_type).unwrap_or(pb::CmdType::Undefined) {
            pb::CmdType::CmdUpdate => set_clause(w, &c.target_list, &scope, &rel),
            pb::CmdType::CmdInsert => {
                let cols: Vec<String> = c
                    .target_list
                    .iter()
                    .filter_map(res_target_column)
                    .map(|(n, _)| n)
                    .collect();
                let cols = if cols.is_empty() {
                    all_columns(&target)
                } else {
                    cols
                };
                mark_written(w, &rel, cols);
                let l = {
                    let mut l = Lineage::new();
                    for v in &c.values {
                        merge(&mut l, w.expr(v, &scope));
                    }
                    l
                };
                w.mark(&l, Usage::Output);
            }
            pb::CmdType::CmdDelete => {
                mark_deletes(w, &rel);
            }
            _ => {}
        }
    }
    let out = returning(w, s.returning_clause.as_ref(), &scope);
    w.pop_ctes(pushed);
    out
}

/// Walks a COPY; returns the columns sent to the client (COPY ... TO STDOUT).
fn copy(w: &mut Walker<'_>, s: &pb::CopyStmt) -> Option<Vec<ScopeColumn>> {
    let to_client = !s.is_from && s.filename.is_empty() && !s.is_program;
    if !s.filename.is_empty() || s.is_program {
        // The server reads or writes a file or program: outside any client's view.
        let what = if s.is_program {
            "COPY ... PROGRAM"
        } else {
            "COPY with a server file"
        };
        w.opaque.push(super::model::OpaqueCall {
            function: what.into(),
            columns: Vec::new(),
        });
    }
    if let Some(q) = s.query.as_deref().and_then(|n| n.node.as_ref()) {
        let cols = dml_returning(w, q, None);
        mark_outputs(w, &cols, Usage::Output);
        return to_client.then_some(cols);
    }
    let Some(rv) = &s.relation else {
        w.problem("COPY without table or query");
        return None;
    };
    let (entry, rel) = target_entry(w, rv);
    let listed = strings(&s.attlist);
    let results = to_client.then(|| copy_columns(&entry, &listed));
    let cols = if listed.is_empty() {
        all_columns(&entry)
    } else {
        listed
    };
    if s.is_from {
        mark_written(w, &rel, cols);
        if let Some(wc) = s.where_clause.as_deref() {
            let mut scope = Scope::child(None);
            scope.entries.push(entry);
            let l = w.expr(wc, &scope);
            w.mark(&l, Usage::Filter);
        }
    } else {
        let lineage: Lineage = cols
            .iter()
            .filter_map(|c| entry.column(c))
            .flatten()
            .chain(match rel {
                Target::Rel(rel) if entry.columns.is_empty() => Some(ColRef {
                    rel,
                    col: "*".into(),
                }),
                _ => None,
            })
            .collect();
        w.mark(&lineage, Usage::Output);
    }
    results
}

/// The columns COPY table TO sends: the listed ones, else all, in order.
fn copy_columns(entry: &RangeEntry, listed: &[String]) -> Vec<ScopeColumn> {
    if listed.is_empty() {
        return entry.star();
    }
    listed
        .iter()
        .map(|name| {
            let (lineage, direct) = entry.lookup(name).unwrap_or_default();
            ScopeColumn {
                name: name.clone(),
                lineage,
                direct,
            }
        })
        .collect()
}

/// The INTO of a SELECT INTO; PostgreSQL takes it from the leftmost
/// branch of a set operation.
fn select_into(s: &pb::SelectStmt) -> Option<&pb::IntoClause> {
    let mut s = s;
    while s.into_clause.is_none() {
        s = s.larg.as_deref()?;
    }
    s.into_clause.as_deref()
}

/// Whether a DML statement has a RETURNING list.
fn has_returning(node: &NodeEnum) -> bool {
    let r = match node {
        NodeEnum::InsertStmt(s) => s.returning_clause.as_ref(),
        NodeEnum::UpdateStmt(s) => s.returning_clause.as_ref(),
        NodeEnum::DeleteStmt(s) => s.returning_clause.as_ref(),
        NodeEnum::MergeStmt(s) => s.returning_clause.as_ref(),
        _ => None,
    };
    r.is_some_and(|r| !r.exprs.is_empty())
}

/// Walks one parsed statement, returning what the access sets do not say.
pub fn walk(w: &mut Walker<'_>, node: &NodeEnum) -> StatementFacts {
    let mut f = StatementFacts::default();
    let kind = |f: &mut StatementFacts, k: StatementKind, c: &str| {
        f.kind = Some(k);
        c.clone_into(&mut f.command);
    };
    match node {
        NodeEnum::SelectStmt(s) => {
            let cols = w.select(s, None);
            if let Some(into) = select_into(s) {
                // SELECT INTO creates a table from the rows.
                mark_outputs(w, &cols, Usage::Output);
                write_new_table(w, &mut f, into.rel.as_ref(), &cols);
                kind(&mut f, StatementKind::Select, "SELECT INTO");
            } else {
                mark_outputs(w, &cols, Usage::Output);
                kind(&mut f, StatementKind::Select, "SELECT");
                f.results = Some(cols);
            }
            if !s.locking_clause.is_empty() {
                f.command.push_str(" FOR UPDATE");
            }
        }
        NodeEnum::InsertStmt(_)
        | NodeEnum::UpdateStmt(_)
        | NodeEnum::DeleteStmt(_)
        | NodeEnum::MergeStmt(_) => {
            let cols = dml_returning(w, node, None);
            mark_outputs(w, &cols, Usage::Output);
            f.results = has_returning(node).then_some(cols);
            let (k, c) = match node {
                NodeEnum::InsertStmt(_) => (StatementKind::Insert, "INSERT"),
                NodeEnum::UpdateStmt(_) => (StatementKind::Update, "UPDATE"),
                NodeEnum::DeleteStmt(_) => (StatementKind::Delete, "DELETE"),
                _ => (StatementKind::Merge, "MERGE"),
            };
            kind(&mut f, k, c);
        }
        NodeEnum::CopyStmt(s) => {
            f.results = copy(w, s);
            kind(
                &mut f,
                StatementKind::Copy,
                if s.is_from { "COPY FROM" } else { "COPY TO" },
            );
        }
        NodeEnum::TruncateStmt(t) => {
            for r in &t.relations {
                if let Some(NodeEnum::RangeVar(rv)) = r.node.as_ref() {
                    let (_, rel) = target_entry(w, rv);
                    mark_deletes(w, &rel);
                }
            }
            if t.behavior == pb::DropBehavior::DropCascade as i32 {
                // Tables referencing these through foreign keys are emptied
                // too; the catalog snapshot does not know which.
                w.problem("TRUNCATE ... CASCADE also empties referencing tables");
            }
            kind(&mut f, StatementKind::Truncate, "TRUNCATE");
        }
        NodeEnum::CreateTableAsStmt(c) => {
            let cols = c
                .query
                .as_deref()
                .and_then(|q| q.node.as_ref())
                .map(|q| dml_returning(w, q, None))
                .unwrap_or_default();
            mark_outputs(w, &cols, Usage::Output);
            let matview = c.objtype == pb::ObjectType::ObjectMatview as i32;
            write_new_table(
                w,
                &mut f,
                c.into.as_ref().and_then(|i| i.rel.as_ref()),
                &cols,
            );
            kind(
                &mut f,
                StatementKind::Ddl,
                if matview {
                    "CREATE MATERIALIZED VIEW"
                } else {
                    "CREATE TABLE AS"
                },
            );
        }
        NodeEnum::RefreshMatViewStmt(r) => {
            if let Some(rv) = &r.relation {
                // Refreshing reads the definition's sources into the view.
                let (_, rel) = target_entry(w, rv);
                if let Resolved::Relation(mv) = w.resolve_relation(rv) {
                    if let Some(def) = mv.view_definition.as_deref() {
                        match super::parse::parse(def, true) {
                            Ok(p) => {
                                if let Some(q) = p
                                    .stmts
                                    .first()
                                    .and_then(|s| s.stmt.as_ref())
                                    .and_then(|n| n.node.as_ref())
                                {
                                    let cols = dml_returning(w, q, None);
                                    mark_outputs(w, &cols, Usage::Output);
                                }
                            }
                            Err(e) => w.problem(format!("materialized view definition: {e}")),
                        }
                    }
                    let names: Vec<String> = mv.columns.iter().map(|c| c.name.clone()).collect();
                    mark_written(w, &rel, names);
                }
            }
            kind(&mut f, StatementKind::Ddl, "REFRESH MATERIALIZED VIEW");
            f.effects.push(SessionEffect::CatalogChanged);
        }
        NodeEnum::ExplainStmt(e) => {
            // EXPLAIN ANALYZE runs the statement; plain EXPLAIN only plans it.
            // Either way no row reaches the client: its reads act as filters.
            let analyze = e.options.iter().any(|o| {
                matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "analyze"
                    && !matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()),
                        Some(NodeEnum::String(v)) if v.sval == "false" || v.sval == "off"))
            });
            if let Some(q) = e.query.as_deref().and_then(|q| q.node.as_ref()) {
                let inner = walk(w, q);
                for a in &mut w.accesses {
                    let out = std::mem::take(&mut a.output);
                    a.filter.extend(out);
                    if !analyze {
                        a.written.clear();
                        a.deletes_rows = false;
                    }
                }
                if analyze {
                    f.effects = inner.effects;
                }
            }
            kind(&mut f, StatementKind::Other, "EXPLAIN");
        }
        NodeEnum::PrepareStmt(p) => {
            if let Some(q) = p.query.as_deref().and_then(|q| q.node.as_ref()) {
                let inner = walk(w, q);
                f.inner_kind = inner.kind;
                f.results = inner.results;
                f.effects.extend(
                    inner
                        .effects
                        .into_iter()
                        .filter(|e| *e == SessionEffect::CatalogChanged),
                );
            }
            f.effects.push(SessionEffect::Prepare(p.name.clone()));
            kind(&mut f, StatementKind::Other, "PREPARE");
        }
        NodeEnum::ExecuteStmt(e) => {
            let scope = Scope::child(None);
            for p in &e.params {
                let l = w.expr(p, &scope);
                w.mark(&l, Usage::Output);
            }
            f.refers_to = Some(e.name.clone());
            kind(&mut f, StatementKind::Other, "EXECUTE");
        }
        NodeEnum::DeallocateStmt(d) => {
            f.effects.push(SessionEffect::Deallocate(
                (!d.isall && !d.name.is_empty()).then(|| d.name.clone()),
            ));
            kind(&mut f, StatementKind::Other, "DEALLOCATE");
        }
        NodeEnum::DeclareCursorStmt(d) => {
            if let Some(q) = d.query.as_deref().and_then(|q| q.node.as_ref()) {
                let inner = walk(w, q);
                f.inner_kind = inner.kind;
                f.results = inner.results;
            }
            f.effects
                .push(SessionEffect::DeclareCursor(d.portalname.clone()));
            kind(&mut f, StatementKind::Other, "DECLARE CURSOR");
        }
        NodeEnum::FetchStmt(fe) => {
            f.refers_to = Some(fe.portalname.clone());
            kind(
                &mut f,
                StatementKind::Other,
                if fe.ismove { "MOVE" } else { "FETCH" },
            );
        }
        NodeEnum::ClosePortalStmt(c) => {
            f.effects.push(SessionEffect::CloseCursor(
                (!c.portalname.is_empty()).then(|| c.portalname.clone()),
            ));
            kind(&mut f, StatementKind::Other, "CLOSE CURSOR");
        }
        NodeEnum::CallStmt(c) => {
            if let Some(fc) = &c.funccall {
                let scope = Scope::child(None);
                let node = pb::Node {
                    node: Some(NodeEnum::FuncCall(fc.clone())),
                };
                let l = w.expr(&node, &scope);
                w.mark(&l, Usage::Output);
                let name = fc
                    .funcname
                    .iter()
                    .filter_map(|n| match n.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                let call = super::model::OpaqueCall {
                    function: name,
                    columns: Vec::new(),
                };
                if !w.opaque.iter().any(|o| o.function == call.function) {
                    w.opaque.push(call);
                }
            }
            kind(&mut f, StatementKind::Other, "CALL");
        }
        NodeEnum::DoStmt(_) => {
            w.opaque.push(super::model::OpaqueCall {
                function: "DO".into(),
                columns: Vec::new(),
            });
            kind(&mut f, StatementKind::Other, "DO");
        }
        NodeEnum::VariableSetStmt(v) => {
            set_statement(&mut f, v);
        }
        NodeEnum::VariableShowStmt(_) => kind(&mut f, StatementKind::Other, "SHOW"),
        NodeEnum::DiscardStmt(d) => {
            if d.target == pb::DiscardMode::DiscardAll as i32 {
                f.effects.push(SessionEffect::ResetAll);
            }
            kind(&mut f, StatementKind::Set, "DISCARD");
        }
        NodeEnum::TransactionStmt(t) => {
            use pb::TransactionStmtKind as K;
            let c = match K::try_from(t.kind).unwrap_or(K::Undefined) {
                K::TransStmtBegin | K::TransStmtStart => "BEGIN",
                K::TransStmtCommit => "COMMIT",
                K::TransStmtRollback => "ROLLBACK",
                K::TransStmtSavepoint => "SAVEPOINT",
                K::TransStmtRelease => "RELEASE",
                K::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
                K::TransStmtPrepare => "PREPARE TRANSACTION",
                K::TransStmtCommitPrepared => "COMMIT PREPARED",
                K::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
                K::Undefined => "TRANSACTION",
            };
            if matches!(c, "SAVEPOINT" | "RELEASE" | "ROLLBACK TO SAVEPOINT") {
                f.effects
                    .push(SessionEffect::Savepoint(t.savepoint_name.clone()));
            }
            kind(&mut f, StatementKind::Transaction, c);
        }
        NodeEnum::ListenStmt(_) => kind(&mut f, StatementKind::Other, "LISTEN"),
        NodeEnum::UnlistenStmt(_) => kind(&mut f, StatementKind::Other, "UNLISTEN"),
        NodeEnum::NotifyStmt(_) => kind(&mut f, StatementKind::Other, "NOTIFY"),
        NodeEnum::LockStmt(l) => {
            for r in &l.relations {
                if let Some(NodeEnum::RangeVar(rv)) = r.node.as_ref() {
                    target_entry(w, rv);
                }
            }
            kind(&mut f, StatementKind::Other, "LOCK TABLE");
        }
        NodeEnum::VacuumStmt(_) => kind(&mut f, StatementKind::Other, "VACUUM"),
        NodeEnum::CheckPointStmt(_) => kind(&mut f, StatementKind::Other, "CHECKPOINT"),
        NodeEnum::LoadStmt(_) => kind(&mut f, StatementKind::Other, "LOAD"),
        NodeEnum::ConstraintsSetStmt(_) => kind(&mut f, StatementKind::Set, "SET CONSTRAINTS"),
        NodeEnum::CreateStmt(c) => {
            if let Some(r) = &c.relation {
                if r.relpersistence == "t" {
                    f.effects
                        .push(SessionEffect::TempRelation(r.relname.clone()));
                } else {
                    // All columns are known only from a plain column list.
                    let plain = c.inh_relations.is_empty()
                        && c.of_typename.is_none()
                        && c.partbound.is_none();
                    let mut cols = Vec::new();
                    let mut complete = plain;
                    for e in &c.table_elts {
                        match e.node.as_ref() {
                            Some(NodeEnum::ColumnDef(cd)) => cols.push(cd.colname.clone()),
                            Some(NodeEnum::TableLikeClause(_)) => complete = false,
                            _ => {}
                        }
                    }
                    f.effects.push(SessionEffect::CreatedRelation(
                        super::model::CreatedRelation {
                            schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
                            name: r.relname.clone(),
                            columns: complete.then_some(cols),
                        },
                    ));
                }
            }
            kind(&mut f, StatementKind::Ddl, "CREATE TABLE");
            f.effects.push(SessionEffect::CatalogChanged);
        }
        NodeEnum::ViewStmt(v) => {
            // The definition reads its sources: recorded (and decided) here,
            // because a temporary view's definition never reaches the
            // catalog snapshot and could otherwise hide what it reads.
            if let Some(q) = v.query.as_deref().and_then(|n| n.node.as_ref()) {
                let cols = dml_returning(w, q, None);
                mark_outputs(w, &cols, Usage::Output);
            }
            if let Some(r) = &v.view {
                if r.relpersistence == "t" {
                    f.effects
                        .push(SessionEffect::TempRelation(r.relname.clone()));
                } else {
                    // Until the catalog shows its definition, a new view's
                    // columns cannot be traced: any column resolves to it.
                    f.effects
                        .push(SessionEffect::CreatedRelation(created(r, None)));
                }
            }
            kind(&mut f, StatementKind::Ddl, "CREATE VIEW");
            f.effects.push(SessionEffect::CatalogChanged);
        }
        NodeEnum::AlterTableStmt(a) => {
            // Until the catalog is reloaded, this session's later statements
            // may use columns it does not know yet.
            if let Some(r) = &a.relation {
                f.effects
                    .push(SessionEffect::CreatedRelation(created(r, None)));
            }
            kind(&mut f, StatementKind::Ddl, "ALTER TABLE");
            f.effects.push(SessionEffect::CatalogChanged);
        }
        NodeEnum::RenameStmt(rn) => {
            // ALTER TABLE ... RENAME TO: the new name exists only for this
            // session until the catalog is reloaded.
            if let (Some(r), false) = (&rn.relation, rn.newname.is_empty()) {
                if rn.rename_type == pb::ObjectType::ObjectTable as i32
                    || rn.rename_type == pb::ObjectType::ObjectView as i32
                {
                    let mut renamed = created(r, None);
                    renamed.name.clone_from(&rn.newname);
                    f.effects.push(SessionEffect::CreatedRelation(renamed));
                }
            }
            kind(&mut f, StatementKind::Ddl, "ALTER RENAME");
            f.effects.push(SessionEffect::CatalogChanged);
        }
        _ => {
            kind(&mut f, StatementKind::Ddl, ddl_command(node));
            f.effects.push(SessionEffect::CatalogChanged);
        }
    }
    f
}

/// A relation this session creates or changes, as the statement names it.
fn created(r: &pb::RangeVar, columns: Option<Vec<String>>) -> super::model::CreatedRelation {
    super::model::CreatedRelation {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
        columns,
    }
}

/// CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW: the new table
/// is written with the query's columns.
fn write_new_table(
    w: &mut Walker<'_>,
    f: &mut StatementFacts,
    rv: Option<&pb::RangeVar>,
    cols: &[ScopeColumn],
) {
    let Some(rv) = rv else { return };
    let temp = rv.relpersistence == "t";
    let schema = if temp {
        "pg_temp".to_owned()
    } else if rv.schemaname.is_empty() {
        "(default)".to_owned()
    } else {
        rv.schemaname.clone()
    };
    let rel = w.access(&schema, &rv.relname, None);
    mark_written(w, &Target::Rel(rel), cols.iter().map(|c| c.name.clone()));
    if temp {
        f.effects
            .push(SessionEffect::TempRelation(rv.relname.clone()));
    }
    f.effects.push(SessionEffect::CatalogChanged);
}

fn set_statement(f: &mut StatementFacts, v: &pb::VariableSetStmt) {
    use pb::VariableSetKind as K;
    let k = K::try_from(v.kind).unwrap_or(K::Undefined);
    f.kind = Some(StatementKind::Set);
    f.command = match k {
        K::VarReset | K::VarResetAll => "RESET".into(),
        _ => "SET".into(),
    };
    let values: Vec<String> = v
        .args
        .iter()
        .filter_map(|a| match a.node.as_ref() {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(pb::a_const::Val::Sval(s)) => Some(s.sval.clone()),
                Some(pb::a_const::Val::Ival(i)) => Some(i.ival.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    match (k, v.name.as_str()) {
        (K::VarResetAll, _) => f.effects.push(SessionEffect::ResetAll),
        (_, "search_path") => {
            let value = match k {
                K::VarSetValue => Some(values),
                _ => None,
            };
            f.effects.push(SessionEffect::SearchPath {
                value,
                local: v.is_local,
            });
        }
        (_, "role") => {
            f.command = if k == K::VarReset {
                "RESET ROLE"
            } else {
                "SET ROLE"
            }
            .into();
            let role = match k {
                K::VarSetValue => values.into_iter().next().filter(|r| r != "none"),
                _ => None,
            };
            f.effects.push(SessionEffect::Role {
                role,
                local: v.is_local,
                session_authorization: false,
            });
        }
        (_, "session_authorization") => {
            f.command = "SET SESSION AUTHORIZATION".into();
            let role = match k {
                K::VarSetValue => values.into_iter().next(),
                _ => None,
            };
            f.effects.push(SessionEffect::Role {
                role,
                local: v.is_local,
                session_authorization: true,
            });
        }
        _ => {}
    }
}

fn ddl_command(node: &NodeEnum) -> &'static str {
    match node {
        NodeEnum::ViewStmt(_) => "CREATE VIEW",
        NodeEnum::AlterTableStmt(_) => "ALTER TABLE",
        NodeEnum::DropStmt(_) => "DROP",
        NodeEnum::IndexStmt(_) => "CREATE INDEX",
        NodeEnum::CreateSchemaStmt(_) => "CREATE SCHEMA",
        NodeEnum::CreateFunctionStmt(_) => "CREATE FUNCTION",
        NodeEnum::GrantStmt(_) => "GRANT",
        NodeEnum::GrantRoleStmt(_) => "GRANT ROLE",
        NodeEnum::CreateRoleStmt(_) => "CREATE ROLE",
        NodeEnum::AlterRoleStmt(_) => "ALTER ROLE",
        NodeEnum::AlterRoleSetStmt(_) => "ALTER ROLE SET",
        NodeEnum::DropRoleStmt(_) => "DROP ROLE",
        NodeEnum::RenameStmt(_) => "ALTER RENAME",
        NodeEnum::CommentStmt(_) => "COMMENT",
        NodeEnum::CreateSeqStmt(_) => "CREATE SEQUENCE",
        NodeEnum::CreateTrigStmt(_) => "CREATE TRIGGER",
        NodeEnum::RuleStmt(_) => "CREATE RULE",
        NodeEnum::CreatePolicyStmt(_) => "CREATE POLICY",
        NodeEnum::CreateExtensionStmt(_) => "CREATE EXTENSION",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::AlterDefaultPrivilegesStmt(_) => "ALTER DEFAULT PRIVILEGES",
        NodeEnum::AlterOwnerStmt(_) => "ALTER OWNER",
        NodeEnum::ReindexStmt(_) => "REINDEX",
        NodeEnum::ClusterStmt(_) => "CLUSTER",
        _ => "DDL",
    }
}
