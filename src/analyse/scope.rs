//! Name scopes: what a column reference can see at a point of a query, and
//! where each visible column's values come from (its lineage).

/// One base column a value derives from: index into the analysis' relation
/// accesses and the column name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColRef {
    /// Index into `Walker::accesses`.
    pub rel: usize,
    /// Column name.
    pub col: String,
}

/// The base columns a value derives from.
pub type Lineage = Vec<ColRef>;

/// Adds `more` to `into`, skipping duplicates.
pub fn merge(into: &mut Lineage, more: Lineage) {
    for c in more {
        if !into.contains(&c) {
            into.push(c);
        }
    }
}

/// One column a range entry exposes.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// Column name as visible in the query.
    pub name: String,
    /// Where its values come from.
    pub lineage: Lineage,
}

/// A FROM item (table, view, subquery, function, join alias, CTE reference).
#[derive(Debug, Clone, Default)]
pub struct RangeEntry {
    /// The name a query uses to qualify its columns (alias or relation name).
    pub refname: Option<String>,
    /// For tables and views referenced without an alias: the schema, so
    /// `schema.table.column` resolves.
    pub schema: Option<String>,
    /// Visible columns, in order.
    pub columns: Vec<ScopeColumn>,
    /// The column set is not known (e.g. a function returning `record`
    /// without a column list): any column name resolves here.
    pub open: bool,
    /// Lineage of every column together, for an open entry.
    pub open_lineage: Lineage,
    /// For a relation whose columns are unknown (a temp table created in
    /// this session): any name resolves to that column of this access.
    pub open_rel: Option<usize>,
    /// For a table: its system columns (ctid, xmin, ...) resolve by name to
    /// this access, but are never part of `*` or the whole row.
    pub system_rel: Option<usize>,
}

/// PostgreSQL's system columns, present on every table.
pub const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

impl RangeEntry {
    /// Whether a qualified reference `[schema.]name` designates this entry.
    pub fn matches(&self, schema: Option<&str>, name: &str) -> bool {
        self.refname.as_deref() == Some(name)
            && schema.is_none_or(|s| self.schema.as_deref() == Some(s))
    }

    /// Lineage of a named column, if this entry has it.
    pub fn column(&self, name: &str) -> Option<Lineage> {
        if let Some(c) = self.columns.iter().find(|c| c.name == name) {
            return Some(c.lineage.clone());
        }
        if let Some(rel) = self.system_rel.filter(|_| SYSTEM_COLUMNS.contains(&name)) {
            return Some(vec![ColRef {
                rel,
                col: name.to_owned(),
            }]);
        }
        if let Some(rel) = self.open_rel {
            return Some(vec![ColRef {
                rel,
                col: name.to_owned(),
            }]);
        }
        self.open.then(|| self.open_lineage.clone())
    }

    /// Lineage of the whole row.
    pub fn whole_row(&self) -> Lineage {
        let mut out = self.open_lineage.clone();
        if let Some(rel) = self.open_rel {
            out.push(ColRef {
                rel,
                col: "*".to_owned(),
            });
        }
        for c in &self.columns {
            merge(&mut out, c.lineage.clone());
        }
        out
    }
}

/// The range entries visible at one query level, and the enclosing level.
#[derive(Debug, Default)]
pub struct Scope<'p> {
    /// Entries of this level.
    pub entries: Vec<RangeEntry>,
    /// The enclosing query level (for correlated references).
    pub parent: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    /// An empty scope under `parent`.
    pub fn child(parent: Option<&'p Scope<'p>>) -> Self {
        Self {
            entries: Vec::new(),
            parent,
        }
    }

    /// Resolves an unqualified column name, innermost level first.
    pub fn unqualified(&self, name: &str) -> Option<Lineage> {
        let mut found: Option<Lineage> = None;
        // Exact columns win over open entries at the same level.
        for e in &self.entries {
            let system = e.system_rel.is_some() && SYSTEM_COLUMNS.contains(&name);
            if system || e.columns.iter().any(|c| c.name == name) {
                if let Some(l) = e.column(name) {
                    let f = found.get_or_insert_with(Vec::new);
                    // An ambiguous name makes PostgreSQL fail; keeping every
                    // candidate is the conservative record.
                    merge(f, l);
                }
            }
        }
        if found.is_none() {
            for e in self
                .entries
                .iter()
                .filter(|e| e.open || e.open_rel.is_some())
            {
                if let Some(l) = e.column(name) {
                    merge(found.get_or_insert_with(Vec::new), l);
                }
            }
        }
        found.or_else(|| self.parent.and_then(|p| p.unqualified(name)))
    }

    /// Finds the entry a qualifier designates, innermost level first.
    pub fn entry(&self, schema: Option<&str>, name: &str) -> Option<&RangeEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.matches(schema, name))
            .or_else(|| self.parent.and_then(|p| p.entry(schema, name)))
    }
}
