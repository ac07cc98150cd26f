//! Applying policy decisions to a session: which role a statement will run
//! as, decisions cached per session, and how a refused statement is turned
//! into a PostgreSQL error with PostgreSQL's own transaction semantics.
//!
//! A refused statement is not simply dropped: pgwarden sends the server a
//! stand-in that fails in the same place (`SELECT '<token>'::int4` for a
//! Query or Parse, a Bind of a statement that does not exist), so the
//! server aborts the transaction and skips to Sync exactly as it would
//! after any error. The server's error carries the token; the relay swaps
//! it for pgwarden's 42501 error on the way back.

use super::settings::Settings;
use crate::analyse::{Analysis, SessionEffect};
use crate::audit::PolicyRecord;
use crate::catalog::Catalog;
use crate::policy::{Asker, Decision, Env, Mode, Policy, Refusal, RoleSet};
use crate::protocol::backend::error_response::PgError;
use crate::protocol::codes;
use bytes::{BufMut, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Decisions remembered per session before the cache is cleared.
const CACHE_LIMIT: usize = 512;
/// Refusals awaiting the server's error before the oldest is forgotten.
const OUTSTANDING_LIMIT: usize = 256;

/// The policy's answer for one statement, as the session applies it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The decision.
    pub decision: Arc<Decision>,
    /// Monitor mode: recorded, not applied.
    pub monitor: bool,
    /// A switch to a role with full access or superuser rights.
    pub privileged_switch: Option<String>,
}

impl Verdict {
    /// Whether the statement must be refused now.
    pub fn refuses(&self) -> Option<&Refusal> {
        if self.monitor {
            None
        } else {
            self.decision.refusal.as_ref()
        }
    }

    /// Whether result cells must be rewritten.
    pub fn masks(&self) -> bool {
        !self.monitor && self.decision.refusal.is_none() && !self.decision.masks.is_empty()
    }

    /// What goes into the audit record.
    pub fn record(&self) -> PolicyRecord {
        let d = &self.decision;
        let (action, rule, columns) = match (&d.refusal, d.masks.is_empty()) {
            (Some(r), _) => (
                "deny",
                Some(r.rule.clone()),
                r.column.iter().cloned().collect(),
            ),
            (None, false) => {
                let mut rules: Vec<String> = d.masks.iter().map(|m| m.rule.clone()).collect();
                rules.dedup();
                (
                    "mask",
                    Some(rules.join(",")),
                    d.masks.iter().map(|m| m.column.clone()).collect(),
                )
            }
            (None, true) => ("allow", None, Vec::new()),
        };
        PolicyRecord {
            action: Some(if self.monitor && action != "allow" {
                format!("would_{action}")
            } else {
                action.to_owned()
            }),
            rule,
            columns,
            reason: d.refusal.as_ref().map(|r| r.reason.clone()),
            privileged_role: self.privileged_switch.clone(),
        }
    }
}

/// (analysis address, policy generation, condition bits, catalog version).
type CacheKey = (usize, u64, u64, u64);

/// Per-session policy state.
#[derive(Debug)]
pub struct Enforcer {
    /// (analysis address, policy generation, condition bits, catalog
    /// version) → (the analysis, kept alive so the address stays unique;
    /// the role; the decision).
    cache: HashMap<CacheKey, (Arc<Analysis>, String, Arc<Decision>)>,
    /// A role set by a statement not yet answered, and its request group.
    planned: Option<(String, u64)>,
    /// Refusals whose stand-in has not failed yet: token number → error.
    outstanding: VecDeque<(u64, PgError)>,
    next_token: u64,
    /// Makes this session's tokens unguessable to its client.
    nonce: u64,
}

impl Default for Enforcer {
    fn default() -> Self {
        Self {
            cache: HashMap::new(),
            planned: None,
            outstanding: VecDeque::new(),
            next_token: 1,
            nonce: rand::random(),
        }
    }
}

/// The text of a stand-in statement that fails at parse analysis.
fn stand_in_sql(token: &str) -> String {
    format!("SELECT '{token}'::pg_catalog.int4")
}

