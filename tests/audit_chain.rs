//! The tamper-evident audit log end to end: real statements through
//! pgwarden with a signing key and small files (so it rotates), a clean
//! shutdown, `verify` says OK; then copies of the real files are tampered
//! with in every way an auditor cares about and `verify` must name the
//! right file and line each time.

mod common;

use common::{pg, SCRAM_USER, SUPERUSER};
use ed25519_dalek::Signer as _;
use pgwarden::audit::chain::to_hex;
use pgwarden::audit::checkpoint::signed_message;
use pgwarden::audit::keys::{generate, key_id, load_signing_key, load_verifying_key};
use pgwarden::audit::verify::{verify_files, ProblemKind, Report, Severity, VerifyOptions};
use pgwarden::cli::{Cli, Command};
use pgwarden::Server;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One audit file: its name and its lines (each with its newline).
#[derive(Clone)]
struct File {
    name: String,
    lines: Vec<Vec<u8>>,
}

/// Runs statements through a signing, rotating pgwarden and returns the
/// temp dir and the audit files, oldest first.
async fn real_log() -> (tempfile::TempDir, Vec<PathBuf>) {
    let pg = pg();
    let dir = tempfile::tempdir().expect("temp dir");
    generate(&dir.path().join("audit.key")).expect("keygen");
    let mut config = common::config_for(&pg);
    config.audit.path = Some(dir.path().join("audit.log"));
    config.audit.max_file_size = 4096;
    config.audit.keep_files = 1000;
    config.audit.signing_key = Some(dir.path().join("audit.key"));
    config.audit.sign_interval_records = 3;
    config.catalog.user = SUPERUSER.0.into();
    config.catalog.password = Some(SUPERUSER.1.into());
    pgwarden::config::load::validate(&config).expect("valid config");
    let server = Server::start(config).await.expect("proxy starts");
    let port = server.local_addr.port();
    let client = common::connect(port, SCRAM_USER.0, SCRAM_USER.1, "app").await;
    client
        .batch_execute("CREATE TABLE chain_people (id int PRIMARY KEY, name text, ssn text)")
        .await
        .expect("create");
    for i in 0..40 {
        client
            .execute(
                "INSERT INTO chain_people VALUES ($1, $2, $3)",
                &[&i, &format!("person {i}"), &format!("{i:09}")],
            )
            .await
            .expect("insert");
        client
            .query("SELECT name, ssn FROM chain_people WHERE id = $1", &[&i])
            .await
            .expect("select");
    }
    drop(client);
    server.shutdown();
    tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("proxy stops within 30 s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audit.log"))
        })
        .collect();
    let age = |p: &PathBuf| -> u32 {
        p.extension()
            .and_then(|e| e.to_str()?.parse().ok())
            .unwrap_or(0)
    };
    files.sort_by_key(|p| std::cmp::Reverse(age(p)));
    (dir, files)
}

fn read(paths: &[PathBuf]) -> Vec<File> {
    paths
        .iter()
        .map(|p| File {
            name: p.file_name().expect("name").to_string_lossy().into_owned(),
            lines: std::fs::read(p)
                .expect("read")
                .split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect(),
        })
        .collect()
}

fn options(dir: &Path, strict: bool) -> VerifyOptions {
    let key = load_verifying_key(&dir.join("audit.key.pub")).expect("public key");
    VerifyOptions {
        public_key: Some(key),
        strict,
    }
}

/// Writes `files` into a fresh directory and verifies them.
fn verify_copy(files: &[File], options: &VerifyOptions) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let p = dir.path().join(&f.name);
            std::fs::write(&p, f.lines.concat()).expect("write copy");
            p
        })
        .collect();
    verify_files(&paths, options).expect("verify runs")
}

/// (file, line, kind) of every error.
fn errors(r: &Report) -> Vec<(String, u64, ProblemKind)> {
    r.errors()
        .map(|p| {
            let name = p
                .file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, p.line, p.kind)
        })
        .collect()
}

fn at(file: &File, line: u64, kind: ProblemKind) -> Vec<(String, u64, ProblemKind)> {
    vec![(file.name.clone(), line, kind)]
}

