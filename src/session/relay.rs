//! The relay: one task per session drives both sockets without ever waiting
//! on one side while the other could make progress (a pipelining client that
//! does not read while it writes would otherwise deadlock with PostgreSQL).
//!
//! Each turn of the loop writes what is queued, then reads whichever side is
//! ready, frames what arrived and hands each complete message to the stage
//! that handles its direction. Unchanged messages are copied to the other
//! side's queue as the original bytes; writes are coalesced per turn.

use super::absorb::Absorb;
use super::durable::Holds;
use super::observe::{FrontStep, Observer};
use super::state::{RequestTracker, SessionInfo};
use crate::audit::{ConnectionEvent, ConnectionRecord, SessionTotals};
use crate::cancel::Registration;
use crate::context::Context;
use crate::net::conn::READ_CHUNK;
use crate::net::{Conn, Stream};
use crate::protocol::backend::error_response::PgError;
use crate::protocol::backend::{self as be, error_response, parameter_status, TransactionStatus};
use crate::protocol::{codes, frontend, Frame, FrameHeader, ProtocolError};
use crate::shutdown::Phase;
use crate::upstream::Upstream;
use atomic_waker::AtomicWaker;
use bytes::{Buf, BytesMut};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Stop reading a side while this much is queued toward the other side.
const HIGH_WATER: usize = 256 * 1024;
/// Buffers larger than this are released once empty, so a session that once
/// moved a big row does not keep the memory.
const SHRINK_ABOVE: usize = 256 * 1024;
/// Least time between two catalog reloads a session asks for because a
/// name was missing.
const RELOAD_GAP: Duration = Duration::from_millis(500);
/// Time allowed to deliver final messages when a session ends.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// How the session ends.
enum End {
    /// The client sent Terminate or went away.
    Client,
    /// PostgreSQL ended the session or the connection broke.
    Server,
    /// Shutdown closed it.
    Shutdown,
    /// A peer broke the protocol.
    Protocol,
}

/// Counters kept locally and added to the shared metrics in batches.
#[derive(Default)]
struct LocalStats {
    msgs_in: u64,
    bytes_in: u64,
    msgs_out: u64,
    bytes_out: u64,
}

/// One side's socket, its read buffer and the queue of bytes to write to it.
struct Side {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    needs_flush: bool,
    /// When the oldest unwritten bytes in `wbuf` were read from the other side.
    queued_since: Option<Instant>,
    /// Bytes written from `wbuf` so far: the offset of its first byte.
    advanced: u64,
}

impl Side {
    fn new(conn: Conn) -> Self {
        Self {
            stream: conn.stream,
            rbuf: conn.rbuf,
            wbuf: BytesMut::new(),
            needs_flush: false,
            queued_since: None,
            advanced: 0,
        }
    }

    /// Writes as much of the first `limit` bytes of the queue as the socket
    /// takes (the rest waits for a durable audit record). `Ok(true)` means
    /// progress; returns the time the drained bytes spent queued.
    fn poll_write_queue(
        &mut self,
        cx: &mut TaskContext<'_>,
        held: &mut Duration,
        limit: usize,
    ) -> Result<bool, io::Error> {
        let mut progressed = false;
        let mut allowed = limit;
        loop {
            let end = self.wbuf.len().min(allowed);
            if end == 0 {
                break;
            }
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[..end]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.wbuf.advance(n);
                    self.advanced += n as u64;
                    allowed = allowed.saturating_sub(n);
                    self.needs_flush = true;
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.needs_flush && !self.wbuf.is_empty() && allowed == 0 {
            // The rest is held for its audit record: what went out before
            // it must not sit in a buffer meanwhile.
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        if self.wbuf.is_empty() {
            if let Some(t) = self.queued_since.take() {
                *held += t.elapsed();
            }
            if self.wbuf.capacity() > SHRINK_ABOVE {
                self.wbuf = BytesMut::new();
            }
            if self.needs_flush {
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {}
                }
            }
        }
        Ok(progressed)
    }

    /// Reads what is available; `Ready(Ok(0))` is end of stream.
    fn poll_fill(&mut self, cx: &mut TaskContext<'_>, max: usize) -> Poll<io::Result<usize>> {
        if self.rbuf.is_empty() && self.rbuf.capacity() > SHRINK_ABOVE {
            self.rbuf = BytesMut::new();
        }
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            // Grow toward the message being read, in bounded steps, never by
            // what the header merely claims.
            let want = match FrameHeader::parse(&self.rbuf, max) {
                Ok(Some(h)) if h.total_len > self.rbuf.len() => {
                    (h.total_len - self.rbuf.len()).clamp(READ_CHUNK, 1024 * 1024)
                }
                _ => READ_CHUNK,
            };
            self.rbuf.reserve(want);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf)
    }

