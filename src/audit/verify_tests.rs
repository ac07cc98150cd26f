//! Chain, checkpoints and verification together: logs built line by line
//! (or by the real writer), tampered with, and verified.

use super::chain::Chain;
use super::checkpoint::{Reason, Signer};
use super::verify::{verify_files, ProblemKind, Report, Severity, VerifyOptions};
use super::{AuditLog, SessionContext, StatementRecord};
use crate::analyse::{Analysis, StatementKind};
use crate::config::{AuditConfig, HumanDuration};
use crate::metrics::Metrics;
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A log of `n` records with a checkpoint after every `every`-th (as if
/// each ended a file) and a seal at the end, one line per element.
fn log(n: u64, every: u64) -> Vec<Vec<u8>> {
    let signer = Signer::new(key(1));
    let mut chain = Chain::new();
    let mut out = Vec::new();
    for i in 1..=n {
        chain.push_object(&mut out, format!(r#"{{"i":{i}}}"#).as_bytes());
        if i % every == 0 {
            signer.push_checkpoint(
                &mut chain,
                &mut out,
                Reason::Rotation,
                every,
                SystemTime::now(),
            );
        }
    }
    signer.push_checkpoint(
        &mut chain,
        &mut out,
        Reason::Seal,
        n % every,
        SystemTime::now(),
    );
    out.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Writes `files` (each a list of lines) into `dir` as `f0`, `f1`, ...
fn write(dir: &Path, files: &[&[Vec<u8>]]) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, lines)| {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, lines.concat()).unwrap();
            p
        })
        .collect()
}

fn options(strict: bool) -> VerifyOptions {
    VerifyOptions {
        public_key: Some(key(1).verifying_key()),
        strict,
    }
}

fn check(files: &[&[Vec<u8>]]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    verify_files(&write(dir.path(), files), &options(false)).unwrap()
}

/// (file index, line, kind) of every error.
fn errors(r: &Report) -> Vec<(String, u64, ProblemKind)> {
    r.errors()
        .map(|p| {
            let name = p.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, p.line, p.kind)
        })
        .collect()
}

fn e(file: &str, line: u64, kind: ProblemKind) -> (String, u64, ProblemKind) {
    (file.to_owned(), line, kind)
}

#[test]
fn an_untouched_log_verifies_strictly() {
    let lines = log(25, 10);
    let dir = tempfile::tempdir().unwrap();
    let paths = write(dir.path(), &[&lines[..12], &lines[12..]]);
    let r = verify_files(&paths, &options(true)).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!((r.records, r.checkpoints), (25, 3));
    assert_eq!(r.seq_range, Some((1, 28)));
}

#[test]
fn each_kind_of_tampering_is_found_where_it_is() {
    use ProblemKind::*;
    let lines = log(30, 10);
    // Line 5 (seq 5) changed by one byte.
    let mut changed = lines.clone();
    changed[4] = String::from_utf8(changed[4].clone())
        .unwrap()
        .replace("\"i\":5", "\"i\":6")
        .into_bytes();
    assert_eq!(errors(&check(&[&changed])), [e("f0", 5, Changed)]);
    // A copy of line 3 inserted after line 7.
    let mut inserted = lines.clone();
    inserted.insert(7, lines[2].clone());
    assert_eq!(errors(&check(&[&inserted])), [e("f0", 8, Inserted)]);
    // Garbage inserted.
    let mut garbage = lines.clone();
    garbage.insert(3, b"{\"x\":1}\n".to_vec());
    assert_eq!(errors(&check(&[&garbage])), [e("f0", 4, Inserted)]);
    // Line 6 removed: reported at the line after the gap.
    let mut removed = lines.clone();
    removed.remove(5);
    assert_eq!(errors(&check(&[&removed])), [e("f0", 6, Removed)]);
    // Lines 13 and 14 swapped.
    let mut swapped = lines.clone();
    swapped.swap(12, 13);
    assert_eq!(errors(&check(&[&swapped])), [e("f0", 13, Reordered)]);
    // Line 2 moved after line 8: missing at 2, out of order at 8.
    let mut moved = lines.clone();
    let l = moved.remove(1);
    moved.insert(7, l);
    assert_eq!(
        errors(&check(&[&moved])),
        [e("f0", 2, Removed), e("f0", 8, Reordered)]
    );
    // The `prev` field of line 9 changed: one problem, at line 9.
    let mut prev = lines.clone();
    let text = String::from_utf8(prev[8].clone()).unwrap();
    let at = text.find("\"prev\":\"").unwrap() + 8;
    let flipped = if &text[at..=at] == "a" { "b" } else { "a" };
    prev[8] = format!("{}{flipped}{}", &text[..at], &text[at + 1..]).into_bytes();
    assert_eq!(errors(&check(&[&prev])), [e("f0", 9, Changed)]);
}

