//! The captured rows: taking pgwarden's column off each DataRow and
//! RowDescription, decoding its `[[key...], values...]` JSON, and the
//! `changes` object of the audit record (restricted values as keyed hashes).

use super::plan::Wanted;
use super::rewrite::Op;
use crate::mask::HashKey;
use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

/// One changed row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// Primary key values.
    pub key: Vec<Value>,
    /// Old values (UPDATE, DELETE), one per captured column.
    pub old: Vec<Value>,
    /// New values (INSERT, UPDATE), one per captured column.
    pub new: Vec<Value>,
    /// Upserts and MERGE: what happened to the row.
    pub action: Option<Action>,
}

/// What an upsert or a MERGE did to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new row.
    Inserted,
    /// An existing row changed.
    Updated,
    /// A row removed.
    Deleted,
}

impl Action {
    /// The name in the audit record.
    pub fn name(self) -> &'static str {
        match self {
            Action::Inserted => "inserted",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }
}

/// The rows a statement changed, up to a cap.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Rows kept, in the order PostgreSQL changed them.
    pub rows: Vec<ChangeRow>,
    /// Rows changed, kept or not.
    pub total: u64,
    /// Rows whose capture value could not be read.
    pub malformed: u64,
    /// Binary COPY values recorded as the hex of their bytes.
    pub hex_values: u64,
    /// Why the rows may not be all the statement changed.
    pub incomplete: Option<String>,
}

impl Changes {
    /// Adds the row whose capture cell is `cell` (`None` = SQL NULL).
    pub fn add(&mut self, cell: Option<&[u8]>, op: Op, width: usize, cap: usize) {
        self.total += 1;
        if self.rows.len() >= cap {
            return;
        }
        match cell.and_then(|c| decode(c, op, width)) {
            Some(row) => self.rows.push(row),
            None => self.malformed += 1,
        }
    }

    /// Adds a row already decoded.
    pub fn push(&mut self, row: ChangeRow, cap: usize) {
        self.total += 1;
        if self.rows.len() < cap {
            self.rows.push(row);
        }
    }
}

fn decode(cell: &[u8], op: Op, width: usize) -> Option<ChangeRow> {
    let Value::Array(mut items) = serde_json::from_slice(cell).ok()? else {
        return None;
    };
    if items.is_empty() {
        return None;
    }
    let Value::Array(key) = items.remove(0) else {
        return None;
    };
    let mut action = None;
    let (old, new) = match op {
        Op::Update => {
            if items.len() != 2 * width {
                return None;
            }
            let mut old = Vec::with_capacity(width);
            let mut new = Vec::with_capacity(width);
            for pair in items.chunks(2) {
                old.push(pair[0].clone());
                new.push(pair[1].clone());
            }
            (old, new)
        }
        Op::Delete if items.len() == width => (items, Vec::new()),
        Op::Insert if items.len() == width => (Vec::new(), items),
        // New values, then the old ones (an array, or null where no
        // pre-image row was taken) and whether the row was updated.
        Op::Upsert { .. } if items.len() == width + 2 => {
            let was_updated = items.pop()?.as_bool()?;
            let old = match items.pop()? {
                Value::Array(old) if was_updated && old.len() == width => old,
                _ => Vec::new(),
            };
            action = Some(if was_updated {
                Action::Updated
            } else {
                Action::Inserted
            });
            (old, items)
        }
        _ => return None,
    };
    Some(ChangeRow {
        key,
        old,
        new,
        action,
    })
}

/// A value as the audit record shows it: clear, or a keyed hash.
fn shown(v: &Value, hashed: bool, key: &HashKey) -> Value {
    if !hashed || v.is_null() {
        return v.clone();
    }
    let mac = key.mac(v.to_string().as_bytes());
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    Value::String(format!("hmac-sha256:{hex}"))
}

fn named(w: &Wanted, values: &[Value], key: &HashKey) -> Value {
    let mut m = Map::new();
    for ((c, v), h) in w.columns.iter().zip(values).zip(&w.hashed) {
        m.insert(c.clone(), shown(v, *h, key));
    }
    Value::Object(m)
}