/// The same checkpoint line signed by `key` instead (chain fields untouched).
fn resigned(line: &[u8], key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).expect("utf-8");
    let id_at = text.find("\"key_id\":\"").expect("key_id") + 10;
    let text = format!(
        "{}{}{}",
        &text[..id_at],
        key_id(&key.verifying_key()),
        &text[id_at + 16..]
    );
    let sig_at = text.find("\"signature\":\"").expect("signature") + 13;
    let signed = &text.as_bytes()[..sig_at];
    let signature = key.sign(&signed_message(signed));
    format!(
        "{}{}\"}}}}}}\n",
        &text[..sig_at],
        to_hex(&signature.to_bytes())
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_a_real_audit_log_is_found_at_the_right_line() {
    use ProblemKind::*;
    let (dir, paths) = real_log().await;
    assert!(paths.len() >= 6, "only {} files", paths.len());
    let files = read(&paths);
    let opts = options(dir.path(), false);

    // Untouched: verified, even strictly, and through the CLI.
    let report = verify_files(&paths, &options(dir.path(), true)).expect("verify");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.records >= 80, "{} records", report.records);
    assert!(
        report.checkpoints as usize >= paths.len(),
        "{}",
        report.checkpoints
    );
    for f in &files[..files.len() - 1] {
        let last = String::from_utf8_lossy(f.lines.last().expect("a line"));
        assert!(
            last.contains("\"reason\":\"rotation\""),
            "{}: {last}",
            f.name
        );
    }
    let last = files.last().and_then(|f| f.lines.last()).expect("a line");
    assert!(String::from_utf8_lossy(last).contains("\"reason\":\"seal\""));
    let (code, out) = cli(dir.path(), &paths);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with("OK: ")),
        "{out}"
    );

    // A middle file with at least three lines to tamper inside.
    let m = (files.len() / 2..files.len() - 1)
        .chain(1..files.len() / 2)
        .find(|&i| files[i].lines.len() >= 3)
        .expect("a middle file with 3 lines");
    let mid = &files[m];

    // One byte of a field changed (the query text of a record).
    let k = mid
        .lines
        .iter()
        .position(|l| String::from_utf8_lossy(l).contains("\"action\":\"statement\""))
        .filter(|&k| k + 1 < mid.lines.len())
        .expect("a statement record followed by a line");
    let mut t = files.clone();
    let line = &mut t[m].lines[k];
    let i = find(line, b"\"text\":\"") + 8;
    line[i] = if line[i] == b'X' { b'Y' } else { b'X' };
    assert_eq!(
        errors(&verify_copy(&t, &opts)),
        at(mid, k as u64 + 1, Changed)
    );

    // A line inserted (a copy of the first, after the second).
    let mut t = files.clone();
    let copy = t[m].lines[0].clone();
    t[m].lines.insert(2, copy);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 3, Inserted));

    // A line deleted.
    let mut t = files.clone();
    t[m].lines.remove(1);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 2, Removed));

    // Two lines swapped.
    let mut t = files.clone();
    t[m].lines.swap(0, 1);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 1, Reordered));

    // A middle file truncated mid-line.
    let mut t = files.clone();
    t[m].lines.truncate(2);
    let cut = t[m].lines[1].len() / 2;
    t[m].lines[1].truncate(cut);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 2, Truncated));

    // A middle file truncated at a line boundary: it lacks its rotation checkpoint.
    let mut t = files.clone();
    t[m].lines.truncate(2);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 2, Truncated));

    // The log cut at a line boundary (files after the middle one gone, it
    // cut after two lines): what is unsigned is a warning, an error with --strict.
    let mut t = files[..=m].to_vec();
    t[m].lines.truncate(2);
    let (file, line) = first_unsigned(&t);
    let r = verify_copy(&t, &opts);
    assert!(r.is_verified(), "{:#?}", r.problems);
    let w: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.line, p.kind, p.severity))
        .collect();
    assert_eq!(w, [(line, Unsealed, Severity::Warning)]);
    let r = verify_copy(&t, &options(dir.path(), true));
    assert_eq!(errors(&r), [(file, line, Unsealed)]);

    // The log cut mid-line at its end (as a crash mid-write would).
    let mut t = files[..=m].to_vec();
    t[m].lines.truncate(2);
    let cut = t[m].lines[1].len() - 5;
    t[m].lines[1].truncate(cut);
    assert_eq!(errors(&verify_copy(&t, &opts)), at(mid, 2, Truncated));

    // A middle rotated file deleted.
    let mut t = files.clone();
    t.remove(m);
    assert_eq!(
        errors(&verify_copy(&t, &opts)),
        at(&files[m + 1], 1, FileMissing)
    );

    // The seal forged with another key (chained correctly).
    generate(&dir.path().join("other.key")).expect("keygen");
    let other = load_signing_key(&dir.path().join("other.key")).expect("other key");
    let mut t = files.clone();
    let newest = t.last_mut().expect("files");
    let n = newest.lines.len();
    newest.lines[n - 1] = resigned(&newest.lines[n - 1], &other);
    let r = verify_copy(&t, &opts);
    assert_eq!(
        errors(&r),
        at(&files[files.len() - 1], n as u64, BadSignature)
    );
    assert!(
        r.problems[0].message.contains("signed by another key"),
        "{:?}",
        r.problems
    );

    // A rotation checkpoint forged: its signature, and its hash, are wrong.
    let mut t = files.clone();
    let n = t[m].lines.len();
    t[m].lines[n - 1] = resigned(&t[m].lines[n - 1], &other);
    let e = errors(&verify_copy(&t, &opts));
    assert!(
        e.contains(&(mid.name.clone(), n as u64, BadSignature)),
        "{e:?}"
    );
    assert!(
        e.iter().all(|x| x.0 == mid.name && x.1 == n as u64),
        "{e:?}"
    );

    // The CLI: tampering is exit 1 with file:line, unreadable input exit 2.
    let mut t = files.clone();
    t[m].lines.remove(1);
    let copy = tempfile::tempdir().expect("temp dir");
    let tampered: Vec<PathBuf> = t
        .iter()
        .map(|f| {
            let p = copy.path().join(&f.name);
            std::fs::write(&p, f.lines.concat()).expect("write");
            p
        })
        .collect();
    let (code, out) = cli(dir.path(), &tampered);
    assert_eq!(code, 1, "{out}");
    let expected = format!("{}:2: error: ", tampered[m].display());
    assert!(out.lines().any(|l| l.starts_with(&expected)), "{out}");
    let (code, _) = cli(dir.path(), &[dir.path().join("missing.log")]);
    assert_eq!(code, 2);
}