    async fn write_out(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        self.stream.flush().await
    }
}

/// A logged-in session relaying between a client and PostgreSQL.
pub struct Session {
    ctx: Arc<Context>,
    info: SessionInfo,
    client: Side,
    server: Side,
    cancel: Registration,
    requests: RequestTracker,
    max_message: usize,
    stats: LocalStats,
    /// Time the current statement's bytes spent inside pgwarden.
    held: Duration,
    /// A ReadyForQuery was queued to the client; observe `held` once it is written.
    statement_done: bool,
    /// The server already sent a FATAL error; do not add another.
    server_sent_fatal: bool,
    /// Shutdown asked this session to end when idle.
    draining: bool,
    /// Alternates which side is read first, so neither starves the other.
    client_first: bool,
    /// Statement analysis and audit, when on.
    observer: Option<Observer>,
    /// Last catalog reload asked for by this session.
    last_reload: Option<Instant>,
    /// Client messages wait in the buffer for an analysis that is now ready.
    reprocess_client: bool,
    /// Bytes from the client, for the disconnect record.
    total_in: u64,
    /// Bytes to the client, for the disconnect record.
    total_out: u64,
    /// Strict durability: client output waiting for audit records.
    holds: Holds,
    /// A stopped statement's cancel being absorbed; the client waits.
    absorb: Option<Absorb>,
}

impl Session {
    /// A session over a logged-in client and server pair.
    pub fn new(
        ctx: Arc<Context>,
        info: SessionInfo,
        client: Conn,
        upstream: Upstream,
        observer: Option<Observer>,
    ) -> Self {
        let max_message = ctx.config.load().proxy.max_message_size;
        let ctx_durable = observer.as_ref().and_then(|_| ctx.audit.durable_watch());
        Self {
            ctx,
            info,
            client: Side::new(client),
            server: Side::new(upstream.conn),
            cancel: upstream.cancel,
            requests: RequestTracker::default(),
            max_message,
            stats: LocalStats::default(),
            held: Duration::ZERO,
            statement_done: false,
            server_sent_fatal: false,
            draining: false,
            client_first: true,
            observer,
            last_reload: None,
            reprocess_client: false,
            total_in: 0,
            total_out: 0,
            holds: Holds::new(ctx_durable),
            absorb: None,
        }
    }

    /// What the session knows about itself.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Relays until either side ends the session or shutdown closes it.
    pub async fn run(mut self) {
        let started = Instant::now();
        tracing::info!(
            user = %self.info.user,
            database = %self.info.database,
            application_name = %self.info.application_name,
            client = %self.info.client_addr,
            tls = self.info.client_tls,
            backend_pid = self.info.backend_pid,
            "session started"
        );
        let waker = self.ctx.shutdown.register_session();
        let mut seen = Phase::Running;
        let end = loop {
            let stop = poll_fn(|cx| self.pump(cx, &waker, seen)).await;
            let end = match stop {
                Stop::Phase(phase) => {
                    seen = phase;
                    match self.on_shutdown(phase).await {
                        Some(end) => end,
                        None => continue,
                    }
                }
                Stop::Idle => {
                    self.close_for_shutdown().await;
                    End::Shutdown
                }
                Stop::Analyse(text) => {
                    self.analyse(&text).await;
                    self.reprocess_client = true;
                    continue;
                }
                Stop::AuditBacklog => {
                    self.send_outbox().await;
                    continue;
                }
                Stop::Terminated => {
                    self.finish().await;
                    End::Client
                }
                Stop::Protocol(e) => self.on_protocol_error(e).await,
                Stop::ClientGone(e) => {
                    if let Some(e) = e {
                        tracing::debug!(error = %e, "client connection error");
                    }
                    self.on_client_gone().await;
                    End::Client
                }
                Stop::ServerGone(e) => {
                    if let Some(e) = e {
                        tracing::debug!(error = %e, "server connection error");
                    }
                    self.on_server_gone().await;
                    End::Server
                }
            };
            break end;
        };
        self.flush_stats();
        if let Some(mut obs) = self.observer.take() {
            obs.end_session();
            for rec in obs.outbox.iter().cloned() {
                self.ctx.audit.send(rec).await;
            }
            let totals = SessionTotals {
                statements: obs.statements,
                rows: obs.rows,
                bytes_in: self.total_in,
                bytes_out: self.total_out,
                duration: started.elapsed(),
            };
            self.ctx
                .audit
                .send(ConnectionRecord::new(
                    obs.session(),
                    ConnectionEvent::Disconnect(totals),
                ))
                .await;
        }
        let how = match end {
            End::Client => "client",
            End::Server => "server",
            End::Shutdown => "shutdown",
            End::Protocol => "protocol error",
        };
        tracing::info!(
            user = %self.info.user,
            client = %self.info.client_addr,
            backend_pid = self.info.backend_pid,
            ended_by = how,
            duration_ms = started.elapsed().as_millis() as u64,
            "session ended"
        );
    }
}

