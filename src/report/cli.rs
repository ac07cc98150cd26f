//! `pgwarden report`: the command-line shell over [`build`](super::build)
//! and [`render`](super::render).

use super::options::{parse_time, parse_tz, Bound, OfficeHours, ReportOptions};
use super::render::{render, Format};
use super::ReportError;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `pgwarden report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Start of the period: RFC 3339, a date-time in --tz, or a date (its start).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the period (excluded): RFC 3339, a date-time in --tz, or a
    /// date (the whole day is included).
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Output format [default: from --output's extension, else md].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// IANA time zone for days, office hours and times shown.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub tz: String,
    /// Office hours on weekdays, in --tz; anything else is off-hours.
    #[arg(long, value_name = "HH:MM-HH:MM", default_value = "08:00-18:00")]
    pub office_hours: String,
    /// Policy directory (or file) whose classifications group columns
    /// [default: group by table].
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
    /// How many of the largest extractions to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Table whose changes are listed with old and new values.
    #[arg(long, value_name = "SCHEMA.TABLE", default_value = "hr.salaries")]
    pub changes_table: String,
    /// Audit files, in any order (rotated files too; checkpoints are skipped).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

impl ReportArgs {
    /// The report options these flags give.
    pub fn options(&self) -> Result<ReportOptions, ReportError> {
        let tz = parse_tz(&self.tz)?;
        let mut o = ReportOptions::new(
            parse_time(&self.from, tz, Bound::From)?,
            parse_time(&self.to, tz, Bound::To)?,
        );
        o.tz = tz;
        o.office_hours = OfficeHours::parse(&self.office_hours)?;
        o.top = self.top;
        o.changes_table = self.changes_table.clone();
        if let Some(dir) = &self.policy {
            o.policy = Some(Arc::new(crate::policy::load::load(dir, 0)?));
        }
        Ok(o)
    }

    /// The chosen format.
    pub fn format(&self) -> Format {
        self.format
            .or_else(|| self.output.as_deref().and_then(Format::from_path))
            .unwrap_or(Format::Md)
    }
}

/// Builds, renders and writes the report.
pub fn run(args: ReportArgs) -> Result<(), ReportError> {
    let report = super::build(&args.paths, args.options()?)?;
    let text = render(&report, args.format())?;
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        }),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|source| ReportError::Write {
                path: "standard output".into(),
                source,
            }),
    }
}
