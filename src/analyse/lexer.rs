//! A scanner that follows PostgreSQL's lexical rules closely enough to tell
//! literals from code. It gives each statement text a keyed 128-bit cache
//! key in which literal values do not count (so `WHERE id = 7` and
//! `WHERE id = 8` share one cached analysis), the text with literals
//! replaced by `$n` for the audit record, and the nesting depth checked
//! before the real parser runs.
//!
//! Safety rests on one rule: never take code for a literal. Every doubt is
//! resolved toward "code", which can only cost a cache miss.

use siphasher::sip128::{Hasher128, SipHasher13};
use std::fmt::Write as _;
use std::hash::Hasher;
use thiserror::Error;

/// Why a text could not be scanned (PostgreSQL would reject it too).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LexError {
    /// A quoted string, identifier or dollar-quoted body does not end.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
}

/// One token's class, as far as caching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Identifier or keyword.
    Word,
    /// "quoted identifier".
    Quoted,
    /// A constant: string, number, bit string.
    Literal,
    /// $1, $2, ...
    Param,
    /// Operators and punctuation.
    Symbol,
    /// `-- ...` or `/* ... */`: whitespace to the parser.
    Comment,
}

/// What a scan found out about a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Cache key: the token stream with literal values left out, hashed with
    /// a per-process secret key (so collisions cannot be crafted).
    pub key: u128,
    /// Deepest nesting of parentheses and brackets.
    pub depth: u32,
    /// Operator and punctuation tokens (bounds expression-tree depth).
    pub symbols: u32,
    /// Literals replaced.
    pub literals: u32,
    /// Highest `$n` parameter present.
    pub max_param: u32,
}

/// Keys for the cache-key hash, chosen at random per process.
#[derive(Debug, Clone, Copy)]
pub struct HashKeys(u64, u64);

impl HashKeys {
    /// Fresh random keys.
    pub fn random() -> Self {
        Self(rand::random(), rand::random())
    }

    /// Fixed keys, for fingerprints that must be stable across restarts.
    pub fn fixed() -> Self {
        Self(0x7067_7761_7264_656e, 0x6669_6e67_6572_7072)
    }
}

/// Byte classes, looked up once per byte instead of a chain of compares
/// (the scan runs on every statement, cached or not).
const IDENT_START: u8 = 1;
const IDENT_CONT: u8 = 2;
const OP_CHAR: u8 = 4;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            t[b] |= IDENT_START | IDENT_CONT;
        }
        if c.is_ascii_digit() || c == b'$' {
            t[b] |= IDENT_CONT;
        }
        if matches!(
            c,
            b'~' | b'!'
                | b'@'
                | b'#'
                | b'^'
                | b'&'
                | b'|'
                | b'`'
                | b'?'
                | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'%'
                | b'<'
                | b'>'
                | b'='
        ) {
            t[b] |= OP_CHAR;
        }
        b += 1;
    }
    t
}

fn is_ident_start(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_START != 0
}

fn is_ident_cont(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_CONT != 0
}

fn is_op_char(b: u8) -> bool {
    CLASSES[b as usize] & OP_CHAR != 0
}

