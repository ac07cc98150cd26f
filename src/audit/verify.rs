//! Verifies audit files (rotated ones oldest first): every line must
//! continue the chain from the one before (`seq` + 1, `prev` = its hash),
//! across files too, and every checkpoint's signature must hold. Problems
//! are named by file and line, and classified as well as one look ahead
//! allows: a line changed, inserted, removed, reordered; a file missing.

use super::chain::{Hash, GENESIS};
use super::checkpoint::Reason;
use super::scan::{Line, Scanner};
use ed25519_dalek::VerifyingKey;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The key checkpoints must be signed with; without it signatures are not checked.
    pub public_key: Option<VerifyingKey>,
    /// Treat warnings (an unsealed tail) as errors.
    pub strict: bool,
}

/// Why verification could not run at all (as opposed to finding tampering).
#[derive(Debug, Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No file was given.
    #[error("no audit file given")]
    NoFiles,
}

/// Whether a problem is tampering or only a reason for doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Tampering (or damage) found.
    Error,
    /// Cannot be proven intact, e.g. records after the last signature.
    Warning,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The line's bytes differ from what the chain recorded.
    Changed,
    /// The line is not part of the chain; its neighbours link to each other.
    Inserted,
    /// Records are missing before the line (a gap in `seq`).
    Removed,
    /// The line is out of order.
    Reordered,
    /// Records are missing at the start of the file: a file is missing.
    FileMissing,
    /// The line is not a chained record.
    Malformed,
    /// The line is cut short (no newline).
    Truncated,
    /// A checkpoint's signature does not hold.
    BadSignature,
    /// A new chain starts (seq 1) in the middle.
    Restarted,
    /// Lines after the last valid checkpoint, or a log not ending in a seal.
    Unsealed,
}

/// One finding, at a file and line.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line in it.
    pub line: u64,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Error or warning.
    pub severity: Severity,
    /// In words, for people.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {level}: {}",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// The outcome of [`verify_files`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Chained records (checkpoints not included).
    pub records: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Smallest and largest `seq` seen.
    pub seq_range: Option<(u64, u64)>,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// Everything found, in file order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Problems that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// True when no error was found: the files are what pgwarden wrote.
    pub fn is_verified(&self) -> bool {
        self.errors().next().is_none()
    }
}

/// Verifies `paths` in order (rotated files oldest first, the current file last).
pub fn verify_files(paths: &[PathBuf], options: &VerifyOptions) -> Result<Report, VerifyError> {
    if paths.is_empty() {
        return Err(VerifyError::NoFiles);
    }
    let mut scanner = Scanner::new(paths, options.public_key.as_ref());
    let mut next = || {
        scanner
            .next_line()
            .map_err(|(path, source)| VerifyError::Io { path, source })
    };
    let mut checker = Checker {
        paths,
        options,
        report: Report {
            files: paths.len(),
            signatures_checked: options.public_key.is_some(),
            ..Report::default()
        },
        last: None,
        tail: Tail::default(),
        missing: Vec::new(),
    };
    let mut current = next()?;
    while let Some(line) = current {
        let ahead = next()?;
        let took_ahead = checker.step(&line, ahead.as_ref());
        current = if took_ahead { next()? } else { ahead };
    }
    Ok(checker.finish())
}

/// The line the chain stands on.
#[derive(Debug, Clone)]
struct Last {
    file: usize,
    number: u64,
    seq: Option<u64>,
    hash: Hash,
    /// A seal with a good signature.
    seal: bool,
    /// A rotation checkpoint: the next line starts the next file.
    rotation: bool,
    /// Ended with a newline (a cut line was reported already).
    complete: bool,
}

/// Lines since the last valid checkpoint.
#[derive(Debug, Default)]
struct Tail {
    /// The first of them.
    first: Option<(usize, u64)>,
    count: u64,
    /// The last valid checkpoint's reason and place.
    checkpoint: Option<(Option<Reason>, usize, u64)>,
}

/// Records reported missing (for telling a moved record from an inserted one).
const MISSING_KEPT: usize = 1024;

struct Checker<'a> {
    paths: &'a [PathBuf],
    options: &'a VerifyOptions,
    report: Report,
    last: Option<Last>,
    tail: Tail,
    /// Ranges of `seq` reported missing, with where.
    missing: Vec<(u64, u64, usize, u64)>,
}

/// Whether `b` continues the chain right after `a`.
fn links(a: &Last, b: &Line) -> bool {
    b.prev == Some(a.hash) && a.seq.is_none_or(|s| b.seq == Some(s + 1))
}

fn last_of(line: &Line) -> Last {
    let reason = line.checkpoint.as_ref().and_then(|c| c.reason);
    Last {
        file: line.file,
        number: line.number,
        seq: line.seq,
        hash: line.hash,
        seal: line
            .checkpoint
            .as_ref()
            .is_some_and(|c| c.reason == Some(Reason::Seal) && c.bad_signature.is_none()),
        rotation: reason == Some(Reason::Rotation),
        complete: line.complete,
    }
}