impl Enforcer {
    /// The role the next statement of `group` will run as (one role), or
    /// the roles it may run as when an earlier, unanswered request group
    /// changes the role (then both are decided, the stricter wins).
    pub fn roles_for(&self, settings: &Settings, group: u64) -> Vec<String> {
        let confirmed = settings.effective_role().to_owned();
        match &self.planned {
            Some((r, g)) if *g == group => vec![r.clone()],
            Some((r, _)) if *r != confirmed => vec![confirmed, r.clone()],
            _ => vec![confirmed],
        }
    }

    /// A statement that changes the role was sent in `group`.
    pub fn note_started(&mut self, a: &Analysis, settings: &Settings, group: u64) {
        if a.effects
            .iter()
            .any(|e| matches!(e, SessionEffect::Role { .. } | SessionEffect::ResetAll))
        {
            let mut after = settings.clone();
            if let Some((r, _)) = &self.planned {
                // Chain on the role already planned in this group.
                after.apply(&[SessionEffect::Role {
                    role: Some(r.clone()),
                    local: false,
                    session_authorization: false,
                }]);
            }
            after.apply(&a.effects);
            self.planned = Some((after.effective_role().to_owned(), group));
        }
    }

    /// Every request sent has been answered: the settings are exact again.
    pub fn settle(&mut self) {
        self.planned = None;
        // Nothing is in flight: no stand-in can still fail.
        self.outstanding.clear();
    }

    /// Decides `a` for every role it may run as.
    pub fn verdict(
        &mut self,
        policy: &Policy,
        catalog: &Catalog,
        a: &Arc<Analysis>,
        roles: &[String],
        env: &Env<'_>,
    ) -> Verdict {
        let bits = policy.condition_bits(env);
        let mut decision: Option<Arc<Decision>> = None;
        for role in roles {
            let d = self.decide_one(policy, catalog, a, role, env, bits);
            decision = Some(match decision {
                None => d,
                Some(prev) => Arc::new(stricter(&prev, &d)),
            });
        }
        let privileged_switch = a.effects.iter().find_map(|e| match e {
            SessionEffect::Role { role: Some(r), .. } => {
                let set = RoleSet::of(r, catalog);
                let who = Asker {
                    roles: &set,
                    env,
                    bits,
                };
                let superuser = catalog.role(r).is_some_and(|x| x.superuser);
                (superuser || policy.full_access(catalog, &who)).then(|| r.clone())
            }
            _ => None,
        });
        Verdict {
            decision: decision.unwrap_or_default(),
            monitor: policy.mode == Some(Mode::Monitor),
            privileged_switch,
        }
    }

    fn decide_one(
        &mut self,
        policy: &Policy,
        catalog: &Catalog,
        a: &Arc<Analysis>,
        role: &str,
        env: &Env<'_>,
        bits: u64,
    ) -> Arc<Decision> {
        let key = (
            Arc::as_ptr(a) as usize,
            policy.generation,
            bits,
            catalog.version,
        );
        if let Some((_, r, d)) = self.cache.get(&key) {
            if r == role {
                return d.clone();
            }
        }
        let set = RoleSet::of(role, catalog);
        let who = Asker {
            roles: &set,
            env,
            bits,
        };
        let d = Arc::new(policy.decide(a, catalog, &who));
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache
            .insert(key, (a.clone(), role.to_owned(), d.clone()));
        d
    }

