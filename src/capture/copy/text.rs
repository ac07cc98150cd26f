//! Splitting COPY text and CSV data into rows and fields, byte by byte, in
//! whatever pieces the client sent it: the state between pieces is a few
//! bytes, and only fields that matter are copied (see `row.rs`).
//!
//! Text: fields end at DELIMITER, rows at `\n`, `\r` or `\r\n`; backslash
//! escapes (`\t`, `\n`, `\\`, `\N`, octal `\ooo`, hex `\xhh`, ...); a field
//! whose raw text is the NULL string is NULL. CSV: QUOTE-enclosed fields
//! may hold delimiters, line ends and doubled (or ESCAPE-d) quotes; an
//! unquoted field equal to the NULL string is NULL. In both, a line
//! holding only `\.` ends the data, and HEADER skips the first line.

use super::layout::{Format, Layout};
use super::row::{Row, Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a field (CSV: outside quotes).
    Field,
    /// Text: after a backslash.
    Escape,
    /// Text: `\` and octal digits (value so far, digits read).
    Octal(u16, u8),
    /// Text: `\x` and hex digits (value so far, digits read).
    Hex(u8, u8),
    /// CSV: inside quotes.
    Quoted,
    /// CSV: a quote inside quotes: doubled, or the closing one.
    QuoteInQuoted,
    /// CSV: ESCAPE (other than QUOTE) inside quotes.
    EscapeInQuoted,
}

/// Reader of text or CSV COPY data.
#[derive(Debug, Clone)]
pub struct TextParser {
    csv: bool,
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: Box<[u8]>,
    state: State,
    /// Raw bytes of the current field (before unescaping) read so far.
    raw_len: usize,
    /// Its first two raw bytes (to see the `\.` end marker).
    head: [u8; 2],
    /// Whether its raw bytes so far match the NULL string.
    null_match: bool,
    /// CSV: the field had quotes (then it is never NULL).
    saw_quote: bool,
    /// Any byte of the current line seen.
    in_line: bool,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    /// The header line is still to come.
    header: bool,
    /// The `\.` line came: the rest is not data.
    ended: bool,
}

impl TextParser {
    /// A reader for text or CSV data laid out as `layout`.
    pub fn new(layout: &Layout) -> Self {
        Self {
            csv: layout.format == Format::Csv,
            delimiter: layout.delimiter,
            quote: layout.quote,
            escape: layout.escape,
            null: layout.null.clone().into_boxed_slice(),
            state: State::Field,
            raw_len: 0,
            head: [0; 2],
            null_match: true,
            saw_quote: false,
            in_line: false,
            after_cr: false,
            header: layout.header,
            ended: false,
        }
    }

    /// Reads one piece of the data.
    pub fn feed(&mut self, data: &[u8], row: &mut Row, sink: &mut Sink<'_>) {
        for &b in data {
            if self.ended {
                return;
            }
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            self.in_line = true;
            if self.csv {
                self.csv_byte(b, row, sink);
            } else {
                self.text_byte(b, row, sink);
            }
        }
    }

    /// The data ended: a last line without its line end is a row.
    pub fn finish(&mut self, row: &mut Row, sink: &mut Sink<'_>) {
        if self.ended || !self.in_line {
            return;
        }
        match self.state {
            State::Octal(v, _) => row.push(v as u8, sink.layout),
            State::Hex(_, 0) => row.push(b'x', sink.layout),
            State::Hex(v, _) => row.push(v, sink.layout),
            // A closing quote at the very end.
            State::QuoteInQuoted | State::Field => {}
            State::Escape | State::Quoted | State::EscapeInQuoted => row.mark_bad(),
        }
        self.state = State::Field;
        self.end_line(row, sink);
    }

    fn raw(&mut self, b: u8) {
        if let Some(h) = self.head.get_mut(self.raw_len) {
            *h = b;
        }
        self.null_match = self.null_match && self.null.get(self.raw_len) == Some(&b);
        self.raw_len = self.raw_len.saturating_add(1);
    }

    fn end_field(&mut self, row: &mut Row) {
        let null = !self.saw_quote && self.null_match && self.raw_len == self.null.len();
        row.end_field(null);
        self.raw_len = 0;
        self.null_match = true;
        self.saw_quote = false;
    }

