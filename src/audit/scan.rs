//! Reads audit files line by line, oldest first, into what verification
//! needs of each line: its place, `seq`, `prev`, hash, and for a checkpoint
//! whether its signature holds. Memory stays flat whatever the files' size.

use super::chain::{line_hash, parse_hex32, parse_prefix, Hash};
use super::checkpoint::{signature_ok, split_signed, Reason};
use super::keys::key_id;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

/// One line of an audit file, as verification sees it.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Index of its file in the list given.
    pub(crate) file: usize,
    /// 1-based line number in that file.
    pub(crate) number: u64,
    /// `seq`, when the line is a chained record (or starts like one).
    pub(crate) seq: Option<u64>,
    /// `prev`, when the line is a chained record (or starts like one).
    pub(crate) prev: Option<Hash>,
    /// SHA-256 of its bytes.
    pub(crate) hash: Hash,
    /// Whether it ended with a newline (a cut file's last line does not).
    pub(crate) complete: bool,
    /// Why it is not a chained record, when it is not.
    pub(crate) malformed: Option<String>,
    /// Set for a checkpoint.
    pub(crate) checkpoint: Option<Checkpoint>,
}

/// A checkpoint line's reason and signature.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// `event.reason`.
    pub(crate) reason: Option<Reason>,
    /// `None` when good (or not checked), else what is wrong.
    pub(crate) bad_signature: Option<String>,
}

/// The fields verification reads; serde skips the rest.
#[derive(Deserialize)]
struct Doc {
    seq: u64,
    prev: String,
    #[serde(default)]
    event: Option<EventDoc>,
    #[serde(default)]
    pgwarden: Option<PgwardenDoc>,
}

#[derive(Deserialize)]
struct EventDoc {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct PgwardenDoc {
    #[serde(default)]
    checkpoint: Option<CheckpointDoc>,
}

#[derive(Deserialize)]
struct CheckpointDoc {
    key_id: String,
}

/// The lines of several files in order.
pub(crate) struct Scanner<'a> {
    paths: &'a [PathBuf],
    key: Option<&'a VerifyingKey>,
    file: usize,
    reader: Option<BufReader<File>>,
    number: u64,
    buf: Vec<u8>,
}

impl<'a> Scanner<'a> {
    /// Reads `paths` in order, checking signatures with `key` when given.
    pub(crate) fn new(paths: &'a [PathBuf], key: Option<&'a VerifyingKey>) -> Self {
        Self {
            paths,
            key,
            file: 0,
            reader: None,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line, or `None` after the last file; an error names the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<Line>, (PathBuf, io::Error)> {
        loop {
            let Some(path) = self.paths.get(self.file) else {
                return Ok(None);
            };
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let f = File::open(path).map_err(|e| (path.clone(), e))?;
                    self.number = 0;
                    self.reader.insert(BufReader::with_capacity(1 << 16, f))
                }
            };
            self.buf.clear();
            let n = reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| (path.clone(), e))?;
            if n == 0 {
                self.reader = None;
                self.file += 1;
                continue;
            }
            self.number += 1;
            return Ok(Some(self.summarize()));
        }
    }

    fn summarize(&self) -> Line {
        let complete = self.buf.ends_with(b"\n");
        let bytes = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let mut line = Line {
            file: self.file,
            number: self.number,
            seq: None,
            prev: None,
            hash: line_hash(bytes),
            complete,
            malformed: None,
            checkpoint: None,
        };
        let doc = match serde_json::from_slice::<Doc>(bytes) {
            Ok(d) => d,
            Err(e) => {
                line.malformed = Some(format!("not a chained audit record ({e})"));
                // A line cut short still tells where it stood in the chain.
                if let Some((seq, prev)) = parse_prefix(bytes) {
                    line.seq = Some(seq);
                    line.prev = Some(prev);
                }
                return line;
            }
        };
        let Some(prev) = parse_hex32(doc.prev.as_bytes()) else {
            line.malformed = Some("`prev` is not 64 hex digits".into());
            return line;
        };
        line.seq = Some(doc.seq);
        line.prev = Some(prev);
        let event = doc.event.as_ref();
        let signed = doc.pgwarden.and_then(|p| p.checkpoint);
        if let (Some(cp), Some("checkpoint")) = (signed, event.and_then(|e| e.action.as_deref())) {
            line.checkpoint = Some(Checkpoint {
                reason: event
                    .and_then(|e| e.reason.as_deref())
                    .and_then(Reason::parse),
                bad_signature: self.check_signature(bytes, &cp.key_id),
            });
        }
        line
    }

    /// What is wrong with a checkpoint's signature; `None` when it holds or
    /// no key was given.
    fn check_signature(&self, bytes: &[u8], claimed_key: &str) -> Option<String> {
        let key = self.key?;
        let Some((signed, signature)) = split_signed(bytes) else {
            return Some("checkpoint without a signature in the expected place".into());
        };
        if signature_ok(key, signed, &signature) {
            return None;
        }
        let expected = key_id(key);
        Some(if claimed_key == expected {
            "signature does not match the checkpoint (forged or changed)".into()
        } else {
            format!("signed by another key (key_id {claimed_key}, expected {expected})")
        })
    }
}