    /// Registers a refusal; returns the token its stand-in carries.
    fn token(&mut self, refusal: &Refusal) -> String {
        let n = self.next_token;
        self.next_token += 1;
        let err = PgError::error(codes::INSUFFICIENT_PRIVILEGE, refusal.message())
            .with_detail(format!("pgwarden policy rule \"{}\"", refusal.rule))
            .with_hint("Ask the security team for access, or leave the column out.");
        if self.outstanding.len() >= OUTSTANDING_LIMIT {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((n, err));
        format!("pgwarden refusal {:016x}-{n}", self.nonce)
    }

    /// The Query to send instead of `text` whose statement `index` is
    /// refused: the statements before it (they run, as they would have),
    /// then the stand-in.
    pub fn refused_query(
        &mut self,
        text: &str,
        index: usize,
        refusal: &Refusal,
        out: &mut BytesMut,
    ) {
        let token = self.token(refusal);
        let mut sql = String::new();
        if index > 0 {
            if let Ok(parts) = pg_query::split_with_scanner(text) {
                if let Some(last) = parts.get(index - 1) {
                    // The prefix up to the end of the statement before.
                    // The parts are slices of `text`; checked, never trusted.
                    let end = (last.as_ptr() as usize)
                        .checked_sub(text.as_ptr() as usize)
                        .map(|start| start + last.len());
                    if let Some(prefix) = end.and_then(|e| text.get(..e)) {
                        sql.push_str(prefix);
                        sql.push_str(";\n");
                    }
                }
            }
        }
        sql.push_str(&stand_in_sql(&token));
        super::capture::put_query(&sql, out);
    }

    /// The Parse to send instead of a refused one (same statement name).
    pub fn refused_parse(&mut self, name: &str, refusal: &Refusal, out: &mut BytesMut) {
        let token = self.token(refusal);
        let sql = stand_in_sql(&token);
        let mut body = BytesMut::with_capacity(name.len() + sql.len() + 4);
        put_cstr(&mut body, name);
        put_cstr(&mut body, &sql);
        body.put_i16(0);
        put_message(out, b'P', &body);
    }

    /// The Bind to send instead of a refused one: it names a statement that
    /// does not exist, so the server fails it and skips to Sync.
    pub fn refused_bind(&mut self, portal: &str, refusal: &Refusal, out: &mut BytesMut) {
        let token = self.token(refusal);
        let mut body = BytesMut::with_capacity(portal.len() + token.len() + 8);
        put_cstr(&mut body, portal);
        put_cstr(&mut body, &token);
        body.put_i16(0);
        body.put_i16(0);
        body.put_i16(0);
        put_message(out, b'B', &body);
    }

    /// A refused FunctionCall becomes a failing Query (both are answered by
    /// an error and ReadyForQuery).
    pub fn refused_function_call(&mut self, refusal: &Refusal, out: &mut BytesMut) {
        let token = self.token(refusal);
        super::capture::put_query(&stand_in_sql(&token), out);
    }

    /// If `message` is the failure of one of this session's stand-ins,
    /// the error to send the client instead.
    pub fn swap_error(&mut self, message: &str) -> Option<PgError> {
        if self.outstanding.is_empty() {
            return None;
        }
        let marker = format!("pgwarden refusal {:016x}-", self.nonce);
        let at = message.find(&marker)? + marker.len();
        let digits: String = message[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: u64 = digits.parse().ok()?;
        let i = self.outstanding.iter().position(|(t, _)| *t == n)?;
        self.outstanding.remove(i).map(|(_, e)| e)
    }
}

/// The stricter of two decisions (for a statement that may run as either
/// of two roles).
fn stricter(a: &Decision, b: &Decision) -> Decision {
    if a.refusal.is_some() {
        return a.clone();
    }
    if b.refusal.is_some() {
        return b.clone();
    }
    let mut out = a.clone();
    for m in &b.masks {
        match out.masks.iter_mut().find(|x| x.position == m.position) {
            Some(x) if x.method != m.method => {
                x.method = Arc::new(crate::mask::MaskMethod::Null);
            }
            Some(_) => {}
            None => out.masks.push(m.clone()),
        }
    }
    out
}

fn put_cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_errors_swap_only_with_this_sessions_token() {
        let mut e = Enforcer::default();
        let r = Refusal {
            rule: "r1".into(),
            column: Some("hr.employees.ssn".into()),
            reason: "read".into(),
        };
        let mut out = BytesMut::new();
        e.refused_query("SELECT 1; SELECT ssn FROM hr.employees", 1, &r, &mut out);
        let body = String::from_utf8_lossy(&out[5..]).to_string();
        assert!(
            body.starts_with("SELECT 1;\nSELECT 'pgwarden refusal "),
            "{body}"
        );
        let token = body
            .split('\'')
            .nth(1)
            .expect("token in the stand-in")
            .to_owned();
        let server = format!("invalid input syntax for type integer: \"{token}\"");
        assert!(e
            .swap_error("pgwarden refusal 0000000000000000-1")
            .is_none());
        let err = e.swap_error(&server).expect("swapped");
        assert_eq!(err.code, "42501");
        assert!(err.message.contains("hr.employees.ssn"));
        // Only once.
        assert!(e.swap_error(&server).is_none());
    }
}
