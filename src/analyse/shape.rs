//! The shape of a statement, as far as bulk extraction cares: which tables
//! a top-level read returns without any WHERE or LIMIT, its LIMIT or FETCH
//! count, and whether it is a COPY ... TO. Read from the parse tree, never
//! from the text.
//!
//! Counts need care with the analysis cache: `LIMIT 5` and `LIMIT 5000000`
//! share one cached analysis (literals do not count in the cache key). A
//! count written as a literal therefore also records which literal token
//! of the text it is, and [`Shape::with_counts_from`] re-reads it from the
//! text a session actually sent.

use super::lexer;
use super::model::{RelationName, ResultColumn, Shape, ShapeCount};
use super::walker::{Resolved, Walker};
use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// `FETCH ALL` / `FETCH FORWARD ALL`, as the parser stores it.
const FETCH_ALL: i64 = i64::MAX;

/// What [`shape`] needs to know besides the statement node.
pub struct ShapeInput<'t> {
    /// The whole text the statement came from (locations are offsets in it).
    pub sql: &'t str,
    /// Byte span of this statement in `sql`.
    pub span: (usize, usize),
    /// `standard_conforming_strings`.
    pub scs: bool,
}

/// A relation named in a top-level FROM list.
enum FromItem {
    Table(RelationName),
    /// A view: its rows are its base tables' rows.
    View,
}

/// The shape of one top-level statement; `results` are its result columns.
pub fn shape(
    w: &Walker<'_>,
    node: &NodeEnum,
    results: Option<&[ResultColumn]>,
    input: &ShapeInput<'_>,
) -> Shape {
    let mut out = Shape::default();
    match node {
        NodeEnum::SelectStmt(s) => select(w, s, results, input, &mut out),
        NodeEnum::CopyStmt(c) if !c.is_from => {
            out.copy_to = true;
            if let Some(NodeEnum::SelectStmt(s)) = c.query.as_deref().and_then(|q| q.node.as_ref())
            {
                select(w, s, results, input, &mut out);
            }
        }
        NodeEnum::DeclareCursorStmt(d) => {
            if let Some(NodeEnum::SelectStmt(s)) = d.query.as_deref().and_then(|q| q.node.as_ref())
            {
                select(w, s, results, input, &mut out);
            }
        }
        NodeEnum::FetchStmt(f) if !f.ismove => out.fetch = fetch_count(f, input),
        _ => {}
    }
    out
}

fn select(
    w: &Walker<'_>,
    s: &pb::SelectStmt,
    results: Option<&[ResultColumn]>,
    input: &ShapeInput<'_>,
    out: &mut Shape,
) {
    if s.into_clause.is_some() {
        return;
    }
    out.limit = s.limit_count.as_deref().and_then(|n| limit_count(n, input));
    let unlimited = out.limit.is_none();
    let plain = pb::SetOperation::try_from(s.op).is_ok_and(|op| {
        matches!(
            op,
            pb::SetOperation::SetopNone | pb::SetOperation::Undefined
        )
    });
    // Aggregates and grouping return summaries, not the rows themselves;
    // only result columns that are a table's own values count below.
    if !plain
        || !unlimited
        || s.where_clause.is_some()
        || !s.group_clause.is_empty()
        || s.having_clause.is_some()
    {
        return;
    }
    let ctes: Vec<&str> = s
        .with_clause
        .iter()
        .flat_map(|w| &w.ctes)
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::CommonTableExpr(c)) => Some(c.ctename.as_str()),
            _ => None,
        })
        .collect();
    let mut from = Vec::new();
    for item in &s.from_clause {
        from_items(w, item, &ctes, &mut from);
    }
    let direct: Vec<&RelationName> = results
        .unwrap_or_default()
        .iter()
        .filter(|r| r.direct)
        .flat_map(|r| r.sources.iter().map(|s| &s.relation))
        .collect();
    let any_view = from.iter().any(|f| matches!(f, FromItem::View));
    let mut reads: Vec<RelationName> = direct
        .into_iter()
        .filter(|rel| {
            any_view
                || from
                    .iter()
                    .any(|f| matches!(f, FromItem::Table(t) if t == *rel))
        })
        .cloned()
        .collect();
    reads.sort();
    reads.dedup();
    out.unfiltered_reads = reads;
}

