//! The name PostgreSQL gives an unnamed select-list item (FigureColname in
//! parse_target.c), so result columns carry RowDescription's names.

use pg_query::protobuf::{self as pb, SubLinkType};
use pg_query::NodeEnum;

/// A name that PostgreSQL treats as a real one (a column, a function).
const STRONG: u8 = 2;
/// A fallback name (a cast's type, "case"): a CASE does not take it.
const WEAK: u8 = 1;

/// The output column name of an unnamed select-list item.
pub fn figure_colname(n: &pb::Node) -> String {
    figure(n).map_or_else(|| "?column?".to_owned(), |(name, _)| name)
}

fn string(n: &pb::Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

fn strong(name: &str) -> Option<(String, u8)> {
    Some((name.to_owned(), STRONG))
}

/// A name and its strength; `None` when the item has no name of its own.
fn figure(n: &pb::Node) -> Option<(String, u8)> {
    match n.node.as_ref()? {
        // The last field name, `*` ignored.
        NodeEnum::ColumnRef(cr) => cr
            .fields
            .iter()
            .filter_map(string)
            .next_back()
            .and_then(strong),
        NodeEnum::AIndirection(ind) => {
            match ind.indirection.iter().filter_map(string).next_back() {
                Some(f) => strong(f),
                None => ind.arg.as_deref().and_then(figure),
            }
        }
        NodeEnum::FuncCall(f) => f
            .funcname
            .iter()
            .filter_map(string)
            .next_back()
            .and_then(strong),
        NodeEnum::AExpr(a) if a.kind == pb::AExprKind::AexprNullif as i32 => strong("nullif"),
        NodeEnum::TypeCast(t) => {
            let inner = t.arg.as_deref().and_then(figure);
            if inner.as_ref().is_some_and(|(_, s)| *s > WEAK) {
                return inner;
            }
            let type_name = t
                .type_name
                .as_ref()
                .and_then(|tn| tn.names.iter().filter_map(string).next_back());
            type_name.map(|n| (n.to_owned(), WEAK)).or(inner)
        }
        NodeEnum::CollateClause(c) => c.arg.as_deref().and_then(figure),
        NodeEnum::GroupingFunc(_) => strong("grouping"),
        NodeEnum::MergeSupportFunc(_) => strong("merge_action"),
        NodeEnum::SubLink(s) => sublink(s),
        NodeEnum::CaseExpr(c) => match c.defresult.as_deref().and_then(figure) {
            Some((name, s)) if s > WEAK => Some((name, s)),
            _ => Some(("case".to_owned(), WEAK)),
        },
        NodeEnum::AArrayExpr(_) => strong("array"),
        NodeEnum::RowExpr(_) => strong("row"),
        NodeEnum::CoalesceExpr(_) => strong("coalesce"),
        NodeEnum::MinMaxExpr(m) => match pb::MinMaxOp::try_from(m.op) {
            Ok(pb::MinMaxOp::IsGreatest) => strong("greatest"),
            Ok(pb::MinMaxOp::IsLeast) => strong("least"),
            _ => None,
        },
        NodeEnum::SqlvalueFunction(f) => sql_value_function(f),
        NodeEnum::XmlExpr(x) => {
            use pb::XmlExprOp as Op;
            match Op::try_from(x.op).unwrap_or(Op::Undefined) {
                Op::IsXmlconcat => strong("xmlconcat"),
                Op::IsXmlelement => strong("xmlelement"),
                Op::IsXmlforest => strong("xmlforest"),
                Op::IsXmlparse => strong("xmlparse"),
                Op::IsXmlpi => strong("xmlpi"),
                Op::IsXmlroot => strong("xmlroot"),
                Op::IsXmlserialize => strong("xmlserialize"),
                Op::IsDocument | Op::Undefined => None,
            }
        }
        NodeEnum::XmlSerialize(_) => strong("xmlserialize"),
        NodeEnum::JsonParseExpr(_) => strong("json"),
        NodeEnum::JsonScalarExpr(_) => strong("json_scalar"),
        NodeEnum::JsonSerializeExpr(_) => strong("json_serialize"),
        NodeEnum::JsonObjectConstructor(_) => strong("json_object"),
        NodeEnum::JsonArrayConstructor(_) | NodeEnum::JsonArrayQueryConstructor(_) => {
            strong("json_array")
        }
        NodeEnum::JsonObjectAgg(_) => strong("json_objectagg"),
        NodeEnum::JsonArrayAgg(_) => strong("json_arrayagg"),
        NodeEnum::JsonFuncExpr(f) => match pb::JsonExprOp::try_from(f.op) {
            Ok(pb::JsonExprOp::JsonExistsOp) => strong("json_exists"),
            Ok(pb::JsonExprOp::JsonQueryOp) => strong("json_query"),
            Ok(pb::JsonExprOp::JsonValueOp) => strong("json_value"),
            _ => None,
        },
        _ => None,
    }
}

/// EXISTS, ARRAY(...), and a scalar subquery (named after its one column).
fn sublink(s: &pb::SubLink) -> Option<(String, u8)> {
    match SubLinkType::try_from(s.sub_link_type).ok()? {
        SubLinkType::ExistsSublink => strong("exists"),
        SubLinkType::ArraySublink => strong("array"),
        SubLinkType::ExprSublink => {
            let Some(NodeEnum::SelectStmt(sel)) = s.subselect.as_deref()?.node.as_ref() else {
                return None;
            };
            match sel.target_list.first()?.node.as_ref()? {
                NodeEnum::ResTarget(rt) if !rt.name.is_empty() => strong(&rt.name),
                NodeEnum::ResTarget(rt) => strong(&figure_colname(rt.val.as_deref()?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// CURRENT_DATE, CURRENT_USER, ...: named like the function they act as.
fn sql_value_function(f: &pb::SqlValueFunction) -> Option<(String, u8)> {
    use pb::SqlValueFunctionOp as Op;
    let name = match Op::try_from(f.op).ok()? {
        Op::SvfopCurrentDate => "current_date",
        Op::SvfopCurrentTime | Op::SvfopCurrentTimeN => "current_time",
        Op::SvfopCurrentTimestamp | Op::SvfopCurrentTimestampN => "current_timestamp",
        Op::SvfopLocaltime | Op::SvfopLocaltimeN => "localtime",
        Op::SvfopLocaltimestamp | Op::SvfopLocaltimestampN => "localtimestamp",
        Op::SvfopCurrentRole => "current_role",
        Op::SvfopCurrentUser => "current_user",
        Op::SvfopUser => "user",
        Op::SvfopSessionUser => "session_user",
        Op::SvfopCurrentCatalog => "current_catalog",
        Op::SvfopCurrentSchema => "current_schema",
        Op::SqlvalueFunctionOpUndefined => return None,
    };
    strong(name)
}
