//! What a `COPY table [(columns)] FROM STDIN` sends: its format and
//! options (from PostgreSQL's own parser) and, per field of a row, whether
//! it is a key or captured column.

use crate::capture::CaptureError;
use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// A table's columns (name, type oid) in attnum order.
pub type Columns = Vec<(String, u32)>;

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The default text format.
    Text,
    /// CSV.
    Csv,
    /// PostgreSQL's binary format.
    Binary,
}

/// How a COPY's rows are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Data format.
    pub format: Format,
    /// Field separator (text, CSV).
    pub delimiter: u8,
    /// The text of a NULL field (text, CSV).
    pub null: Vec<u8>,
    /// CSV quote.
    pub quote: u8,
    /// CSV escape inside quotes.
    pub escape: u8,
    /// The first line is a header.
    pub header: bool,
    /// Fields per row.
    pub fields: usize,
    /// Per field: read its value (a key or captured column).
    pub wanted: Vec<bool>,
    /// Per field: its column's type oid (0: unknown).
    pub types: Vec<u32>,
    /// Per key column: its field (`None`: not sent, recorded as null).
    pub key: Vec<Option<usize>>,
    /// Per captured column: its field.
    pub columns: Vec<usize>,
}

fn unsupported(what: impl std::fmt::Display) -> CaptureError {
    CaptureError::Copy(what.to_string())
}

/// An option's value as text (`None`: given without one).
fn arg(d: &pb::DefElem) -> Option<String> {
    match d.arg.as_ref()?.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::Integer(i) => Some(i.ival.to_string()),
        NodeEnum::Boolean(b) => Some(b.boolval.to_string()),
        NodeEnum::Float(f) => Some(f.fval.clone()),
        _ => None,
    }
}

fn one_byte(d: &pb::DefElem) -> Result<u8, CaptureError> {
    match arg(d).as_deref().map(str::as_bytes) {
        Some([b]) => Ok(*b),
        _ => Err(unsupported(format!(
            "COPY option {} is not one single-byte character",
            d.defname
        ))),
    }
}

/// The layout of statement `index` of `sql`, a COPY FROM STDIN into a
/// table with `table` columns (name, type oid) in attnum order, whose
/// primary key is `key` and captured columns `columns`.
pub fn layout(
    sql: &str,
    index: usize,
    key: &[String],
    columns: &[String],
    table: &[(String, u32)],
) -> Result<Layout, CaptureError> {
    let parsed = crate::analyse::parse::parse(sql, true)
        .map_err(|e| CaptureError::Rewrite(e.to_string()))?;
    let node = parsed
        .stmts
        .get(index)
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref());
    let Some(NodeEnum::CopyStmt(s)) = node else {
        return Err(unsupported("not a COPY"));
    };
    if !s.is_from {
        return Err(unsupported("not a COPY FROM"));
    }
    if s.is_program || !s.filename.is_empty() {
        return Err(unsupported(
            "COPY FROM a server file or program: pgwarden does not see the rows",
        ));
    }
    if s.where_clause.is_some() {
        return Err(unsupported(
            "COPY FROM ... WHERE: which rows are kept is decided by PostgreSQL",
        ));
    }
    let mut format = Format::Text;
    let (mut delimiter, mut null, mut quote, mut escape) = (None, None, None, None);
    let mut header = false;
    for o in &s.options {
        let Some(NodeEnum::DefElem(d)) = o.node.as_ref() else {
            continue;
        };
        match d.defname.as_str() {
            "format" => {
                format = match arg(d).as_deref() {
                    Some("text") => Format::Text,
                    Some("csv") => Format::Csv,
                    Some("binary") => Format::Binary,
                    f => return Err(unsupported(format!("COPY format {f:?}"))),
                }
            }
            "delimiter" => delimiter = Some(one_byte(d)?),
            "quote" => quote = Some(one_byte(d)?),
            "escape" => escape = Some(one_byte(d)?),
            "null" => null = Some(arg(d).unwrap_or_default().into_bytes()),
            "header" => {
                header = match arg(d).map(|a| a.to_ascii_lowercase()).as_deref() {
                    None | Some("true" | "on" | "1" | "match") => true,
                    Some("false" | "off" | "0") => false,
                    Some(h) => return Err(unsupported(format!("COPY HEADER {h}"))),
                }
            }
            // Neither changes which values are stored.
            "freeze" | "encoding" | "force_quote" => {}
            other => {
                return Err(unsupported(format!(
                    "COPY option {other} changes which values or rows are stored"
                )))
            }
        }
    }
    let csv = format == Format::Csv;
    let quote = quote.unwrap_or(b'"');
    let listed: Vec<String> = s
        .attlist
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = if listed.is_empty() {
        table.iter().map(|(n, _)| n.as_str()).collect()
    } else {
        listed.iter().map(String::as_str).collect()
    };
    let field = |c: &str| names.iter().position(|n| *n == c);
    let key: Vec<Option<usize>> = key.iter().map(|k| field(k.as_str())).collect();
    let columns = columns
        .iter()
        .map(|c| {
            field(c.as_str()).ok_or_else(|| unsupported(format!("column {c} is not in the COPY")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let mut wanted = vec![false; names.len()];
    for &f in key.iter().flatten().chain(&columns) {
        if let Some(w) = wanted.get_mut(f) {
            *w = true;
        }
    }
    let types = names
        .iter()
        .map(|n| {
            table
                .iter()
                .find(|(t, _)| t == n)
                .map_or(0, |(_, oid)| *oid)
        })
        .collect();
    Ok(Layout {
        format,
        delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
        null: null.unwrap_or_else(|| if csv { Vec::new() } else { b"\\N".to_vec() }),
        quote,
        escape: escape.unwrap_or(quote),
        header: header && format != Format::Binary,
        fields: names.len(),
        wanted,
        types,
        key,
        columns,
    })
}