/// Relations of a FROM item: tables and views named directly, through
/// joins; subqueries, functions and CTEs have their own filters.
fn from_items(w: &Walker<'_>, n: &pb::Node, ctes: &[&str], out: &mut Vec<FromItem>) {
    match n.node.as_ref() {
        Some(NodeEnum::RangeVar(rv)) => {
            if rv.schemaname.is_empty() && ctes.contains(&rv.relname.as_str()) {
                return;
            }
            if let Resolved::Relation(r) = w.resolve_relation(rv) {
                if r.kind == crate::catalog::RelKind::View {
                    out.push(FromItem::View);
                } else {
                    out.push(FromItem::Table(RelationName {
                        schema: r.schema.clone(),
                        name: r.name.clone(),
                    }));
                }
            }
        }
        Some(NodeEnum::JoinExpr(j)) => {
            for side in [&j.larg, &j.rarg].into_iter().flatten() {
                from_items(w, side, ctes, out);
            }
        }
        _ => {}
    }
}

/// A LIMIT / FETCH FIRST count written as a constant (`LIMIT ALL` and
/// `LIMIT NULL` are no limit); parameters and expressions are not evaluated.
fn limit_count(n: &pb::Node, input: &ShapeInput<'_>) -> Option<ShapeCount> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) if c.isnull => None,
        NodeEnum::AConst(c) => {
            let value = match c.val.as_ref()? {
                pb::a_const::Val::Ival(i) => u64::try_from(i.ival).ok()?,
                pb::a_const::Val::Fval(f) => parse_count(&f.fval)?,
                pb::a_const::Val::Sval(s) => parse_count(&s.sval)?,
                _ => return None,
            };
            let at = usize::try_from(c.location).ok()?;
            Some(ShapeCount {
                value,
                literal: literal_ordinal(input, |start| start == at),
                param: None,
            })
        }
        // `LIMIT $1` (or `$1::int8`): the value arrives with Bind.
        NodeEnum::ParamRef(p) => param_count(p),
        NodeEnum::TypeCast(c) => match c.arg.as_deref()?.node.as_ref()? {
            NodeEnum::ParamRef(p) => param_count(p),
            _ => None,
        },
        _ => None,
    }
}

/// A count held by parameter `$n`, known at Bind.
fn param_count(p: &pb::ParamRef) -> Option<ShapeCount> {
    Some(ShapeCount {
        value: 0,
        literal: None,
        param: Some(u16::try_from(p.number).ok().filter(|&n| n > 0)?),
    })
}

/// FETCH [FORWARD | BACKWARD] n | ALL: how many rows it asks for
/// (ABSOLUTE and RELATIVE name a position, one row).
fn fetch_count(f: &pb::FetchStmt, input: &ShapeInput<'_>) -> Option<ShapeCount> {
    let dir = pb::FetchDirection::try_from(f.direction).ok()?;
    if !matches!(
        dir,
        pb::FetchDirection::FetchForward | pb::FetchDirection::FetchBackward
    ) {
        return None;
    }
    if f.how_many == FETCH_ALL {
        return Some(ShapeCount {
            value: u64::MAX,
            literal: None,
            param: None,
        });
    }
    let value = f.how_many.unsigned_abs();
    // The count is the only literal a FETCH can hold; the parse tree keeps
    // no location for it, so find it within the statement's span.
    let (a, b) = input.span;
    Some(ShapeCount {
        value,
        literal: literal_ordinal(input, |start| start >= a && start < b),
        param: None,
    })
}

/// A count written as a numeric or string literal (`LIMIT '10'`, `1e6`).
fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim().trim_matches('\'');
    t.parse::<u64>().ok().or_else(|| {
        let f: f64 = t.parse().ok()?;
        (f.is_finite() && f >= 0.0).then(|| f.round().min(u64::MAX as f64) as u64)
    })
}

