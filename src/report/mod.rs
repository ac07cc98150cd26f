//! `pgwarden report`: compliance reports over audit files — who read,
//! changed, was refused or saw masked values of which tables, columns and
//! classifications; the largest extractions; off-hours access; changes to
//! salaries; failed logins; and trends per day (docs/report.md).
//!
//! The library part is [`build`] (files → [`Report`]) and [`render`]
//! (report → JSON, Markdown or one self-contained HTML file); [`cli`] is the
//! thin command-line shell.

mod aggregate;
pub mod cli;
pub mod input;
pub mod model;
pub mod options;
mod read;
pub mod render;
mod usage;

#[cfg(test)]
mod tests;

pub use aggregate::Aggregator;
pub use model::Report;
pub use options::{parse_time, parse_tz, Bound, OfficeHours, ReportOptions};
pub use read::read_lines;
pub use render::{render, Format};

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a report could not be made.
#[derive(Debug, Error)]
pub enum ReportError {
    /// An audit file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A time is neither RFC 3339, a local date-time nor a date.
    #[error("\"{0}\" is not a time (RFC 3339 such as 2025-10-09T08:00:00Z, 2025-10-09T08:00 in --tz, or a date 2025-10-09)")]
    Time(String),
    /// The period is empty.
    #[error("--to must be later than --from")]
    EmptyPeriod,
    /// Not an IANA time zone.
    #[error("\"{0}\" is not an IANA time zone (such as UTC or Europe/Berlin)")]
    TimeZone(String),
    /// Office hours are not `HH:MM-HH:MM`.
    #[error("\"{0}\" is not office hours HH:MM-HH:MM (such as 08:00-18:00)")]
    OfficeHours(String),
    /// The policy given for classifications is invalid.
    #[error("--policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The JSON output could not be produced.
    #[error("cannot produce JSON: {0}")]
    Json(serde_json::Error),
}

/// Reads `paths` (in any order) and builds the report over `options`.
pub fn build(paths: &[impl AsRef<Path>], options: ReportOptions) -> Result<Report, ReportError> {
    if options.to <= options.from {
        return Err(ReportError::EmptyPeriod);
    }
    let mut agg = Aggregator::new(options);
    for p in paths {
        read::read_file(p.as_ref(), &mut agg)?;
    }
    Ok(agg.finish())
}
