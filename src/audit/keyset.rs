//! The subject keys one result returned, kept compactly: integer keys as
//! sorted ranges (`1-40,52,77`), text keys as JSON strings (`"ab","c,d"`),
//! both in one comma-separated list. At most [`KeySet::cap`] distinct keys
//! are kept; past it the set says it is incomplete (investigators then see
//! the statement as "possibly seen" for any key).

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Distinct keys kept per subject and statement by default.
pub const DEFAULT_CAP: usize = 10_000;

/// Distinct keys, integer or text, up to a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    ints: BTreeSet<i64>,
    texts: BTreeSet<Box<str>>,
    cap: usize,
    /// A key was left out because the set was full.
    overflow: bool,
}

/// A key as read from a cell, borrowed: nothing is allocated unless it is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// An integer key (int2/int4/int8, or text that is a plain integer).
    Int(i64),
    /// Any other key, as text.
    Text(&'a str),
}

impl KeySet {
    /// An empty set keeping at most `cap` distinct keys.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// Most distinct keys kept.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Distinct keys kept.
    pub fn len(&self) -> usize {
        self.ints.len() + self.texts.len()
    }

    /// Whether no key was seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && !self.overflow
    }

    /// Whether every key seen is kept.
    pub fn complete(&self) -> bool {
        !self.overflow
    }

    /// Adds a key; returns whether it was new and kept.
    pub fn insert(&mut self, key: Key<'_>) -> bool {
        let full = self.len() >= self.cap;
        match key {
            Key::Int(i) => {
                if self.ints.contains(&i) {
                    return false;
                }
                if full {
                    self.overflow = true;
                    return false;
                }
                self.ints.insert(i)
            }
            Key::Text(t) => {
                if self.texts.contains(t) {
                    return false;
                }
                if full {
                    self.overflow = true;
                    return false;
                }
                self.texts.insert(Box::from(t))
            }
        }
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: Key<'_>) -> bool {
        match key {
            Key::Int(i) => self.ints.contains(&i),
            Key::Text(t) => self.texts.contains(t),
        }
    }

    /// Integer keys, ascending.
    pub fn ints(&self) -> impl Iterator<Item = i64> + '_ {
        self.ints.iter().copied()
    }

    /// Text keys, sorted.
    pub fn texts(&self) -> impl Iterator<Item = &str> + '_ {
        self.texts.iter().map(|t| &**t)
    }

    /// The compact form: integer ranges, then JSON-quoted text keys.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut it = self.ints.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            // `end + 1` overflowing ends the range (i64::MAX is the last key).
            while end
                .checked_add(1)
                .is_some_and(|succ| it.peek() == Some(&succ))
            {
                end += 1;
                it.next();
            }
            if !out.is_empty() {
                out.push(',');
            }
            if end == start {
                let _ = write!(out, "{start}");
            } else {
                let _ = write!(out, "{start}-{end}");
            }
        }
        for t in &self.texts {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(&**t).to_string());
        }
        out
    }
}

/// What an encoded key list holds, for lookups (the audit CLI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    ints: Vec<(i64, i64)>,
    texts: Vec<String>,
}

impl Ranges {
    /// Parses [`KeySet::encode`]'s form; `None` when it is not that.
    pub fn parse(s: &str) -> Option<Self> {
        let mut r = Self::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            if rest.starts_with('"') {
                let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                let t = de.next()?.ok()?;
                rest = &rest[de.byte_offset()..];
                r.texts.push(t);
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                let item = &rest[..end];
                rest = &rest[end..];
                // `a-b`: the dash after the first digit splits (keys may be negative).
                let split = item
                    .char_indices()
                    .skip(1)
                    .find(|&(i, c)| c == '-' && item.as_bytes()[i - 1].is_ascii_digit())
                    .map(|(i, _)| i);
                let (a, b) = match split {
                    Some(i) => (item[..i].parse().ok()?, item[i + 1..].parse().ok()?),
                    None => {
                        let v = item.parse().ok()?;
                        (v, v)
                    }
                };
                r.ints.push((a, b));
            }
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
            } else if !rest.is_empty() {
                return None;
            }
        }
        Some(r)
    }

    /// Whether the list holds `key` (given as text: an integer matches
    /// integer ranges, anything else text keys).
    pub fn contains(&self, key: &str) -> bool {
        if let Ok(i) = key.trim().parse::<i64>() {
            if self.ints.iter().any(|&(a, b)| a <= i && i <= b) {
                return true;
            }
        }
        self.texts.iter().any(|t| t == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_become_sorted_ranges() {
        let mut k = KeySet::with_cap(100);
        for i in [52, 3, 1, 2, 77, 40, 39, 38, 4, 2] {
            k.insert(Key::Int(i));
        }
        assert_eq!(k.encode(), "1-4,38-40,52,77");
        assert_eq!(k.len(), 9);
        assert!(k.complete());
        let mut n = KeySet::with_cap(10);
        n.insert(Key::Int(-3));
        n.insert(Key::Int(-2));
        n.insert(Key::Int(5));
        n.insert(Key::Int(i64::MAX));
        assert_eq!(n.encode(), format!("-3--2,5,{}", i64::MAX));
    }

    #[test]
    fn text_keys_are_quoted_and_round_trip() {
        let mut k = KeySet::with_cap(10);
        k.insert(Key::Int(7));
        k.insert(Key::Text("b,\"x\""));
        k.insert(Key::Text("a"));
        let e = k.encode();
        assert_eq!(e, r#"7,"a","b,\"x\"""#);
        let r = Ranges::parse(&e).expect("parses");
        assert!(r.contains("7"));
        assert!(r.contains("a"));
        assert!(r.contains("b,\"x\""));
        assert!(!r.contains("b"));
        assert!(!r.contains("8"));
    }

    #[test]
    fn ranges_answer_lookups() {
        let r = Ranges::parse("1-40,52,77,-9--5").expect("parses");
        for yes in ["1", "20", "40", "52", "77", "-7", "-9"] {
            assert!(r.contains(yes), "{yes}");
        }
        for no in ["0", "41", "53", "-4", "x"] {
            assert!(!r.contains(no), "{no}");
        }
        assert!(Ranges::parse("1-").is_none());
        assert!(Ranges::parse("\"open").is_none());
        assert_eq!(Ranges::parse(""), Some(Ranges::default()));
    }

    #[test]
    fn the_cap_bounds_the_set_and_marks_it_incomplete() {
        let mut k = KeySet::with_cap(3);
        for i in 0..10 {
            k.insert(Key::Int(i));
        }
        k.insert(Key::Text("t"));
        assert_eq!(k.len(), 3);
        assert!(!k.complete());
        assert!(k.contains(Key::Int(2)));
        assert!(!k.contains(Key::Int(3)));
        assert_eq!(k.encode(), "0-2");
    }
}
