//! One row of COPY data being read: the bytes of the fields that matter
//! (key and captured columns; the rest are only counted), then the change
//! row they make.

use super::decode;
use super::layout::{Format, Layout};
use crate::capture::rows::{ChangeRow, Changes};
use serde_json::Value;

/// Where finished rows go.
pub struct Sink<'a> {
    /// The COPY's columns and format.
    pub layout: &'a Layout,
    /// The statement's changes.
    pub changes: &'a mut Changes,
    /// Most rows kept.
    pub cap: usize,
}

/// The row being read.
#[derive(Debug, Clone)]
pub struct Row {
    /// Index of the field being read.
    field: usize,
    /// Per field, its bytes so far (only fields that matter; buffers are
    /// reused from row to row).
    values: Vec<Vec<u8>>,
    /// Per field, whether it was NULL.
    nulls: Vec<bool>,
    /// The row cannot be read (PostgreSQL will reject it too).
    bad: bool,
    /// The row is under the cap: its values are kept.
    keep: bool,
}

impl Row {
    /// An empty row for `layout`.
    pub fn new(layout: &Layout) -> Self {
        Self {
            field: 0,
            values: vec![Vec::new(); layout.fields],
            nulls: vec![false; layout.fields],
            bad: false,
            keep: true,
        }
    }

    fn buffer(&mut self, layout: &Layout) -> Option<&mut Vec<u8>> {
        if !self.keep || !layout.wanted.get(self.field).copied().unwrap_or(false) {
            return None;
        }
        self.values.get_mut(self.field)
    }

    /// One byte of the current field's value.
    pub fn push(&mut self, b: u8, layout: &Layout) {
        if let Some(v) = self.buffer(layout) {
            v.push(b);
        }
    }

    /// Bytes of the current field's value.
    pub fn extend(&mut self, bytes: &[u8], layout: &Layout) {
        if let Some(v) = self.buffer(layout) {
            v.extend_from_slice(bytes);
        }
    }

    /// The current field ended (`null`: it was SQL NULL).
    pub fn end_field(&mut self, null: bool) {
        if let Some(n) = self.nulls.get_mut(self.field) {
            *n = null;
        }
        self.field = self.field.saturating_add(1);
    }

    /// Whether the row has no field yet.
    pub fn is_empty(&self) -> bool {
        self.field == 0
    }

    /// The row cannot be read.
    pub fn mark_bad(&mut self) {
        self.bad = true;
    }

    /// The row ended: it becomes a change row (or counts as unreadable).
    pub fn end_row(&mut self, sink: &mut Sink<'_>) {
        let c = &mut *sink.changes;
        c.total += 1;
        if self.bad || self.field != sink.layout.fields {
            c.malformed += 1;
        } else if self.keep {
            let row = self.change_row(sink.layout, c);
            c.rows.push(row);
        }
        self.reset();
        self.keep = sink.changes.rows.len() < sink.cap;
    }

    /// Forgets the row (a header line).
    pub fn discard(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.field = 0;
        self.bad = false;
        for v in &mut self.values {
            v.clear();
        }
    }

    fn value(&self, field: Option<usize>, layout: &Layout, changes: &mut Changes) -> Value {
        let Some(f) = field else { return Value::Null };
        if self.nulls.get(f).copied().unwrap_or(true) {
            return Value::Null;
        }
        let bytes = self.values.get(f).map(Vec::as_slice).unwrap_or_default();
        match layout.format {
            Format::Binary => {
                let ty = layout.types.get(f).copied().unwrap_or(0);
                let (text, exact) = decode::show(ty, bytes);
                if !exact {
                    changes.hex_values += 1;
                }
                Value::String(text)
            }
            // The text the client sent, as PostgreSQL will read it.
            Format::Text | Format::Csv => {
                Value::String(String::from_utf8_lossy(bytes).into_owned())
            }
        }
    }

    fn change_row(&self, layout: &Layout, changes: &mut Changes) -> ChangeRow {
        ChangeRow {
            key: layout
                .key
                .iter()
                .map(|&f| self.value(f, layout, changes))
                .collect(),
            old: Vec::new(),
            action: None,
            new: layout
                .columns
                .iter()
                .map(|&f| self.value(Some(f), layout, changes))
                .collect(),
        }
    }
}
