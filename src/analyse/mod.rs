//! Statement analysis: parse → resolve names against the catalog → the set
//! of tables and columns each statement reads and writes.
//!
//! PostgreSQL's own parser (pg_query, libpg_query) reads the text, so
//! pgwarden never disagrees with the server about what a statement is. The
//! walk resolves names as PostgreSQL does (search_path, CTEs, aliases, views
//! down to base columns). Results are cached by the literal-free token
//! stream, the search path, the temp relations and the catalog version, so a
//! catalog change can never serve a stale analysis.

mod colname;
pub mod lexer;
pub mod model;
pub mod parse;
mod results;
mod scope;
mod shape;
mod statement;
mod walker;

pub use walker::is_system_schema;

pub use model::{
    Analysis, ColumnSource, CreatedRelation, OpaqueCall, RelationAccess, RelationName,
    ResultColumn, SessionEffect, Shape, ShapeCount, StatementKind,
};

use crate::catalog::Catalog;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The analyses of the statements in one text, in order.
pub type Analyses = Arc<[Arc<Analysis>]>;

/// What the analyser needs to know about the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionView {
    /// Effective search path, `$user` already replaced by the current role.
    pub search_path: Vec<String>,
    /// Temporary relations this session created.
    pub temp_relations: Vec<String>,
    /// Relations this session created in its open transaction.
    pub created: Vec<model::CreatedRelation>,
    /// The search path RESET returns to (`$user` expanded).
    pub default_search_path: Vec<String>,
    /// `standard_conforming_strings` as the server last reported it.
    pub standard_conforming_strings: bool,
}

impl SessionView {
    /// A hash of everything in the view, part of the analysis cache key.
    pub fn key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    text: u128,
    session: u64,
    catalog_version: u64,
}

/// Statement analyser with its cache; shared by all sessions.
pub struct Analyser {
    keys: lexer::HashKeys,
    cache: moka::sync::Cache<CacheKey, Analyses>,
}

impl Analyser {
    /// An analyser caching up to `capacity` texts.
    pub fn new(capacity: u64) -> Self {
        Self {
            keys: lexer::HashKeys::random(),
            cache: moka::sync::Cache::new(capacity),
        }
    }

    fn key(&self, sql: &str, view: &SessionView, catalog_version: u64) -> Option<CacheKey> {
        self.key_with(
            sql,
            view.key(),
            view.standard_conforming_strings,
            catalog_version,
        )
    }

    fn key_with(
        &self,
        sql: &str,
        view_key: u64,
        scs: bool,
        catalog_version: u64,
    ) -> Option<CacheKey> {
        let scan = lexer::scan(sql, scs, self.keys).ok()?;
        Some(CacheKey {
            text: scan.key,
            session: view_key,
            catalog_version,
        })
    }

    /// The cached analysis of `sql`, if any; never parses.
    pub fn cached(&self, sql: &str, view: &SessionView, catalog_version: u64) -> Option<Analyses> {
        self.cache.get(&self.key(sql, view, catalog_version)?)
    }

    /// [`Self::cached`] with the view's key computed once by the caller
    /// (sessions keep it until their settings change).
    pub fn cached_with_key(
        &self,
        sql: &str,
        view_key: u64,
        scs: bool,
        catalog_version: u64,
    ) -> Option<Analyses> {
        self.cache
            .get(&self.key_with(sql, view_key, scs, catalog_version)?)
    }

    /// Analyses `sql` now, on the calling thread (which must have a large
    /// stack: use [`parse::on_parser_thread`]), and caches the result.
    pub fn analyse_here(&self, sql: &str, view: &SessionView, catalog: &Catalog) -> Analyses {
        let key = self.key(sql, view, catalog.version);
        self.analyse_keyed(key, sql, view, catalog)
    }

    /// [`Self::analyse_here`] with the cache key computed by the caller.
    fn analyse_keyed(
        &self,
        key: Option<CacheKey>,
        sql: &str,
        view: &SessionView,
        catalog: &Catalog,
    ) -> Analyses {
        // Another session may have analysed the same text meanwhile.
        if let Some(hit) = key.and_then(|k| self.cache.get(&k)) {
            return hit;
        }
        let result: Analyses = analyse_text(sql, view, catalog).into();
        if let Some(key) = key.filter(|_| result.iter().all(|a| cacheable(a))) {
            self.cache.insert(key, result.clone());
        }
        result
    }

    /// Analyses `sql`: from the cache, or on a parser thread.
    pub async fn analyse(
        self: &Arc<Self>,
        sql: &str,
        view: &SessionView,
        catalog: &Arc<Catalog>,
    ) -> Analyses {
        let key = self.key(sql, view, catalog.version);
        if let Some(hit) = key.and_then(|k| self.cache.get(&k)) {
            return hit;
        }
        let me = self.clone();
        let (sql_owned, view_owned, cat) = (sql.to_owned(), view.clone(), catalog.clone());
        match parse::on_parser_thread(move || me.analyse_keyed(key, &sql_owned, &view_owned, &cat))
            .await
        {
            Ok(a) => a,
            Err(e) => vec![Arc::new(unanalysed(sql, view, e.to_string()))].into(),
        }
    }

