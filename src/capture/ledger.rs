//! Holding captured changes until their transaction ends, so each is
//! recorded as committed, rolled back (also by ROLLBACK TO SAVEPOINT) or
//! prepared, never as done before it is.

use super::plan::Capture;
use crate::audit::StatementRecord;

/// How a transaction ended, as the changes record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// COMMIT (or an implicit transaction that ended without error).
    Committed,
    /// ROLLBACK, an error, or ROLLBACK TO a savepoint set before it.
    RolledBack,
    /// PREPARE TRANSACTION: decided later by COMMIT/ROLLBACK PREPARED.
    Prepared,
    /// The session ended before the transaction did.
    Unknown,
}

impl Outcome {
    /// The name in the record.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Prepared => "prepared",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A finished statement whose changes wait for the transaction's end.
#[derive(Debug)]
pub struct Held {
    /// Its audit record, complete but for the changes.
    pub record: StatementRecord,
    /// What it changed.
    pub capture: Capture,
    /// Undone by ROLLBACK TO SAVEPOINT.
    pub rolled_back: bool,
}

/// Per session: held changes and the savepoints that can undo them.
#[derive(Debug, Default)]
pub struct Ledger {
    held: Vec<Held>,
    /// Open savepoints (name, held records before it), oldest first.
    savepoints: Vec<(String, usize)>,
}

impl Ledger {
    /// Whether anything waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// A captured statement succeeded inside the current transaction.
    pub fn hold(&mut self, record: StatementRecord, capture: Capture) {
        self.held.push(Held {
            record,
            capture,
            rolled_back: false,
        });
    }

    /// A transaction-control statement succeeded: `command` as the
    /// analyser names it, `tag` as PostgreSQL answered, `savepoint` its name.
    /// Returns the held statements a COMMIT, ROLLBACK or PREPARE
    /// TRANSACTION ended (several transactions can end in one Query).
    pub fn on_command(
        &mut self,
        command: &str,
        tag: &str,
        savepoint: Option<&str>,
    ) -> Vec<(Held, Outcome)> {
        let word = tag.split(' ').next().unwrap_or_default();
        match (command, savepoint) {
            ("SAVEPOINT", Some(name)) => self.savepoints.push((name.to_owned(), self.held.len())),
            ("RELEASE", Some(name)) => {
                if let Some(i) = self.find(name) {
                    self.savepoints.truncate(i);
                }
            }
            ("ROLLBACK TO SAVEPOINT", Some(name)) => {
                if let Some(i) = self.find(name) {
                    let from = self.savepoints[i].1;
                    for h in &mut self.held[from..] {
                        h.rolled_back = true;
                    }
                    // The savepoint itself stays; later ones are gone.
                    self.savepoints.truncate(i + 1);
                }
            }
            ("PREPARE TRANSACTION", _) => return self.end(Outcome::Prepared),
            // COMMIT of a failed transaction answers ROLLBACK.
            ("COMMIT" | "ROLLBACK", _) => match word {
                "COMMIT" => return self.end(Outcome::Committed),
                "ROLLBACK" => return self.end(Outcome::RolledBack),
                _ => {}
            },
            _ => {}
        }
        Vec::new()
    }

    fn end(&mut self, outcome: Outcome) -> Vec<(Held, Outcome)> {
        self.savepoints.clear();
        self.drain(outcome)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.savepoints.iter().rposition(|(n, _)| n == name)
    }

    /// ReadyForQuery: at `I` the transaction is over. `failed`: the
    /// transaction saw an error (an implicit one then rolled back).
    /// Returns the held statements with their outcome.
    pub fn on_ready(&mut self, idle: bool, failed: bool) -> Vec<(Held, Outcome)> {
        if !idle {
            return Vec::new();
        }
        // An implicit transaction: it commits unless it saw an error.
        self.end(if failed {
            Outcome::RolledBack
        } else {
            Outcome::Committed
        })
    }

