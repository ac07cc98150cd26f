//! Watching statements go by: each frontend message is analysed (from the
//! cache, or by asking the relay to wait for the parser), the session's
//! settings follow what succeeded, and every finished statement becomes an
//! audit record. The relay calls in here only when analysis is on.

use super::enforce::{Enforcer, Verdict};
use super::limits::{Limiter, RowStep};
use super::settings::{parse_search_path, Settings};
use super::tracking::Portal;
use super::tracking::{Finished, Tracker};
use crate::analyse::{Analyses, Analysis, OpaqueCall, SessionEffect, StatementKind};
use crate::audit::{AuditRecord, SessionContext, StatementRecord};
use crate::audit::{ErrorInfo, Outcome};
use crate::catalog::Catalog;
use crate::context::Context;
use crate::detect::extraction::FlagSet;
use crate::mask::CellMask;
use crate::policy::{Env, Policy};
use crate::protocol::backend::error_response::PgError;
use crate::protocol::backend::{self as be, error_response, parameter_status, row_description};
use crate::protocol::frontend::bind;
use crate::protocol::{frontend, Frame, ProtocolError, Reader};
use bytes::BytesMut;
use std::sync::Arc;

/// What the relay should do with a frontend message.
pub enum FrontStep {
    /// Forward it.
    Forward,
    /// pgwarden wrote a replacement for it.
    Replaced,
    /// Its text is not in the analysis cache: analyse it, then offer the
    /// same message again.
    NeedAnalysis(String),
}

/// Per-session statement observer.
pub struct Observer {
    ctx: Arc<Context>,
    database: String,
    /// The search path, role and temp relations the analysis depends on.
    pub settings: Settings,
    tracker: Tracker,
    session: Arc<SessionContext>,
    /// Analysis waited for by the relay, for the message offered next.
    ready: Option<Analyses>,
    /// Records that could not be queued without waiting.
    pub outbox: Vec<AuditRecord>,
    /// Statements seen, for the disconnect record.
    pub statements: u64,
    /// Rows returned or affected, for the disconnect record.
    pub rows: u64,
    catalog_changed: bool,
    /// (settings generation, view key) of the last cache lookup.
    view_key: Option<(u64, u64)>,
    /// This session changed the catalog; reload before the next analysis.
    pub catalog_stale: bool,
    /// Policy decisions and refusals.
    enforcer: Enforcer,
    /// Row counting against the policy's limits.
    pub limiter: Limiter,
    /// A statement was stopped: withhold the rest of its request.
    stopped: bool,
}

fn text_of(body: &[u8]) -> Result<&str, ProtocolError> {
    Reader::new(body, "Query").string()
}

impl Observer {
    /// An observer for a logged-in session.
    pub fn new(ctx: Arc<Context>, session: Arc<SessionContext>, settings: Settings) -> Self {
        let limiter = Limiter::new(&session.user);
        Self {
            database: session.database.to_string(),
            ctx,
            settings,
            tracker: Tracker::default(),
            session,
            ready: None,
            outbox: Vec::new(),
            statements: 0,
            rows: 0,
            catalog_changed: false,
            view_key: None,
            catalog_stale: false,
            enforcer: Enforcer::default(),
            limiter,
            stopped: false,
        }
    }

