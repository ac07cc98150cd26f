//! Who saw whom: for tables the policy names in `[subjects]`, the keys each
//! result returned are read from its DataRows (the key column's cell, found
//! through the analysis' result columns) into a bounded set per subject,
//! and go into the statement's audit record. Reading a key costs a walk
//! over the row's cell headers and, for a key not seen before, one insert.
//! Users' distinct subjects per window are counted for
//! `distinct_subjects_per_window` limits.

use super::tracking::Pending;
use crate::alert::{Action, Alert, Severity};
use crate::audit::keyset::{Key, KeySet, DEFAULT_CAP};
use crate::audit::{SessionContext, SubjectSeen};
use crate::budget::distinct::SubjectId;
use crate::context::Context;
use crate::policy::compiled::Limit;
use crate::policy::subjects::SubjectKey;
use crate::policy::Policy;
use crate::protocol::frontend::bind;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A statement's subject tracking, planned at its first row.
#[derive(Debug, Default)]
pub enum SubjectState {
    /// Not looked at yet.
    #[default]
    Unplanned,
    /// The statement touches no subject.
    Off,
    /// The subjects it returns, and where their keys are.
    On(Box<Tally>),
}

/// The subjects one statement touches and the keys seen so far.
#[derive(Debug)]
pub struct Tally {
    seen: Vec<SubjectSeen>,
    /// Key cells to read, by result position, ascending.
    keys: Vec<KeyCell>,
}

/// A result column holding a subject's key.
#[derive(Debug, Clone, Copy)]
struct KeyCell {
    position: usize,
    binary: bool,
    /// Index into `Tally::seen`.
    entry: usize,
}

/// The `[subjects]` entry of `schema.table`, if any.
fn entry_of<'p>(policy: &'p Policy, schema: &str, table: &str) -> Option<&'p SubjectKey> {
    policy
        .subjects
        .iter()
        .find(|k| k.schema == schema && k.table == table)
}

/// Plans what to record for `p` under `policy`.
fn plan(policy: &Policy, p: &Pending) -> SubjectState {
    if policy.subjects.is_empty() {
        return SubjectState::Off;
    }
    let a = &p.analysis;
    let mut seen: Vec<SubjectSeen> = Vec::new();
    let mut entry = |subject: &Arc<str>| -> usize {
        match seen.iter().position(|s| s.subject == *subject) {
            Some(i) => i,
            None => {
                seen.push(SubjectSeen {
                    subject: subject.clone(),
                    keys: None,
                    columns: Vec::new(),
                    written: Vec::new(),
                });
                seen.len() - 1
            }
        }
    };
    let mut touched = Vec::new();
    for acc in &a.accesses {
        let r = &acc.relation;
        let Some(k) = entry_of(policy, &r.schema, &r.name) else {
            continue;
        };
        if acc.output.is_empty() && acc.written.is_empty() && !acc.deletes_rows {
            continue;
        }
        let i = entry(&k.subject);
        touched.push((
            i,
            acc.output
                .iter()
                .map(|c| format!("{r}.{c}"))
                .collect::<Vec<_>>(),
            acc.written
                .iter()
                .map(|c| format!("{r}.{c}"))
                .chain(acc.deletes_rows.then(|| format!("{r}.*")))
                .collect::<Vec<_>>(),
        ));
    }
    for (i, cols, written) in touched {
        seen[i].columns.extend(cols);
        seen[i].written.extend(written);
    }
    let mut keys = Vec::new();
    for (position, rc) in a.results.iter().flatten().enumerate() {
        if rc.name == "*" {
            // Positions past an unknown number of columns are not reliable.
            break;
        }
        let [src] = rc.sources.as_slice() else {
            continue;
        };
        if !rc.direct {
            continue;
        }
        let Some(k) = entry_of(policy, &src.relation.schema, &src.relation.name)
            .filter(|k| k.column == src.column)
        else {
            continue;
        };
        let Some(entry) = seen.iter().position(|s| s.subject == k.subject) else {
            continue;
        };
        seen[entry]
            .keys
            .get_or_insert_with(|| KeySet::with_cap(DEFAULT_CAP));
        let binary = match &p.formats {
            Some(f) => bind::is_binary(f, position),
            None => p.described.get(position).is_some_and(|d| d.format == 1),
        };
        keys.push(KeyCell {
            position,
            binary,
            entry,
        });
    }
    if seen.is_empty() {
        return SubjectState::Off;
    }
    SubjectState::On(Box::new(Tally { seen, keys }))
}

