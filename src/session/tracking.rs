//! Statement tracking: which statement each backend message belongs to, so
//! that every statement gets one audit record with its rows, bytes, duration
//! and outcome, in both the simple and the extended protocol.

use super::enforce::Verdict;
use crate::analyse::Analysis;
use crate::audit::{ErrorInfo, Outcome};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A statement sent to the server whose answer has not fully arrived.
#[derive(Debug)]
pub struct Pending {
    /// What it does.
    pub analysis: Arc<Analysis>,
    /// Request group (one Query, or the messages up to one Sync).
    pub group: u64,
    /// Wall-clock start, for the record's timestamp.
    pub timestamp: SystemTime,
    /// Monotonic start, for the duration.
    pub started: Instant,
    /// DataRow / CopyData messages sent back.
    pub rows: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Text with literals, kept only when the audit log wants it.
    pub full_text: Option<Arc<str>>,
    /// What the policy decided, when a policy is in force.
    pub verdict: Option<Verdict>,
    /// Result formats from Bind (extended protocol); `None` = from RowDescription.
    pub formats: Option<Arc<[i16]>>,
    /// Per result column: how DataRow cells are masked (built on first use).
    pub row_plan: Option<Arc<[Option<crate::mask::CellMask>]>>,
    /// RowDescription of a simple-protocol statement's result.
    pub described: Vec<crate::protocol::backend::row_description::Field>,
    /// Stopped by a row limit: the error the client gets, and the limit.
    pub blocked: Option<(crate::protocol::backend::error_response::PgError, Arc<str>)>,
    /// A monitor-mode limit alert was raised for it.
    pub limit_alerted: bool,
    /// Who saw whom: the subjects its rows are about (`[subjects]`).
    pub subjects: super::subjects::SubjectState,
    /// The cursor or portal it fetches from (`cursor:c`, `portal:p`): rows
    /// of every fetch from it add up as one statement's.
    pub origin: Option<String>,
    /// Rows earlier fetches from the same origin returned.
    pub carry: u64,
    /// Per limit, the user's window total when its first row arrived (read
    /// once per statement, not per row).
    pub window_base: Vec<u64>,
    /// Change capture, when the statement writes captured columns.
    pub capture: Option<crate::capture::Capture>,
    /// Extraction flags raised before it ran.
    pub flags: crate::detect::extraction::FlagSet,
}

/// A statement whose answer is complete.
#[derive(Debug)]
pub struct Finished {
    /// The statement.
    pub pending: Pending,
    /// The CommandComplete tag, when it succeeded.
    pub tag: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// From the first message to the last answer.
    pub duration: Duration,
}

/// Per-session bookkeeping of statements, prepared statements and portals.
#[derive(Debug, Default)]
pub struct Tracker {
    pending: VecDeque<Pending>,
    group: u64,
    ready_seen: u64,
    /// Statements parsed per request group, until the group is answered.
    parsed: VecDeque<(u64, Arc<Analysis>, Option<Verdict>)>,
    /// Protocol-level prepared statements (Parse), by name ("" = unnamed).
    pub statements: HashMap<String, Arc<Analysis>>,
    /// Portals (Bind), by name, with the decision made at Bind and the
    /// result formats it asked for.
    portals: HashMap<String, Portal>,
    /// SQL-level PREPARE, by name.
    pub sql_prepared: HashMap<String, Arc<Analysis>>,
    /// SQL-level cursors, by name.
    pub cursors: HashMap<String, Arc<Analysis>>,
    /// Messages of a group not yet ended by Sync arrived.
    open: bool,
}

/// A bound portal.
#[derive(Debug, Clone)]
pub struct Portal {
    /// The statement it runs.
    pub analysis: Arc<Analysis>,
    /// The decision made at Bind.
    pub verdict: Option<Verdict>,
    /// Result format codes from Bind.
    pub formats: Arc<[i16]>,
}

impl Tracker {
    /// Starts a statement of the current request group (`analysis` already
    /// resolved, see [`Tracker::resolve_reference`]).
    pub fn start(
        &mut self,
        analysis: Arc<Analysis>,
        full_text: Option<Arc<str>>,
        verdict: Option<Verdict>,
        formats: Option<Arc<[i16]>>,
    ) {
        self.pending.push_back(Pending {
            analysis,
            group: self.group,
            timestamp: SystemTime::now(),
            started: Instant::now(),
            rows: 0,
            bytes: 0,
            full_text,
            verdict,
            formats,
            row_plan: None,
            described: Vec::new(),
            blocked: None,
            limit_alerted: false,
            window_base: Vec::new(),
            subjects: Default::default(),
            origin: None,
            carry: 0,
            capture: None,
            flags: Default::default(),
        });
    }

    /// The current request group.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The request group whose answers are arriving.
    pub fn answering(&self) -> u64 {
        self.ready_seen
    }

    /// Statements of the current group will be sent as the client wrote
    /// them after all: their captures record `reason` instead.
    pub fn unrewrite_group(&mut self, reason: &str) {
        let group = self.group;
        for p in self.pending.iter_mut().filter(|p| p.group == group) {
            if let Some(c) = &p.capture {
                if c.strips() {
                    p.capture = Some(c.unrewritten(reason));
                }
            }
        }
    }