/// Why the pump stopped.
enum Stop {
    /// The shutdown phase changed.
    Phase(Phase),
    /// Draining and the session just became idle.
    Idle,
    /// The client sent Terminate (already queued to the server).
    Terminated,
    /// A peer broke the protocol.
    Protocol(ProtocolError),
    /// The client closed or failed.
    ClientGone(Option<io::Error>),
    /// PostgreSQL closed or failed.
    ServerGone(Option<io::Error>),
    /// A client message needs an analysis that is not cached.
    Analyse(String),
    /// Audit records wait for room in the queue.
    AuditBacklog,
}

/// What handling the client's messages asks of the relay.
enum ClientStep {
    /// Keep going.
    Continue,
    /// The client sent Terminate.
    Terminate,
    /// Analyse this text, then offer the message again.
    Analyse(String),
}

impl Session {
    /// Moves bytes both ways until nothing can move (Pending) or something
    /// ends the relay. Reading, framing, handling and writing all happen in
    /// one poll, so a round trip costs one wake-up per direction.
    fn pump(&mut self, cx: &mut TaskContext<'_>, waker: &AtomicWaker, seen: Phase) -> Poll<Stop> {
        waker.register(cx.waker());
        let phase = self.ctx.shutdown.phase();
        if phase != seen {
            return Poll::Ready(Stop::Phase(phase));
        }
        if self.absorb.is_none() && std::mem::take(&mut self.reprocess_client) {
            // Messages held back for analysis are still in the buffer.
            match self.on_client_data() {
                Ok(ClientStep::Continue) => {}
                Ok(ClientStep::Terminate) => return Poll::Ready(Stop::Terminated),
                Ok(ClientStep::Analyse(text)) => return Poll::Ready(Stop::Analyse(text)),
                Err(e) => return Poll::Ready(Stop::Protocol(e)),
            }
        }
        loop {
            let mut progress = match self.server.poll_write_queue(cx, &mut self.held, usize::MAX) {
                Ok(p) => p,
                Err(e) => return Poll::Ready(Stop::ServerGone(Some(e))),
            };
            let writable = self.holds.writable(self.client.advanced, cx);
            progress |= match self.client.poll_write_queue(cx, &mut self.held, writable) {
                Ok(p) => p,
                Err(e) => return Poll::Ready(Stop::ClientGone(Some(e))),
            };
            if self.statement_done && self.client.wbuf.is_empty() {
                self.statement_done = false;
                self.ctx.metrics.proxy_time.observe(self.held.as_secs_f64());
                self.held = Duration::ZERO;
                if self.draining && self.is_idle() {
                    return Poll::Ready(Stop::Idle);
                }
            }

            if let Some(a) = self.absorb.as_mut() {
                a.poll_delivered(cx);
                progress |= self.send_absorbing();
            }

            self.client_first = !self.client_first;
            for client_turn in [self.client_first, !self.client_first] {
                if client_turn {
                    // Backpressure: do not read more than the other side can
                    // take; and nothing of the client's may reach the server
                    // while a stopped statement's cancel is pending.
                    if self.server.wbuf.len() >= HIGH_WATER || self.absorb.is_some() {
                        continue;
                    }
                    match self.client.poll_fill(cx, self.max_message) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Stop::ClientGone(None)),
                        Poll::Ready(Ok(_)) => match self.on_client_data() {
                            Ok(ClientStep::Continue) => progress = true,
                            Ok(ClientStep::Terminate) => return Poll::Ready(Stop::Terminated),
                            Ok(ClientStep::Analyse(text)) => {
                                return Poll::Ready(Stop::Analyse(text))
                            }
                            Err(e) => return Poll::Ready(Stop::Protocol(e)),
                        },
                        Poll::Ready(Err(e)) => return Poll::Ready(Stop::ClientGone(Some(e))),
                        Poll::Pending => {}
                    }
                } else {
                    if self.client.wbuf.len() >= HIGH_WATER {
                        continue;
                    }
                    match self.server.poll_fill(cx, self.max_message) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Stop::ServerGone(None)),
                        Poll::Ready(Ok(_)) => match self.on_server_data() {
                            Ok(_) => {
                                progress = true;
                                if self.observer.as_ref().is_some_and(Observer::has_backlog) {
                                    return Poll::Ready(Stop::AuditBacklog);
                                }
                            }
                            Err(e) => return Poll::Ready(Stop::Protocol(e)),
                        },
                        Poll::Ready(Err(e)) => return Poll::Ready(Stop::ServerGone(Some(e))),
                        Poll::Pending => {}
                    }
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Frames and handles every complete client message that has arrived.
    fn on_client_data(&mut self) -> Result<ClientStep, ProtocolError> {
        let now = Instant::now();
        let mut pos = 0;
        let mut step = ClientStep::Continue;
        while let Some(h) = FrameHeader::parse(&self.client.rbuf[pos..], self.max_message)? {
            if self.client.rbuf.len() - pos < h.total_len {
                break;
            }
            let frame = Frame::new(&self.client.rbuf[pos..pos + h.total_len]);
            frontend::check_tag(frame.tag())?;
            let mut replaced = false;
            if let Some(obs) = self.observer.as_mut() {
                match obs.on_frontend(frame, &mut self.server.wbuf)? {
                    FrontStep::Forward => {}
                    FrontStep::Replaced => replaced = true,
                    FrontStep::NeedAnalysis(text) => {
                        // Leave this message in the buffer; it is offered
                        // again once its analysis is ready.
                        step = ClientStep::Analyse(text);
                        break;
                    }
                }
            }
            pos += h.total_len;
            self.stats.msgs_in += 1;
            self.stats.bytes_in += frame.raw().len() as u64;
            self.requests.on_frontend(frame.tag());
            if !replaced {
                self.server.wbuf.extend_from_slice(frame.raw());
            }
            if frame.tag() == frontend::TERMINATE {
                step = ClientStep::Terminate;
                break;
            }
        }
        self.client.rbuf.advance(pos);
        if !self.server.wbuf.is_empty() && self.server.queued_since.is_none() {
            self.server.queued_since = Some(now);
        }
        Ok(step)
    }