/// Where verify must warn about the end of `files`: the first line after
/// the last checkpoint, or that checkpoint (not a seal) when none follows.
fn first_unsigned(files: &[File]) -> (String, u64) {
    let mut unsigned = None;
    let mut checkpoint = None;
    for f in files {
        for (i, l) in f.lines.iter().enumerate() {
            let here = (f.name.clone(), i as u64 + 1);
            if String::from_utf8_lossy(l).contains("\"action\":\"checkpoint\"") {
                unsigned = None;
                checkpoint = Some(here);
            } else if unsigned.is_none() {
                unsigned = Some(here);
            }
        }
    }
    unsigned.or(checkpoint).expect("a line")
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

/// Runs `pgwarden audit verify --public-key .. PATHS` in-process: (exit code, stdout).
fn cli(dir: &Path, paths: &[PathBuf]) -> (u8, String) {
    let mut args = vec![
        "pgwarden".to_owned(),
        "audit".into(),
        "verify".into(),
        "--public-key".into(),
        dir.join("audit.key.pub").display().to_string(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let Ok(Cli {
        command: Command::Audit(audit),
    }) = <Cli as clap::Parser>::try_parse_from(args)
    else {
        panic!("audit verify arguments must parse");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = pgwarden::audit::cli::run_with(audit, &mut out, &mut err);
    let mut text = String::from_utf8(out).expect("utf-8");
    text.push_str(&String::from_utf8(err).expect("utf-8"));
    (code, text)
}