/// Walks the tokens of `sql`, calling `f(kind, start, end)` for each.
/// `scs` is `standard_conforming_strings`: when off, backslash escapes
/// quotes in ordinary strings too.
fn tokens(sql: &str, scs: bool, mut f: impl FnMut(Kind, usize, usize)) -> Result<(), LexError> {
    let s = sql.as_bytes();
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i];
        let start = i;
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b => i += 1,
            b'-' if s.get(i + 1) == Some(&b'-') => {
                while i < n && s[i] != b'\n' {
                    i += 1;
                }
                f(Kind::Comment, start, i);
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(s, i)?;
                f(Kind::Comment, start, i);
            }
            b'\'' => {
                i = skip_string(s, i, !scs)?;
                f(Kind::Literal, start, i);
            }
            b'"' => {
                i = skip_quoted(s, i, b'"', "quoted identifier")?;
                f(Kind::Quoted, start, i);
            }
            b'$' => {
                if s.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < n && s[i].is_ascii_digit() {
                        i += 1;
                    }
                    f(Kind::Param, start, i);
                } else if let Some(end) = dollar_quote(s, i)? {
                    i = end;
                    f(Kind::Literal, start, i);
                } else {
                    i += 1;
                    f(Kind::Symbol, start, i);
                }
            }
            b'0'..=b'9' => {
                i = skip_number(s, i);
                f(Kind::Literal, start, i);
            }
            b'.' if s.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(s, i);
                f(Kind::Literal, start, i);
            }
            _ if is_ident_start(b) => {
                while i < n && is_ident_cont(s[i]) {
                    i += 1;
                }
                let word = &s[start..i];
                let next = s.get(i).copied();
                // Prefixed strings: E'..' (escapes), B'..', X'..', N'..', U&'..'.
                if next == Some(b'\'') && word.len() == 1 {
                    match word[0] {
                        b'e' | b'E' => {
                            i = skip_string(s, i, true)?;
                            f(Kind::Literal, start, i);
                            continue;
                        }
                        b'b' | b'B' | b'x' | b'X' | b'n' | b'N' => {
                            i = skip_string(s, i, !scs)?;
                            f(Kind::Literal, start, i);
                            continue;
                        }
                        _ => {}
                    }
                }
                if word.len() == 1 && (word[0] == b'u' || word[0] == b'U') && next == Some(b'&') {
                    match s.get(i + 1) {
                        Some(b'\'') => {
                            i = skip_string(s, i + 1, false)?;
                            f(Kind::Literal, start, i);
                            continue;
                        }
                        Some(b'"') => {
                            i = skip_quoted(s, i + 1, b'"', "quoted identifier")?;
                            f(Kind::Quoted, start, i);
                            continue;
                        }
                        _ => {}
                    }
                }
                f(Kind::Word, start, i);
            }
            _ if is_op_char(b) => {
                while i < n && is_op_char(s[i]) {
                    // A comment start ends the operator, as in PostgreSQL.
                    if (s[i] == b'-' && s.get(i + 1) == Some(&b'-'))
                        || (s[i] == b'/' && s.get(i + 1) == Some(&b'*'))
                    {
                        if i == start {
                            break;
                        }
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    // Cannot happen (comments are matched above), but never loop forever.
                    i += 1;
                }
                f(Kind::Symbol, start, i);
            }
            _ => {
                // Punctuation and anything else, one byte (or char) at a time.
                i += utf8_len(b);
                f(Kind::Symbol, start, i.min(n));
                i = i.min(n);
            }
        }
    }
    Ok(())
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

fn skip_block_comment(s: &[u8], mut i: usize) -> Result<usize, LexError> {
    let mut depth = 0u32;
    while i < s.len() {
        if s[i] == b'/' && s.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if s[i] == b'*' && s.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Ok(i);
            }
        } else {
            i += 1;
        }
    }
    Err(LexError::Unterminated("/* comment"))
}

