//! The writer's side of the NATS sink: records are formatted into a staging
//! area as the writer goes through a batch, and appended to the disk buffer
//! at the end of it, on the blocking pool. Nothing here waits for NATS.

use super::Shared;
use crate::audit::format;
use crate::audit::record::AuditRecord;
use crate::config::{AuditFormat, AuditOnFull};
use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most one warning about a full or failing buffer per this long.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Feeds the disk buffer from the audit writer.
#[derive(Debug)]
pub(crate) struct NatsFeed {
    shared: Arc<Shared>,
    format: AuditFormat,
    on_full: AuditOnFull,
    /// Formatted records not yet in the buffer, back to back...
    staged: Vec<u8>,
    /// ...each ending at these offsets.
    ends: Vec<usize>,
    /// Set when the last flush left records staged (`on_full = "block"`).
    stalled: bool,
    dropped: IntCounter,
    errors: IntCounter,
    buffered: IntGauge,
    next_warn: Option<Instant>,
}

impl NatsFeed {
    /// A feed into `shared`'s buffer, formatting in `format`.
    pub(super) fn new(
        shared: Arc<Shared>,
        format: AuditFormat,
        on_full: AuditOnFull,
        metrics: &Metrics,
    ) -> Self {
        Self {
            shared,
            format,
            on_full,
            staged: Vec::new(),
            ends: Vec::new(),
            stalled: false,
            dropped: metrics.audit_nats_dropped.clone(),
            errors: metrics.audit_nats_publish_errors.clone(),
            buffered: metrics.audit_nats_buffered_bytes.clone(),
            next_warn: None,
        }
    }

    /// Formats `record` into the staging area, or copies `formatted` (the
    /// record already serialized in some format) when that is this sink's.
    pub(crate) fn push(&mut self, record: &AuditRecord, formatted: Option<(AuditFormat, &[u8])>) {
        if let Some((_, json)) = formatted.filter(|(f, _)| *f == self.format) {
            self.staged.extend_from_slice(json);
            self.ends.push(self.staged.len());
            return;
        }
        let start = self.staged.len();
        match format::write(self.format, record, &mut self.staged) {
            Ok(()) => self.ends.push(self.staged.len()),
            Err(e) => {
                // Cannot happen with these types; the record is left out whole.
                self.staged.truncate(start);
                tracing::error!(error = %e, "audit record could not be formatted for NATS");
            }
        }
    }

    /// Whether records wait in the staging area.
    pub(crate) fn has_staged(&self) -> bool {
        !self.ends.is_empty()
    }

    /// Bytes waiting in the staging area.
    pub(crate) fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Whether the last flush could not take everything (the buffer is full
    /// with `on_full = "block"`, or its disk fails): the writer then pauses.
    pub(crate) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Appends the staged records to the disk buffer; with `closing`
    /// (shutdown) and `on_full = "block"` the size bound is ignored so
    /// nothing is lost. What does not fit stays staged (`block`) or is
    /// dropped and counted (`drop_and_count`).
    pub(crate) fn flush(&mut self, closing: bool) {
        let force = closing && self.on_full == AuditOnFull::Block;
        self.stalled = false;
        if self.ends.is_empty() {
            return;
        }
        let mut refs = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            refs.push(self.staged.get(start..end).unwrap_or(&[]));
            start = end;
        }
        let (appended, unacked) = {
            let mut b = self.shared.buffer();
            let r = b.append(&refs, force);
            (r, b.unacked_bytes())
        };
        self.buffered
            .set(i64::try_from(unacked).unwrap_or(i64::MAX));
        if appended.count > 0 {
            self.shared.wake.notify_one();
            let cut = self.ends.get(appended.count - 1).copied().unwrap_or(0);
            self.staged.drain(..cut);
            self.ends.drain(..appended.count);
            for e in &mut self.ends {
                *e -= cut;
            }
        }
        if self.ends.is_empty() {
            return;
        }
        let why = match &appended.error {
            Some(e) => {
                self.errors.inc();
                format!("cannot write: {e}")
            }
            None => "full (audit.nats.buffer_max_bytes)".to_owned(),
        };
        match self.on_full {
            AuditOnFull::Block => {
                self.stalled = true;
                let staged = self.ends.len();
                self.warn(|| {
                    tracing::warn!(
                        staged,
                        "NATS audit buffer {why}; holding audit records until there is room"
                    )
                });
            }
            AuditOnFull::DropAndCount => {
                let n = self.ends.len() as u64;
                self.discard();
                let total = self.dropped.get();
                self.warn(|| {
                    tracing::warn!(
                        dropped = n,
                        dropped_total = total,
                        "NATS audit buffer {why}; records dropped from the NATS sink"
                    )
                });
            }
        }
    }

    /// Drops the staged records, counting them; returns how many.
    pub(crate) fn discard(&mut self) -> u64 {
        let n = self.ends.len() as u64;
        self.dropped.inc_by(n);
        self.staged.clear();
        self.ends.clear();
        self.stalled = false;
        n
    }

    /// Makes the buffer durable (at shutdown).
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.shared.buffer().sync()
    }

    fn warn(&mut self, log: impl FnOnce()) {
        let now = Instant::now();
        if self.next_warn.is_none_or(|t| now >= t) {
            self.next_warn = Some(now + WARN_INTERVAL);
            log();
        }
    }
}