impl Checker<'_> {
    /// Checks one line (and `ahead`, the next one, when it has to be judged
    /// together with it); returns true when `ahead` was consumed.
    fn step(&mut self, line: &Line, ahead: Option<&Line>) -> bool {
        self.observe(line);
        let took_ahead = self.link(line, ahead);
        if let (true, Some(a)) = (took_ahead, ahead) {
            self.observe(a);
        }
        took_ahead
    }

    /// Per-line checks that need no neighbour: counts, cut lines,
    /// signatures, and what the last valid checkpoint covers.
    fn observe(&mut self, line: &Line) {
        if let Some(seq) = line.seq {
            let (lo, hi) = self.report.seq_range.unwrap_or((seq, seq));
            self.report.seq_range = Some((lo.min(seq), hi.max(seq)));
        }
        if !line.complete {
            self.problem(
                line.file,
                line.number,
                ProblemKind::Truncated,
                "line cut short (no newline at the end): the file was truncated mid-line, \
                 or is being written"
                    .into(),
            );
        }
        match &line.checkpoint {
            Some(cp) => {
                self.report.checkpoints += 1;
                if let Some(why) = &cp.bad_signature {
                    self.problem(
                        line.file,
                        line.number,
                        ProblemKind::BadSignature,
                        why.clone(),
                    );
                    self.count_unsigned(line);
                } else {
                    self.tail.first = None;
                    self.tail.count = 0;
                    self.tail.checkpoint = Some((cp.reason, line.file, line.number));
                }
            }
            None => {
                if line.malformed.is_none() {
                    self.report.records += 1;
                }
                self.count_unsigned(line);
            }
        }
    }

    fn count_unsigned(&mut self, line: &Line) {
        self.tail.first.get_or_insert((line.file, line.number));
        self.tail.count += 1;
    }

    /// Checks that `line` continues the chain; returns true when `ahead`
    /// was consumed with it (two swapped lines).
    fn link(&mut self, line: &Line, ahead: Option<&Line>) -> bool {
        let Some(last) = self.last.clone() else {
            if let (Some(why), true) = (&line.malformed, line.complete) {
                self.problem(line.file, line.number, ProblemKind::Malformed, why.clone());
            }
            self.last = Some(last_of(line));
            return false;
        };
        let ahead_links = ahead.is_some_and(|a| links(&last, a));
        if line.malformed.is_some() {
            if ahead_links {
                self.inserted(line, "a line that is not a chained record");
                return false;
            }
            if let (Some(why), true) = (&line.malformed, line.complete) {
                self.problem(line.file, line.number, ProblemKind::Malformed, why.clone());
            }
            self.last = Some(last_of(line));
            return false;
        }
        if links(&last, line) {
            self.last = Some(last_of(line));
            return false;
        }
        let seq = line.seq.unwrap_or_default();
        if seq == 1 && line.prev == Some(GENESIS) {
            self.restarted(line, &last);
            return false;
        }
        if let Some(a) = ahead.filter(|a| ahead_links && links(&last_of(a), line)) {
            let msg = format!(
                "out of order: seq {seq} comes before seq {} (line {}); the two lines are swapped",
                a.seq.unwrap_or_default(),
                a.number
            );
            self.problem(line.file, line.number, ProblemKind::Reordered, msg);
            self.last = Some(last_of(line));
            return true;
        }
        if ahead_links {
            self.inserted(line, &format!("record seq {seq}"));
            return false;
        }
        match last.seq.map(|s| s + 1) {
            Some(expected) if seq == expected => self.changed(line, ahead, &last),
            Some(expected) if seq > expected => self.removed(line, &last, expected),
            Some(expected) => {
                let msg = format!("out of order: seq {seq} where seq {expected} belongs");
                self.problem(line.file, line.number, ProblemKind::Reordered, msg);
            }
            None => {
                let msg = format!(
                    "does not continue the chain from line {} (`prev` is not its hash)",
                    last.number
                );
                self.problem(line.file, line.number, ProblemKind::Changed, msg);
                self.last = Some(last_of(line));
            }
        }
        false
    }

    /// `line` has the right `seq` but does not link by hash: the line before
    /// changed, or this one did (then the next line does not link to it either).
    fn changed(&mut self, line: &Line, ahead: Option<&Line>, last: &Last) {
        let seq = line.seq.unwrap_or_default();
        let this_changed = ahead
            .filter(|a| a.seq == Some(seq + 1) && a.prev != Some(line.hash))
            .and_then(|a| a.prev);
        let mut accepted = last_of(line);
        if !last.complete {
            // The cut line before, reported already, is why it does not link.
        } else if let Some(original) = this_changed {
            self.problem(
                line.file,
                line.number,
                ProblemKind::Changed,
                format!("record seq {seq} changed: its hash matches neither neighbour's `prev`"),
            );
            // Judge the next line against the record as the chain knew it.
            accepted.hash = original;
        } else {
            self.problem(
                last.file,
                last.number,
                ProblemKind::Changed,
                format!(
                    "record changed: its hash is not the `prev` of the next record ({}:{})",
                    self.name(line.file),
                    line.number
                ),
            );
        }
        self.last = Some(accepted);
    }

    fn removed(&mut self, line: &Line, last: &Last, expected: u64) {
        let seq = line.seq.unwrap_or_default();
        let n = seq - expected;
        let range = if n == 1 {
            format!("seq {expected}")
        } else {
            format!("seq {expected}..{}", seq - 1)
        };
        let at_file_start = line.number == 1 && line.file != last.file;
        let signed = self.report.checkpoints > 0;
        if !at_file_start {
            let msg = format!("{n} record(s) ({range}) missing before this line");
            self.problem(line.file, line.number, ProblemKind::Removed, msg);
        } else if last.rotation || !signed {
            // A file ends with its rotation checkpoint: what follows was a file of its own.
            let msg = format!(
                "{n} record(s) ({range}) missing between {} and this file: a file is missing{}",
                self.name(last.file),
                if signed {
                    ""
                } else {
                    ", or the one before was cut short"
                }
            );
            self.problem(line.file, line.number, ProblemKind::FileMissing, msg);
        } else if last.complete {
            let msg = format!(
                "the file ends early: {n} record(s) ({range}) are missing after this line, \
                 and it does not end with a rotation checkpoint (cut short)"
            );
            self.problem(last.file, last.number, ProblemKind::Truncated, msg);
        }
        if self.missing.len() < MISSING_KEPT {
            self.missing
                .push((expected, seq - 1, line.file, line.number));
        }
        self.last = Some(last_of(line));
    }

    /// `line` is extra: the next line continues the chain without it.
    fn inserted(&mut self, line: &Line, what: &str) {
        let moved = line.seq.and_then(|s| {
            self.missing
                .iter()
                .find(|(lo, hi, _, _)| (*lo..=*hi).contains(&s))
        });
        let (kind, msg) = match moved {
            Some(&(_, _, file, number)) => (
                ProblemKind::Reordered,
                format!(
                    "out of order: {what} belongs before {}:{number}",
                    self.name(file)
                ),
            ),
            None => (
                ProblemKind::Inserted,
                format!("{what} was inserted: the next line continues the chain without it"),
            ),
        };
        self.problem(line.file, line.number, kind, msg);
    }

    /// A new chain (seq 1) after `last`: pgwarden writing to stdout starts
    /// one per run; after a seal that is a restart, else records may be lost.
    fn restarted(&mut self, line: &Line, last: &Last) {
        let msg = format!(
            "a new chain starts here (seq 1) after line {} of {}",
            last.number,
            self.name(last.file)
        );
        if last.seal {
            self.warning(line.file, line.number, ProblemKind::Restarted, msg);
        } else {
            let msg = format!("{msg}, which is not a seal: records may be missing");
            self.problem(line.file, line.number, ProblemKind::Restarted, msg);
        }
        self.last = Some(last_of(line));
    }

    /// After the last line: is the end covered by a signature?
    fn finish(mut self) -> Report {
        let unchecked = if self.options.public_key.is_none() {
            " (signatures not checked)"
        } else {
            ""
        };
        if let Some((file, number)) = self.tail.first {
            let count = self.tail.count;
            let msg = match self.tail.checkpoint {
                None if self.report.checkpoints > 0 => format!(
                    "no checkpoint with a valid signature: {count} line(s) from here are not \
                     covered by one"
                ),
                None => format!(
                    "no checkpoint{unchecked}: {count} line(s) from here are not covered by a \
                     signature (audit.signing_key unset, or the log was cut)"
                ),
                Some(_) => format!(
                    "{count} line(s) from here, after the last valid checkpoint, are not covered \
                     by a signature (pgwarden still running or stopped uncleanly, or the log \
                     was cut)"
                ),
            };
            self.warning(file, number, ProblemKind::Unsealed, msg);
        } else if let Some((reason, file, number)) = self.tail.checkpoint {
            match reason {
                Some(Reason::Seal) => {}
                Some(Reason::Rotation) => self.warning(
                    file,
                    number,
                    ProblemKind::Unsealed,
                    "the log ends with a rotation checkpoint: it goes on in a newer file that \
                     was not given (or was removed)"
                        .into(),
                ),
                _ => self.warning(
                    file,
                    number,
                    ProblemKind::Unsealed,
                    "the log does not end with a seal (pgwarden still running or stopped \
                     uncleanly, or the log was cut after this checkpoint)"
                        .into(),
                ),
            }
        }
        self.report
    }

    fn name(&self, file: usize) -> String {
        self.paths
            .get(file)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn problem(&mut self, file: usize, line: u64, kind: ProblemKind, message: String) {
        self.push(file, line, kind, Severity::Error, message);
    }

    fn warning(&mut self, file: usize, line: u64, kind: ProblemKind, message: String) {
        let severity = if self.options.strict {
            Severity::Error
        } else {
            Severity::Warning
        };
        self.push(file, line, kind, severity, message);
    }

    fn push(
        &mut self,
        file: usize,
        line: u64,
        kind: ProblemKind,
        severity: Severity,
        message: String,
    ) {
        self.report.problems.push(Problem {
            file: self.paths.get(file).cloned().unwrap_or_default(),
            line,
            kind,
            severity,
            message,
        });
    }
}