/// The ordinal, among the literal tokens of the whole text, of the first
/// one whose start satisfies `at`.
fn literal_ordinal(input: &ShapeInput<'_>, at: impl Fn(usize) -> bool) -> Option<u32> {
    let starts = lexer::literal_spans(input.sql, input.scs).ok()?;
    let i = starts.iter().position(|&(a, _)| at(a))?;
    u32::try_from(i).ok()
}

impl Shape {
    /// Whether any count was written as a literal (and so may differ in
    /// texts that share this cached analysis).
    pub fn has_literal_counts(&self) -> bool {
        self.limit.is_some_and(|c| c.literal.is_some())
            || self.fetch.is_some_and(|c| c.literal.is_some())
    }

    /// This shape with its literal counts read from `sql`, the text a
    /// session sent (which may differ from the one analysed in its
    /// literals only); `None` when nothing changes.
    pub fn with_counts_from(&self, sql: &str, scs: bool) -> Option<Shape> {
        if !self.has_literal_counts() {
            return None;
        }
        let spans = lexer::literal_spans(sql, scs).ok()?;
        let reread = |c: Option<ShapeCount>| {
            c.map(|c| match c.literal {
                Some(i) => ShapeCount {
                    value: spans
                        .get(i as usize)
                        .and_then(|&(a, b)| sql.get(a..b))
                        .and_then(parse_count)
                        .unwrap_or(c.value),
                    ..c
                },
                None => c,
            })
        };
        let out = Shape {
            limit: reread(self.limit),
            fetch: reread(self.fetch),
            ..self.clone()
        };
        (out != *self).then_some(out)
    }

    /// This shape with a parameter's LIMIT count read from a Bind message
    /// (`bind` is its body); `None` when there is none or it is unreadable.
    pub fn with_bound_limit(&self, bind: &[u8]) -> Option<Shape> {
        let c = self.limit?;
        let n = c.param?;
        let (value, binary) = crate::protocol::frontend::bind::param(bind, usize::from(n) - 1)?;
        let value = match (value?, binary) {
            (v, false) => parse_count(std::str::from_utf8(v).ok()?)?,
            (v, true) => {
                let signed = match v.len() {
                    8 => i64::from_be_bytes(v.try_into().ok()?),
                    4 => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
                    2 => i64::from(i16::from_be_bytes(v.try_into().ok()?)),
                    _ => return None,
                };
                u64::try_from(signed).ok()?
            }
        };
        Some(Shape {
            limit: Some(ShapeCount { value, ..c }),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_from_literals() {
        assert_eq!(parse_count("10"), Some(10));
        assert_eq!(parse_count("'25'"), Some(25));
        assert_eq!(parse_count("1e6"), Some(1_000_000));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("abc"), None);
    }

    #[test]
    fn parameter_counts_are_read_from_bind() {
        let shape = Shape {
            limit: Some(ShapeCount {
                value: 0,
                literal: None,
                param: Some(2),
            }),
            ..Shape::default()
        };
        // Bind: portal "", statement "s", no formats (text), two params.
        let mut body = b"\0s\0".to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(b"5000000");
        body.extend_from_slice(&0i16.to_be_bytes());
        let bound = shape.with_bound_limit(&body).expect("read");
        assert_eq!(bound.limit.map(|c| c.value), Some(5_000_000));
        // Truncated: nothing read, no panic.
        assert!(shape.with_bound_limit(&body[..body.len() - 5]).is_none());
    }

    #[test]
    fn literal_counts_are_reread_from_the_text() {
        let shape = Shape {
            limit: Some(ShapeCount {
                value: 5,
                literal: Some(1),
                param: None,
            }),
            ..Shape::default()
        };
        let other = shape
            .with_counts_from("SELECT * FROM t WHERE a = 'x' LIMIT 5000000", true)
            .expect("count differs");
        assert_eq!(other.limit.map(|c| c.value), Some(5_000_000));
        assert!(shape
            .with_counts_from("SELECT * FROM t WHERE a = 'y' LIMIT 5", true)
            .is_none());
    }
}
