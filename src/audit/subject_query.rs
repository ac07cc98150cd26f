//! `pgwarden audit subject`: who saw (or changed) one data subject, from
//! the `pgwarden.subjects` of native audit records. A statement whose key
//! list holds the key saw it; one that read the subject's columns without
//! returning the key, or returned more keys than were recorded, possibly
//! saw it, and is listed as such.

use super::keyset::Ranges;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the files could not be searched.
#[derive(Debug, Error)]
pub enum SubjectQueryError {
    /// An audit file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct SubjectQuery {
    /// The subject, `schema.table` as in the policy's `[subjects]`.
    pub subject: String,
    /// The key, as text (`1234`).
    pub key: String,
    /// Only statements at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only statements before this time.
    pub to: Option<DateTime<Utc>>,
}

/// One statement that saw or changed the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    /// `@timestamp` of the record.
    pub time: String,
    /// Login role.
    pub user: String,
    /// Role in effect (the login role unless SET ROLE changed it).
    pub role: String,
    /// Client address.
    pub address: String,
    /// application_name.
    pub application: String,
    /// Command (`SELECT`, `UPDATE`, ...).
    pub command: String,
    /// Statement fingerprint.
    pub fingerprint: String,
    /// `ok`, `error` or `refused`.
    pub outcome: String,
    /// The subject's columns returned.
    pub columns: Vec<String>,
    /// The subject's columns written (`schema.table.*`: rows deleted).
    pub written: Vec<String>,
    /// `seen`: the key was returned; `possibly`: see `reason`.
    pub certainty: &'static str,
    /// Why `possibly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The audit file and line.
    pub at: String,
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one record (a parsed line) saw the subject; `at` names its place.
pub fn sighting(record: &Value, q: &SubjectQuery, at: &str) -> Option<Sighting> {
    let entry = record.pointer("/pgwarden/subjects")?.get(&q.subject)?;
    let time = text(record, "/@timestamp");
    if q.from.is_some() || q.to.is_some() {
        let t = DateTime::parse_from_rfc3339(&time)
            .ok()?
            .with_timezone(&Utc);
        if q.from.is_some_and(|f| t < f) || q.to.is_some_and(|to| t >= to) {
            return None;
        }
    }
    let (certainty, reason) = match entry.get("keys").and_then(Value::as_str) {
        Some(keys) => {
            let complete = entry.get("complete").and_then(Value::as_bool) != Some(false);
            match Ranges::parse(keys) {
                Some(r) if r.contains(&q.key) => ("seen", None),
                Some(_) if complete => return None,
                Some(_) => ("possibly", Some("more keys returned than recorded")),
                None => ("possibly", Some("key list unreadable")),
            }
        }
        None if entry.get("written").is_some() && entry.get("columns").is_none() => (
            "possibly",
            Some("changed rows whose keys were not returned"),
        ),
        None => (
            "possibly",
            Some("read the subject's columns without its key"),
        ),
    };
    let user = text(record, "/user/name");
    let role = record
        .pointer("/user/effective/name")
        .and_then(Value::as_str)
        .map_or_else(|| user.clone(), str::to_owned);
    Some(Sighting {
        time,
        role,
        user,
        address: text(record, "/source/ip"),
        application: text(record, "/pgwarden/application_name"),
        command: text(record, "/db/operation/name"),
        fingerprint: text(record, "/pgwarden/fingerprint"),
        outcome: text(record, "/pgwarden/outcome"),
        columns: strings(entry.get("columns")),
        written: strings(entry.get("written")),
        certainty,
        reason,
        at: at.to_owned(),
    })
}

/// Every sighting in `paths` (native audit files, in the order given).
pub fn find(paths: &[PathBuf], q: &SubjectQuery) -> Result<Vec<Sighting>, SubjectQueryError> {
    let mut found = Vec::new();
    for path in paths {
        scan_file(path, q, &mut found)?;
    }
    Ok(found)
}

fn scan_file(
    path: &Path,
    q: &SubjectQuery,
    found: &mut Vec<Sighting>,
) -> Result<(), SubjectQueryError> {
    let read_error = |source| SubjectQueryError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let needle = format!("\"{}\"", q.subject);
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(read_error)?;
        // Most lines never mention the subject: skip them unparsed.
        if !line.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            continue;
        }
        let Ok(record) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if let Some(s) = sighting(&record, q, &format!("{}:{}", path.display(), i + 1)) {
            found.push(s);
        }
    }
    Ok(())
}

