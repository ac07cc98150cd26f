//! `pgwarden audit keygen`, `pgwarden audit verify` and `pgwarden audit subject`.

use super::keys::{generate, key_id, load_signing_key, load_verifying_key};
use super::subject_query::{find, render_text, SubjectQuery};
use super::verify::{verify_files, Report, VerifyOptions};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status: the files verified (warnings allowed unless `--strict`).
pub const EXIT_VERIFIED: u8 = 0;
/// Exit status: tampering (or damage) found.
pub const EXIT_TAMPERED: u8 = 1;
/// Exit status: bad usage, or a file or key could not be read.
pub const EXIT_USAGE: u8 = 2;

/// `pgwarden audit ...`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Subcommands of `pgwarden audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Make an Ed25519 key pair for signing checkpoints: PATH (private,
    /// mode 0600, for audit.signing_key) and PATH.pub (for verify).
    Keygen {
        /// Where to write the private key; never overwritten.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Check audit files for changed, inserted, removed or reordered
    /// records, missing files and bad signatures. Exit status: 0 verified,
    /// 1 tampering found, 2 usage or I/O error.
    Verify(VerifyArgs),
    /// List who saw (or changed) one data subject: time, user, role,
    /// address, application, command, fingerprint and columns, from the
    /// `pgwarden.subjects` of native audit records.
    Subject(SubjectArgs),
}

/// Options of `pgwarden audit subject`.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// The subject, as named in the policy's `[subjects]` (`hr.employees`).
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub table: String,
    /// The subject's key (`1234`).
    #[arg(long)]
    pub key: String,
    /// Only statements at or after this time (RFC 3339, or a UTC date).
    #[arg(long)]
    pub from: Option<String>,
    /// Only statements before this time (a date: through that day).
    #[arg(long)]
    pub to: Option<String>,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Audit files (native format), oldest first.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Options of `pgwarden audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signing key's public half (PATH.pub from keygen); without it,
    /// signatures are not checked.
    #[arg(long, value_name = "PUB")]
    pub public_key: Option<PathBuf>,
    /// Fail (exit 1) also on lines not covered by a signature and on a log
    /// that does not end with a seal.
    #[arg(long)]
    pub strict: bool,
    /// Audit files in order: rotated files oldest first (audit.log.3
    /// audit.log.2 audit.log.1 audit.log).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs an audit subcommand; returns the process's exit status.
pub fn run(args: AuditArgs) -> ExitCode {
    let code = run_with(args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}

/// [`run`] writing to `out` and `err`; returns the exit status.
pub fn run_with(args: AuditArgs, out: &mut impl Write, err: &mut impl Write) -> u8 {
    // Output errors (a closed pipe) cannot be reported anywhere better.
    match args.command {
        AuditCommand::Keygen { out: path } => match generate(&path) {
            Ok(pub_path) => {
                let id = load_signing_key(&path)
                    .map(|k| key_id(&k.verifying_key()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "private key: {} (set audit.signing_key to it)\npublic key:  {} \
                     (give it to whoever verifies)\nkey_id:      {id}",
                    path.display(),
                    pub_path.display()
                );
                EXIT_VERIFIED
            }
            Err(e) => {
                let _ = writeln!(err, "pgwarden audit keygen: {e}");
                EXIT_USAGE
            }
        },
        AuditCommand::Verify(v) => verify(v, out, err),
        AuditCommand::Subject(s) => subject(s, out, err),
    }
}

fn subject(args: SubjectArgs, out: &mut impl Write, err: &mut impl Write) -> u8 {
    use crate::report::options::{parse_time, Bound};
    let time = |s: &Option<String>, bound| match s {
        None => Ok(None),
        Some(s) => parse_time(s, chrono_tz::UTC, bound).map(Some),
    };
    let (from, to) = match (time(&args.from, Bound::From), time(&args.to, Bound::To)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(err, "pgwarden audit subject: {e}");
            return EXIT_USAGE;
        }
    };
    if args.format != "text" && args.format != "json" {
        let _ = writeln!(err, "pgwarden audit subject: --format is text or json");
        return EXIT_USAGE;
    }
    let q = SubjectQuery {
        subject: args.table,
        key: args.key,
        from,
        to,
    };
    let found = match find(&args.paths, &q) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "pgwarden audit subject: {e}");
            return EXIT_USAGE;
        }
    };
    if args.format == "json" {
        let doc = serde_json::json!({
            "subject": q.subject,
            "key": q.key,
            "statements": found,
        });
        let _ = writeln!(out, "{doc:#}");
    } else {
        let _ = write!(out, "{}", render_text(&q, &found));
    }
    EXIT_VERIFIED
}

fn verify(args: VerifyArgs, out: &mut impl Write, err: &mut impl Write) -> u8 {
    let public_key = match args.public_key.as_deref().map(load_verifying_key) {
        Some(Err(e)) => {
            let _ = writeln!(err, "pgwarden audit verify: --public-key {e}");
            return EXIT_USAGE;
        }
        Some(Ok(k)) => Some(k),
        None => None,
    };
    let options = VerifyOptions {
        public_key,
        strict: args.strict,
    };
    let report = match verify_files(&args.paths, &options) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "pgwarden audit verify: {e}");
            return EXIT_USAGE;
        }
    };
    for p in &report.problems {
        let _ = writeln!(out, "{p}");
    }
    let _ = writeln!(out, "{}", summary(&report, &options));
    if report.is_verified() {
        EXIT_VERIFIED
    } else {
        EXIT_TAMPERED
    }
}

/// The last line: OK or FAILED, with counts.
fn summary(r: &Report, options: &VerifyOptions) -> String {
    let seqs = r
        .seq_range
        .map_or_else(String::new, |(lo, hi)| format!(", seq {lo}..{hi}"));
    let signatures = match &options.public_key {
        Some(k) => format!("signatures verified with key_id {}", key_id(k)),
        None => "signatures NOT checked (no --public-key)".into(),
    };
    let counts = format!(
        "{} file(s), {} records, {} checkpoints{seqs}; {signatures}",
        r.files, r.records, r.checkpoints
    );
    let errors = r.errors().count();
    let warnings = r.problems.len() - errors;
    if errors == 0 {
        format!("OK: {counts}; {warnings} warning(s)")
    } else {
        format!("FAILED: {errors} error(s), {warnings} warning(s): {counts}")
    }
}