    /// Frames and handles every complete server message that has arrived.
    fn on_server_data(&mut self) -> Result<Option<End>, ProtocolError> {
        let now = Instant::now();
        let mut pos = 0;
        while let Some(h) = FrameHeader::parse(&self.server.rbuf[pos..], self.max_message)? {
            if self.server.rbuf.len() - pos < h.total_len {
                break;
            }
            let frame = Frame::new(&self.server.rbuf[pos..pos + h.total_len]);
            pos += h.total_len;
            self.stats.msgs_out += 1;
            self.stats.bytes_out += frame.raw().len() as u64;
            let mut replaced = false;
            let own = self.absorb.as_ref().is_some_and(Absorb::answering_own);
            if let Some(obs) = self.observer.as_mut() {
                if own {
                    // pgwarden's absorbing statement: only its
                    // ReadyForQuery reaches the client.
                    obs.absorbed(frame);
                    replaced = frame.tag() != be::READY_FOR_QUERY;
                } else {
                    let at = self.client.advanced + self.client.wbuf.len() as u64;
                    replaced = obs.on_backend(frame, &mut self.client.wbuf);
                    for ticket in obs.held.drain(..) {
                        // The completion starts here: it waits for the record.
                        self.holds.push(at, ticket);
                    }
                    // Cancel a statement a row limit just stopped when
                    // its cancel can be absorbed: the only request in
                    // flight (a later one could be hit instead) and
                    // complete (the server needs its Sync to answer).
                    if obs.take_cancel_wanted()
                        && self.absorb.is_none()
                        && self.requests.pending_ready == 1
                        && !self.requests.unsynced
                    {
                        self.absorb = Some(Absorb::start(self.cancel.target()));
                        self.ctx.metrics.stopped_cancelled.inc();
                    }
                }
            }
            match frame.tag() {
                be::READY_FOR_QUERY => {
                    self.info.transaction = TransactionStatus::from_ready_for_query(frame.body());
                    self.requests.on_ready();
                    match self.absorb.as_mut() {
                        Some(_) if own => {
                            self.absorb = None;
                            self.statement_done = true;
                        }
                        // The stopped request's own: the absorbing
                        // statement's replaces it.
                        Some(a) => {
                            a.hold_ready();
                            replaced = true;
                        }
                        None => self.statement_done = true,
                    }
                }
                be::ERROR_RESPONSE => {
                    if let Ok(f) = error_response::parse(frame.body()) {
                        self.server_sent_fatal |= f.is_fatal();
                    }
                }
                be::PARAMETER_STATUS => {
                    if let Ok(("application_name", v)) = parameter_status::parse(frame.body()) {
                        v.clone_into(&mut self.info.application_name);
                    }
                }
                _ => {}
            }
            if !replaced {
                self.client.wbuf.extend_from_slice(frame.raw());
            }
        }
        self.server.rbuf.advance(pos);
        self.send_absorbing();
        if !self.client.wbuf.is_empty() && self.client.queued_since.is_none() {
            self.client.queued_since = Some(now);
        }
        if self.statement_done {
            self.flush_stats();
        }
        Ok(None)
    }