/// A DataRow of the head statement `p` reaches the client: note its keys.
pub fn on_row(ctx: &Context, p: Option<&mut Pending>, row: &[u8]) {
    let Some(p) = p else { return };
    if matches!(p.subjects, SubjectState::Unplanned) {
        p.subjects = match ctx.policy.current() {
            Some(policy) => plan(&policy, p),
            None => SubjectState::Off,
        };
    }
    if let SubjectState::On(t) = &mut p.subjects {
        t.on_row(row);
    }
}

impl Tally {
    fn on_row(&mut self, row: &[u8]) {
        let Some(last) = self.keys.last().map(|k| k.position) else {
            return;
        };
        let mut next = 0;
        for (i, cell) in cells(row).enumerate().take(last + 1) {
            while let Some(k) = self.keys.get(next).copied().filter(|k| k.position == i) {
                next += 1;
                let Some(key) = cell.and_then(|c| decode(c, k.binary)) else {
                    continue;
                };
                if let Some(set) = self.seen.get_mut(k.entry).and_then(|s| s.keys.as_mut()) {
                    set.insert(key);
                }
            }
        }
    }
}

/// The cells of a DataRow body (`None` = NULL); stops at a malformed one.
fn cells(row: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let count = row
        .get(..2)
        .map_or(0, |b| i16::from_be_bytes([b[0], b[1]]).max(0) as usize);
    let mut pos = 2usize;
    (0..count).map_while(move |_| {
        let len = row.get(pos..pos + 4)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        pos += 4;
        if len < 0 {
            return Some(None);
        }
        let end = pos.checked_add(len as usize)?;
        let cell = row.get(pos..end)?;
        pos = end;
        Some(Some(cell))
    })
}

/// A key cell as a key: binary int2/int4/int8 by length, text that is an
/// integer as one, other text as text.
fn decode(cell: &[u8], binary: bool) -> Option<Key<'_>> {
    if binary {
        return match cell.len() {
            2 => Some(Key::Int(i16::from_be_bytes([cell[0], cell[1]]).into())),
            4 => Some(Key::Int(
                i32::from_be_bytes([cell[0], cell[1], cell[2], cell[3]]).into(),
            )),
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(cell);
                Some(Key::Int(i64::from_be_bytes(b)))
            }
            // Binary text types are their UTF-8 bytes.
            _ => std::str::from_utf8(cell).ok().map(Key::Text),
        };
    }
    let text = std::str::from_utf8(cell).ok()?;
    match text.parse::<i64>() {
        // `+5` and `007` are not how PostgreSQL prints integers: keep them as text.
        Ok(i) if !(text.starts_with('+') || text.len() > 1 && text.starts_with('0')) => {
            Some(Key::Int(i))
        }
        _ => Some(Key::Text(text)),
    }
}

/// The statement `p` ended: its subjects for the record. Writes without
/// rows still name the subject's columns they changed; a result with no
/// rows saw nobody. Keys count toward `distinct_subjects_per_window`.
pub fn finish(
    ctx: &Arc<Context>,
    session: &Arc<SessionContext>,
    p: &mut Pending,
) -> Vec<SubjectSeen> {
    let Some(policy) = ctx.policy.current() else {
        return Vec::new();
    };
    let state = std::mem::take(&mut p.subjects);
    let state = match state {
        SubjectState::Unplanned => plan(&policy, p),
        s => s,
    };
    let SubjectState::On(t) = state else {
        return Vec::new();
    };
    let mut seen = t.seen;
    if p.rows == 0 {
        seen.retain_mut(|s| {
            s.columns.clear();
            s.keys = None;
            !s.written.is_empty()
        });
    }
    count_windows(ctx, &policy, session, p, &seen);
    seen
}

