//! Rendering a [`Report`] as JSON, Markdown or one self-contained HTML file.

mod html;
mod markdown;
mod svg;

use super::model::Report;
use super::ReportError;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One HTML file with inline CSS and SVG charts; no network access.
    Html,
    /// Markdown tables.
    Md,
    /// The report's data, machine-readable.
    Json,
}

impl Format {
    /// The format a file name suggests (`.html`, `.htm`, `.json`, `.md`).
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "html" | "htm" => Some(Self::Html),
            "json" => Some(Self::Json),
            "md" | "markdown" => Some(Self::Md),
            _ => None,
        }
    }
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> Result<String, ReportError> {
    match format {
        Format::Json => serde_json::to_string_pretty(report)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(ReportError::Json),
        Format::Md => Ok(markdown::render(report)),
        Format::Html => Ok(html::render(report)),
    }
}

/// Shows times in the report's zone, as `2025-10-09 10:53:20 +02:00`.
struct Clock(Tz);

impl Clock {
    fn of(report: &Report) -> Self {
        Self(report.period.time_zone.parse().unwrap_or(chrono_tz::UTC))
    }

    fn show(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    }
}

/// `alice (3), bob (1)`, most first.
fn by_user(users: &super::model::ByUser) -> String {
    let mut v: Vec<(&String, &u64)> = users.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(u, n)| format!("{u} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Old/new values as compact JSON, `-` when absent.
fn value_text(v: &Option<serde_json::Value>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}
