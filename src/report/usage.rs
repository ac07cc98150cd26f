//! Table, column and classification use: who read (output or filter),
//! wrote, was refused or saw masked values of what.

use super::input::{Outcome, Statement};
use super::model::{ClassStats, Classifications, ColumnStats, TableStats};
use crate::policy::Policy;
use std::collections::{BTreeMap, BTreeSet};

/// Name of the group for columns no classification covers.
pub const UNCLASSIFIED: &str = "(unclassified)";

/// Accumulates per table, column and classification.
#[derive(Debug, Default)]
pub struct Usage {
    tables: BTreeMap<String, TableAcc>,
    classes: BTreeMap<String, ClassStats>,
    columns_seen: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Default)]
struct TableAcc {
    stats: TableStats,
    columns: BTreeMap<String, ColumnStats>,
}

/// What one statement did to classified data: class → counted flags.
#[derive(Default)]
struct ClassHits {
    read: bool,
    write: bool,
    refused: bool,
    masked: bool,
}

impl Usage {
    /// Counts one statement; `policy` classifies its columns (without one,
    /// each table is its own group).
    pub fn add(&mut self, s: &Statement, user: &str, policy: Option<&Policy>) {
        let ok = s.outcome == Outcome::Ok;
        let action = s.policy.as_ref().and_then(|p| p.action.as_deref());
        let refused = s.outcome == Outcome::Refused;
        let masked = ok && action == Some("mask");
        let mut hits: BTreeMap<String, ClassHits> = BTreeMap::new();
        let mut hit = |table: &str, column: &str, f: fn(&mut ClassHits)| {
            let class = classify(policy, table, column);
            self.columns_seen
                .entry(class.clone())
                .or_default()
                .insert(format!("{table}.{column}"));
            f(hits.entry(class).or_default());
        };
        // Tables and columns the statement names in its access list; each
        // column credits the user once per statement.
        let mut touched_tables = BTreeSet::new();
        let mut credited: BTreeSet<(String, String)> = BTreeSet::new();
        for a in &s.access {
            touched_tables.insert(a.relation.clone());
            let t = self.tables.entry(a.relation.clone()).or_default();
            let reads = !a.output.is_empty() || !a.filter.is_empty();
            let writes = !a.written.is_empty() || a.deletes_rows;
            if ok {
                // `SELECT count(*) FROM t` reads t without naming a column.
                if reads || !writes {
                    t.stats.reads += 1;
                }
                t.stats.output_reads += u64::from(!a.output.is_empty());
                t.stats.filter_reads += u64::from(!a.filter.is_empty());
                t.stats.writes += u64::from(writes);
            }
            for c in &a.output {
                credited.insert((a.relation.clone(), c.clone()));
                if ok {
                    column(t, c).output_reads += 1;
                    hit(&a.relation, c, |h| h.read = true);
                }
            }
            for c in &a.filter {
                credited.insert((a.relation.clone(), c.clone()));
                if ok {
                    column(t, c).filter_reads += 1;
                    hit(&a.relation, c, |h| h.read = true);
                }
            }
            for c in &a.written {
                credited.insert((a.relation.clone(), c.clone()));
                if ok {
                    column(t, c).writes += 1;
                    hit(&a.relation, c, |h| h.write = true);
                }
            }
            // Removing rows changes every column: `*` stands for them all.
            if ok && a.deletes_rows {
                hit(&a.relation, "*", |h| h.write = true);
            }
        }
        // Columns the policy decision names (refused or masked).
        let mut decided_tables = BTreeSet::new();
        if refused || masked {
            for qualified in s.policy.iter().flat_map(|p| p.columns.iter()) {
                let Some((table, col)) = qualified.rsplit_once('.') else {
                    continue;
                };
                decided_tables.insert(table.to_owned());
                let t = self.tables.entry(table.to_owned()).or_default();
                let c = column(t, col);
                if refused {
                    c.refusals += 1;
                    hit(table, col, |h| h.refused = true);
                } else {
                    c.masks += 1;
                    hit(table, col, |h| h.masked = true);
                }
                credited.insert((table.to_owned(), col.to_owned()));
            }
        }
        for (table, col) in credited {
            let t = self.tables.entry(table).or_default();
            *column(t, &col).users.entry(user.to_owned()).or_default() += 1;
        }
        for name in touched_tables.union(&decided_tables) {
            let t = self.tables.entry(name.clone()).or_default();
            *t.stats.users.entry(user.to_owned()).or_default() += 1;
            if refused {
                t.stats.refusals += 1;
            }
            if masked && decided_tables.contains(name) {
                t.stats.masks += 1;
            }
        }
        for (class, h) in hits {
            let c = self.classes.entry(class).or_default();
            c.reads += u64::from(h.read);
            c.writes += u64::from(h.write);
            c.refusals += u64::from(h.refused);
            c.masks += u64::from(h.masked);
            *c.users.entry(user.to_owned()).or_default() += 1;
        }
    }

    /// Tables (by name, columns by name) and classification groups.
    pub fn finish(self, policy: bool) -> (Vec<TableStats>, Classifications) {
        let tables = self
            .tables
            .into_iter()
            .map(|(name, acc)| TableStats {
                table: name,
                columns: acc
                    .columns
                    .into_iter()
                    .map(|(column, c)| ColumnStats { column, ..c })
                    .collect(),
                ..acc.stats
            })
            .collect();
        let mut seen = self.columns_seen;
        let mut groups: Vec<ClassStats> = self
            .classes
            .into_iter()
            .map(|(name, c)| ClassStats {
                columns: seen.remove(&name).unwrap_or_default().into_iter().collect(),
                name,
                ..c
            })
            .collect();
        // The unclassified rest reads best after the named classes.
        groups.sort_by_key(|g| g.name == UNCLASSIFIED);
        let source = if policy { "policy" } else { "table" };
        (
            tables,
            Classifications {
                source: source.into(),
                groups,
            },
        )
    }
}

fn column<'a>(t: &'a mut TableAcc, name: &str) -> &'a mut ColumnStats {
    t.columns.entry(name.to_owned()).or_default()
}

/// The classification of `table.column`: the policy's, or the table itself
/// when there is no policy.
pub fn classify(policy: Option<&Policy>, table: &str, column: &str) -> String {
    let Some(p) = policy else {
        return table.to_owned();
    };
    let (schema, name) = table.split_once('.').unwrap_or(("", table));
    p.classify(schema, name, column)
        .and_then(|i| p.classifications.get(i))
        .map_or_else(|| UNCLASSIFIED.to_owned(), |c| c.name.clone())
}
