//! The hash chain: every line starts `{"seq":N,"prev":"<hex>",` where `prev`
//! is the SHA-256 of the previous line's exact bytes (without its newline).
//! The writer is the only place that serializes, one line after another, so
//! chaining there needs no lock; verification hashes the file's bytes as
//! they are, without re-canonicalizing any JSON (docs/audit-records.md).

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `prev` of the first line of a new chain.
pub const GENESIS: Hash = [0; 32];

/// Longest `{"seq":N,"prev":"<64 hex>"` prefix (a `u64` has at most 20 digits).
pub(crate) const PREFIX_MAX: usize = 7 + 20 + 9 + 64 + 1;

/// Longest last line [`Chain::resume`] reads back; a longer one (impossible
/// from pgwarden, whose lines are bounded by the largest message) starts a
/// new chain rather than filling memory.
const RESUME_MAX_LINE: u64 = 1 << 30;

/// SHA-256 of a line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> Hash {
    Sha256::digest(line).into()
}

/// Where the chain stands: the next line's `seq` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    next_seq: u64,
    prev: Hash,
}

impl Chain {
    /// A new chain: the first line gets seq 1 and an all-zero `prev`.
    pub(crate) fn new() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS,
        }
    }

    /// The chain continuing after `line`. A line that is not a chained
    /// record (a log written before chaining, garbage) still links by hash;
    /// numbering then starts again at 1.
    pub(crate) fn after_line(line: &[u8]) -> Self {
        let seq = parse_prefix(line).map_or(0, |(seq, _)| seq);
        Self {
            next_seq: seq.saturating_add(1),
            prev: line_hash(line),
        }
    }

    /// The chain continuing the audit file at `path`: after its last line,
    /// or, when it is empty or missing (rotated just before a stop), after
    /// the last line of `path.1`; a new chain when neither has a line.
    pub(crate) fn resume(path: &Path) -> io::Result<Self> {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        for p in [path.to_owned(), PathBuf::from(rotated)] {
            if let Some(line) = last_line(&p)? {
                return Ok(Self::after_line(&line));
            }
        }
        Ok(Self::new())
    }

    /// The `seq` the next line gets.
    #[cfg(test)]
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Writes the next line's `{"seq":N,"prev":"<hex>"` (no comma: the
    /// caller continues the object).
    pub(crate) fn begin(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(itoa(self.next_seq, &mut [0; 20]));
        out.extend_from_slice(b",\"prev\":\"");
        push_hex(out, &self.prev);
        out.push(b'"');
    }

    /// Ends the line that [`Chain::begin`] started at `start`: hashes it,
    /// appends the newline and moves the chain past it.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, start: usize) {
        self.prev = line_hash(out.get(start..).unwrap_or_default());
        out.push(b'\n');
        self.next_seq = self.next_seq.saturating_add(1);
    }

    /// Appends a serialized JSON object (`{...}`) as the next chained line:
    /// its `{` becomes the comma after the prefix, so nothing is moved.
    pub(crate) fn push_object(&mut self, out: &mut Vec<u8>, object: &[u8]) {
        let start = out.len();
        self.begin(out);
        out.push(b',');
        out.extend_from_slice(object.get(1..).unwrap_or_default());
        self.finish(out, start);
    }
}

/// `seq` and `prev` from the start of a line, also of one cut short after
/// its prefix (what a crash mid-write leaves).
pub(crate) fn parse_prefix(line: &[u8]) -> Option<(u64, Hash)> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = std::str::from_utf8(rest.get(..digits)?)
        .ok()?
        .parse()
        .ok()?;
    let rest = rest.get(digits..)?.strip_prefix(b",\"prev\":\"")?;
    let prev = parse_hex32(rest.get(..64)?)?;
    rest.get(64..)?.starts_with(b"\"").then_some((seq, prev))
}