/// The record's `changes` object. `outcome` is how the transaction ended.
pub fn record(
    w: &Wanted,
    op: Option<Op>,
    changes: &Changes,
    reason: Option<&str>,
    outcome: &str,
    key: &HashKey,
) -> Value {
    let mut v = json!({
        "table": format!("{}.{}", w.relation.schema, w.relation.name),
        "columns": w.columns,
        "key_columns": w.key,
        "transaction": outcome,
    });
    let Some(op) = op else {
        v["status"] = json!("unavailable");
        v["reason"] = json!(reason.unwrap_or("not captured"));
        return v;
    };
    v["status"] = json!("captured");
    v["operation"] = json!(op.name());
    if op == (Op::Upsert { old_values: false }) {
        v["old_values"] = json!(
            "not read: updated rows' old values are captured when the conflict target is the \
             primary key, the column list names it and the VALUES list gives it as constants \
             or parameters"
        );
    }
    let rows: Vec<Value> = changes
        .rows
        .iter()
        .map(|r| {
            let mut o = json!({ "key": r.key });
            if let Some(action) = r.action {
                o["action"] = json!(action.name());
                if action == Action::Updated && r.old.is_empty() {
                    // Updated, but its old values were not read.
                    o["old"] = Value::Null;
                }
            }
            if !r.old.is_empty() {
                o["old"] = named(w, &r.old, key);
            }
            if !r.new.is_empty() {
                o["new"] = named(w, &r.new, key);
            }
            o
        })
        .collect();
    v["rows_total"] = json!(changes.total);
    v["rows_omitted"] = json!(changes.total - changes.rows.len() as u64);
    if let Some(why) = &changes.incomplete {
        v["incomplete"] = json!(why);
    }
    if changes.malformed > 0 {
        v["rows_unreadable"] = json!(changes.malformed);
    }
    if changes.hex_values > 0 {
        v["note"] = json!(
            "binary COPY values of types pgwarden does not decode are recorded as \\x and the hex of their binary form"
        );
    }
    v["rows"] = Value::Array(rows);
    v
}

/// Offsets of the cells of a DataRow body: (start of the last cell's
/// length word, the last cell's value or `None` for NULL).
fn last_cell(body: &[u8]) -> Option<(usize, Option<&[u8]>)> {
    let n = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    if n < 1 {
        return None;
    }
    let mut pos = 2;
    let mut last = (0, None);
    for _ in 0..n {
        let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
        let start = pos;
        pos += 4;
        let value = if len < 0 {
            None
        } else {
            let v = body.get(pos..pos + len as usize)?;
            pos += len as usize;
            Some(v)
        };
        last = (start, value);
    }
    (pos == body.len()).then_some(last)
}

/// Takes the last cell off a DataRow body: writes the row without it to
/// `out` (unless `hide`), returns the cell. `None`: malformed row.
pub fn strip_data_row<'a>(
    body: &'a [u8],
    hide: bool,
    out: &mut BytesMut,
) -> Option<Option<&'a [u8]>> {
    let (at, cell) = last_cell(body)?;
    if !hide {
        let n = i16::from_be_bytes([body[0], body[1]]) - 1;
        out.put_u8(b'D');
        out.put_i32((4 + 2 + at - 2) as i32);
        out.put_i16(n);
        out.extend_from_slice(&body[2..at]);
    }
    Some(cell)
}

