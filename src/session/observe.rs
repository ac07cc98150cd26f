//! Watching statements go by: each frontend message is analysed (from the
//! cache, or by asking the relay to wait for the parser), the session's
//! settings follow what succeeded, and every finished statement becomes an
//! audit record. The relay calls in here only when analysis is on.

use super::capture::{self as cap, Capturer};
use super::enforce::{Enforcer, Verdict};
use super::limits::{Limiter, RowStep};
use super::settings::{parse_search_path, Settings};
use super::tracking::Portal;
use super::tracking::{Finished, Tracker};
use crate::analyse::{Analyses, Analysis, OpaqueCall, SessionEffect, StatementKind};
use crate::audit::{AuditRecord, SessionContext, StatementRecord};
use crate::audit::{ErrorInfo, Outcome};
use crate::capture::prepare::Request;
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
    /// Strict durability: tickets of the records of statements whose
    /// completion is being handed to the relay (`None`: in `outbox`).
    pub held: Vec<Option<u64>>,
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
    /// A statement was just stopped; the relay may cancel it.
    cancel_wanted: bool,
    /// Change capture.
    capture: Capturer,
    /// Which Parse/Bind/Close answers are pgwarden's own.
    answers: super::answers::Answers,
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
            held: Vec::new(),
            statements: 0,
            rows: 0,
            catalog_changed: false,
            view_key: None,
            catalog_stale: false,
            enforcer: Enforcer::default(),
            limiter,
            stopped: false,
            cancel_wanted: false,
            capture: Capturer::default(),
            answers: super::answers::Answers::default(),
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

    /// The capture prepared for `text` (`Some(None)`: nothing of it is
    /// captured); `None` when the relay must prepare it first (the request
    /// is left in `self.capture.request`).
    #[allow(clippy::option_option)]
    fn capture_prepared(
        &mut self,
        text: &str,
        all: &[Arc<Analysis>],
        extended: bool,
    ) -> Option<Option<Arc<crate::capture::Prepared>>> {
        let Some((policy, catalog)) = self.policy() else {
            return Some(None);
        };
        if policy.capture.changes.is_empty() {
            return Some(None);
        }
        let wanted: Vec<_> = all
            .iter()
            .map(|a| {
                let a = self.tracker.resolve_reference(a.clone());
                crate::capture::plan::wanted(&a, &policy, &catalog)
            })
            .collect();
        if wanted.iter().all(Option::is_none) {
            return Some(None);
        }
        let role = self.settings.effective_role().to_owned();
        let key = self.ctx.captures.key(
            text,
            &self.database,
            &role,
            policy.generation,
            catalog.version,
            extended,
        );
        if let Some((k, p)) = self.capture.ready.take() {
            if k == key {
                return Some(Some(p));
            }
        }
        if let Some(p) = self.ctx.captures.cached(key) {
            return Some(Some(p));
        }
        let oids = wanted
            .iter()
            .map(|w| {
                let w = w.as_ref()?;
                catalog
                    .relation_in(&w.relation.schema, &w.relation.name)
                    .map(|r| r.oid)
            })
            .collect();
        // A COPY's rows are read from its data: in the table's column order.
        let copy_tables = all
            .iter()
            .zip(&wanted)
            .map(|(a, w)| {
                let w = w.as_ref().filter(|_| a.kind == StatementKind::Copy)?;
                let r = catalog.relation_in(&w.relation.schema, &w.relation.name)?;
                Some(
                    r.columns
                        .iter()
                        .map(|c| (c.name.clone(), c.type_oid))
                        .collect(),
                )
            })
            .collect();
        self.capture.request = Some(Request {
            key,
            role,
            text: text.to_owned(),
            wanted,
            oids,
            copy_tables,
            extended,
        });
        None
    }

    /// A capture the relay must prepare before the client's message is
    /// offered again.
    pub fn take_capture_request(&mut self) -> Option<Request> {
        self.capture.request.take()
    }

    /// Hands over the capture the relay prepared.
    pub fn set_capture_ready(
        &mut self,
        key: crate::capture::prepare::Key,
        p: Arc<crate::capture::Prepared>,
    ) {
        self.capture.ready = Some((key, p));
    }

    /// Marks the statement just started as captured under `plan`.
    fn set_capture(&mut self, plan: Option<Arc<crate::capture::Plan>>) {
        let Some(plan) = plan else { return };
        if let Some(p) = self.tracker.last_mut() {
            p.capture = Some(crate::capture::Capture::new(plan));
        }
    }

    /// The capture of the head statement when it is a captured COPY FROM.
    fn copying(&mut self) -> Option<&mut crate::capture::Capture> {
        self.tracker
            .head()?
            .capture
            .as_mut()
            .filter(|c| c.copy.is_some())
    }

    /// Takes pgwarden's column off a DataRow of a captured statement;
    /// `Some(true)` when the row was handled (rewritten or withheld).
    fn capture_row(&mut self, frame: Frame<'_>, out: &mut BytesMut) -> Option<bool> {
        let p = self.tracker.head()?;
        let c = p.capture.as_mut().filter(|c| c.strips())?;
        let hide = c.hides_rows();
        let op = c.op()?;
        let width = c.plan.wanted.columns.len();
        let cap = c.plan.wanted.max_rows;
        match crate::capture::rows::strip_data_row(frame.body(), hide, out) {
            Some(cell) => c.changes.add(cell, op, width, cap),
            None => tracing::warn!("malformed DataRow of a captured statement withheld"),
        }
        if !hide {
            self.tracker.row(frame.raw().len());
            // The client's columns lead the row: the subject keys are there.
            super::subjects::on_row(&self.ctx, self.tracker.head(), frame.body());
        }
        Some(true)
    }

    /// A prepared MERGE's Execute: pgwarden's pre-image before it and its
    /// post-image after it, in the same transaction (no Sync between).
    fn run_images(
        &mut self,
        portal: &str,
        images: &crate::capture::merge::Images,
        frame: Frame<'_>,
        out: &mut BytesMut,
    ) -> FrontStep {
        let Some((types, params)) = self.capture.merge_portal(portal) else {
            // Never bound here: run it unchanged, and say so.
            if let Some(c) = self.tracker.last_mut().and_then(|p| p.capture.as_mut()) {
                *c = c.unrewritten("not captured: the MERGE's parameters were not seen");
            }
            return FrontStep::Forward;
        };
        let mut own = cap::put_image(&images.pre, types, params, out);
        out.extend_from_slice(frame.raw());
        own += cap::put_image(&images.post, types, params, out);
        for _ in 0..own {
            self.answers.own_sent();
        }
        FrontStep::Replaced
    }

    /// The answers of pgwarden's pre- and post-image around a captured
    /// MERGE are read and withheld; the MERGE's CommandComplete waits for
    /// the post-image. `None`: not such an answer.
    fn merge_step(&mut self, frame: Frame<'_>, out: &mut BytesMut) -> Option<bool> {
        use crate::capture::merge::{first_cell, Phase};
        let c = self.tracker.head()?.capture.as_mut()?;
        let (width, cap) = (c.plan.wanted.columns.len(), c.plan.wanted.max_rows);
        let run = c.merge.as_mut()?;
        let tag = frame.tag();
        match (run.phase, tag) {
            (Phase::PreImage | Phase::PostImage, be::ROW_DESCRIPTION) => {}
            (Phase::PreImage, be::DATA_ROW) => {
                if !run.pre_image(first_cell(frame.body()).flatten(), width) {
                    tracing::warn!("unreadable pre-image of a captured MERGE");
                }
            }
            (Phase::PreImage, b'C') => run.phase = Phase::Merge,
            (Phase::Merge, b'C') => {
                let tag = Reader::new(frame.body(), "CommandComplete")
                    .string()
                    .unwrap_or_default();
                run.merged(frame.raw(), tag);
            }
            (Phase::PostImage, be::DATA_ROW) => {
                if !run.post_image(
                    first_cell(frame.body()).flatten(),
                    width,
                    &mut c.changes,
                    cap,
                ) {
                    c.changes.incomplete = Some("the post-image could not be read".into());
                }
            }
            (Phase::PostImage, b'C') => {
                run.phase = Phase::Done;
                let held = run.take_complete()?;
                // The MERGE's completion, now that its changes are known.
                if !self.on_backend_message(Frame::new(&held), out) {
                    out.extend_from_slice(&held);
                }
            }
            _ => return None,
        }
        Some(true)
    }

    /// A RowDescription (or NoData) that describes a rewritten statement
    /// loses pgwarden's column; true when it was handled.
    fn capture_description(&mut self, frame: Frame<'_>, out: &mut BytesMut) -> bool {
        let group = self.tracker.answering();
        let hide = match self.capture.describe_answer(group) {
            Some(Some(hide)) => hide,
            Some(None) => return false,
            None if frame.tag() == be::ROW_DESCRIPTION => {
                // Simple protocol: the description of the head statement.
                match self.tracker.head().and_then(|p| p.capture.as_ref()) {
                    Some(c) if c.strips() => {
                        if c.hides_rows() {
                            return true;
                        }
                        false
                    }
                    _ => return false,
                }
            }
            None => return false,
        };
        if frame.tag() != be::ROW_DESCRIPTION {
            return false;
        }
        if crate::capture::rows::strip_row_description(frame.body(), hide, out).is_none() {
            tracing::warn!("malformed RowDescription of a captured statement withheld");
        }
        true
    }

    /// Held changes whose transaction ended become records.
    fn release_changes(
        &mut self,
        done: Vec<(
            crate::capture::ledger::Held,
            crate::capture::ledger::Outcome,
        )>,
    ) {
        if done.is_empty() {
            return;
        }
        let key = self.ctx.mask_key.load();
        for (h, outcome) in done {
            let mut r = h.record;
            let c = &h.capture;
            r.changes = Some(crate::capture::rows::record(
                &c.plan.wanted,
                c.op(),
                &c.changes,
                c.plan
                    .reason
                    .as_deref()
                    .or(c.plan.wanted.unavailable.as_deref()),
                outcome.name(),
                &key,
            ));
            self.send(AuditRecord::Statement(r));
        }
    }

    /// The session ends: changes still held have an unknown outcome.
    pub fn end_session(&mut self) {
        let done = self.capture.ledger.on_session_end();
        self.release_changes(done);
    }

    /// Queues a record; under strict durability the completion being
    /// relayed now waits for it.
    fn send(&mut self, rec: AuditRecord) {
        match self.ctx.audit.try_send_ticketed(rec) {
            Ok(Some(ticket)) => self.held.push(Some(ticket)),
            Ok(None) => {}
            Err(rec) => {
                self.outbox.push(rec);
                if self.ctx.audit.is_strict() {
                    self.held.push(None);
                }
            }
        }
    }

    /// Looks at one frontend message before it is forwarded; a message
    /// pgwarden replaces is written to `out` instead.
    pub fn on_frontend(
        &mut self,
        frame: Frame<'_>,
        out: &mut BytesMut,
    ) -> Result<FrontStep, ProtocolError> {
        let step = self.on_frontend_message(frame, out)?;
        if !matches!(step, FrontStep::NeedAnalysis(_)) {
            // Replacements keep the message's type (stand-ins, rewrites).
            self.answers.client_sent(frame.tag());
        }
        Ok(step)
    }

    fn on_frontend_message(
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
                let Some(prepared) = self.capture_prepared(text, &all, false) else {
                    self.ready = Some(all);
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
                        self.tracker
                            .unrewrite_group("another statement of its query was refused");
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
                    self.set_capture(
                        prepared
                            .as_ref()
                            .and_then(|p| p.plans.get(i).cloned().flatten()),
                    );
                    self.set_flags(flags);
                }
                self.tracker.end_group();
                if let Some(t) = prepared.as_ref().and_then(|p| p.text.as_deref()) {
                    cap::put_query(t, out);
                    return Ok(FrontStep::Replaced);
                }
            }
            frontend::PARSE => {
                let mut r = Reader::new(frame.body(), "Parse");
                let name = r.string()?;
                let text = r.string()?;
                let tail = r.remaining();
                let Some(all) = self.analyses(text) else {
                    return Ok(FrontStep::NeedAnalysis(text.to_owned()));
                };
                let Some(prepared) = self.capture_prepared(text, &all, true) else {
                    self.ready = Some(all);
                    return Ok(FrontStep::NeedAnalysis(text.to_owned()));
                };
                let plan = prepared
                    .as_ref()
                    .and_then(|p| p.plans.first().cloned().flatten());
                if let Some(a) = all.first() {
                    let a = self.counted(a.clone(), text);
                    let a = self.tracker.resolve_reference(a);
                    let verdict = self.verdict(&a);
                    let refusal = verdict.as_ref().and_then(Verdict::refuses).cloned();
                    self.tracker.parse(name, a, verdict);
                    if let Some(refusal) = refusal {
                        self.capture.parsed(name, None);
                        self.enforcer.refused_parse(name, &refusal, out);
                        return Ok(FrontStep::Replaced);
                    }
                }
                let images = plan.as_ref().is_some_and(|p| p.merge.is_some());
                self.capture.merge_parsed(name, images.then_some(tail));
                self.capture.parsed(name, plan);
                if let Some(t) = prepared.as_ref().and_then(|p| p.text.as_deref()) {
                    cap::put_parse(name, t, tail, out);
                    return Ok(FrontStep::Replaced);
                }
            }
            frontend::BIND => {
                let bind = frontend::bind::Bind::parse(frame.body())?;
                let plan = self.capture.bound(bind.portal, bind.statement);
                let n = bind.result_formats.len();
                if plan.as_ref().is_some_and(|p| p.merge.is_some()) {
                    // Parameter formats and values: between the names and
                    // the result formats.
                    let from = bind.portal.len() + bind.statement.len() + 2;
                    let to = frame.body().len().checked_sub(2 + 2 * n);
                    let params = to.and_then(|to| frame.body().get(from..to));
                    self.capture
                        .merge_bound(bind.portal, bind.statement, params);
                }
                let Some(a) = self.tracker.statement(bind.statement) else {
                    self.tracker.bind(bind.portal, None);
                    return Ok(FrontStep::Forward);
                };
                // `LIMIT $n`: the count is known now.
                let a = match a.shape.with_bound_limit(frame.body()) {
                    Some(shape) => Arc::new(Analysis {
                        shape,
                        ..(*a).clone()
                    }),
                    None => a,
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
                if n > 1 && plan.is_some_and(|p| p.rewritten.is_some()) {
                    // One format per column: pgwarden's column needs one too.
                    if cap::put_bind_with_extra_format(frame.body(), n, out).is_some() {
                        return Ok(FrontStep::Replaced);
                    }
                }
            }
            frontend::DESCRIBE => {
                let mut r = Reader::new(frame.body(), "Describe");
                let kind = r.u8()?;
                let name = r.string()?;
                self.capture.describe(self.tracker.group(), kind, name);
            }
            frontend::EXECUTE => {
                let mut r = Reader::new(frame.body(), "Execute");
                let portal = r.string()?;
                let max_rows = r.i32()?;
                let plan = self.capture.portal(portal);
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
                        let hides = plan
                            .as_ref()
                            .and_then(|p| p.rewritten)
                            .is_some_and(|r| !r.client_returning);
                        let images = plan.as_ref().and_then(|p| p.merge.clone());
                        self.set_capture(plan);
                        if let Some(images) = images {
                            self.set_flags(flags);
                            return Ok(self.run_images(portal, &images, frame, out));
                        }
                        if hides && max_rows != 0 {
                            // The client's statement returns no rows, so a
                            // row limit never suspended it: neither may ours.
                            cap::put_execute_all(portal, out);
                            return Ok(FrontStep::Replaced);
                        }
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
                let name = r.string()?;
                self.capture.closed(kind, name);
                self.tracker.close(kind, name);
            }
            frontend::SYNC => self.tracker.end_group(),
            // The data of the COPY FROM STDIN being answered: read, never
            // changed.
            frontend::COPY_DATA => {
                if let Some(c) = self.copying() {
                    c.copy_data(frame.body());
                }
            }
            frontend::COPY_DONE => {
                if let Some(c) = self.copying() {
                    c.copy_done();
                }
            }
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
        if self.answers.answered(frame.tag()) {
            return true;
        }
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
        if let Some(replaced) = self.merge_step(frame, out) {
            return replaced;
        }
        match frame.tag() {
            be::DATA_ROW if self.capture_row(frame, out).is_some() => return true,
            be::DATA_ROW => {
                self.tracker.row(frame.raw().len());
                if self.withheld_by_limit() {
                    return true;
                }
                super::subjects::on_row(&self.ctx, self.tracker.head(), frame.body());
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
            // CopyInResponse: the client's CopyData is the head statement's.
            b'G' => {
                if let Some(c) = self.copying() {
                    c.copy_started();
                }
            }
            // CopyDone of a stopped COPY TO: the error replaces the end.
            b'c' if self.head_blocked().is_some() => return true,
            be::ROW_DESCRIPTION | b'n' if self.capture_description(frame, out) => return true,
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
                self.capture.error(self.tracker.answering());
                self.finish_blocked(out);
                return true;
            }
            be::ERROR_RESPONSE => {
                let e = error_response::parse(frame.body()).unwrap_or_default();
                self.settings.on_error();
                self.capture.error(self.tracker.answering());
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
                let done = self.capture.ready(idle);
                self.release_changes(done);
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
            // The rest is withheld and drained; the relay also cancels the
            // backend query when it can absorb a late cancel (see absorb.rs).
            RowStep::Stop => {
                self.cancel_wanted = true;
                true
            }
        }
    }

    /// Whether a statement was stopped since the last call (its backend
    /// query is worth cancelling).
    pub fn take_cancel_wanted(&mut self) -> bool {
        std::mem::take(&mut self.cancel_wanted)
    }

    /// Takes in the answer to pgwarden's own absorbing statement (see
    /// absorb.rs): it fails, which aborts the client's transaction as the
    /// stopped statement's error said; nothing of it is recorded.
    pub fn absorbed(&mut self, frame: Frame<'_>) {
        match frame.tag() {
            be::ERROR_RESPONSE => {
                self.settings.on_error();
                self.capture.fail();
            }
            be::READY_FOR_QUERY => {
                let idle = frame.body().first() == Some(&b'I');
                self.settings.on_ready(idle);
                let done = self.capture.ready(idle);
                self.release_changes(done);
            }
            _ => {}
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
        if a.kind == StatementKind::Transaction {
            let savepoint = a.effects.iter().find_map(|e| match e {
                SessionEffect::Savepoint(n) => Some(n.as_str()),
                _ => None,
            });
            let done = self.capture.ledger.on_command(&a.command, tag, savepoint);
            self.release_changes(done);
        }
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
            pending: mut p,
            tag,
            outcome,
            duration,
        } = f;
        let capture = p.capture.take();
        let subjects = super::subjects::finish(&self.ctx, &self.session, &mut p);
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
            subjects,
            rows_returned: None,
            rows_affected: None,
            bytes_returned: p.bytes,
            duration,
            outcome,
            changes: None,
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
        if let Some(c) = capture {
            if matches!(r.outcome, Outcome::Ok) {
                // Recorded when its transaction ends, with how it ended
                // (under strict durability that end waits for the record).
                self.capture.ledger.hold(r, c);
                return;
            }
            // A failed statement changed nothing.
            self.release_changes(vec![(
                crate::capture::ledger::Held {
                    record: r,
                    capture: c,
                    rolled_back: true,
                },
                crate::capture::ledger::Outcome::RolledBack,
            )]);
            return;
        }
        self.send(AuditRecord::Statement(r));
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
