//! The publisher task: reads the disk buffer in order, publishes up to
//! `max_in_flight` records to JetStream at once, and acknowledges them in
//! the buffer once JetStream has acknowledged every one of them in order.
//!
//! On any failure the connection is dropped and a new one made, and sending
//! starts again at the first record not acknowledged. The client is told
//! not to reconnect by itself (`max_reconnects(1)`): its own reconnect would
//! send the publishes still queued in it after the server came back, behind
//! ones lost in the dead socket, and the re-sent records would then land out
//! of order. A fresh connection sends only what this task sends, in order.

use super::buffer::{Frame, ReadPos};
use super::segment;
use super::Shared;
use crate::config::NatsConfig;
use crate::metrics::Metrics;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First pause after a failure; doubles up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts while NATS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long an idle publisher sleeps before looking at the buffer anyway.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// At most one error log line per this long while NATS stays down.
const LOG_INTERVAL: Duration = Duration::from_secs(30);
/// Time allowed to connect (TCP, handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection and its JetStream context.
struct Conn {
    // Kept so the connection lives as long as the context.
    _client: Client,
    js: jetstream::Context,
}

/// The publisher task's state.
pub(super) struct Publisher {
    shared: Arc<Shared>,
    url: String,
    subject: String,
    stream: String,
    duplicate_window: Duration,
    max_in_flight: usize,
    ack_timeout: Duration,
    shutdown_timeout: Duration,
    replica: String,
    finish: CancellationToken,
    published: IntCounter,
    errors: IntCounter,
    buffered: IntGauge,
    next_log: Option<Instant>,
}

impl Publisher {
    /// A publisher of `shared`'s buffer as configured by `c`.
    pub(super) fn new(
        c: &NatsConfig,
        replica: String,
        shared: Arc<Shared>,
        metrics: &Metrics,
        finish: CancellationToken,
    ) -> Self {
        Self {
            shared,
            url: c.url.clone(),
            subject: c.subject.clone(),
            stream: c.stream.clone(),
            duplicate_window: c.duplicate_window.0,
            max_in_flight: c.max_in_flight.max(1),
            ack_timeout: c.ack_timeout.0,
            shutdown_timeout: c.shutdown_timeout.0,
            replica,
            finish,
            published: metrics.audit_nats_published.clone(),
            errors: metrics.audit_nats_publish_errors.clone(),
            buffered: metrics.audit_nats_buffered_bytes.clone(),
            next_log: None,
        }
    }

    /// Runs until [`super::NatsTask::shutdown`]: then until the buffer is
    /// empty or `shutdown_timeout` has passed.
    pub(super) async fn run(mut self) {
        let mut pos = self.shared.buffer().start();
        let mut conn: Option<Conn> = None;
        let mut backoff = BACKOFF;
        let mut deadline: Option<Instant> = None;
        loop {
            if self.finish.is_cancelled() && deadline.is_none() {
                deadline = Some(Instant::now() + self.shutdown_timeout);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let left = self.shared.buffer().unacked_bytes();
                if left > 0 {
                    tracing::warn!(bytes = left,
                        "NATS audit publisher stopping with records unsent; they are sent after the next start");
                }
                return;
            }
            let frames = match self.read(pos).await {
                Ok(f) => f,
                Err(e) => {
                    self.error(&format!("reading the disk buffer: {e}"));
                    if !self.pause(&mut backoff, deadline).await {
                        return;
                    }
                    continue;
                }
            };
            if frames.is_empty() {
                if deadline.is_some() {
                    // The writer has drained: everything is published.
                    return;
                }
                tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_TICK) => {}
                    _ = self.finish.cancelled() => {}
                }
                continue;
            }
            let c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        self.error(&format!("cannot reach {}: {e}", self.url));
                        if !self.pause(&mut backoff, deadline).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let (acked, failure) = self.publish(&c, &frames).await;
            if let Some(last) = acked.checked_sub(1).and_then(|i| frames.get(i)) {
                pos = last.end;
                self.published.inc_by(acked as u64);
                let ack = {
                    let mut b = self.shared.buffer();
                    let r = b.ack(last.seq, last.end);
                    self.buffered
                        .set(i64::try_from(b.unacked_bytes()).unwrap_or(i64::MAX));
                    r
                };
                if let Err(e) = ack {
                    // Harmless for delivery: a stale cursor only re-sends, and
                    // the stream drops the copies.
                    self.error(&format!("saving the acknowledged position: {e}"));
                }
            }
            match failure {
                None => {
                    conn = Some(c);
                    backoff = BACKOFF;
                    if self.next_log.take().is_some() {
                        tracing::info!(url = %self.url, "NATS audit publishing resumed");
                    }
                }
                Some(e) => {
                    drop(c);
                    self.error(&e);
                    if !self.pause(&mut backoff, deadline).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the next window of records on the blocking pool.
    async fn read(&self, pos: ReadPos) -> std::io::Result<Vec<Frame>> {
        let shared = self.shared.clone();
        let max = self.max_in_flight;
        tokio::task::spawn_blocking(move || segment::read(&shared.buffer, pos, max))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Connects and makes sure the stream exists.
    async fn connect(&self) -> Result<Conn, String> {
        let connecting = async {
            let client = ConnectOptions::new()
                .name("pgwarden-audit")
                .connection_timeout(CONNECT_TIMEOUT)
                .max_reconnects(1)
                .request_timeout(Some(self.ack_timeout))
                .connect(self.url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let mut js = jetstream::new(client.clone());
            js.set_timeout(self.ack_timeout);
            js.get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject.clone()],
                duplicate_window: self.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {}: {e}", self.stream))?;
            Ok(Conn {
                _client: client,
                js,
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT + self.ack_timeout, connecting)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
    }

    /// Publishes `frames` and awaits their acknowledgements in order:
    /// (records acknowledged, counting from the first; the failure, if any).
    async fn publish(&self, c: &Conn, frames: &[Frame]) -> (usize, Option<String>) {
        let mut pending: Vec<PublishAckFuture> = Vec::with_capacity(frames.len());
        let mut failure = None;
        for f in frames {
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("{}-{}", self.replica, f.seq).as_str(),
            );
            match c
                .js
                .publish_with_headers(self.subject.clone(), headers, f.payload.clone())
                .await
            {
                Ok(ack) => pending.push(ack),
                Err(e) => {
                    failure = Some(format!("publish: {e}"));
                    break;
                }
            }
        }
        let mut acked = 0;
        for ack in pending {
            match ack.await {
                Ok(_) => acked += 1,
                Err(e) => {
                    return (acked, Some(format!("acknowledgement: {e}")));
                }
            }
        }
        (acked, failure)
    }

    fn error(&mut self, what: &str) {
        self.errors.inc();
        let now = Instant::now();
        if self.next_log.is_none_or(|t| now >= t) {
            self.next_log = Some(now + LOG_INTERVAL);
            tracing::error!(url = %self.url, "NATS audit sink: {what}; records wait in the disk buffer");
        }
    }

    /// Sleeps `backoff` (then doubles it); false when the shutdown deadline
    /// passes first.
    async fn pause(&self, backoff: &mut Duration, deadline: Option<Instant>) -> bool {
        let wake = Instant::now() + *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        match deadline {
            Some(d) if d <= wake => {
                tokio::time::sleep_until(d).await;
                false
            }
            _ => {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = self.finish.cancelled(), if deadline.is_none() => {}
                }
                true
            }
        }
    }
}