    /// The catalog snapshot in force for this session's database.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.ctx
            .catalogs
            .current(&self.database)
            .unwrap_or_else(|| Arc::new(Catalog::default()))
    }

    /// Hands over the analysis the relay waited for.
    pub fn set_ready(&mut self, a: Analyses) {
        self.ready = Some(a);
    }

    /// The database this session is connected to.
    pub fn database(&self) -> &str {
        &self.database
    }

    fn analyses(&mut self, text: &str) -> Option<Analyses> {
        if let Some(a) = self.ready.take() {
            return Some(a);
        }
        if self.catalog_stale {
            // Make the relay reload the catalog before analysing.
            return None;
        }
        let version = self
            .ctx
            .catalogs
            .current(&self.database)
            .map_or(0, |c| c.version);
        let key = self.view_key();
        let scs = self.settings.standard_conforming_strings;
        self.ctx.analyser.cached_with_key(text, key, scs, version)
    }

    /// The session view's cache key, recomputed only after settings changed.
    fn view_key(&mut self) -> u64 {
        let generation = self.settings.generation();
        match self.view_key {
            Some((g, k)) if g == generation => k,
            _ => {
                let k = self.settings.view().key();
                self.view_key = Some((generation, k));
                k
            }
        }
    }

    fn full_text(&self, text: &str) -> Option<Arc<str>> {
        self.ctx.audit.log_full_text().then(|| Arc::from(text))
    }

    /// The policy in force and what its conditions look at, when one is.
    fn policy(&self) -> Option<(Arc<Policy>, Arc<Catalog>)> {
        let p = self.ctx.policy.current()?;
        if p.is_empty() {
            return None;
        }
        Some((p, self.catalog()))
    }

    /// What policy conditions look at for this session, now (the clock, or
    /// `policy.fixed_time`).
    fn env(&self) -> Env<'_> {
        Env {
            now: self.ctx.now(),
            addr: Some(self.session.client_addr.ip()),
            application: &self.session.application_name,
        }
    }

    /// Decides `a`, about to run in the current request group.
    fn verdict(&mut self, a: &Arc<Analysis>) -> Option<Verdict> {
        let (policy, catalog) = self.policy()?;
        let roles = self
            .enforcer
            .roles_for(&self.settings, self.tracker.group());
        let session = self.session.clone();
        let env = Env {
            application: &session.application_name,
            ..self.env()
        };
        Some(self.enforcer.verdict(&policy, &catalog, a, &roles, &env))
    }

    /// A statement is sent to run: security events (privilege changes,
    /// off-hours reads of classified data, extraction flags); the flags
    /// go into its audit record.
    fn started(&self, a: &Analysis, verdict: Option<&Verdict>) -> FlagSet {
        let Some(policy) = self.ctx.policy.current() else {
            return FlagSet::default();
        };
        let env = self.env();
        crate::detect::statement_started(
            &self.ctx,
            &policy,
            &self.catalog(),
            &self.session,
            a,
            &env,
            verdict.and_then(|v| v.privileged_switch.as_deref()),
        )
    }

    /// Sets the extraction flags of the statement just started.
    fn set_flags(&mut self, flags: FlagSet) {
        if flags.is_empty() {
            return;
        }
        if let Some(p) = self.tracker.last_mut() {
            p.flags = flags;
        }
    }

    /// `a` with LIMIT / FETCH counts read from `text`, the text this
    /// session sent (a cached analysis may come from another literal).
    fn counted(&self, a: Arc<Analysis>, text: &str) -> Arc<Analysis> {
        match a
            .shape
            .with_counts_from(text, self.settings.standard_conforming_strings)
        {
            Some(shape) => Arc::new(Analysis {
                shape,
                ..(*a).clone()
            }),
            None => a,
        }
    }

    /// Looks at one frontend message before it is forwarded; a message
    /// pgwarden replaces is written to `out` instead.
    pub fn on_frontend(
        &mut self,
        frame: Frame<'_>,
        out: &mut BytesMut,
    ) -> Result<FrontStep, ProtocolError> {
        if matches!(
            frame.tag(),
            frontend::PARSE
                | frontend::BIND
                | frontend::DESCRIBE
                | frontend::EXECUTE
                | frontend::CLOSE
                | frontend::FLUSH
        ) {
            // Extended-protocol messages are in flight until their Sync.
            self.tracker.touch();
        }
        match frame.tag() {
            frontend::QUERY => {
                let text = text_of(frame.body())?;
                let Some(all) = self.analyses(text) else {
                    return Ok(FrontStep::NeedAnalysis(text.to_owned()));
                };
                let full = self.full_text(text);
                for (i, a) in all.iter().enumerate() {
                    let a = self.counted(a.clone(), text);
                    let a = self.tracker.resolve_reference(a);
                    let verdict = self.verdict(&a);
                    if let Some(refusal) = verdict.as_ref().and_then(Verdict::refuses).cloned() {
                        // Later statements never run: PostgreSQL ends the
                        // Query at the first error.
                        self.enforcer.refused_query(text, i, &refusal, out);
                        self.tracker.start(a, full, verdict, None);
                        self.tracker.end_group();
                        return Ok(FrontStep::Replaced);
                    }
                    self.enforcer
                        .note_started(&a, &self.settings, self.tracker.group());
                    self.tracker.note_definitions(&a);
                    let origin = match (&a.refers_to, a.command.as_str()) {
                        (Some(c), "FETCH") => Some(format!("cursor:{c}")),
                        _ => None,
                    };
                    for e in &a.effects {
                        if let SessionEffect::DeclareCursor(c) = e {
                            self.limiter.reset(&format!("cursor:{c}"));
                        }
                    }
                    let flags = self.started(&a, verdict.as_ref());
                    self.tracker.start(a, full.clone(), verdict, None);
                    self.set_origin(origin);
                    self.set_flags(flags);
                }
                self.tracker.end_group();
            }
            frontend::PARSE => {
                let mut r = Reader::new(frame.body(), "Parse");
                let name = r.string()?;
                let text = r.string()?;
                let Some(all) = self.analyses(text) else {
                    return Ok(FrontStep::NeedAnalysis(text.to_owned()));
                };
                if let Some(a) = all.first() {
                    let a = self.counted(a.clone(), text);
                    let a = self.tracker.resolve_reference(a);
                    let verdict = self.verdict(&a);
                    let refusal = verdict.as_ref().and_then(Verdict::refuses).cloned();
                    self.tracker.parse(name, a, verdict);
                    if let Some(refusal) = refusal {
                        self.enforcer.refused_parse(name, &refusal, out);
                        return Ok(FrontStep::Replaced);
                    }
                }
            }
            frontend::BIND => {
                let bind = frontend::bind::Bind::parse(frame.body())?;
                let Some(a) = self.tracker.statement(bind.statement) else {
                    self.tracker.bind(bind.portal, None);
                    return Ok(FrontStep::Forward);
                };
                self.limiter.reset(&format!("portal:{}", bind.portal));
                // The role may have changed since Parse: decide again.
                let verdict = self.verdict(&a);
                let refusal = verdict.as_ref().and_then(Verdict::refuses).cloned();
                self.tracker.bind(
                    bind.portal,
                    Some(Portal {
                        analysis: a,
                        verdict,
                        formats: bind.result_formats.into(),
                    }),
                );
                if let Some(refusal) = refusal {
                    self.enforcer.refused_bind(bind.portal, &refusal, out);
                    return Ok(FrontStep::Replaced);
                }
            }
            frontend::EXECUTE => {
                let portal = Reader::new(frame.body(), "Execute").string()?;
                match self.tracker.portal(portal) {
                    Some(p) => {
                        self.enforcer.note_started(
                            &p.analysis,
                            &self.settings,
                            self.tracker.group(),
                        );
                        // A FETCH counts against its cursor, whatever portal runs it.
                        let origin = match (&p.analysis.refers_to, p.analysis.command.as_str()) {
                            (Some(c), "FETCH") => format!("cursor:{c}"),
                            _ => format!("portal:{portal}"),
                        };
                        let flags = self.started(&p.analysis, p.verdict.as_ref());
                        self.tracker
                            .start(p.analysis, None, p.verdict, Some(p.formats));
                        self.set_origin(Some(origin));
                        self.set_flags(flags);
                    }
                    None => {
                        let a = Arc::new(placeholder(
                            "EXECUTE",
                            Some("unknown portal".into()),
                            Vec::new(),
                        ));
                        self.tracker.start(a, None, None, None);
                    }
                }
            }
            frontend::CLOSE => {
                let mut r = Reader::new(frame.body(), "Close");
                let kind = r.u8()?;
                self.tracker.close(kind, r.string()?);
            }
            frontend::SYNC => self.tracker.end_group(),
            frontend::FUNCTION_CALL => {
                let oid = Reader::new(frame.body(), "FunctionCall").i32()?;
                let a = Arc::new(placeholder(
                    "FUNCTION CALL",
                    None,
                    vec![OpaqueCall {
                        function: format!("function oid {oid}"),
                        columns: Vec::new(),
                    }],
                ));
                let verdict = self.verdict(&a);
                let refusal = verdict.as_ref().and_then(Verdict::refuses).cloned();
                self.tracker.start(a, None, verdict, None);
                self.tracker.end_group();
                if let Some(refusal) = refusal {
                    self.enforcer.refused_function_call(&refusal, out);
                    return Ok(FrontStep::Replaced);
                }
            }
            _ => {}
        }
        Ok(FrontStep::Forward)
    }

    /// Looks at one backend message before it is forwarded; returns true
    /// when it wrote a replacement (a masked DataRow, pgwarden's own
    /// error) to `out` instead, or withholds it.
    pub fn on_backend(&mut self, frame: Frame<'_>, out: &mut BytesMut) -> bool {
        let replaced = self.on_backend_message(frame, out);
        if frame.tag() == be::READY_FOR_QUERY {
            self.stopped = false;
            return replaced;
        }
        // After a stopped statement's error, nothing else of its request
        // reaches the client (PostgreSQL skips the rest after an error);
        // the tracker still records what the server did.
        replaced || self.stopped
    }

    fn on_backend_message(&mut self, frame: Frame<'_>, out: &mut BytesMut) -> bool {
        match frame.tag() {
            be::DATA_ROW => {
                self.tracker.row(frame.raw().len());
                if self.withheld_by_limit() {
                    return true;
                }
                if let Some(plan) = self.row_plan() {
                    let key = self.ctx.mask_key.load();
                    if let Err(e) = crate::mask::rewrite_data_row(frame.body(), &plan, &key, out) {
                        // Never forward what could not be masked.
                        tracing::warn!(error = %e, "malformed DataRow withheld");
                    }
                    self.ctx.metrics.masked_rows.inc();
                    return true;
                }
            }
            b'd' => {
                self.tracker.row(frame.raw().len());
                if self.withheld_by_limit() {
                    return true;
                }
            }
            // CopyDone of a stopped COPY TO: the error replaces the end.
            b'c' if self.head_blocked().is_some() => return true,
            be::ROW_DESCRIPTION => {
                if let Some(p) = self.tracker.head() {
                    if p.formats.is_none() {
                        // Simple protocol: the description right before the
                        // rows says their formats and types.
                        p.described = row_description::parse(frame.body()).unwrap_or_default();
                        p.row_plan = None;
                    }
                }
            }
            be::ERROR_RESPONSE if self.head_blocked().is_some() => {
                // The cancellation (or any error) of a stopped statement:
                // the client gets the limit's error instead.
                self.settings.on_error();
                self.finish_blocked(out);
                return true;
            }
            be::ERROR_RESPONSE => {
                let e = error_response::parse(frame.body()).unwrap_or_default();
                self.settings.on_error();
                if let Some(mine) = self.enforcer.swap_error(e.message) {
                    mine.put(out);
                    self.ctx.metrics.statements_refused.inc();
                    crate::detect::statement_refused(&self.ctx, &self.session);
                    if let Some(mut f) = self.tracker.error(mine.code, &mine.message) {
                        f.outcome =
                            Outcome::Refused(ErrorInfo::new(mine.code, mine.message.clone()));
                        self.record(f);
                    }
                    return true;
                }
                if let Some(f) = self.tracker.error(e.code, e.message) {
                    self.record(f);
                }
            }
            b'C' | b's' if self.head_blocked().is_some() => {
                self.finish_blocked(out);
                return true;
            }
            b'C' => {
                let tag = Reader::new(frame.body(), "CommandComplete")
                    .string()
                    .unwrap_or_default();
                if let Some(f) = self.tracker.complete(Some(tag)) {
                    self.succeeded(&f, tag);
                    self.record(f);
                }
            }
            b's' => {
                if let Some(f) = self.tracker.complete(None) {
                    self.record(f);
                }
            }
            b'I' => self.tracker.empty(),
            be::READY_FOR_QUERY => {
                let idle = frame.body().first() == Some(&b'I');
                self.settings.on_ready(idle);
                self.tracker.ready();
                if self.tracker.all_answered() {
                    self.enforcer.settle();
                }
                if idle && self.catalog_changed {
                    // DDL is visible to the catalog reader once committed:
                    // this session's next analysis reloads first, and every
                    // other session's catalog follows shortly.
                    self.catalog_changed = false;
                    self.catalog_stale = true;
                    self.ctx.catalogs.request_reload(&self.database);
                }
            }
            be::PARAMETER_STATUS => {
                if let Ok((name, value)) = parameter_status::parse(frame.body()) {
                    match name {
                        "standard_conforming_strings" => {
                            self.settings.standard_conforming_strings = value == "on";
                        }
                        "application_name" => {
                            let mut s = (*self.session).clone();
                            s.application_name = Arc::from(value);
                            self.session = Arc::new(s);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        false
    }

    /// Marks the statement just started as fetching from `origin`.
    fn set_origin(&mut self, origin: Option<String>) {
        let Some(o) = origin else { return };
        let carry = self.limiter.carry(&o);
        if let Some(p) = self.tracker.last_mut() {
            p.origin = Some(o);
            p.carry = carry;
        }
    }

    /// The error a statement stopped by a row limit ends with.
    fn head_blocked(&mut self) -> Option<&PgError> {
        self.tracker.head()?.blocked.as_ref().map(|(e, _)| e)
    }

    /// Counts a row of the head statement against its limits; true when
    /// it must not reach the client.
    fn withheld_by_limit(&mut self) -> bool {
        let Some(p) = self.tracker.head() else {
            return false;
        };
        if p.verdict
            .as_ref()
            .is_none_or(|v| v.decision.limits.is_empty())
        {
            return false;
        }
        match self.limiter.on_row(&self.ctx, &self.session, p) {
            RowStep::Pass => false,
            RowStep::Withhold => true,
            // The rest of the statement is withheld and drained, not
            // cancelled: a cancel reaching PostgreSQL after the statement
            // ended hits the client's next statement (seen in 2 of 5 runs),
            // and a CancelRequest cannot name the statement it is meant for.
            RowStep::Stop => true,
        }
    }

    /// Ends a stopped statement with the limit's error.
    fn finish_blocked(&mut self, out: &mut BytesMut) {
        let Some(f) = self.tracker.fail_head() else {
            return;
        };
        let Some((e, _)) = &f.pending.blocked else {
            return;
        };
        e.put(out);
        self.stopped = true;
        let outcome = Outcome::Refused(ErrorInfo::new(e.code, e.message.clone()));
        let mut f = f;
        f.outcome = outcome;
        self.record(f);
    }

    /// How the head statement's DataRow cells are masked, if they are.
    fn row_plan(&mut self) -> Option<Arc<[Option<CellMask>]>> {
        let p = self.tracker.head()?;
        let v = p.verdict.as_ref().filter(|v| v.masks())?;
        if p.row_plan.is_none() {
            let width = v
                .decision
                .masks
                .iter()
                .map(|m| m.position + 1)
                .max()
                .unwrap_or(0)
                .max(p.described.len());
            let plan: Vec<Option<CellMask>> = (0..width)
                .map(|i| {
                    let m = v.decision.masks.iter().find(|m| m.position == i)?;
                    let described = p.described.get(i);
                    let binary = match &p.formats {
                        Some(f) => bind::is_binary(f, i),
                        None => described.is_some_and(|d| d.format == 1),
                    };
                    Some(CellMask {
                        method: m.method.clone(),
                        type_oid: described.map_or(m.type_oid, |d| d.type_oid),
                        binary,
                    })
                })
                .collect();
            p.row_plan = Some(plan.into());
        }
        p.row_plan.clone()
    }

    /// A statement succeeded: its effects on the session now hold.
    fn succeeded(&mut self, f: &Finished, tag: &str) {
        let a = &f.pending.analysis;
        let role_before = self.settings.effective_role().to_owned();
        self.settings.apply(&a.effects);
        self.settings.on_command_complete(tag, &a.command);
        for e in &a.effects {
            match e {
                SessionEffect::Prepare(name) => {
                    self.tracker.sql_prepared.insert(name.clone(), a.clone());
                }
                SessionEffect::Deallocate(name) => match name {
                    Some(n) => {
                        self.tracker.sql_prepared.remove(n);
                    }
                    None => self.tracker.sql_prepared.clear(),
                },
                SessionEffect::DeclareCursor(name) => {
                    self.tracker.cursors.insert(name.clone(), a.clone());
                }
                SessionEffect::CloseCursor(name) => match name {
                    Some(n) => {
                        self.tracker.cursors.remove(n);
                    }
                    None => self.tracker.cursors.clear(),
                },
                SessionEffect::CatalogChanged => self.catalog_changed = true,
                _ => {}
            }
        }
        if self.settings.effective_role() != role_before {
            let mut s = (*self.session).clone();
            let role = self.settings.effective_role();
            s.effective_user = (role != &*s.user).then(|| Arc::from(role));
            self.session = Arc::new(s);
        }
    }

    fn record(&mut self, f: Finished) {
        let Finished {
            pending: p,
            tag,
            outcome,
            duration,
        } = f;
        self.statements += 1;
        if p.analysis.unanalysed.is_some() {
            self.ctx.metrics.statements_unanalysed.inc();
        } else {
            self.ctx.metrics.statements_analysed.inc();
        }
        self.limiter.on_finished(&self.ctx, &self.session, &p);
        let counted_rows = (p.rows > 0).then_some(p.rows);
        let is_select = p.analysis.kind == StatementKind::Select;
        let mut r = StatementRecord {
            timestamp: p.timestamp,
            session: self.session.clone(),
            analysis: p.analysis,
            full_text: p.full_text,
            rows_returned: None,
            rows_affected: None,
            bytes_returned: p.bytes,
            duration,
            outcome,
            flags: p.flags,
            policy: p.verdict.as_ref().map(|v| {
                let mut r = v.record();
                if let Some((e, limit)) = &p.blocked {
                    r.action = Some("block".into());
                    r.rule = Some(limit.to_string());
                    r.reason = Some(e.message.clone());
                }
                r
            }),
        };
        match &tag {
            Some(tag) => r.set_rows_from_tag(tag),
            None => r.rows_returned = counted_rows,
        }
        if r.rows_returned.is_none() && is_select {
            r.rows_returned = counted_rows;
        }
        if self.ctx.baseline.is_enabled() && r.outcome == Outcome::Ok {
            self.ctx
                .baseline
                .observe(crate::baseline::Observation::Statement {
                    session: self.session.clone(),
                    analysis: r.analysis.clone(),
                    rows: r.rows_returned.unwrap_or(0),
                    at: self.ctx.now(),
                });
        }
        self.rows += r.rows_returned.unwrap_or(0) + r.rows_affected.unwrap_or(0);
        if let Err(rec) = self.ctx.audit.try_send(AuditRecord::Statement(r)) {
            self.outbox.push(rec);
        }
    }

    /// Whether records wait for room in the audit queue.
    pub fn has_backlog(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// The session context for connection records.
    pub fn session(&self) -> Arc<SessionContext> {
        self.session.clone()
    }
}

/// An analysis for messages that carry no SQL text.
fn placeholder(command: &str, unanalysed: Option<String>, opaque: Vec<OpaqueCall>) -> Analysis {
    Analysis {
        kind: StatementKind::Other,
        command: command.into(),
        accesses: Vec::new(),
        opaque_calls: opaque,
        unanalysed,
        normalized: Arc::from(""),
        fingerprint: Arc::from("0000000000000000"),
        effects: Vec::new(),
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Default::default(),
    }
}

/// The search_path a new session starts with, as `SHOW search_path` printed it.
pub fn initial_settings(user: &str, shown_search_path: Option<&str>) -> Settings {
    let path = shown_search_path.unwrap_or("\"$user\", public");
    Settings::new(user, parse_search_path(path))
}