    /// The session ended: whatever is held has an unknown outcome.
    pub fn on_session_end(&mut self) -> Vec<(Held, Outcome)> {
        self.drain(Outcome::Unknown)
    }

    fn drain(&mut self, end: Outcome) -> Vec<(Held, Outcome)> {
        self.held
            .drain(..)
            .map(|h| {
                let o = if h.rolled_back {
                    Outcome::RolledBack
                } else {
                    end
                };
                (h, o)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::{Analysis, StatementKind};
    use crate::audit::SessionContext;
    use crate::capture::{Capture, Plan, Wanted};
    use std::sync::Arc;

    fn held(l: &mut Ledger, n: usize) {
        let session = Arc::new(SessionContext::connecting(
            1,
            "127.0.0.1:5000".parse().unwrap(),
            false,
        ));
        let a = Arc::new(Analysis {
            kind: StatementKind::Update,
            command: n.to_string(),
            accesses: Vec::new(),
            opaque_calls: Vec::new(),
            unanalysed: None,
            normalized: Arc::from(""),
            fingerprint: Arc::from(""),
            effects: Vec::new(),
            refers_to: None,
            inner_kind: None,
            results: None,
            shape: Default::default(),
        });
        let plan = Arc::new(Plan {
            wanted: Arc::new(Wanted {
                relation: Default::default(),
                key: Vec::new(),
                columns: Vec::new(),
                key_casts: Vec::new(),
                merge: false,
                hashed: Vec::new(),
                unavailable: None,
                max_rows: 1,
            }),
            rewritten: None,
            reason: None,
            merge: None,
            copy: None,
        });
        l.hold(StatementRecord::new(session, a), Capture::new(plan));
    }

    fn outcomes(done: Vec<(Held, Outcome)>) -> Vec<(String, Outcome)> {
        done.into_iter()
            .map(|(h, o)| (h.record.analysis.command.clone(), o))
            .collect()
    }

    #[test]
    fn savepoints_undo_what_came_after_them() {
        let mut l = Ledger::default();
        held(&mut l, 1);
        l.on_command("SAVEPOINT", "SAVEPOINT", Some("a"));
        held(&mut l, 2);
        l.on_command("SAVEPOINT", "SAVEPOINT", Some("b"));
        held(&mut l, 3);
        l.on_command("RELEASE", "RELEASE", Some("b"));
        l.on_command("ROLLBACK TO SAVEPOINT", "ROLLBACK", Some("a"));
        held(&mut l, 4);
        assert!(l.on_ready(false, false).is_empty());
        let o = outcomes(l.on_command("COMMIT", "COMMIT", None));
        use Outcome::*;
        let want = [
            ("1", Committed),
            ("2", RolledBack),
            ("3", RolledBack),
            ("4", Committed),
        ];
        let want: Vec<(String, Outcome)> = want.iter().map(|(a, b)| (a.to_string(), *b)).collect();
        assert_eq!(o, want);
        assert!(l.is_empty());
    }

    #[test]
    fn failed_and_prepared_transactions() {
        let mut l = Ledger::default();
        held(&mut l, 1);
        // COMMIT of a failed transaction answers ROLLBACK.
        assert_eq!(
            outcomes(l.on_command("COMMIT", "ROLLBACK", None))[0].1,
            Outcome::RolledBack
        );
        held(&mut l, 2);
        assert_eq!(outcomes(l.on_ready(true, true))[0].1, Outcome::RolledBack);
        held(&mut l, 3);
        // A SQL-level PREPARE answers PREPARE too: it does not end anything.
        assert!(l.on_command("PREPARE", "PREPARE", None).is_empty());
        let o = l.on_command("PREPARE TRANSACTION", "PREPARE TRANSACTION", None);
        assert_eq!(outcomes(o)[0].1, Outcome::Prepared);
        held(&mut l, 4);
        assert_eq!(outcomes(l.on_session_end())[0].1, Outcome::Unknown);
    }
}
