//! Grouping: the first alert of a (kind, rule, user) is sent at once; the
//! ones that follow within the group window are only counted, and when the
//! window closes one [`Summary`] says how many there were. The next alert
//! after that opens a new group. Time is passed in so tests can move it.

use super::{rfc3339, Alert, Severity};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Groups open at once; past it alerts are sent ungrouped (the per-URL
/// queues still bound what waits), so a flood of users cannot grow memory.
const MAX_GROUPS: usize = 10_000;

/// One webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    /// `{"type": "alert", ...the alert's fields}`.
    Alert(Alert),
    /// `{"type": "summary", ...}` when a group window closes.
    Summary(Summary),
}

/// The alerts a group window held after the one already sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The group's kind.
    pub kind: String,
    /// The group's rule.
    pub rule: String,
    /// The group's user.
    pub user: String,
    /// The highest severity in the group, its first alert included.
    pub severity: Severity,
    /// Alerts raised after the first (which was sent on its own).
    pub count: u64,
    /// When the first (sent) alert happened.
    #[serde(serialize_with = "rfc3339")]
    pub first_timestamp: SystemTime,
    /// The group window, in seconds.
    pub window_seconds: f64,
    /// The most recent alert counted, for its evidence.
    pub last: Alert,
}

type Key = (String, String, String);

#[derive(Debug)]
struct Group {
    first_timestamp: SystemTime,
    count: u64,
    severity: Severity,
    last: Option<Alert>,
}

/// Open groups, closed in the order they were opened.
#[derive(Debug)]
pub struct Grouper {
    window: Duration,
    open: HashMap<Key, Group>,
    /// Every group lasts `window`, so opening order is closing order.
    deadlines: VecDeque<(Instant, Key)>,
}

impl Grouper {
    /// Groups over `window`; zero sends every alert.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            open: HashMap::new(),
            deadlines: VecDeque::new(),
        }
    }

    /// Takes an alert raised at `now`: returns it when it is to be sent now,
    /// or `None` when an open group counts it instead.
    pub fn offer(&mut self, alert: Alert, now: Instant) -> Option<Message> {
        if self.window.is_zero() {
            return Some(Message::Alert(alert));
        }
        let key = (alert.kind.clone(), alert.rule.clone(), alert.user.clone());
        if let Some(g) = self.open.get_mut(&key) {
            g.count += 1;
            g.severity = g.severity.max(alert.severity);
            g.last = Some(alert);
            return None;
        }
        if self.open.len() < MAX_GROUPS {
            self.open.insert(
                key.clone(),
                Group {
                    first_timestamp: alert.timestamp,
                    count: 0,
                    severity: alert.severity,
                    last: None,
                },
            );
            self.deadlines.push_back((now + self.window, key));
        }
        Some(Message::Alert(alert))
    }

    /// When the oldest open group closes.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(d, _)| *d)
    }

    /// Closes the groups whose window ended by `now`; summaries of those
    /// that counted anything go to `out`.
    pub fn close_due(&mut self, now: Instant, out: &mut Vec<Message>) {
        while let Some((deadline, _)) = self.deadlines.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_front() {
                self.close(key, out);
            }
        }
    }

    /// Closes every group (at shutdown).
    pub fn close_all(&mut self, out: &mut Vec<Message>) {
        while let Some((_, key)) = self.deadlines.pop_front() {
            self.close(key, out);
        }
    }

    fn close(&mut self, key: Key, out: &mut Vec<Message>) {
        let Some(g) = self.open.remove(&key) else {
            return;
        };
        let Some(last) = g.last else { return };
        let (kind, rule, user) = key;
        out.push(Message::Summary(Summary {
            kind,
            rule,
            user,
            severity: g.severity,
            count: g.count,
            first_timestamp: g.first_timestamp,
            window_seconds: self.window.as_secs_f64(),
            last,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Action;
    use std::time::UNIX_EPOCH;

    fn alert(user: &str, severity: Severity, n: u64) -> Alert {
        Alert {
            kind: "row_budget".into(),
            rule: "hr_rows".into(),
            severity,
            user: user.into(),
            session_id: Some(n),
            client_addr: None,
            evidence: serde_json::json!({ "n": n }),
            action: Action::Alerted,
            timestamp: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n),
        }
    }

    #[test]
    fn a_burst_is_one_alert_and_one_summary() {
        let t0 = Instant::now();
        let mut g = Grouper::new(Duration::from_secs(60));
        let first = g.offer(alert("alice", Severity::Warning, 0), t0);
        assert_eq!(
            first,
            Some(Message::Alert(alert("alice", Severity::Warning, 0)))
        );
        for n in 1..1000 {
            let sev = if n == 500 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            assert_eq!(
                g.offer(alert("alice", sev, n), t0 + Duration::from_millis(n)),
                None
            );
        }
        // Another user is another group.
        assert!(g.offer(alert("bob", Severity::Info, 0), t0).is_some());
        let mut out = Vec::new();
        g.close_due(t0 + Duration::from_secs(59), &mut out);
        assert!(out.is_empty());
        g.close_due(t0 + Duration::from_secs(60), &mut out);
        let [Message::Summary(s)] = out.as_slice() else {
            panic!("expected one summary, got {out:?}")
        };
        assert_eq!((s.user.as_str(), s.count), ("alice", 999));
        assert_eq!(s.severity, Severity::Critical);
        assert_eq!(s.last, alert("alice", Severity::Warning, 999));
        assert_eq!(
            s.first_timestamp,
            alert("alice", Severity::Info, 0).timestamp
        );
        assert_eq!(g.next_deadline(), None);
        // The window closed: the next alert is sent again.
        assert!(g
            .offer(
                alert("alice", Severity::Warning, 2000),
                t0 + Duration::from_secs(61)
            )
            .is_some());
    }

    #[test]
    fn summary_json_shape() {
        let t0 = Instant::now();
        let mut g = Grouper::new(Duration::from_millis(1500));
        g.offer(alert("alice", Severity::Warning, 0), t0);
        g.offer(alert("alice", Severity::Warning, 1), t0);
        let mut out = Vec::new();
        g.close_all(&mut out);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v[0]["type"], "summary");
        assert_eq!(v[0]["count"], 1);
        assert_eq!(v[0]["window_seconds"], 1.5);
        assert_eq!(v[0]["first_timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v[0]["last"]["evidence"]["n"], 1);
        assert_eq!(v[0]["last"]["action"], "alerted");
        let a = serde_json::to_value(Message::Alert(alert("bob", Severity::Info, 1))).unwrap();
        assert_eq!(a["type"], "alert");
        assert_eq!(a["severity"], "info");
        assert_eq!(a["timestamp"], "2023-11-14T22:13:21.000Z");
        assert_eq!(a["client_addr"], serde_json::Value::Null);
    }

    #[test]
    fn zero_window_sends_everything() {
        let mut g = Grouper::new(Duration::ZERO);
        let t0 = Instant::now();
        for n in 0..5 {
            assert!(g.offer(alert("alice", Severity::Info, n), t0).is_some());
        }
        assert_eq!(g.next_deadline(), None);
    }
}
