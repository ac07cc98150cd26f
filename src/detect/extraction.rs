//! Pre-statement extraction flags: before a statement runs, what in its
//! shape looks like bulk extraction of protected data — a read of a
//! protected table with no WHERE and no LIMIT, a COPY ... TO over one, a
//! very large LIMIT or FETCH count. Flags never refuse anything; they go
//! into the statement's audit record and raise one warning alert.

use crate::analyse::{is_system_schema, Analysis};
use crate::catalog::Catalog;
use crate::policy::Policy;
use serde::Serialize;

/// A row count pgwarden shows as `ALL` (`FETCH ALL`).
const ALL: u64 = u64::MAX;

/// A set of extraction flags (one byte: it rides in every audit record),
/// serialized as the list of their names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagSet(u8);

impl FlagSet {
    /// A read of a protected table with no WHERE, LIMIT, GROUP BY or HAVING.
    pub const UNFILTERED_READ: FlagSet = FlagSet(1);
    /// COPY ... TO of a protected table or a query over one.
    pub const COPY_TO: FlagSet = FlagSet(2);
    /// A LIMIT of at least `large_fetch`.
    pub const LARGE_LIMIT: FlagSet = FlagSet(4);
    /// A FETCH of at least `large_fetch` rows, or FETCH ALL.
    pub const LARGE_FETCH: FlagSet = FlagSet(8);

    const NAMES: [(FlagSet, &'static str); 4] = [
        (Self::UNFILTERED_READ, "unfiltered_read"),
        (Self::COPY_TO, "copy_to"),
        (Self::LARGE_LIMIT, "large_limit"),
        (Self::LARGE_FETCH, "large_fetch"),
    ];

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Adds `f`.
    pub fn insert(&mut self, f: FlagSet) {
        self.0 |= f.0;
    }

    /// The names of the flags set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.0 & f.0 != 0)
            .map(|(_, n)| n)
    }
}

impl Serialize for FlagSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// What a statement was flagged for, with the evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExtractionFlags {
    /// `unfiltered_read`, `copy_to`, `large_limit`, `large_fetch`.
    pub flags: FlagSet,
    /// The protected tables concerned, as `schema.table`.
    pub tables: Vec<String>,
    /// The LIMIT count, when flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The FETCH count, when flagged (`null` with `fetch_all` for ALL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch: Option<u64>,
    /// `FETCH ALL`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fetch_all: bool,
}

impl ExtractionFlags {
    /// Whether nothing was flagged.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

fn add_tables(out: &mut ExtractionFlags, tables: Vec<String>) {
    for t in tables {
        if !out.tables.contains(&t) {
            out.tables.push(t);
        }
    }
}

/// The flags of `a` under `policy` (empty when it looks harmless).
pub fn flags(policy: &Policy, catalog: &Catalog, a: &Analysis) -> ExtractionFlags {
    let mut out = ExtractionFlags::default();
    if !policy.security.extraction_flags {
        return out;
    }
    let guarded = |schema: &str, name: &str| {
        !is_system_schema(schema) && policy.guards_table(schema, name, catalog)
    };
    let unfiltered: Vec<String> = a
        .shape
        .unfiltered_reads
        .iter()
        .filter(|r| guarded(&r.schema, &r.name))
        .map(ToString::to_string)
        .collect();
    if !unfiltered.is_empty() {
        out.flags.insert(FlagSet::UNFILTERED_READ);
        add_tables(&mut out, unfiltered);
    }
    // Relations whose values the statement reads (a FETCH: its cursor's).
    let read: Vec<String> = a
        .accesses
        .iter()
        .filter(|acc| !acc.output.is_empty() || !acc.filter.is_empty())
        .filter(|acc| guarded(&acc.relation.schema, &acc.relation.name))
        .map(|acc| acc.relation.to_string())
        .collect();
    if read.is_empty() {
        return out;
    }
    if a.shape.copy_to {
        out.flags.insert(FlagSet::COPY_TO);
        add_tables(&mut out, read.clone());
    }
    let Some(large) = policy.security.large_fetch else {
        return out;
    };
    if let Some(c) = a.shape.limit.filter(|c| c.value >= large) {
        out.flags.insert(FlagSet::LARGE_LIMIT);
        out.limit = Some(c.value);
        add_tables(&mut out, read.clone());
    }
    if let Some(c) = a.shape.fetch.filter(|c| c.value >= large) {
        out.flags.insert(FlagSet::LARGE_FETCH);
        if c.value == ALL {
            out.fetch_all = true;
        } else {
            out.fetch = Some(c.value);
        }
        add_tables(&mut out, read);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_sets_serialize_as_names_in_a_fixed_order() {
        let mut f = FlagSet::default();
        assert!(f.is_empty());
        f.insert(FlagSet::LARGE_FETCH);
        f.insert(FlagSet::UNFILTERED_READ);
        f.insert(FlagSet::LARGE_FETCH);
        assert_eq!(
            serde_json::to_value(f).unwrap(),
            serde_json::json!(["unfiltered_read", "large_fetch"])
        );
        assert_eq!(std::mem::size_of::<FlagSet>(), 1);
    }
}