/// Takes the last field off a RowDescription body, writing the shorter
/// description (or NoData when nothing is left and `no_data`) to `out`.
pub fn strip_row_description(body: &[u8], no_data: bool, out: &mut BytesMut) -> Option<()> {
    let n = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    if n < 1 {
        return None;
    }
    let mut pos = 2;
    let mut last = 2;
    for _ in 0..n {
        last = pos;
        let nul = body.get(pos..)?.iter().position(|&b| b == 0)?;
        pos += nul + 1 + 18;
    }
    if pos != body.len() {
        return None;
    }
    if no_data {
        out.put_u8(b'n');
        out.put_i32(4);
    } else {
        out.put_u8(b'T');
        out.put_i32((4 + 2 + last - 2) as i32);
        out.put_i16(n - 1);
        out.extend_from_slice(&body[2..last]);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_row(cells: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (cells.len() as i16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn the_last_cell_comes_off() {
        let body = data_row(&[Some(b"7"), None, Some(b"[[7],1,2]")]);
        let mut out = BytesMut::new();
        let cell = strip_data_row(&body, false, &mut out).unwrap();
        assert_eq!(cell, Some(&b"[[7],1,2]"[..]));
        let mut want = vec![b'D'];
        let rest = data_row(&[Some(b"7"), None]);
        want.extend_from_slice(&((rest.len() + 4) as i32).to_be_bytes());
        want.extend_from_slice(&rest);
        assert_eq!(&out[..], &want[..]);
        out.clear();
        assert!(strip_data_row(&body, true, &mut out).is_some());
        assert!(out.is_empty());
        assert!(strip_data_row(&body[..body.len() - 1], false, &mut out).is_none());
    }

    #[test]
    fn descriptions_lose_the_field_or_become_no_data() {
        let field = |name: &str| {
            let mut f = name.as_bytes().to_vec();
            f.push(0);
            f.extend_from_slice(&[0; 18]);
            f
        };
        let mut body = 2i16.to_be_bytes().to_vec();
        body.extend(field("id"));
        body.extend(field("pgwarden_capture"));
        let mut out = BytesMut::new();
        strip_row_description(&body, false, &mut out).unwrap();
        let mut want = vec![b'T', 0, 0, 0, (4 + 2 + 21) as u8, 0, 1];
        want.extend(field("id"));
        assert_eq!(&out[..], &want[..]);
        out.clear();
        let mut one = 1i16.to_be_bytes().to_vec();
        one.extend(field("pgwarden_capture"));
        strip_row_description(&one, true, &mut out).unwrap();
        assert_eq!(&out[..], &[b'n', 0, 0, 0, 4]);
    }

    #[test]
    fn rows_decode_per_operation() {
        let mut c = Changes::default();
        c.add(Some(br#"[[5],100,110]"#), Op::Update, 1, 10);
        c.add(Some(br#"[[6],"x"]"#), Op::Delete, 1, 10);
        c.add(Some(br#"[[7]]"#), Op::Update, 1, 10);
        c.add(Some(br#"[[8],1,2]"#), Op::Update, 1, 1);
        assert_eq!(c.total, 4);
        assert_eq!(c.malformed, 1);
        // The update and the delete; the fourth is over the cap.
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.rows[1].old, vec![json!("x")]);
        assert!(c.rows[1].new.is_empty());
        assert_eq!(c.rows[0].old, vec![json!(100)]);
        assert_eq!(c.rows[0].new, vec![json!(110)]);
    }

    #[test]
    fn restricted_values_are_hashed() {
        let w = Wanted {
            relation: crate::analyse::RelationName {
                schema: "hr".into(),
                name: "employees".into(),
            },
            key: vec!["id".into()],
            columns: vec!["ssn".into(), "phone".into()],
            key_casts: Vec::new(),
            merge: false,
            hashed: vec![true, false],
            unavailable: None,
            max_rows: 10,
        };
        let mut c = Changes::default();
        c.add(Some(br#"[[1],"111",null,"a","b"]"#), Op::Update, 2, 10);
        let key = HashKey::new(b"k");
        let v = record(&w, Some(Op::Update), &c, None, "committed", &key);
        let old_ssn = v["rows"][0]["old"]["ssn"].as_str().unwrap();
        assert!(old_ssn.starts_with("hmac-sha256:") && old_ssn.len() == 12 + 64);
        assert_eq!(v["rows"][0]["new"]["ssn"], Value::Null);
        assert_eq!(v["rows"][0]["new"]["phone"], json!("b"));
        assert_eq!(v["transaction"], json!("committed"));
        assert_eq!(v["rows_total"], json!(1));
    }
}