    /// Entries in the cache (for metrics and tests).
    pub fn cache_len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// Whether an analysis may be reused for the same text with other literals.
fn cacheable(a: &Analysis) -> bool {
    // These carry values taken from literals (SET search_path = '...').
    !a.effects.iter().any(|e| {
        matches!(
            e,
            SessionEffect::SearchPath { .. } | SessionEffect::Role { .. } | SessionEffect::ResetAll
        )
    }) && !a
        .opaque_calls
        .iter()
        .any(|o| o.function.ends_with("set_config"))
}

fn fingerprint(normalized: &str, scs: bool) -> String {
    // Fixed keys: fingerprints must stay comparable across restarts.
    match lexer::token_key(normalized, scs, lexer::HashKeys::fixed()) {
        Ok(key) => format!("{:016x}", key as u64),
        Err(_) => "0000000000000000".into(),
    }
}

fn unanalysed(sql: &str, view: &SessionView, why: String) -> Analysis {
    let normalized: Arc<str> = lexer::normalize(sql, view.standard_conforming_strings)
        .unwrap_or_else(|_| sql.to_owned())
        .into();
    Analysis {
        kind: StatementKind::Other,
        command: "UNKNOWN".into(),
        accesses: Vec::new(),
        opaque_calls: Vec::new(),
        unanalysed: Some(why),
        fingerprint: fingerprint(&normalized, view.standard_conforming_strings).into(),
        normalized,
        effects: Vec::new(),
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Shape::default(),
    }
}

/// Analyses every statement of `sql` without the cache.
pub fn analyse_text(sql: &str, view: &SessionView, catalog: &Catalog) -> Vec<Arc<Analysis>> {
    let scs = view.standard_conforming_strings;
    match lexer::bounds(sql, scs) {
        Ok(s) if s.depth > parse::MAX_PAREN_DEPTH => {
            return vec![Arc::new(unanalysed(
                sql,
                view,
                parse::ParseError::TooDeep(s.depth).to_string(),
            ))];
        }
        Ok(s) if s.symbols > parse::MAX_SYMBOLS => {
            return vec![Arc::new(unanalysed(
                sql,
                view,
                "statement too long to analyse".into(),
            ))];
        }
        _ => {}
    }
    let parsed = match parse::parse(sql, scs) {
        Ok(p) => p,
        Err(e) => return vec![Arc::new(unanalysed(sql, view, e.to_string()))],
    };
    let mut out = Vec::with_capacity(parsed.stmts.len());
    // Later statements of one text see what earlier ones set up.
    let mut view = std::borrow::Cow::Borrowed(view);
    for raw in &parsed.stmts {
        let text = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let mut w = walker::Walker::new(catalog, &view.search_path, &view.temp_relations);
        w.set_created(&view.created);
        let facts = statement::walk(&mut w, node);
        for e in &facts.effects {
            match e {
                SessionEffect::SearchPath { value, .. } => {
                    let v = value
                        .clone()
                        .unwrap_or_else(|| view.default_search_path.clone());
                    view.to_mut().search_path = v;
                }
                SessionEffect::TempRelation(t) => view.to_mut().temp_relations.push(t.clone()),
                SessionEffect::CreatedRelation(c) => view.to_mut().created.push(c.clone()),
                _ => {}
            }
        }
        let normalized: Arc<str> = lexer::normalize(text, scs)
            .unwrap_or_else(|_| text.to_owned())
            .into();
        let results = facts
            .results
            .as_deref()
            .map(|cols| results::result_columns(cols, &w.accesses));
        let span = (
            usize::try_from(raw.stmt_location).unwrap_or(0),
            if raw.stmt_len <= 0 {
                sql.len()
            } else {
                usize::try_from(raw.stmt_location)
                    .unwrap_or(0)
                    .saturating_add(raw.stmt_len as usize)
            },
        );
        let shape = shape::shape(
            &w,
            node,
            results.as_deref(),
            &shape::ShapeInput { sql, span, scs },
        );
        out.push(Arc::new(Analysis {
            kind: facts.kind.unwrap_or(StatementKind::Other),
            command: facts.command,
            accesses: w.accesses,
            opaque_calls: w.opaque,
            unanalysed: w.problems.first().cloned(),
            fingerprint: fingerprint(&normalized, scs).into(),
            normalized,
            effects: facts.effects,
            refers_to: facts.refers_to,
            inner_kind: facts.inner_kind,
            results,
            shape,
        }));
    }
    out
}

/// The text of one statement of a multi-statement string (byte offsets
/// from the parser; a length of 0 means "to the end").
fn statement_text(sql: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = if len <= 0 {
        sql.len()
    } else {
        start.saturating_add(len as usize).min(sql.len())
    };
    sql.get(start..end).map_or(sql, str::trim)
}

#[cfg(test)]
mod tests;