    /// Queues the absorbing statement once it is due; true if it did.
    fn send_absorbing(&mut self) -> bool {
        let Some(a) = self.absorb.as_mut() else {
            return false;
        };
        if !a.send_when_ready(&mut self.server.wbuf) {
            return false;
        }
        self.requests.on_frontend(frontend::QUERY);
        if self.server.queued_since.is_none() {
            self.server.queued_since = Some(Instant::now());
        }
        true
    }

    fn is_idle(&self) -> bool {
        !self.requests.busy()
            && self.info.transaction == TransactionStatus::Idle
            && self.client.rbuf.is_empty()
            && self.server.wbuf.is_empty()
    }

    /// Analyses `text` off the relay's thread; a name that does not resolve
    /// right after DDL gets one catalog reload and a second try.
    async fn analyse(&mut self, text: &str) {
        let Some(obs) = self.observer.as_mut() else {
            return;
        };
        if let Some(req) = obs.take_capture_request() {
            // The analysis is ready; what is missing is the capture.
            let config = self.ctx.config.load_full();
            let key = req.key;
            let prepared = self
                .ctx
                .captures
                .prepare(&config, &self.info.database, req)
                .await;
            obs.set_capture_ready(key, prepared);
            return;
        }
        let view = obs.settings.view();
        let catalog = obs.catalog();
        let mut result = self.ctx.analyser.analyse(text, &view, &catalog).await;
        // After this session's DDL the snapshot may be stale. Statements that
        // look nothing up (more DDL, SET, BEGIN) do not need a fresh one, so
        // a run of DDL costs one reload, at the first statement that reads.
        let depends_on_catalog = result.iter().any(|a| {
            !a.accesses.is_empty() || a.unanalysed.is_some() || !a.opaque_calls.is_empty()
        });
        let stale = obs.catalog_stale && depends_on_catalog;
        let missing = result.iter().any(|a| {
            a.unanalysed
                .as_deref()
                .is_some_and(|u| u.contains("does not exist"))
        });
        // A name created by another session: reload, but not in a tight
        // loop. Where a policy protects something in this database, the
        // reload is never skipped, only delayed: the policy trusts that a
        // relation missing from the snapshot is missing on the server (it
        // could be a new view over protected columns).
        let relation_missing = result.iter().any(|a| {
            a.unanalysed
                .as_deref()
                .is_some_and(|u| u.starts_with("relation") && u.contains("does not exist"))
        });
        let guarded = relation_missing
            && self
                .ctx
                .policy
                .current()
                .is_some_and(|p| p.protects_anything(&catalog));
        let since = self.last_reload.map(|t| t.elapsed());
        let retry_missing = missing && since.is_none_or(|e| e > RELOAD_GAP);
        if guarded && !retry_missing {
            if let Some(e) = since {
                tokio::time::sleep(RELOAD_GAP.saturating_sub(e)).await;
            }
        }
        if stale || retry_missing || guarded {
            obs.catalog_stale = false;
            self.last_reload = Some(Instant::now());
            match self.ctx.catalogs.reload_now(&self.info.database).await {
                Ok(fresh) if fresh.version != catalog.version => {
                    result = self.ctx.analyser.analyse(text, &view, &fresh).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "catalog reload failed"),
            }
        }
        obs.set_ready(result);
    }

