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

/// Output-column name standing for "all columns of an entry whose columns
/// are not known" (a temp table, a function result): an unknown number of
/// positions.
pub const OPEN_COLUMNS: &str = "*";

/// One column a range entry exposes.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// Column name as visible in the query.
    pub name: String,
    /// Where its values come from.
    pub lineage: Lineage,
    /// Its values are exactly one stored base column's values (a bare
    /// reference down to a table column); anything computed is not. When
    /// unsure, false: a false "direct" would let masking miss a value.
    pub direct: bool,
}

impl ScopeColumn {
    /// A computed column: not direct.
    pub fn derived(name: impl Into<String>, lineage: Lineage) -> Self {
        Self {
            name: name.into(),
            lineage,
            direct: false,
        }
    }

    /// Whether this stands for an unknown number of columns.
    pub fn is_placeholder(&self) -> bool {
        self.name == OPEN_COLUMNS
    }
}

/// Renames columns by position (`AS alias (a, b)`, `WITH c (a, b)`). Past
/// an unknown-width placeholder positions are not known: the names left
/// may land on any later column, so the placeholder (which answers unknown
/// names) takes on the lineage of every column after it.
pub fn rename(cols: &mut [ScopeColumn], names: &[&str]) {
    for i in 0..cols.len().min(names.len()) {
        let (head, rest) = cols.split_at_mut(i + 1);
        let Some(c) = head.last_mut() else { return };
        if c.is_placeholder() {
            for r in rest {
                merge(&mut c.lineage, r.lineage.clone());
            }
            return;
        }
        if let Some(name) = names.get(i) {
            (*name).clone_into(&mut c.name);
        }
    }
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
    /// Columns not visible to unqualified names or `*` (the inputs of a
    /// join, whose own entry shows them as PostgreSQL orders them); still
    /// reachable qualified, and through open lookups.
    pub cols_hidden: bool,
    /// What `*` expands to when it differs from `columns` (a function result:
    /// one placeholder; a join: merged USING columns first).
    pub star_columns: Option<Vec<ScopeColumn>>,
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
        self.lookup(name).map(|(l, _)| l)
    }

    /// Whether `name` is one of the known columns (not an open lookup).
    pub fn has_column(&self, name: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.name == name && !c.is_placeholder())
    }

    /// Lineage of a named column and whether it is direct, if this entry
    /// has it. A name given twice (PostgreSQL: ambiguous) is not direct.
    pub fn lookup(&self, name: &str) -> Option<(Lineage, bool)> {
        let mut hits = self
            .columns
            .iter()
            .filter(|c| c.name == name && !c.is_placeholder());
        if let Some(first) = hits.next() {
            let (mut l, mut direct) = (first.lineage.clone(), first.direct);
            for c in hits {
                merge(&mut l, c.lineage.clone());
                direct = false;
            }
            return Some((l, direct));
        }
        let col = |rel| {
            vec![ColRef {
                rel,
                col: name.to_owned(),
            }]
        };
        if let Some(rel) = self.system_rel.filter(|_| SYSTEM_COLUMNS.contains(&name)) {
            return Some((col(rel), true));
        }
        // Columns not known: the name may not even be this entry's.
        if let Some(rel) = self.open_rel {
            return Some((col(rel), false));
        }
        self.open.then(|| (self.open_lineage.clone(), false))
    }

    /// What `*` (or `entry.*`) expands to, in output order; unknown columns
    /// become one placeholder (not direct, lineage: the whole row).
    pub fn star(&self) -> Vec<ScopeColumn> {
        if let Some(s) = &self.star_columns {
            return s.clone();
        }
        let mut out = Vec::new();
        let unknown = self.open || self.open_rel.is_some();
        if unknown && !self.columns.iter().any(ScopeColumn::is_placeholder) {
            out.push(ScopeColumn::derived(OPEN_COLUMNS, self.whole_row()));
        }
        out.extend(self.columns.iter().cloned());
        out
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
        for c in self
            .columns
            .iter()
            .chain(self.star_columns.iter().flatten())
        {
            merge(&mut out, c.lineage.clone());
        }
        out
    }
}

/// Adds one candidate for a name to what was found so far.
fn add(found: &mut Option<(Lineage, bool)>, l: Lineage, direct: bool) {
    match found {
        None => *found = Some((l, direct)),
        // An ambiguous name makes PostgreSQL fail; keeping every candidate
        // is the conservative record, and it is not direct.
        Some((f, d)) => {
            merge(f, l);
            *d = false;
        }
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
        self.lookup(name).map(|(l, _)| l)
    }

    /// [`Self::unqualified`] with whether the column is direct: only when
    /// exactly one known column answers the name.
    pub fn lookup(&self, name: &str) -> Option<(Lineage, bool)> {
        let mut found: Option<(Lineage, bool)> = None;
        // Exact columns win over open entries at the same level.
        for e in &self.entries {
            let system = e.system_rel.is_some() && SYSTEM_COLUMNS.contains(&name);
            if system || (!e.cols_hidden && e.has_column(name)) {
                if let Some((l, d)) = e.lookup(name) {
                    add(&mut found, l, d);
                }
            }
        }
        if found.is_none() {
            for e in self
                .entries
                .iter()
                .filter(|e| e.open || e.open_rel.is_some())
            {
                if let Some((l, _)) = e.lookup(name) {
                    add(&mut found, l, false);
                }
            }
        }
        found.or_else(|| self.parent.and_then(|p| p.lookup(name)))
    }

    /// The entries `*` expands, in FROM order.
    pub fn visible(&self) -> impl Iterator<Item = &RangeEntry> {
        self.entries.iter().filter(|e| !e.cols_hidden)
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
