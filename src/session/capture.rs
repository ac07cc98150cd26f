//! The session side of change capture (see `crate::capture`): which
//! prepared statements and portals run a rewritten text, which Describe
//! answers describe one, the request a cache miss hands to the relay, and
//! the ledger that holds changes until their transaction ends.

use crate::capture::ledger::{Held, Outcome};
use crate::capture::prepare::{Key, Request};
use crate::capture::{Ledger, Plan, Prepared};
use bytes::{BufMut, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Per-session capture state.
#[derive(Debug, Default)]
pub struct Capturer {
    /// Changes waiting for their transaction's end.
    pub ledger: Ledger,
    /// A capture the relay must prepare.
    pub request: Option<Request>,
    /// The capture the relay prepared, for the message offered next.
    pub ready: Option<(Key, Arc<Prepared>)>,
    /// The current transaction saw an error.
    pub failed: bool,
    /// Plans of prepared statements (Parse), by name.
    statements: HashMap<String, Arc<Plan>>,
    /// Plans of portals (Bind), by name.
    portals: HashMap<String, Arc<Plan>>,
    /// Describe messages in flight: (request group, `Some(hide)` when the
    /// answer describes a rewritten statement).
    describes: VecDeque<(u64, Option<bool>)>,
    /// Prepared MERGEs: their parameter types (Parse after the text).
    merge_types: HashMap<String, Vec<u8>>,
    /// Portals of prepared MERGEs: parameter types and the Bind's
    /// parameters (formats and values), for the images run beside them.
    merge_portals: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

impl Capturer {
    /// Parse of `name`: remembers its plan (or that it has none).
    pub fn parsed(&mut self, name: &str, plan: Option<Arc<Plan>>) {
        match plan {
            Some(p) => self.statements.insert(name.to_owned(), p),
            None => self.statements.remove(name),
        };
    }

    /// Bind of `portal` to `statement`: the portal runs its plan.
    pub fn bound(&mut self, portal: &str, statement: &str) -> Option<Arc<Plan>> {
        match self.statements.get(statement).cloned() {
            Some(p) => {
                self.portals.insert(portal.to_owned(), p.clone());
                Some(p)
            }
            None => {
                self.portals.remove(portal);
                None
            }
        }
    }

    /// The plan a portal runs.
    pub fn portal(&self, portal: &str) -> Option<Arc<Plan>> {
        self.portals.get(portal).cloned()
    }

    /// Close of a statement ('S') or portal ('P').
    pub fn closed(&mut self, kind: u8, name: &str) {
        match kind {
            b'S' => {
                self.statements.remove(name);
                self.merge_types.remove(name);
            }
            _ => {
                self.portals.remove(name);
                self.merge_portals.remove(name);
            }
        };
    }

    /// Parse of a prepared MERGE captured beside it: its parameter types.
    pub fn merge_parsed(&mut self, name: &str, types: Option<&[u8]>) {
        match types {
            Some(t) => self.merge_types.insert(name.to_owned(), t.to_vec()),
            None => self.merge_types.remove(name),
        };
    }

    /// Bind of `portal` to a prepared MERGE with `params` (formats and
    /// values as the Bind carries them).
    pub fn merge_bound(&mut self, portal: &str, statement: &str, params: Option<&[u8]>) {
        match (self.merge_types.get(statement), params) {
            (Some(t), Some(p)) => {
                let entry = (t.clone(), p.to_vec());
                self.merge_portals.insert(portal.to_owned(), entry)
            }
            _ => self.merge_portals.remove(portal),
        };
    }

    /// Parameter types and values of a prepared MERGE's portal.
    pub fn merge_portal(&self, portal: &str) -> Option<&(Vec<u8>, Vec<u8>)> {
        self.merge_portals.get(portal)
    }

    /// Describe of a statement ('S') or portal ('P') in request `group`.
    pub fn describe(&mut self, group: u64, kind: u8, name: &str) {
        let plan = match kind {
            b'S' => self.statements.get(name),
            _ => self.portals.get(name),
        };
        let fix = plan.and_then(|p| p.rewritten).map(|r| !r.client_returning);
        self.describes.push_back((group, fix));
    }

    /// RowDescription or NoData while `group` is answered: `None` when it
    /// answers no Describe, else `Some(Some(hide))` for a Describe of a
    /// rewritten statement and `Some(None)` for any other.
    #[allow(clippy::option_option)]
    pub fn describe_answer(&mut self, group: u64) -> Option<Option<bool>> {
        while self.describes.front().is_some_and(|d| d.0 < group) {
            self.describes.pop_front();
        }
        match self.describes.front() {
            Some(&(g, fix)) if g == group => {
                self.describes.pop_front();
                Some(fix)
            }
            _ => None,
        }
    }

    /// An error while `group` is answered: its other Describes never run.
    pub fn error(&mut self, group: u64) {
        self.failed = true;
        self.describes.retain(|d| d.0 != group);
    }

    /// The transaction failed outside any tracked statement.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// ReadyForQuery: held changes whose transaction ended.
    pub fn ready(&mut self, idle: bool) -> Vec<(Held, Outcome)> {
        let done = self.ledger.on_ready(idle, self.failed);
        if idle {
            self.failed = false;
        }
        done
    }
}

/// Writes a Query message carrying `text`.
pub fn put_query(text: &str, out: &mut BytesMut) {
    out.put_u8(b'Q');
    out.put_i32((4 + text.len() + 1) as i32);
    out.extend_from_slice(text.as_bytes());
    out.put_u8(0);
}

/// Writes a Parse message: `name`, `text`, then the original message's
/// parameter types (`tail`, everything after its text).
pub fn put_parse(name: &str, text: &str, tail: &[u8], out: &mut BytesMut) {
    out.put_u8(b'P');
    out.put_i32((4 + name.len() + 1 + text.len() + 1 + tail.len()) as i32);
    out.extend_from_slice(name.as_bytes());
    out.put_u8(0);
    out.extend_from_slice(text.as_bytes());
    out.put_u8(0);
    out.extend_from_slice(tail);
}

/// Writes a Bind whose per-column result formats (`n` of them, at the end
/// of `body`) get one more, text, for pgwarden's column.
pub fn put_bind_with_extra_format(body: &[u8], n: usize, out: &mut BytesMut) -> Option<()> {
    let at = body.len().checked_sub(2 + 2 * n)?;
    out.put_u8(b'B');
    out.put_i32((4 + body.len() + 2) as i32);
    out.extend_from_slice(&body[..at]);
    out.put_i16(i16::try_from(n + 1).ok()?);
    out.extend_from_slice(&body[at + 2..]);
    out.put_i16(0);
    Some(())
}

/// pgwarden's own statement and portal for a prepared MERGE's images.
const IMAGE: &str = "pgwarden_merge_image";

/// Writes the messages that run one image of a prepared MERGE with the
/// MERGE's parameter `types` and `params`: Close of pgwarden's own portal
/// and statement (in case an error left them behind), Parse, Bind, Execute,
/// and Close of both again. Returns how many of them are answered by a
/// ParseComplete, BindComplete or CloseComplete.
pub fn put_image(text: &str, types: &[u8], params: &[u8], out: &mut BytesMut) -> usize {
    put_close(b'P', out);
    put_close(b'S', out);
    put_parse(IMAGE, text, types, out);
    out.put_u8(b'B');
    out.put_i32((4 + 2 * (IMAGE.len() + 1) + params.len() + 2) as i32);
    for _ in 0..2 {
        out.extend_from_slice(IMAGE.as_bytes());
        out.put_u8(0);
    }
    out.extend_from_slice(params);
    out.put_i16(0);
    put_execute_all(IMAGE, out);
    put_close(b'P', out);
    put_close(b'S', out);
    6
}

/// Close of pgwarden's own portal (`P`) or statement (`S`).
fn put_close(kind: u8, out: &mut BytesMut) {
    out.put_u8(b'C');
    out.put_i32((4 + 1 + IMAGE.len() + 1) as i32);
    out.put_u8(kind);
    out.extend_from_slice(IMAGE.as_bytes());
    out.put_u8(0);
}

/// Writes an Execute of `portal` without a row limit.
pub fn put_execute_all(portal: &str, out: &mut BytesMut) {
    out.put_u8(b'E');
    out.put_i32((4 + portal.len() + 1 + 4) as i32);
    out.extend_from_slice(portal.as_bytes());
    out.put_u8(0);
    out.put_i32(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_gets_one_more_result_format() {
        // portal "", statement "s", no param formats, no params, 2 result formats.
        let body = [0, b's', 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 1];
        let mut out = BytesMut::new();
        put_bind_with_extra_format(&body, 2, &mut out).unwrap();
        let b = crate::protocol::frontend::bind::Bind::parse(&out[5..]).unwrap();
        assert_eq!(b.result_formats, vec![1, 1, 0]);
        assert_eq!(out.len(), 5 + body.len() + 2);
    }

    #[test]
    fn describe_answers_follow_their_group() {
        let mut c = Capturer::default();
        c.describe(1, b'S', "none");
        c.describe(2, b'P', "none");
        assert_eq!(c.describe_answer(2), Some(None));
        assert_eq!(c.describe_answer(2), None);
        assert!(c.describes.is_empty());
    }
}
