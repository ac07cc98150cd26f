//! What a report covers: the period, the time zone days and office hours are
//! counted in, and how columns are classified. Parsing of the command line's
//! time values lives here too, so the library can be driven without clap.

use super::ReportError;
use crate::policy::Policy;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::sync::Arc;

/// Everything that shapes a report besides its input files.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// First instant no longer included.
    pub to: DateTime<Utc>,
    /// Zone for days, office hours and the times shown.
    pub tz: Tz,
    /// Weekday hours counted as office hours.
    pub office_hours: OfficeHours,
    /// How many of the largest extractions to list.
    pub top: usize,
    /// The table whose changes are listed (`schema.table`).
    pub changes_table: String,
    /// Classifications from a policy; `None` groups columns by table.
    pub policy: Option<Arc<Policy>>,
}

impl ReportOptions {
    /// A report over `[from, to)` in UTC with the defaults for the rest.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            from,
            to,
            tz: chrono_tz::UTC,
            office_hours: OfficeHours::default(),
            top: 10,
            changes_table: "hr.salaries".into(),
            policy: None,
        }
    }

    /// Whether `t` falls in the period.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }

    /// Whether `t` is outside office hours: a weekend, or a weekday outside
    /// the hours, in the report's zone.
    pub fn off_hours(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz);
        let weekend = local.weekday().number_from_monday() > 5;
        weekend
            || !self
                .office_hours
                .contains(local.hour() * 60 + local.minute())
    }

    /// The local calendar day of `t`.
    pub fn day_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }
}

/// Office hours on weekdays, as minutes since midnight: `[start, end)`;
/// `start > end` wraps past midnight (night shifts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficeHours {
    /// First minute inside.
    pub start: u32,
    /// First minute outside.
    pub end: u32,
}

impl Default for OfficeHours {
    fn default() -> Self {
        Self {
            start: 8 * 60,
            end: 18 * 60,
        }
    }
}

impl OfficeHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        let bad = || ReportError::OfficeHours(s.to_owned());
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minutes = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map(|t| t.hour() * 60 + t.minute())
                .map_err(|_| bad())
        };
        let (start, end) = (minutes(a)?, minutes(b)?);
        if start == end {
            return Err(bad());
        }
        Ok(Self { start, end })
    }

    /// Whether minute-of-day `m` is inside.
    pub fn contains(&self, m: u32) -> bool {
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

impl std::fmt::Display for OfficeHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, e) = (self.start, self.end);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

/// Parses an IANA zone name (`Europe/Berlin`, `UTC`).
pub fn parse_tz(s: &str) -> Result<Tz, ReportError> {
    s.parse::<Tz>()
        .map_err(|_| ReportError::TimeZone(s.to_owned()))
}

/// Which end of the period a time value gives: a bare date means the start
/// of that day for `From` and the start of the next day for `To`, so
/// `--from 2025-10-01 --to 2025-10-31` covers all of October.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `--from`.
    From,
    /// `--to`.
    To,
}

/// Parses RFC 3339 (`2025-10-09T08:00:00Z`), a local date-time in `tz`
/// (`2025-10-09T08:00`, `2025-10-09 08:00:00`) or a date (`2025-10-09`).
pub fn parse_time(s: &str, tz: Tz, bound: Bound) -> Result<DateTime<Utc>, ReportError> {
    let bad = || ReportError::Time(s.to_owned());
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = match bound {
            Bound::From => d,
            Bound::To => d.succ_opt().ok_or_else(bad)?,
        };
        d.and_time(NaiveTime::MIN)
    } else {
        [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(bad)?
    };
    // A local time skipped by a DST change does not exist: refuse it.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(bad)
}