/// The text listing: one line per sighting, then a count.
pub fn render_text(q: &SubjectQuery, found: &[Sighting]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in found {
        let role = if s.role == s.user {
            String::new()
        } else {
            format!(" as {}", s.role)
        };
        let certainty = match s.reason {
            Some(r) => format!("possibly ({r})"),
            None => "seen".into(),
        };
        let mut cols = s.columns.join(",");
        if !s.written.is_empty() {
            if !cols.is_empty() {
                cols.push(' ');
            }
            let _ = write!(cols, "written: {}", s.written.join(","));
        }
        let _ = writeln!(
            out,
            "{}  {}{role}  {}  app={}  {} {}  fingerprint={}  {certainty}  {cols}",
            s.time,
            s.user,
            s.address,
            if s.application.is_empty() {
                "-"
            } else {
                &s.application
            },
            s.command,
            s.outcome,
            s.fingerprint,
        );
    }
    let possibly = found.iter().filter(|s| s.reason.is_some()).count();
    let _ = writeln!(
        out,
        "{} statement(s) touched {} key {}: {} seen, {possibly} possibly",
        found.len(),
        q.subject,
        q.key,
        found.len() - possibly
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(key: &str) -> SubjectQuery {
        SubjectQuery {
            subject: "hr.employees".into(),
            key: key.into(),
            from: None,
            to: None,
        }
    }

    fn record(subjects: Value) -> Value {
        json!({
            "@timestamp": "2026-11-24T02:30:00.000000Z",
            "event": {"action": "statement"},
            "user": {"name": "ann", "effective": {"name": "payroll"}},
            "source": {"ip": "10.0.0.7"},
            "db": {"operation": {"name": "SELECT"}},
            "pgwarden": {"application_name": "psql", "fingerprint": "ab12", "outcome": "ok",
                         "subjects": subjects}
        })
    }

    #[test]
    fn a_returned_key_is_seen_and_others_are_not() {
        let r = record(json!({"hr.employees": {"keys": "1-40,52", "count": 41,
            "columns": ["hr.employees.name"]}}));
        let s = sighting(&r, &query("17"), "a:1").expect("seen");
        assert_eq!(
            (
                s.certainty,
                s.user.as_str(),
                s.role.as_str(),
                s.address.as_str()
            ),
            ("seen", "ann", "payroll", "10.0.0.7")
        );
        assert_eq!(s.columns, vec!["hr.employees.name"]);
        assert!(sighting(&r, &query("41"), "a:1").is_none());
        let other = SubjectQuery {
            subject: "hr.patients".into(),
            ..query("17")
        };
        assert!(sighting(&r, &other, "a:1").is_none());
    }

    #[test]
    fn unknown_keys_are_possibly_seen() {
        let r = record(json!({"hr.employees": {"keys": null, "count": null,
            "columns": ["hr.salaries.amount"]}}));
        let s = sighting(&r, &query("5"), "a:1").expect("possibly");
        assert_eq!(s.certainty, "possibly");
        let r = record(
            json!({"hr.employees": {"keys": "1-3", "count": 3, "complete": false,
            "columns": ["hr.employees.name"]}}),
        );
        assert_eq!(
            sighting(&r, &query("9"), "a:1")
                .expect("possibly")
                .certainty,
            "possibly"
        );
        let r = record(json!({"hr.employees": {"keys": null, "count": null,
            "written": ["hr.salaries.amount"]}}));
        let s = sighting(&r, &query("9"), "a:1").expect("write");
        assert_eq!(s.written, vec!["hr.salaries.amount"]);
        assert_eq!(s.reason, Some("changed rows whose keys were not returned"));
    }

    #[test]
    fn the_period_filters() {
        let r = record(json!({"hr.employees": {"keys": "5", "count": 1}}));
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let mut q = query("5");
        q.from = Some(t("2026-11-24T00:00:00Z"));
        q.to = Some(t("2026-11-25T00:00:00Z"));
        assert!(sighting(&r, &q, "a:1").is_some());
        q.from = Some(t("2026-11-24T03:00:00Z"));
        assert!(sighting(&r, &q, "a:1").is_none());
        let text = render_text(&q, &[]);
        assert!(text.contains("0 statement(s)"), "{text}");
    }
}