/// The last line of a file (without its newline, and also when it has
/// none); `None` when the file is missing or empty.
fn last_line(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    // Read backwards in chunks until the newline before the last line.
    while end > 0 {
        if len - end > RESUME_MAX_LINE {
            return Ok(None);
        }
        let start = end.saturating_sub(64 * 1024);
        let mut chunk = vec![0; usize::try_from(end - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        end = start;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(body.get(i + 1..).unwrap_or_default().to_vec()));
        }
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    Ok((len > 0).then(|| body.to_vec()))
}

/// Appends lowercase hex.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// Lowercase hex as a string.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// Parses exactly `N` bytes from `2 * N` hex digits (either case).
pub(crate) fn parse_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0; N];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = nibble(*hi)? << 4 | nibble(*lo)?;
    }
    Some(out)
}

/// A 32-byte hash from 64 hex digits.
pub(crate) fn parse_hex32(hex: &[u8]) -> Option<Hash> {
    parse_hex::<32>(hex)
}

/// Formats `n` in decimal into `buf` without allocating.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_chain_by_hash_and_seq() {
        let mut chain = Chain::new();
        let mut out = Vec::new();
        chain.push_object(&mut out, br#"{"a":1}"#);
        chain.push_object(&mut out, br#"{"b":"x"}"#);
        let text = std::str::from_utf8(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(r#"{{"seq":1,"prev":"{}","a":1}}"#, "0".repeat(64))
        );
        let h1 = to_hex(&line_hash(lines[0].as_bytes()));
        assert_eq!(lines[1], format!(r#"{{"seq":2,"prev":"{h1}","b":"x"}}"#));
        assert_eq!(chain.next_seq(), 3);
        assert!(text.ends_with('\n'));
        // Every line is still JSON.
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["seq"].is_u64());
        }
    }

    #[test]
    fn prefix_parses_also_from_a_cut_line() {
        let mut chain = Chain::new();
        let mut out = Vec::new();
        chain.push_object(&mut out, br#"{"a":1}"#);
        chain.push_object(&mut out, br#"{"a":2}"#);
        let second = out.split(|&b| b == b'\n').nth(1).unwrap();
        let (seq, prev) = parse_prefix(second).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(prev, line_hash(out.split(|&b| b == b'\n').next().unwrap()));
        assert_eq!(parse_prefix(&second[..84]).map(|p| p.0), Some(2));
        assert_eq!(parse_prefix(&second[..80]), None);
        assert_eq!(parse_prefix(br#"{"@timestamp":"x"}"#), None);
    }

    #[test]
    fn resume_continues_after_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        assert_eq!(Chain::resume(&path).unwrap(), Chain::new());
        let mut chain = Chain::new();
        let mut out = Vec::new();
        let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(200_000));
        chain.push_object(&mut out, br#"{"a":1}"#);
        chain.push_object(&mut out, big.as_bytes());
        std::fs::write(&path, &out).unwrap();
        assert_eq!(Chain::resume(&path).unwrap(), chain);
        // Empty current file: the rotated one is where the chain stands.
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        std::fs::write(&path, b"").unwrap();
        assert_eq!(Chain::resume(&path).unwrap(), chain);
        // A line cut by a crash still gives its seq; the hash is of its bytes.
        let cut = &out[..out.len() - 10];
        std::fs::write(&path, cut).unwrap();
        let resumed = Chain::resume(&path).unwrap();
        assert_eq!(resumed.next_seq(), 3);
        let last = cut.split(|&b| b == b'\n').next_back().unwrap();
        assert_eq!(resumed.prev, line_hash(last));
    }

    #[test]
    fn hex_round_trips() {
        let h = line_hash(b"x");
        assert_eq!(parse_hex32(to_hex(&h).as_bytes()), Some(h));
        assert_eq!(parse_hex32(to_hex(&h).to_uppercase().as_bytes()), Some(h));
        assert_eq!(parse_hex32(b"zz"), None);
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), b"18446744073709551615");
    }
}