/// Adds the keys seen to the user's windows of the statement's
/// `distinct_subjects_per_window` limits; alerts when one is passed.
fn count_windows(
    ctx: &Arc<Context>,
    policy: &Policy,
    session: &Arc<SessionContext>,
    p: &Pending,
    seen: &[SubjectSeen],
) {
    let Some(v) = &p.verdict else { return };
    for (limit, table) in &v.decision.limits {
        let Some(threshold) = limit.distinct_subjects_per_window else {
            continue;
        };
        let Some((schema, name)) = table.split_once('.') else {
            continue;
        };
        let Some(k) = entry_of(policy, schema, name) else {
            continue;
        };
        let Some(keys) = seen
            .iter()
            .find(|s| s.subject == k.subject)
            .and_then(|s| s.keys.as_ref())
        else {
            continue;
        };
        if ctx.budgets.is_shared() {
            // Shared by replicas: counted in the store, off the relay.
            let members: Vec<String> = keys
                .ints()
                .map(|i| format!("{}:{i}", k.subject))
                .chain(keys.texts().map(|t| format!("{}:{t}", k.subject)))
                .collect();
            let (ctx, session, limit, table, subject) = (
                ctx.clone(),
                session.clone(),
                limit.clone(),
                table.clone(),
                k.subject.clone(),
            );
            tokio::spawn(async move {
                let added = ctx
                    .budgets
                    .add_distinct(
                        &session.user,
                        &limit.name,
                        &members,
                        limit.window,
                        threshold,
                        SystemTime::now(),
                    )
                    .await;
                match added {
                    Some(Ok(c)) if c.crossed => {
                        distinct_alert(&ctx, &session, &limit, &table, &subject, c.count)
                    }
                    Some(Err(e)) => tracing::warn!(
                        error = %e,
                        limit = %limit.name,
                        "budget store unavailable; distinct subjects not counted"
                    ),
                    _ => {}
                }
            });
            continue;
        }
        let ids = keys
            .ints()
            .map(SubjectId::Int)
            .chain(keys.texts().map(|t| SubjectId::Text(Box::from(t))))
            .map(|id| (&k.subject, id));
        let c = ctx.distinct_subjects.add(
            &session.user,
            &limit.name,
            limit.window,
            threshold,
            ids,
            Instant::now(),
        );
        if c.crossed {
            distinct_alert(ctx, session, limit, table, &k.subject, c.count);
        }
    }
}

/// Alerts that a user has seen more distinct subjects than `limit` allows.
fn distinct_alert(
    ctx: &Context,
    session: &SessionContext,
    limit: &Limit,
    table: &str,
    subject: &str,
    count: u64,
) {
    ctx.raise_alert(Alert {
        kind: "bulk_extraction".into(),
        rule: limit.name.to_string(),
        severity: Severity::Warning,
        user: session.user.to_string(),
        session_id: Some(session.session_id),
        client_addr: Some(session.client_addr),
        evidence: serde_json::json!({
            "table": table,
            "subject": subject,
            "distinct_subjects": count,
            "threshold": limit.distinct_subjects_per_window,
            "measure": "distinct_subjects_per_window",
            "window": humantime::format_duration(limit.window).to_string(),
            "effective_role": session.effective_user.as_deref().unwrap_or(&session.user),
        }),
        action: Action::Alerted,
        timestamp: SystemTime::now(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (cells.len() as i16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b
    }

    #[test]
    fn key_cells_are_read_in_text_and_binary() {
        assert_eq!(decode(b"1234", false), Some(Key::Int(1234)));
        assert_eq!(decode(b"-7", false), Some(Key::Int(-7)));
        assert_eq!(decode(b"007", false), Some(Key::Text("007")));
        assert_eq!(decode(b"E-12", false), Some(Key::Text("E-12")));
        assert_eq!(decode(&5i16.to_be_bytes(), true), Some(Key::Int(5)));
        assert_eq!(decode(&70000i32.to_be_bytes(), true), Some(Key::Int(70000)));
        assert_eq!(
            decode(&(1i64 << 40).to_be_bytes(), true),
            Some(Key::Int(1 << 40))
        );
        let r = row(&[Some(b"a"), None, Some(b"42")]);
        let got: Vec<_> = cells(&r).collect();
        assert_eq!(got, vec![Some(&b"a"[..]), None, Some(&b"42"[..])]);
        // Malformed: stops, never panics.
        assert_eq!(cells(&r[..r.len() - 1]).count(), 2);
        assert_eq!(cells(&[0xff]).count(), 0);
    }

    #[test]
    fn a_tally_collects_the_keys_of_its_rows() {
        let mut t = Tally {
            seen: vec![SubjectSeen {
                subject: Arc::from("hr.employees"),
                keys: Some(KeySet::with_cap(100)),
                columns: vec!["hr.employees.name".into()],
                written: Vec::new(),
            }],
            keys: vec![KeyCell {
                position: 1,
                binary: false,
                entry: 0,
            }],
        };
        for i in [3, 1, 2, 9] {
            let id = i.to_string();
            t.on_row(&row(&[Some(b"x"), Some(id.as_bytes())]));
        }
        t.on_row(&row(&[Some(b"x"), None]));
        let keys = t.seen[0].keys.as_ref().expect("keys");
        assert_eq!(keys.encode(), "1-3,9");
    }
}