/// Skips a '...' string starting at the quote at `i`; `backslash` makes `\`
/// escape the next byte.
fn skip_string(s: &[u8], mut i: usize, backslash: bool) -> Result<usize, LexError> {
    i += 1;
    while i < s.len() {
        match s[i] {
            b'\\' if backslash => i += 2,
            b'\'' if s.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(LexError::Unterminated("quoted string"))
}

fn skip_quoted(s: &[u8], mut i: usize, q: u8, what: &'static str) -> Result<usize, LexError> {
    i += 1;
    while i < s.len() {
        if s[i] == q {
            if s.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(LexError::Unterminated(what))
}

/// `$tag$ ... $tag$` starting at `i`; `None` if `i` does not open one.
fn dollar_quote(s: &[u8], i: usize) -> Result<Option<usize>, LexError> {
    let mut j = i + 1;
    if j < s.len() && is_ident_start(s[j]) {
        j += 1;
        while j < s.len() && (is_ident_start(s[j]) || s[j].is_ascii_digit()) {
            j += 1;
        }
    }
    if s.get(j) != Some(&b'$') {
        return Ok(None);
    }
    let tag = &s[i..=j];
    let body = j + 1;
    let mut k = body;
    while k + tag.len() <= s.len() {
        if &s[k..k + tag.len()] == tag {
            return Ok(Some(k + tag.len()));
        }
        k += 1;
    }
    Err(LexError::Unterminated("dollar-quoted string"))
}

fn skip_number(s: &[u8], mut i: usize) -> usize {
    let n = s.len();
    while i < n && s[i].is_ascii_digit() {
        i += 1;
    }
    // "1..10" is an integer followed by "..", as in PostgreSQL.
    if i < n && s[i] == b'.' && s.get(i + 1) != Some(&b'.') {
        i += 1;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < n && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < n && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < n && s[j].is_ascii_digit() {
            while j < n && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// Tag of the last stretch of text in [`scan`]'s hashed stream (the other
/// stretches end at a literal or a comment and carry its kind).
const END_OF_TEXT: u64 = 0xff;

/// Scans `sql`: cache key, nesting depth and counts.
///
/// The key hashes the text itself with every literal and comment cut out:
/// each stretch between cuts goes in whole, followed by its length and the
/// kind of cut that ends it. That stream decodes back into the text's
/// code, so two texts share a key only when they differ in nothing but
/// literal values and comments (a traced application's `/* trace id */`
/// still hits). Hashing the text in long runs, not token by token, keeps
/// the hash near one call per literal.
pub fn scan(sql: &str, scs: bool, keys: HashKeys) -> Result<Scan, LexError> {
    let mut h = SipHasher13::new_with_keys(keys.0, keys.1);
    h.write_u8(scs as u8);
    let bytes = sql.as_bytes();
    let mut out = Scan {
        key: 0,
        depth: 0,
        symbols: 0,
        literals: 0,
        max_param: 0,
    };
    let mut depth = 0u32;
    let mut last = 0;
    tokens(sql, scs, |kind, a, b| match kind {
        Kind::Literal | Kind::Comment => {
            out.literals += u32::from(kind == Kind::Literal);
            h.write(&bytes[last..a]);
            h.write_u64((a - last) as u64 | (kind as u64) << 56);
            last = b;
        }
        Kind::Param => out.param(&bytes[a + 1..b]),
        Kind::Symbol => out.symbol(bytes[a], &mut depth),
        Kind::Word | Kind::Quoted => {}
    })?;
    h.write(&bytes[last..]);
    h.write_u64((bytes.len() - last) as u64 | END_OF_TEXT << 56);
    out.key = h.finish128().as_u128();
    Ok(out)
}

/// A key of the token stream of `sql` with literal values left out:
/// unlike [`scan`]'s, spacing and comments do not count. For fingerprints,
/// which group statements of one shape however they are written; its
/// output for given keys must never change (fingerprints are stored).
pub fn token_key(sql: &str, scs: bool, keys: HashKeys) -> Result<u128, LexError> {
    let mut h = SipHasher13::new_with_keys(keys.0, keys.1);
    h.write_u8(scs as u8);
    let bytes = sql.as_bytes();
    tokens(sql, scs, |kind, a, b| match kind {
        Kind::Literal => h.write_u64(kind as u64),
        Kind::Comment => {}
        Kind::Param | Kind::Symbol | Kind::Word | Kind::Quoted => {
            // One write for kind and length, one for the bytes.
            h.write_u64(((b - a) as u64) << 8 | kind as u64);
            h.write(&bytes[a..b]);
        }
    })?;
    Ok(h.finish128().as_u128())
}

/// [`scan`]'s nesting depth and symbol count only, without hashing the
/// tokens (for the checks before parsing, which need no key).
pub fn bounds(sql: &str, scs: bool) -> Result<Scan, LexError> {
    let mut out = Scan {
        key: 0,
        depth: 0,
        symbols: 0,
        literals: 0,
        max_param: 0,
    };
    let bytes = sql.as_bytes();
    let mut depth = 0u32;
    tokens(sql, scs, |kind, a, _| match kind {
        Kind::Literal => out.literals += 1,
        Kind::Symbol => out.symbol(bytes[a], &mut depth),
        _ => {}
    })?;
    Ok(out)
}

impl Scan {
    /// Notes a `$n` parameter (`digits` without the `$`).
    fn param(&mut self, digits: &[u8]) {
        let v = std::str::from_utf8(digits)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        self.max_param = self.max_param.max(v);
    }

    /// Counts a symbol token starting with `byte`; `depth` is the current
    /// bracket nesting.
    fn symbol(&mut self, byte: u8, depth: &mut u32) {
        self.symbols += 1;
        match byte {
            b'(' | b'[' => {
                *depth += 1;
                self.depth = self.depth.max(*depth);
            }
            b')' | b']' => *depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// Byte spans of the literal tokens of `sql`, in order (the `$n` of
/// [`normalize`] counts them the same way).
pub fn literal_spans(sql: &str, scs: bool) -> Result<Vec<(usize, usize)>, LexError> {
    let mut spans = Vec::new();
    tokens(sql, scs, |kind, a, b| {
        if kind == Kind::Literal {
            spans.push((a, b));
        }
    })?;
    Ok(spans)
}

/// `sql` with every literal replaced by `$n`, numbered after the highest
/// parameter already present (as pg_stat_statements does).
pub fn normalize(sql: &str, scs: bool) -> Result<String, LexError> {
    let mut spans = Vec::new();
    let mut max_param = 0u32;
    tokens(sql, scs, |kind, a, b| match kind {
        Kind::Literal => spans.push((a, b)),
        Kind::Param => {
            if let Some(v) = sql.get(a + 1..b).and_then(|t| t.parse::<u32>().ok()) {
                max_param = max_param.max(v);
            }
        }
        _ => {}
    })?;
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    let mut next = max_param;
    for (a, b) in spans {
        out.push_str(&sql[last..a]);
        next += 1;
        // Written in place: no String per literal.
        let _ = write!(out, "${next}");
        last = b;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> u128 {
        scan(sql, true, HashKeys(1, 2)).unwrap().key
    }

    #[test]
    fn literals_do_not_change_the_key() {
        assert_eq!(
            key("SELECT * FROM t WHERE id = 7"),
            key("SELECT * FROM t WHERE id = 12345")
        );
        assert_eq!(key("select 'a''b'"), key("select 'zz'"));
        assert_eq!(key("select E'\\'x'"), key("select E'y'"));
        assert_eq!(key("select $$a$$, $q$x$$y$q$"), key("select 1, 2"));
        assert_eq!(key("select 1.5e10, .5, 3"), key("select 1, 2, 3"));
        assert_eq!(
            key("select x'1F', b'101', U&'\\0061'"),
            key("select 1, 2, 3")
        );
        // Comments are cut out like literals: a trace id in one does not
        // defeat the cache.
        assert_eq!(
            key("SELECT a /* c */ FROM t -- x\n"),
            key("SELECT a /* trace 42 */ FROM t -- y\n")
        );
    }

    #[test]
    fn fingerprint_keys_never_change() {
        // Fingerprints are stored (audit records, baselines): this value is
        // the one every earlier version computed for this text.
        let k = token_key(
            "SELECT * FROM t WHERE id = $1 -- x",
            true,
            HashKeys::fixed(),
        )
        .unwrap();
        assert_eq!(format!("{:016x}", k as u64), "78b4a3804d501f48");
    }

    #[test]
    fn what_was_cut_counts() {
        // A comment is whitespace, a literal is a value: `date 'c'` is a
        // typed constant, `date /*c*/` a column.
        assert_ne!(
            key("SELECT date /*c*/ FROM t"),
            key("SELECT date 'c' FROM t")
        );
        assert_ne!(key("SELECT a/**/b"), key("SELECT a b"));
        assert_ne!(key("SELECT 1, 2"), key("SELECT 1, 2, 3"));
        // Text moving across a cut is a different text.
        assert_ne!(key("SELECT ab 'x' c"), key("SELECT a 'x' bc"));
        // Spacing counts in the cache key (a miss at worst), not in the
        // fingerprint.
        assert_ne!(key("SELECT a FROM t"), key("SELECT a  FROM t"));
        let fp = |sql| token_key(sql, true, HashKeys::fixed()).unwrap();
        assert_eq!(fp("SELECT a FROM t"), fp("SELECT  a /* x */ FROM\nt"));
        assert_ne!(fp("SELECT a FROM t"), fp("SELECT b FROM t"));
    }

    #[test]
    fn code_changes_the_key() {
        assert_ne!(key("SELECT a FROM t"), key("SELECT b FROM t"));
        assert_ne!(key("SELECT a FROM t"), key("SELECT \"a\" FROM t"));
        assert_ne!(key("SELECT $1"), key("SELECT $2"));
        assert_ne!(key("SELECT 1"), key("SELECT a"));
        assert_ne!(key("SELECT e'x'"), key("SELECT ee'x'"));
        // "1..2" is not a number "1." followed by ".2".
        assert_ne!(key("SELECT a[1:2]"), key("SELECT a[1]"));
        // Identifiers may contain '$': not a dollar quote.
        assert_ne!(key("SELECT a$b$c"), key("SELECT a$d$c"));
    }

    #[test]
    fn standard_conforming_strings_off_changes_string_ends() {
        // With backslash escapes, '\'' is one string; without, it ends early.
        let off = scan("SELECT '\\'' , x", false, HashKeys(1, 2)).unwrap();
        assert_eq!(off.literals, 1);
        assert!(scan("SELECT '\\'' , x", true, HashKeys(1, 2)).is_err());
        assert_ne!(
            scan("SELECT 'a'", false, HashKeys(1, 2)).unwrap().key,
            scan("SELECT 'a'", true, HashKeys(1, 2)).unwrap().key
        );
    }

    #[test]
    fn depth_and_errors() {
        let s = scan("SELECT ((((1)))), a[1]", true, HashKeys(1, 2)).unwrap();
        assert_eq!(s.depth, 4);
        assert!(scan("SELECT 'abc", true, HashKeys(1, 2)).is_err());
        assert!(scan("SELECT /* /* */", true, HashKeys(1, 2)).is_err());
        assert!(scan("SELECT $x$ abc", true, HashKeys(1, 2)).is_err());
        assert!(scan("SELECT \"abc", true, HashKeys(1, 2)).is_err());
    }

    #[test]
    fn bounds_agree_with_scan() {
        for sql in [
            "SELECT ((((1)))), a[1] FROM t WHERE b = 'x' AND c > $2",
            "SELECT 'a\\'' , (1", // unbalanced; backslash matters without scs
            "SELECT $x$ abc",
        ] {
            for scs in [true, false] {
                let full = scan(sql, scs, HashKeys(1, 2)).map(|s| (s.depth, s.symbols, s.literals));
                let quick = bounds(sql, scs).map(|s| (s.depth, s.symbols, s.literals));
                assert_eq!(full, quick, "{sql} scs={scs}");
            }
        }
    }

    #[test]
    fn normalize_numbers_after_existing_params() {
        assert_eq!(
            normalize("SELECT * FROM t WHERE a = $1 AND b = 'x' AND c > 10", true).unwrap(),
            "SELECT * FROM t WHERE a = $1 AND b = $2 AND c > $3"
        );
        assert_eq!(
            normalize("SELECT 1 -- 'not a literal'\n", true).unwrap(),
            "SELECT $1 -- 'not a literal'\n"
        );
    }
}
