//! Splitting COPY binary data into rows and fields, in whatever pieces the
//! client sent it: the 11-byte signature, flags and header extension, then
//! per tuple an int16 field count (-1 ends the data) and per field an
//! int32 length (-1: NULL) and that many bytes.

use super::row::{Row, Sink};

/// `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and extension length.
const HEADER: usize = 11 + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the fixed header.
    Header,
    /// Skipping the header extension (bytes left).
    Extension(u32),
    /// Reading a tuple's field count.
    Count,
    /// Reading a field's length (fields left in the tuple, this one included).
    Length(u16),
    /// Reading a field's bytes (bytes left, fields left).
    Value(u32, u16),
    /// The trailer came.
    Done,
    /// The stream cannot be read any further.
    Broken,
}

/// Reader of binary COPY data.
#[derive(Debug, Clone)]
pub struct BinaryParser {
    state: State,
    /// The fixed-size word being read, and how much of it is here.
    word: [u8; HEADER],
    have: usize,
}

impl Default for BinaryParser {
    fn default() -> Self {
        Self {
            state: State::Header,
            word: [0; HEADER],
            have: 0,
        }
    }
}

impl BinaryParser {
    /// Collects a word of `n` bytes from `data`; true when complete.
    fn collect(&mut self, data: &mut &[u8], n: usize) -> bool {
        let want = n.saturating_sub(self.have).min(data.len());
        let (now, rest) = data.split_at(want);
        if let Some(w) = self.word.get_mut(self.have..self.have + want) {
            w.copy_from_slice(now);
        }
        self.have += want;
        *data = rest;
        if self.have < n {
            return false;
        }
        self.have = 0;
        true
    }

    fn word<const N: usize>(&self) -> [u8; N] {
        let mut w = [0; N];
        if let Some(s) = self.word.get(..N) {
            w.copy_from_slice(s);
        }
        w
    }

    /// Reads one piece of the data.
    pub fn feed(&mut self, mut data: &[u8], row: &mut Row, sink: &mut Sink<'_>) {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    if !self.collect(&mut data, HEADER) {
                        return;
                    }
                    let ext = i32::from_be_bytes(self.word_at(15));
                    self.state = match u32::try_from(ext) {
                        Ok(n) if self.word.starts_with(SIGNATURE) => State::Extension(n),
                        _ => self.broken(row, sink),
                    };
                }
                State::Extension(n) => {
                    let skip = (n as usize).min(data.len());
                    data = data.get(skip..).unwrap_or_default();
                    self.state = State::Extension(n - skip as u32);
                    if n as usize == skip {
                        self.state = State::Count;
                    }
                }
                State::Count => {
                    if !self.collect(&mut data, 2) {
                        return;
                    }
                    self.state = match i16::from_be_bytes(self.word()) {
                        -1 => State::Done,
                        0 => {
                            // PostgreSQL rejects an empty tuple.
                            row.mark_bad();
                            row.end_row(sink);
                            State::Count
                        }
                        n => match u16::try_from(n) {
                            Ok(n) => State::Length(n),
                            Err(_) => self.broken(row, sink),
                        },
                    };
                }
                State::Length(left) => {
                    if !self.collect(&mut data, 4) {
                        return;
                    }
                    self.state = match i32::from_be_bytes(self.word()) {
                        -1 => {
                            row.end_field(true);
                            self.next_field(left, row, sink)
                        }
                        len => match u32::try_from(len) {
                            Ok(0) => {
                                row.end_field(false);
                                self.next_field(left, row, sink)
                            }
                            Ok(len) => State::Value(len, left),
                            Err(_) => self.broken(row, sink),
                        },
                    };
                }
                State::Value(n, left) => {
                    let take = (n as usize).min(data.len());
                    let (now, rest) = data.split_at(take);
                    row.extend(now, sink.layout);
                    data = rest;
                    let n = n - take as u32;
                    self.state = if n == 0 {
                        row.end_field(false);
                        self.next_field(left, row, sink)
                    } else {
                        State::Value(n, left)
                    };
                }
                // After the trailer PostgreSQL rejects more data; nothing
                // more can be read once the framing is lost.
                State::Done | State::Broken => return,
            }
        }
    }

    fn word_at(&self, at: usize) -> [u8; 4] {
        let mut w = [0; 4];
        if let Some(s) = self.word.get(at..at + 4) {
            w.copy_from_slice(s);
        }
        w
    }

    fn next_field(&mut self, left: u16, row: &mut Row, sink: &mut Sink<'_>) -> State {
        if left <= 1 {
            row.end_row(sink);
            State::Count
        } else {
            State::Length(left - 1)
        }
    }

    /// The framing is lost: the row being read (or the header) counts as
    /// unreadable and the rest is only forwarded.
    fn broken(&mut self, row: &mut Row, sink: &mut Sink<'_>) -> State {
        row.mark_bad();
        row.end_row(sink);
        State::Broken
    }

    /// The data ended: a tuple cut short is unreadable.
    pub fn finish(&mut self, row: &mut Row, sink: &mut Sink<'_>) {
        let cut = match self.state {
            State::Header | State::Extension(_) => self.have > 0 || self.state != State::Header,
            State::Count => self.have > 0,
            State::Length(_) | State::Value(..) => true,
            State::Done | State::Broken => false,
        };
        if cut {
            self.state = self.broken(row, sink);
        }
    }
}
