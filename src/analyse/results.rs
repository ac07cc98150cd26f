//! The client-facing result columns of a statement, from the walk's output
//! columns: lineage indexes become relation names, and a column is only
//! reported direct when its position and source are certain.

use super::model::{ColumnSource, RelationAccess, ResultColumn};
use super::scope::{ScopeColumn, OPEN_COLUMNS};

/// Converts output columns (lineage indexes into `accesses`) to result
/// columns. Past an unknown-width placeholder positions are not known, so
/// nothing from there on is direct; neither is a column without a known
/// source or with an unknown (`*`) one.
pub fn result_columns(cols: &[ScopeColumn], accesses: &[RelationAccess]) -> Vec<ResultColumn> {
    let mut positions_known = true;
    cols.iter()
        .map(|c| {
            positions_known &= !c.is_placeholder();
            let sources: Vec<ColumnSource> = c
                .lineage
                .iter()
                .filter_map(|r| {
                    accesses.get(r.rel).map(|a| ColumnSource {
                        relation: a.relation.clone(),
                        column: r.col.clone(),
                    })
                })
                .collect();
            let certain = !sources.is_empty()
                && sources.len() == c.lineage.len()
                && sources.iter().all(|s| s.column != OPEN_COLUMNS);
            ResultColumn {
                name: c.name.clone(),
                direct: c.direct && positions_known && certain,
                sources,
            }
        })
        .collect()
}