    /// Whether every request sent has been answered (nothing in flight,
    /// not even messages of a group whose Sync has not come yet).
    pub fn all_answered(&self) -> bool {
        self.ready_seen >= self.group && self.pending.is_empty() && !self.open
    }

    /// A frontend message arrived (it belongs to the open group until a
    /// Sync or Query ends it).
    pub fn touch(&mut self) {
        self.open = true;
    }

    /// Ends the head statement as failed by pgwarden (a stopped statement).
    /// The rest of its group stays tracked: the server may still run it
    /// (when the cancel came too late), and ReadyForQuery closes it.
    pub fn fail_head(&mut self) -> Option<Finished> {
        let p = self.pending.pop_front()?;
        Some(Finished {
            duration: p.started.elapsed(),
            tag: None,
            outcome: Outcome::Ok,
            pending: p,
        })
    }

    /// The statement started last.
    pub fn last_mut(&mut self) -> Option<&mut Pending> {
        self.pending.back_mut()
    }

    /// The statement whose answer is arriving.
    pub fn head(&mut self) -> Option<&mut Pending> {
        self.pending.front_mut()
    }

    /// EXECUTE and FETCH run what PREPARE and DECLARE analysed: record that.
    pub fn resolve_reference(&self, a: Arc<Analysis>) -> Arc<Analysis> {
        let Some(name) = &a.refers_to else { return a };
        let target = match a.command.as_str() {
            "EXECUTE" => self.sql_prepared.get(name),
            _ => self.cursors.get(name),
        };
        let mut merged = (*a).clone();
        match target {
            Some(t) => {
                for acc in &t.accesses {
                    match merged
                        .accesses
                        .iter_mut()
                        .find(|m| m.relation == acc.relation)
                    {
                        Some(m) => {
                            m.output.extend(acc.output.iter().cloned());
                            m.filter.extend(acc.filter.iter().cloned());
                            m.written.extend(acc.written.iter().cloned());
                            m.deletes_rows |= acc.deletes_rows;
                        }
                        None => merged.accesses.push(acc.clone()),
                    }
                }
                merged.opaque_calls.extend(t.opaque_calls.iter().cloned());
                if merged.unanalysed.is_none() {
                    merged.unanalysed.clone_from(&t.unanalysed);
                }
                merged.kind = t.inner_kind.unwrap_or(t.kind);
                if merged.command == "EXECUTE" {
                    // What the prepared statement reads, and how much.
                    merged.shape = crate::analyse::Shape {
                        fetch: None,
                        ..t.shape.clone()
                    };
                }
                // MOVE positions the cursor without returning rows.
                if merged.command != "MOVE" {
                    merged.results.clone_from(&t.results);
                }
            }
            None => {
                merged.unanalysed =
                    Some(format!("unknown prepared statement or cursor \"{name}\""));
            }
        }
        Arc::new(merged)
    }

    /// PREPARE and DECLARE about to run: a later EXECUTE or FETCH of the
    /// same Query string must resolve to them before they are answered. A
    /// name already in use is left alone (PostgreSQL keeps the old one and
    /// fails the new PREPARE).
    pub fn note_definitions(&mut self, a: &Arc<Analysis>) {
        for e in &a.effects {
            match e {
                crate::analyse::SessionEffect::Prepare(name) => {
                    self.sql_prepared
                        .entry(name.clone())
                        .or_insert_with(|| a.clone());
                }
                crate::analyse::SessionEffect::DeclareCursor(name) => {
                    self.cursors
                        .entry(name.clone())
                        .or_insert_with(|| a.clone());
                }
                _ => {}
            }
        }
    }

    /// Parse: remembers the analysis of a named or unnamed statement, and
    /// that this request group parsed it (an error before any Execute, e.g.
    /// an unknown table, is then still recorded against it).
    pub fn parse(&mut self, name: &str, analysis: Arc<Analysis>, verdict: Option<Verdict>) {
        self.parsed
            .push_back((self.group, analysis.clone(), verdict));
        self.statements.insert(name.to_owned(), analysis);
    }

    /// The analysis of a prepared statement.
    pub fn statement(&self, name: &str) -> Option<Arc<Analysis>> {
        self.statements.get(name).cloned()
    }

    /// Bind: a portal runs a prepared statement (`None`: unknown statement).
    pub fn bind(&mut self, portal: &str, bound: Option<Portal>) {
        match bound {
            Some(p) => {
                self.portals.insert(portal.to_owned(), p);
            }
            None => {
                self.portals.remove(portal);
            }
        }
    }

    /// A portal about to be executed.
    pub fn portal(&self, portal: &str) -> Option<Portal> {
        self.portals.get(portal).cloned()
    }

    /// Close of a statement ('S') or portal ('P').
    pub fn close(&mut self, kind: u8, name: &str) {
        match kind {
            b'S' => {
                self.statements.remove(name);
            }
            _ => {
                self.portals.remove(name);
            }
        }
    }

    /// Query or Sync: the end of a request group.
    pub fn end_group(&mut self) {
        self.group += 1;
        self.open = false;
    }