    /// Reacts to a shutdown phase; `Some` ends the session.
    async fn on_shutdown(&mut self, phase: Phase) -> Option<End> {
        match phase {
            Phase::Running => None,
            Phase::Draining if !self.is_idle() => {
                self.draining = true;
                None
            }
            Phase::Draining | Phase::Closing => {
                self.close_for_shutdown().await;
                Some(End::Shutdown)
            }
        }
    }

    /// Tells the client the session ends, stops the backend and closes both.
    async fn close_for_shutdown(&mut self) {
        if self.requests.busy() {
            self.cancel.cancel_backend().await;
        }
        PgError::fatal(
            codes::ADMIN_SHUTDOWN,
            "terminating connection due to administrator command",
        )
        .with_detail("pgwarden is shutting down.")
        .put(&mut self.client.wbuf);
        self.finish().await;
    }

    /// The client left: cancel what it was running and log the backend out.
    async fn on_client_gone(&mut self) {
        if self.requests.busy() {
            tracing::info!(
                backend_pid = self.info.backend_pid,
                "client disconnected mid-query; cancelling it"
            );
            self.cancel.cancel_backend().await;
        }
        self.server.wbuf.clear();
        crate::protocol::frame::put_message(&mut self.server.wbuf, frontend::TERMINATE, &[]);
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.server.write_out()).await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.server.stream.shutdown()).await;
    }

    /// PostgreSQL went away: tell the client unless PostgreSQL already did.
    async fn on_server_gone(&mut self) {
        if !self.server_sent_fatal {
            PgError::fatal(
                codes::CONNECTION_FAILURE,
                "the connection to PostgreSQL was lost",
            )
            .with_detail("PostgreSQL closed the connection unexpectedly; it may have restarted.")
            .put(&mut self.client.wbuf);
        }
        self.settle_holds().await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.client.write_out()).await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.client.stream.shutdown()).await;
    }

    /// A peer broke the protocol: FATAL 08P01 to the client, close both.
    async fn on_protocol_error(&mut self, e: ProtocolError) -> End {
        tracing::warn!(
            user = %self.info.user,
            client = %self.info.client_addr,
            error = %e,
            "protocol violation; closing session"
        );
        let code = codes::PROTOCOL_VIOLATION;
        if self.requests.busy() {
            self.cancel.cancel_backend().await;
        }
        PgError::fatal(code, e.to_string()).put(&mut self.client.wbuf);
        self.server.wbuf.clear();
        crate::protocol::frame::put_message(&mut self.server.wbuf, frontend::TERMINATE, &[]);
        self.finish().await;
        End::Protocol
    }

    /// Queues the records that waited for room, filling their holds' tickets.
    async fn send_outbox(&mut self) {
        if let Some(obs) = self.observer.as_mut() {
            for rec in std::mem::take(&mut obs.outbox) {
                if let Some(ticket) = self.ctx.audit.send_ticketed(rec).await {
                    self.holds.fill(ticket);
                }
            }
        }
    }

    /// Before the client's queue is written whole (the session ends): waits
    /// for held records, and drops what is still held after that, so no
    /// completion reaches the client without its record on disk.
    async fn settle_holds(&mut self) {
        if !self.holds.active() {
            return;
        }
        self.send_outbox().await;
        if let Some(at) = self.holds.settle(CLOSE_FLUSH).await {
            let keep = usize::try_from(at.saturating_sub(self.client.advanced)).unwrap_or(0);
            self.client.wbuf.truncate(keep);
        }
    }

    /// Delivers what is queued on both sides and closes them.
    async fn finish(&mut self) {
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.server.write_out()).await;
        self.settle_holds().await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.client.write_out()).await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.server.stream.shutdown()).await;
        let _ = tokio::time::timeout(CLOSE_FLUSH, self.client.stream.shutdown()).await;
    }

    fn flush_stats(&mut self) {
        let s = std::mem::take(&mut self.stats);
        self.total_in += s.bytes_in;
        self.total_out += s.bytes_out;
        let m = &self.ctx.metrics;
        m.messages_frontend.inc_by(s.msgs_in);
        m.bytes_frontend.inc_by(s.bytes_in);
        m.messages_backend.inc_by(s.msgs_out);
        m.bytes_backend.inc_by(s.bytes_out);
    }
}
