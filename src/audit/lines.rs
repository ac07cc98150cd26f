//! Turns records into chained lines, on the blocking pool: decides where a
//! file ends (so the rotation checkpoint is its last line) and when to sign.

use super::chain::{Chain, PREFIX_MAX};
use super::checkpoint::{Reason, Signer, CHECKPOINT_MAX};
use super::record::AuditRecord;
use super::sink::Sink;
use crate::config::AuditFormat;
use std::time::{Duration, Instant, SystemTime};

/// When and with what checkpoints are signed.
#[derive(Debug)]
pub(crate) struct Signing {
    signer: Signer,
    /// A checkpoint after this many lines...
    every: u64,
    /// ...or once the oldest unsigned line is this old.
    interval: Duration,
    /// Lines since the last checkpoint.
    unsigned: u64,
    /// When the oldest of them was written.
    oldest_unsigned: Option<Instant>,
    /// Whether this run wrote any line (only then does shutdown seal).
    wrote: bool,
    sealed: bool,
}

impl Signing {
    /// Checkpoints by `signer` every `every` lines or `interval`.
    pub(crate) fn new(signer: Signer, every: u64, interval: Duration) -> Self {
        Self {
            signer,
            every: every.max(1),
            interval,
            unsigned: 0,
            oldest_unsigned: None,
            wrote: false,
            sealed: false,
        }
    }
}

/// Chains records into the bytes waiting for the sink.
#[derive(Debug)]
pub(crate) struct Lines {
    chain: Chain,
    signing: Option<Signing>,
    /// One record's JSON before it is chained (reused).
    scratch: Vec<u8>,
    /// How records are written (checkpoints are always native).
    format: AuditFormat,
}

impl Lines {
    /// Continues `chain`, signing checkpoints when `signing` is given.
    pub(crate) fn new(chain: Chain, signing: Option<Signing>) -> Self {
        Self {
            chain,
            signing,
            scratch: Vec::new(),
            format: AuditFormat::Native,
        }
    }

    /// Writes records in `format` instead of the native one.
    pub(crate) fn with_format(mut self, format: AuditFormat) -> Self {
        self.format = format;
        self
    }

    /// The format and JSON of the record last passed to [`Lines::push_record`].
    pub(crate) fn last_object(&self) -> (AuditFormat, &[u8]) {
        (self.format, &self.scratch)
    }

    /// Appends `record` as the next line of `out`.
    pub(crate) fn push_record(
        &mut self,
        record: &AuditRecord,
        out: &mut Vec<u8>,
        sink: &mut Sink,
    ) -> serde_json::Result<()> {
        self.scratch.clear();
        super::format::write(self.format, record, &mut self.scratch)?;
        self.make_room(out, sink, self.scratch.len() + PREFIX_MAX + 1);
        let start = out.len();
        self.chain.push_object(out, &self.scratch);
        sink.queued(out.len() - start);
        if let Some(s) = &mut self.signing {
            s.unsigned += 1;
            s.wrote = true;
            s.oldest_unsigned.get_or_insert_with(Instant::now);
            if s.unsigned >= s.every {
                self.checkpoint(out, sink, Reason::Interval);
            }
        }
        Ok(())
    }

    /// At the end of a batch: a checkpoint when the oldest unsigned line is
    /// due, and the seal when `seal` (shutdown) asks for it.
    pub(crate) fn end_batch(&mut self, out: &mut Vec<u8>, sink: &mut Sink, seal: bool) {
        if self.checkpoint_due(Instant::now()) {
            self.checkpoint(out, sink, Reason::Interval);
        }
        if seal && self.needs_seal() {
            self.checkpoint(out, sink, Reason::Seal);
            if let Some(s) = &mut self.signing {
                s.sealed = true;
            }
        }
    }

    /// When the next time-based checkpoint is due, if any.
    pub(crate) fn checkpoint_deadline(&self) -> Option<Instant> {
        let s = self.signing.as_ref()?;
        s.oldest_unsigned.map(|t| t + s.interval)
    }

    /// Whether [`Lines::end_batch`] has something to write even without records.
    pub(crate) fn has_work(&self, seal: bool) -> bool {
        self.checkpoint_due(Instant::now()) || (seal && self.needs_seal())
    }

    fn checkpoint_due(&self, now: Instant) -> bool {
        self.checkpoint_deadline().is_some_and(|d| now >= d)
    }

    fn needs_seal(&self) -> bool {
        self.signing.as_ref().is_some_and(|s| s.wrote && !s.sealed)
    }

    /// Starts a new file before a line of `len` bytes when it would not fit
    /// in the current one, ending the current one with a checkpoint (room
    /// for which is always kept).
    fn make_room(&mut self, out: &mut Vec<u8>, sink: &mut Sink, len: usize) {
        let reserve = if self.signing.is_some() {
            CHECKPOINT_MAX
        } else {
            0
        };
        if sink.needs_rotation(len + reserve) {
            if let Some(s) = &mut self.signing {
                let start = out.len();
                let records = std::mem::take(&mut s.unsigned);
                s.oldest_unsigned = None;
                s.signer.push_checkpoint(
                    &mut self.chain,
                    out,
                    Reason::Rotation,
                    records,
                    SystemTime::now(),
                );
                sink.queued(out.len() - start);
            }
            sink.rotate_here(out.len());
        }
    }

    /// Appends a checkpoint; a rotation it causes signs everything already,
    /// so then only the rotation checkpoint is written.
    fn checkpoint(&mut self, out: &mut Vec<u8>, sink: &mut Sink, reason: Reason) {
        if self.signing.is_none() {
            return;
        }
        self.make_room(out, sink, CHECKPOINT_MAX);
        let Some(s) = &mut self.signing else { return };
        if s.unsigned == 0 && reason == Reason::Interval {
            return;
        }
        let start = out.len();
        let records = std::mem::take(&mut s.unsigned);
        s.oldest_unsigned = None;
        s.signer
            .push_checkpoint(&mut self.chain, out, reason, records, SystemTime::now());
        sink.queued(out.len() - start);
    }
}