    /// A DataRow or CopyData of `len` bytes for the current statement.
    pub fn row(&mut self, len: usize) {
        if let Some(p) = self.pending.front_mut() {
            p.rows += 1;
            p.bytes += len as u64;
        }
    }

    /// CommandComplete or PortalSuspended: the head statement is done.
    pub fn complete(&mut self, tag: Option<&str>) -> Option<Finished> {
        let p = self.pending.pop_front()?;
        Some(Finished {
            duration: p.started.elapsed(),
            tag: tag.map(str::to_owned),
            outcome: Outcome::Ok,
            pending: p,
        })
    }

    /// EmptyQueryResponse: the head statement was empty; no record.
    pub fn empty(&mut self) {
        self.pending.pop_front();
    }

    /// ErrorResponse: the head statement failed; the rest of its request
    /// group never runs (PostgreSQL skips to the next Sync / ends the Query).
    pub fn error(&mut self, sqlstate: &str, message: &str) -> Option<Finished> {
        // The group being answered is the one the next ReadyForQuery closes.
        let answering = self.ready_seen;
        if self.pending.front().is_none_or(|p| p.group != answering) {
            // Nothing executed in this group: the error is the Parse's.
            let (_, analysis, verdict) = self
                .parsed
                .iter()
                .find(|(g, _, _)| *g == answering)?
                .clone();
            self.parsed.retain(|(g, _, _)| *g != answering);
            let now = Instant::now();
            return Some(Finished {
                duration: Duration::ZERO,
                tag: None,
                outcome: Outcome::Error(ErrorInfo::new(sqlstate, message)),
                pending: Pending {
                    analysis,
                    group: answering,
                    timestamp: SystemTime::now(),
                    started: now,
                    rows: 0,
                    bytes: 0,
                    full_text: None,
                    verdict,
                    formats: None,
                    row_plan: None,
                    described: Vec::new(),
                    blocked: None,
                    limit_alerted: false,
                    window_base: Vec::new(),
                    subjects: Default::default(),
                    origin: None,
                    carry: 0,
                    capture: None,
                    flags: Default::default(),
                },
            });
        }
        let p = self.pending.pop_front()?;
        let group = p.group;
        self.parsed.retain(|(g, _, _)| *g != group);
        while self.pending.front().is_some_and(|q| q.group == group) {
            self.pending.pop_front();
        }
        Some(Finished {
            duration: p.started.elapsed(),
            tag: None,
            outcome: Outcome::Error(ErrorInfo::new(sqlstate, message)),
            pending: p,
        })
    }

    /// ReadyForQuery: it closes the oldest open group (one per Query, Sync
    /// and FunctionCall); whatever of that group is left did not run.
    pub fn ready(&mut self) {
        let closed = self.ready_seen;
        self.ready_seen += 1;
        while self.pending.front().is_some_and(|q| q.group <= closed) {
            self.pending.pop_front();
        }
        while self.parsed.front().is_some_and(|(g, _, _)| *g <= closed) {
            self.parsed.pop_front();
        }
    }

    /// Statements awaiting their answer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::{ColumnSource, RelationName, ResultColumn, StatementKind};

    fn analysis(
        command: &str,
        refers_to: Option<&str>,
        results: Option<Vec<ResultColumn>>,
    ) -> Arc<Analysis> {
        Arc::new(Analysis {
            kind: StatementKind::Other,
            command: command.into(),
            accesses: Vec::new(),
            opaque_calls: Vec::new(),
            unanalysed: None,
            normalized: Arc::from(""),
            fingerprint: Arc::from("0000000000000000"),
            effects: Vec::new(),
            refers_to: refers_to.map(str::to_owned),
            inner_kind: Some(StatementKind::Select),
            results,
            shape: Default::default(),
        })
    }

    fn ssn() -> Vec<ResultColumn> {
        vec![ResultColumn {
            name: "ssn".into(),
            direct: true,
            sources: vec![ColumnSource {
                relation: RelationName {
                    schema: "hr".into(),
                    name: "employees".into(),
                },
                column: "ssn".into(),
            }],
        }]
    }

    #[test]
    fn execute_and_fetch_return_what_prepare_and_declare_described() {
        let mut t = Tracker::default();
        t.sql_prepared
            .insert("p".into(), analysis("PREPARE", None, Some(ssn())));
        t.cursors
            .insert("c".into(), analysis("DECLARE CURSOR", None, Some(ssn())));
        let exec = t.resolve_reference(analysis("EXECUTE", Some("p"), None));
        assert_eq!(exec.results, Some(ssn()));
        assert_eq!(exec.kind, StatementKind::Select);
        let fetch = t.resolve_reference(analysis("FETCH", Some("c"), None));
        assert_eq!(fetch.results, Some(ssn()));
        // MOVE returns no rows.
        let moved = t.resolve_reference(analysis("MOVE", Some("c"), None));
        assert_eq!(moved.results, None);
        let unknown = t.resolve_reference(analysis("EXECUTE", Some("nope"), None));
        assert_eq!(unknown.results, None);
        assert!(unknown.unanalysed.is_some());
    }
}
