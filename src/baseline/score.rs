//! Scoring: how far an observation is from a learnt baseline. Each kind of
//! deviation scores 0..1 before its weight:
//!
//! - `table`: a table never read while learning: 1.
//! - `column`: a column never read of a table that was read: 1.
//! - `hour`: 1 − (activity in this hour of day ÷ activity in the busiest
//!   hour of day), so a never-used hour scores 1.
//! - `volume`: 1 − (busiest learnt hour's rows ÷ rows this hour), once the
//!   hour passed the busiest one and `volume_min_rows`.
//!
//! The score is the raw value times the kind's weight; a deviation alerts
//! when it reaches `alert_score`.

use super::model::{Reads, UserBaseline};
use crate::policy::file::BaselineSpec;
use serde_json::json;

/// How many usual items the evidence lists at most.
const EVIDENCE_ITEMS: usize = 20;

/// One way an observation departs from the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// `table`, `column`, `hour` or `volume`.
    pub kind: &'static str,
    /// What deviated (`hr.salaries`, `hr.salaries.amount`, `03`, `rows_per_hour`).
    pub object: String,
    /// Weighted score, 0..1.
    pub score: f64,
    /// What was usual and what was seen.
    pub evidence: serde_json::Value,
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn first<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    it.take(EVIDENCE_ITEMS).collect()
}

/// The deviations of a statement that read `reads` at hour of day `hour`,
/// its user's rows in the current clock hour now `hour_rows`; only those
/// scoring at least `alert_score`.
pub fn statement(
    b: &UserBaseline,
    reads: &Reads,
    hour: usize,
    hour_rows: u64,
    spec: &BaselineSpec,
) -> Vec<Deviation> {
    let w = &spec.weights;
    let mut out = Vec::new();
    for (table, columns) in reads {
        match b.tables.get(table) {
            None => out.push(Deviation {
                kind: "table",
                object: table.clone(),
                score: round(w.table),
                evidence: json!({
                    "seen": table,
                    "usual_tables": first(b.tables.keys()),
                }),
            }),
            Some(t) => {
                for c in columns.iter().filter(|c| *c != "*") {
                    if !t.columns.contains_key(c) {
                        out.push(Deviation {
                            kind: "column",
                            object: format!("{table}.{c}"),
                            score: round(w.column),
                            evidence: json!({
                                "seen": format!("{table}.{c}"),
                                "usual_columns": first(t.columns.keys()),
                            }),
                        });
                    }
                }
            }
        }
    }
    out.extend(hour_of_day(b, hour, spec));
    out.extend(volume(b, hour_rows, spec));
    out.retain(|d| d.score >= spec.alert_score);
    out
}

/// Activity at an unusual hour of day (`None` when usual enough or
/// nothing was learnt).
pub fn hour_of_day(b: &UserBaseline, hour: usize, spec: &BaselineSpec) -> Option<Deviation> {
    let busiest = b.hours.iter().copied().max().filter(|&m| m > 0)?;
    let here = b.hours.get(hour).copied().unwrap_or(0);
    let raw = 1.0 - here as f64 / busiest as f64;
    let score = round(raw * spec.weights.hour);
    let usual: Vec<String> = (0..24)
        .filter(|&h| b.hours[h] > 0)
        .map(|h| format!("{h:02}"))
        .collect();
    (score >= spec.alert_score).then(|| Deviation {
        kind: "hour",
        object: format!("{hour:02}"),
        score,
        evidence: json!({
            "seen_hour_utc": format!("{hour:02}"),
            "usual_hours_utc": usual,
            "activity_in_that_hour": here,
            "activity_in_busiest_hour": busiest,
        }),
    })
}

/// Rows this clock hour far above the busiest learnt hour.
pub fn volume(b: &UserBaseline, hour_rows: u64, spec: &BaselineSpec) -> Option<Deviation> {
    let usual = b.rows.max_hour.max(1);
    if hour_rows < spec.volume_min_rows || hour_rows <= usual {
        return None;
    }
    let raw = 1.0 - usual as f64 / hour_rows as f64;
    let score = round(raw * spec.weights.volume);
    (score >= spec.alert_score).then(|| Deviation {
        kind: "volume",
        object: "rows_per_hour".into(),
        score,
        evidence: json!({
            "rows_this_hour": hour_rows,
            "usual_max_rows_per_hour": b.rows.max_hour,
            "usual_mean_rows_per_hour": b.rows.mean(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learnt() -> UserBaseline {
        let mut b = UserBaseline::new(0);
        let reads = vec![("hr.departments".to_owned(), vec!["name".to_owned()])];
        // Mondays 09:00-11:00 UTC, 12 rows a statement.
        for i in 0..20u64 {
            b.learn_statement(&reads, 12, 9 * 3600 + i * 360);
        }
        b.learned_at = Some(86_400);
        b.rows.fold();
        b
    }

    fn spec() -> BaselineSpec {
        BaselineSpec {
            volume_min_rows: 100,
            ..BaselineSpec::default()
        }
    }

    #[test]
    fn usual_statements_do_not_deviate() {
        let b = learnt();
        let reads = vec![("hr.departments".to_owned(), vec!["name".to_owned()])];
        assert!(statement(&b, &reads, 9, 24, &spec()).is_empty());
    }

    #[test]
    fn a_new_table_an_odd_hour_and_a_flood_of_rows_deviate() {
        let b = learnt();
        let reads = vec![("hr.salaries".to_owned(), vec!["amount".to_owned()])];
        let d = statement(&b, &reads, 3, 2400, &spec());
        let kinds: Vec<&str> = d.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, ["table", "hour", "volume"]);
        assert_eq!(d[0].score, 1.0);
        assert_eq!(d[0].evidence["usual_tables"], json!(["hr.departments"]));
        assert_eq!(d[1].score, 1.0);
        assert_eq!(d[1].object, "03");
        // The busiest learnt hour had 10 statements of 12 rows.
        assert_eq!(d[2].evidence["usual_max_rows_per_hour"], 120);
        assert_eq!(d[2].score, 0.95);
    }

    #[test]
    fn weights_and_threshold_decide() {
        let b = learnt();
        let mut s = spec();
        s.weights.table = 0.5;
        let reads = vec![("hr.salaries".to_owned(), Vec::new())];
        assert!(statement(&b, &reads, 9, 0, &s).is_empty());
        let reads = vec![("hr.departments".to_owned(), vec!["cost_center".to_owned()])];
        let d = statement(&b, &reads, 9, 0, &s);
        assert_eq!(d[0].kind, "column");
        assert_eq!(d[0].object, "hr.departments.cost_center");
        // Twice the busiest hour scores 0.5: below 0.8.
        assert!(volume(&b, 240, &s).is_none());
    }
}