#[test]
fn cuts_and_missing_files_are_found() {
    use ProblemKind::*;
    let lines = log(30, 10);
    let (a, b, c) = (&lines[..11], &lines[11..22], &lines[22..]);
    // A middle file missing.
    assert_eq!(errors(&check(&[a, c])), [e("f1", 1, FileMissing)]);
    // A middle file cut at a line boundary: it lacks its rotation checkpoint.
    assert_eq!(errors(&check(&[a, &b[..5], c])), [e("f1", 5, Truncated)]);
    // ... or mid-line: only the cut line is reported.
    let mut cut = b[..5].to_vec();
    cut[4].truncate(100);
    assert_eq!(errors(&check(&[a, &cut, c])), [e("f1", 5, Truncated)]);
    let mut cut = b.to_vec();
    cut[10].truncate(300);
    assert_eq!(errors(&check(&[a, &cut, c])), [e("f1", 11, Truncated)]);
    // Cut mid-line: an error at the cut line.
    let mut cut = c.to_vec();
    let last = cut.last_mut().unwrap();
    last.truncate(last.len() / 2);
    assert_eq!(errors(&check(&[a, b, &cut])), [e("f2", 12, Truncated)]);
    // Cut at a line boundary: the unsigned tail is a warning, an error with --strict.
    let dir = tempfile::tempdir().unwrap();
    let paths = write(dir.path(), &[a, b, &c[..5]]);
    let r = verify_files(&paths, &options(false)).unwrap();
    assert!(r.is_verified());
    let w = &r.problems[0];
    assert_eq!(
        (w.line, w.kind, w.severity),
        (1, Unsealed, Severity::Warning)
    );
    assert!(
        w.message.starts_with("5 line(s) from here"),
        "{}",
        w.message
    );
    let r = verify_files(&paths, &options(true)).unwrap();
    assert_eq!(errors(&r), [e("f2", 1, Unsealed)]);
    // The newest file left out: the log ends with a checkpoint, not a seal.
    let r = check(&[a, b]);
    assert!(r.is_verified());
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
}

#[test]
fn forged_and_foreign_signatures_are_refused() {
    use ProblemKind::*;
    let lines = log(20, 10);
    // The seal replaced by one signed with another key, chained correctly.
    let mut chain = Chain::after_line(lines[21].strip_suffix(b"\n").unwrap());
    let mut forged = lines[..22].to_vec();
    let mut out = Vec::new();
    Signer::new(key(2)).push_checkpoint(&mut chain, &mut out, Reason::Seal, 0, SystemTime::now());
    forged.push(out);
    let r = check(&[&forged]);
    assert_eq!(errors(&r), [e("f0", 23, BadSignature)]);
    assert!(
        r.problems[0].message.contains("signed by another key"),
        "{:?}",
        r.problems
    );
    // Without the public key the chain still verifies (signatures unchecked).
    let dir = tempfile::tempdir().unwrap();
    let paths = write(dir.path(), &[&forged]);
    let r = verify_files(&paths, &VerifyOptions::default()).unwrap();
    assert!(r.is_verified() && !r.signatures_checked);
}

#[test]
fn a_new_chain_after_a_seal_is_a_restart_else_an_error() {
    let first = log(3, 10);
    let second = log(2, 10);
    let r = check(&[&first, &second]);
    assert!(r.is_verified(), "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, ProblemKind::Restarted);
    let r = check(&[&first[..2], &second]);
    assert_eq!(errors(&r), [e("f1", 1, ProblemKind::Restarted)]);
}

fn statement(id: u64) -> StatementRecord {
    let analysis = Analysis {
        kind: StatementKind::Select,
        command: "SELECT".into(),
        accesses: vec![],
        opaque_calls: vec![],
        unanalysed: None,
        normalized: Arc::from("SELECT $1"),
        fingerprint: Arc::from("0123456789abcdef"),
        effects: vec![],
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Default::default(),
    };
    let ctx = SessionContext::connecting(id, "127.0.0.1:5000".parse().unwrap(), false);
    StatementRecord::new(Arc::new(ctx), Arc::new(analysis))
}

/// The audit files in `dir`, oldest first.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "key" && e != "pub"))
        .collect();
    let age = |p: &PathBuf| -> u32 {
        p.extension()
            .and_then(|e| e.to_str()?.parse().ok())
            .unwrap_or(0)
    };
    files.sort_by_key(|p| std::cmp::Reverse(age(p)));
    files
}

