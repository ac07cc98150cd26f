//! Capture of `COPY table FROM STDIN`: the client's CopyData stream is read
//! as it goes by (never changed) and each row's key and captured columns
//! become a change row, as an INSERT's would. `layout.rs` reads the
//! statement's columns and options; `text.rs` (text and CSV) and
//! `binary.rs` split the stream into fields; `row.rs` collects the fields
//! of interest and adds the row to the statement's changes.

pub mod binary;
pub mod decode;
pub mod layout;
pub mod row;
pub mod text;

pub use layout::{layout, Columns, Format, Layout};

use super::rows::Changes;
use binary::BinaryParser;
use row::Row;
use std::sync::Arc;
use text::TextParser;

/// The reading of one COPY FROM STDIN's data.
#[derive(Debug, Clone)]
pub struct CopyIn {
    layout: Arc<Layout>,
    parser: Parser,
    row: Row,
    /// PostgreSQL answered CopyInResponse: data from now on is this COPY's.
    started: bool,
    /// CopyDone came: nothing more belongs to it.
    done: bool,
}

#[derive(Debug, Clone)]
enum Parser {
    Text(TextParser),
    Binary(BinaryParser),
}

impl CopyIn {
    /// A reader for a COPY laid out as `layout`.
    pub fn new(layout: Arc<Layout>) -> Self {
        let parser = match layout.format {
            Format::Binary => Parser::Binary(BinaryParser::default()),
            _ => Parser::Text(TextParser::new(&layout)),
        };
        Self {
            row: Row::new(&layout),
            layout,
            parser,
            started: false,
            done: false,
        }
    }

    /// PostgreSQL is ready for the data.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// One CopyData message's bytes; `cap`: most rows kept.
    pub fn data(&mut self, bytes: &[u8], changes: &mut Changes, cap: usize) {
        if !self.started || self.done {
            return;
        }
        let mut sink = row::Sink {
            layout: &self.layout,
            changes,
            cap,
        };
        match &mut self.parser {
            Parser::Text(p) => p.feed(bytes, &mut self.row, &mut sink),
            Parser::Binary(p) => p.feed(bytes, &mut self.row, &mut sink),
        }
    }

    /// CopyDone: a last row without its line end still counts.
    pub fn finish(&mut self, changes: &mut Changes, cap: usize) {
        if !self.started || self.done {
            return;
        }
        self.done = true;
        let mut sink = row::Sink {
            layout: &self.layout,
            changes,
            cap,
        };
        match &mut self.parser {
            Parser::Text(p) => p.finish(&mut self.row, &mut sink),
            Parser::Binary(p) => p.finish(&mut self.row, &mut sink),
        }
    }
}

#[cfg(test)]
mod tests;