    fn end_line(&mut self, row: &mut Row, sink: &mut Sink<'_>) {
        self.in_line = false;
        if row.is_empty() && !self.saw_quote && self.raw_len == 2 && self.head == *b"\\." {
            self.ended = true;
            row.discard();
            return;
        }
        self.end_field(row);
        if std::mem::take(&mut self.header) {
            row.discard();
            return;
        }
        row.end_row(sink);
    }

    /// A line end outside quotes.
    fn line_end(&mut self, b: u8, row: &mut Row, sink: &mut Sink<'_>) {
        self.after_cr = b == b'\r';
        self.end_line(row, sink);
    }

    fn text_byte(&mut self, b: u8, row: &mut Row, sink: &mut Sink<'_>) {
        let layout = sink.layout;
        match self.state {
            State::Field => {
                if b == self.delimiter {
                    self.end_field(row);
                } else if b == b'\n' || b == b'\r' {
                    self.line_end(b, row, sink);
                } else {
                    self.raw(b);
                    if b == b'\\' {
                        self.state = State::Escape;
                    } else {
                        row.push(b, layout);
                    }
                }
            }
            State::Escape => {
                self.raw(b);
                self.state = State::Field;
                match b {
                    b'0'..=b'7' => self.state = State::Octal(u16::from(b - b'0'), 1),
                    b'x' => self.state = State::Hex(0, 0),
                    b'b' => row.push(8, layout),
                    b'f' => row.push(12, layout),
                    b'n' => row.push(b'\n', layout),
                    b'r' => row.push(b'\r', layout),
                    b't' => row.push(b'\t', layout),
                    b'v' => row.push(11, layout),
                    // `\\`, `\N` (NULL only as the whole field), and any
                    // other character: itself.
                    _ => row.push(b, layout),
                }
            }
            State::Octal(v, n) => {
                if n < 3 && (b'0'..=b'7').contains(&b) {
                    self.raw(b);
                    let v = v * 8 + u16::from(b - b'0');
                    if n + 1 == 3 {
                        // PostgreSQL keeps the low byte of `\777`.
                        row.push(v as u8, layout);
                        self.state = State::Field;
                    } else {
                        self.state = State::Octal(v, n + 1);
                    }
                } else {
                    row.push(v as u8, layout);
                    self.state = State::Field;
                    self.text_byte(b, row, sink);
                }
            }
            State::Hex(v, n) => match (b as char).to_digit(16) {
                Some(d) if n < 2 => {
                    self.raw(b);
                    let v = v * 16 + d as u8;
                    if n + 1 == 2 {
                        row.push(v, layout);
                        self.state = State::Field;
                    } else {
                        self.state = State::Hex(v, n + 1);
                    }
                }
                _ => {
                    // `\x` without a hex digit is a plain `x`.
                    row.push(if n == 0 { b'x' } else { v }, layout);
                    self.state = State::Field;
                    self.text_byte(b, row, sink);
                }
            },
            _ => self.state = State::Field,
        }
    }

    fn csv_byte(&mut self, b: u8, row: &mut Row, sink: &mut Sink<'_>) {
        let layout = sink.layout;
        match self.state {
            State::Field => {
                if b == self.delimiter {
                    self.end_field(row);
                } else if b == b'\n' || b == b'\r' {
                    self.line_end(b, row, sink);
                } else if b == self.quote {
                    self.saw_quote = true;
                    self.state = State::Quoted;
                } else {
                    self.raw(b);
                    row.push(b, layout);
                }
            }
            State::Quoted => {
                if b == self.escape && self.escape != self.quote {
                    self.state = State::EscapeInQuoted;
                } else if b == self.quote {
                    self.state = State::QuoteInQuoted;
                } else {
                    row.push(b, layout);
                }
            }
            State::QuoteInQuoted => {
                if b == self.quote && self.escape == self.quote {
                    // A doubled quote is one quote.
                    row.push(b, layout);
                    self.state = State::Quoted;
                } else {
                    self.state = State::Field;
                    self.csv_byte(b, row, sink);
                }
            }
            State::EscapeInQuoted => {
                self.state = State::Quoted;
                if b == self.quote || b == self.escape {
                    row.push(b, layout);
                } else {
                    // ESCAPE before anything else is itself.
                    row.push(self.escape, layout);
                    self.csv_byte(b, row, sink);
                }
            }
            _ => self.state = State::Field,
        }
    }
}