fn signed_config(dir: &Path) -> AuditConfig {
    let key_path = dir.join("audit.key");
    if !key_path.exists() {
        super::keys::generate(&key_path).unwrap();
    }
    AuditConfig {
        path: Some(dir.join("audit.log")),
        max_file_size: 4096,
        keep_files: 1000,
        signing_key: Some(key_path),
        sign_interval_records: 4,
        ..AuditConfig::default()
    }
}

fn public(dir: &Path) -> VerifyOptions {
    VerifyOptions {
        public_key: Some(super::keys::load_verifying_key(&dir.join("audit.key.pub")).unwrap()),
        strict: true,
    }
}

#[tokio::test]
async fn the_writer_signs_rotations_and_seals_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = signed_config(dir.path());
    for run in 0..2 {
        let m = Metrics::new();
        let (h, task) = AuditLog::start(&c, &m).unwrap();
        for i in 0..50 {
            h.send(statement(run * 100 + i)).await;
        }
        task.shutdown().await;
        assert_eq!(m.audit_records.get(), 50);
    }
    let files = files(dir.path());
    assert!(files.len() > 5, "{files:?}");
    let r = verify_files(&files, &public(dir.path())).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.records, 100);
    let (first, last) = r.seq_range.unwrap();
    assert_eq!(first, 1);
    assert_eq!(last, 100 + r.checkpoints);
    // Every rotated file ends with a rotation checkpoint and fits its size.
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.len() <= 4096, "{f:?}: {} bytes", text.len());
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let reason = last["event"]["reason"].as_str();
        if f == files.last().unwrap() {
            assert_eq!(reason, Some("seal"));
        } else {
            assert_eq!(reason, Some("rotation"), "{f:?}");
        }
    }
}

#[tokio::test]
async fn an_idle_writer_signs_after_sign_interval() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        sign_interval: HumanDuration(Duration::from_millis(50)),
        sign_interval_records: 1000,
        ..signed_config(dir.path())
    };
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    h.send(statement(1)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Before shutdown: the record is signed already.
    let r = verify_files(&files(dir.path()), &public(dir.path())).unwrap();
    let kinds: Vec<_> = r.problems.iter().map(|p| p.kind).collect();
    assert_eq!((r.records, r.checkpoints), (1, 1), "{kinds:?}");
    // Only "not sealed": nothing is unsigned.
    assert_eq!(kinds, [ProblemKind::Unsealed]);
    assert!(r.problems[0].message.contains("does not end with a seal"));
    task.shutdown().await;
    let r = verify_files(&files(dir.path()), &public(dir.path())).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.checkpoints, 2);
}

#[tokio::test]
async fn without_a_key_the_log_is_chained_only() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        path: Some(dir.path().join("audit.log")),
        ..AuditConfig::default()
    };
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    for i in 0..3 {
        h.send(statement(i)).await;
    }
    task.shutdown().await;
    let r = verify_files(&files(dir.path()), &VerifyOptions::default()).unwrap();
    assert!(r.is_verified());
    assert_eq!((r.records, r.checkpoints), (3, 0));
    assert_eq!(r.problems.len(), 1);
    assert!(r.problems[0]
        .message
        .starts_with("no checkpoint (signatures not checked): 3 line(s)"));
}

#[tokio::test]
async fn a_line_cut_by_a_crash_is_ended_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = signed_config(dir.path());
    let path = dir.path().join("audit.log");
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    h.send(statement(1)).await;
    task.shutdown().await;
    // A crash mid-write: half a line at the end.
    let text = std::fs::read(&path).unwrap();
    let mut cut = text.clone();
    cut.extend_from_slice(&text[..120]);
    std::fs::write(&path, &cut).unwrap();
    let (h, task) = AuditLog::start(&c, &Metrics::new()).unwrap();
    h.send(statement(2)).await;
    task.shutdown().await;
    let r = verify_files(&files(dir.path()), &public(dir.path())).unwrap();
    // Only the cut line is wrong; the chain runs through it.
    assert_eq!(errors(&r), [e("audit.log", 3, ProblemKind::Malformed)]);
    assert_eq!(r.records, 2);
}

#[test]
fn a_bad_signing_key_is_a_config_error_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.key");
    let toml = format!(
        "[audit]\n\nsigning_key = {:?}\n",
        missing.display().to_string()
    );
    let err = crate::config::load::parse(&toml, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "p.toml:3: audit.signing_key: {}",
            missing.display()
        )),
        "{err}"
    );
    std::fs::write(&missing, "garbage").unwrap();
    let err = crate::config::load::parse(&toml, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an Ed25519 private key"), "{err}");
}
