//! The audit writer: sessions put records on a bounded queue; one task takes
//! them in batches and hands each batch to the blocking pool, which
//! serializes it and writes it with one write. Sessions therefore never
//! serialize or touch a file; a full queue either makes them wait
//! (`on_full = "block"`) or drops and counts (`"drop_and_count"`).

use super::chain::Chain;
use super::checkpoint::Signer;
use super::keys::load_signing_key;
use super::lines::{Lines, Signing};
use super::nats::{self, NatsFeed, NatsTask};
use super::record::AuditRecord;
use super::sink::Sink;
use super::AuditError;
use crate::config::{AuditConfig, AuditDurability, AuditOnFull};
use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most records serialized and written at once (bounds the batch's memory).
const MAX_BATCH: usize = 4096;
/// A batch this large is written at once; a smaller one waits for more.
const TARGET_BATCH: usize = 512;
/// How often a busy writer looks at the queue.
const POLL_TICK: Duration = Duration::from_millis(2);
/// Longest a record waits for its batch to fill before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// First pause after a failed write; doubles up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between retries of a failing sink.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Unwritten bytes above which the writer stops taking records, so a dead
/// disk turns into backpressure (or counted drops) instead of memory growth.
const PENDING_LIMIT: usize = 8 << 20;
/// Failed writes tolerated while shutting down before giving up.
const SHUTDOWN_RETRIES: u32 = 3;
/// At most one "records dropped" warning per this many milliseconds.
const DROP_WARN_INTERVAL_MS: u64 = 10_000;
/// How long a writer held up by a full NATS buffer waits before trying again.
const NATS_STALL_PAUSE: Duration = Duration::from_millis(50);

/// Starts the audit trail.
#[derive(Debug)]
pub struct AuditLog;

impl AuditLog {
    /// Opens the sink and spawns the writer task on the current runtime.
    /// Without `config.path` the handle is a no-op and the task does nothing.
    pub fn start(
        config: &AuditConfig,
        metrics: &Metrics,
    ) -> Result<(AuditHandle, AuditTask), AuditError> {
        Self::start_gated(config, metrics, None)
    }

    /// [`AuditLog::start`] with a gate that holds the writer while it reads
    /// `true` (tests use it to fill the queue).
    pub(crate) fn start_gated(
        config: &AuditConfig,
        metrics: &Metrics,
        gate: Option<watch::Receiver<bool>>,
    ) -> Result<(AuditHandle, AuditTask), AuditError> {
        let Some(path) = &config.path else {
            return Ok((
                AuditHandle::disabled(),
                AuditTask {
                    running: None,
                    nats: None,
                },
            ));
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        let open_error = |source| AuditError::Open {
            path: path.clone(),
            source,
        };
        let signing = match &config.signing_key {
            Some(k) => Some(Signing::new(
                Signer::new(load_signing_key(k)?),
                config.sign_interval_records,
                config.sign_interval.0,
            )),
            None => None,
        };
        let mut sink =
            Sink::open(path, config.max_file_size, config.keep_files).map_err(open_error)?;
        let syncs = config.durability != AuditDurability::None;
        sink.set_sync_on_rotate(syncs);
        // Stdout cannot be read back: each run starts a chain of its own there.
        let chain = match sink {
            Sink::Stdout => Chain::new(),
            Sink::File(_) => Chain::resume(path).map_err(open_error)?,
        };
        let (nats, nats_task) = match &config.nats {
            Some(n) => {
                let (feed, task) = nats::start(n, config.on_full, metrics, &runtime)?;
                (Some(feed), Some(task))
            }
            None => (None, None),
        };
        // tokio panics on a zero capacity; validation refuses it, this is belt and braces.
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (durable_tx, durable_rx) = watch::channel(0u64);
        let strict = config.durability == AuditDurability::Strict;
        let shared = Arc::new(Shared {
            tickets: strict.then(|| Mutex::new(0)),
            durable: durable_rx,
            tx,
            on_full: config.on_full,
            log_full_text: config.log_full_text,
            dropped: metrics.audit_dropped.clone(),
            epoch: std::time::Instant::now(),
            next_warn_ms: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        let writer = Writer {
            sink,
            batch: Vec::with_capacity(TARGET_BATCH),
            pending: Vec::new(),
            pending_records: 0,
            lines: Lines::new(chain, signing).with_format(config.format),
            seal: false,
            nats,
            closing: false,
            taken: 0,
            syncs,
            unsynced: false,
            durable: durable_tx,
        };
        let counters = Counters {
            records: metrics.audit_records.clone(),
            dropped: metrics.audit_dropped.clone(),
            queue: metrics.audit_queue.clone(),
            write_errors: metrics.audit_write_errors.clone(),
        };
        let join = runtime.spawn(run(rx, writer, stop.clone(), counters, gate, strict));
        Ok((
            AuditHandle {
                shared: Some(shared),
            },
            AuditTask {
                running: Some((join, stop)),
                nats: nats_task,
            },
        ))
    }
}

/// What every handle shares.
#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<AuditRecord>,
    on_full: AuditOnFull,
    log_full_text: bool,
    dropped: IntCounter,
    epoch: std::time::Instant,
    /// Milliseconds after `epoch` before which no drop warning is logged.
    next_warn_ms: AtomicU64,
    /// `durability = "strict"`: records queued so far. Sending under this
    /// lock keeps the queue's order equal to the tickets' order, so the
    /// writer's count of records written is a watermark of tickets.
    tickets: Option<Mutex<u64>>,
    /// Records written and fsynced so far (counted like `tickets`).
    durable: watch::Receiver<u64>,
}

impl Shared {
    fn dropped_one(&self, why: &'static str) {
        self.dropped.inc();
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_warn_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_warn_ms
                .compare_exchange(
                    next,
                    now + DROP_WARN_INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                dropped_total = self.dropped.get(),
                "audit records dropped: the audit queue is {why}"
            );
        }
    }
}

/// Sends records to the writer; cheap to clone, one per session.
#[derive(Debug, Clone, Default)]
pub struct AuditHandle {
    /// None when auditing is off.
    shared: Option<Arc<Shared>>,
}

impl AuditHandle {
    /// A handle that discards everything (auditing off).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Whether records are kept; when false, do not bother building them.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether `full_text` is written; when false, do not bother filling it.
    pub fn log_full_text(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.log_full_text)
    }

    /// Queues a record without waiting. With `on_full = "block"` a full queue
    /// hands the record back (the caller then waits with [`Self::send`]);
    /// with `"drop_and_count"` it is dropped and counted.
    // The record comes back unboxed: boxing it would cost every statement an
    // allocation for the rare full queue.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, record: AuditRecord) -> Result<(), AuditRecord> {
        self.try_send_ticketed(record).map(|_| ())
    }

    /// Whether `durability = "strict"`: statements' completions wait for
    /// their records' tickets (see [`Self::durable_watch`]).
    pub fn is_strict(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.tickets.is_some())
    }

    /// With `durability = "strict"`: the count of records written and
    /// fsynced, which passes a record's ticket once it is on disk.
    pub fn durable_watch(&self) -> Option<watch::Receiver<u64>> {
        let s = self.shared.as_ref()?;
        s.tickets.as_ref().map(|_| s.durable.clone())
    }

    /// [`Self::try_send`], returning the record's ticket under
    /// `durability = "strict"` (`None` otherwise, or when it was dropped).
    #[allow(clippy::result_large_err)]
    pub fn try_send_ticketed(&self, record: AuditRecord) -> Result<Option<u64>, AuditRecord> {
        let Some(s) = &self.shared else {
            return Ok(None);
        };
        let mut record = record;
        if !s.log_full_text {
            record.strip_full_text();
        }
        let sent = match &s.tickets {
            Some(t) => {
                let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                let r = s.tx.try_send(record);
                if r.is_ok() {
                    *t += 1;
                    return Ok(Some(*t));
                }
                r
            }
            None => s.tx.try_send(record),
        };
        match sent {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(r)) => match s.on_full {
                AuditOnFull::Block => Err(r),
                AuditOnFull::DropAndCount => {
                    s.dropped_one("full");
                    Ok(None)
                }
            },
            Err(TrySendError::Closed(_)) => {
                s.dropped_one("closed");
                Ok(None)
            }
        }
    }

    /// Queues a record. With `on_full = "block"` this waits while the queue
    /// is full; with `"drop_and_count"` it never waits. A record sent after
    /// shutdown is dropped and counted.
    pub async fn send(&self, record: impl Into<AuditRecord>) {
        self.send_ticketed(record).await;
    }

    /// [`Self::send`], returning the record's ticket under
    /// `durability = "strict"` (`None` otherwise, or when it was dropped).
    pub async fn send_ticketed(&self, record: impl Into<AuditRecord>) -> Option<u64> {
        let s = self.shared.as_ref()?;
        let mut record = record.into();
        if !s.log_full_text {
            record.strip_full_text();
        }
        if let Some(t) = &s.tickets {
            // Room first (waiting, outside the lock), then the ticket and
            // the send together, so tickets follow the queue's order.
            let Ok(permit) = s.tx.reserve().await else {
                s.dropped_one("closed");
                return None;
            };
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            permit.send(record);
            *t += 1;
            return Some(*t);
        }
        match s.on_full {
            AuditOnFull::Block => {
                if s.tx.send(record).await.is_err() {
                    s.dropped_one("closed");
                }
            }
            AuditOnFull::DropAndCount => match s.tx.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => s.dropped_one("full"),
                Err(TrySendError::Closed(_)) => s.dropped_one("closed"),
            },
        }
        None
    }
}

/// The running writer; [`AuditTask::shutdown`] drains it.
#[derive(Debug)]
pub struct AuditTask {
    running: Option<(JoinHandle<()>, CancellationToken)>,
    /// The NATS publisher, stopped after the writer has drained into its buffer.
    nats: Option<NatsTask>,
}

impl AuditTask {
    /// Closes the queue, writes every record already queued, fsyncs, and
    /// returns once done. Records sent afterwards are dropped and counted, so
    /// call it after the sessions have ended.
    pub async fn shutdown(self) {
        let Some((join, stop)) = self.running else {
            return;
        };
        stop.cancel();
        if let Err(e) = join.await {
            tracing::error!(error = %e, "audit writer task failed");
        }
        if let Some(n) = self.nats {
            n.shutdown().await;
        }
    }
}

#[derive(Debug)]
struct Counters {
    records: IntCounter,
    dropped: IntCounter,
    queue: IntGauge,
    write_errors: IntCounter,
}

/// State moved to the blocking pool for each batch and back.
struct Writer {
    sink: Sink,
    batch: Vec<AuditRecord>,
    /// Serialized lines not yet written (a failed write leaves them here).
    pending: Vec<u8>,
    /// Records in `pending`, counted as written once it empties.
    pending_records: u64,
    /// Chains the records and adds the checkpoints.
    lines: Lines,
    /// Set once the queue is closed and drained: the next write seals.
    seal: bool,
    /// The NATS sink, fed every record too.
    nats: Option<NatsFeed>,
    /// Shutting down: the NATS buffer then takes everything, full or not.
    closing: bool,
    /// Records taken from the queue so far (the durable watermark's unit).
    taken: u64,
    /// `audit.durability` is not `none`: fsync after every write.
    syncs: bool,
    /// Written but the fsync failed: sync again before anything else.
    unsynced: bool,
    /// Publishes `taken` once those records are written and fsynced.
    durable: watch::Sender<u64>,
}

impl Writer {
    /// Whether there is anything to write (records, bytes, or a checkpoint).
    fn has_work(&self) -> bool {
        !self.batch.is_empty()
            || !self.pending.is_empty()
            || self.unsynced
            || self.lines.has_work(self.seal)
            || self.nats.as_ref().is_some_and(NatsFeed::has_staged)
    }

    /// Whether the NATS sink holds back enough records that the writer
    /// should stop taking more (`on_full = "block"` with its buffer full).
    fn nats_backlogged(&self) -> bool {
        self.nats
            .as_ref()
            .is_some_and(|n| n.staged_bytes() >= PENDING_LIMIT)
    }

    /// Whether the NATS sink could not take its records at the last write.
    fn nats_stalled(&self) -> bool {
        self.nats.as_ref().is_some_and(NatsFeed::stalled)
    }

    /// Serializes the batch after what is pending and writes it all; returns
    /// the records now on the sink.
    fn write(&mut self) -> io::Result<u64> {
        self.taken += self.batch.len() as u64;
        for record in self.batch.drain(..) {
            let written = self
                .lines
                .push_record(&record, &mut self.pending, &mut self.sink);
            let ok = written.is_ok();
            match written {
                Ok(()) => self.pending_records += 1,
                // Cannot happen with these types; the line is left out whole.
                Err(e) => tracing::error!(error = %e, "audit record could not be serialized"),
            }
            if let Some(n) = &mut self.nats {
                // The file's JSON is reused when both sinks have one format.
                let (format, json) = self.lines.last_object();
                n.push(&record, ok.then_some((format, json)));
            }
        }
        self.lines
            .end_batch(&mut self.pending, &mut self.sink, self.seal);
        if let Some(n) = &mut self.nats {
            n.flush(self.closing);
        }
        self.sink.write_pending(&mut self.pending)?;
        if self.pending.capacity() > PENDING_LIMIT {
            self.pending = Vec::new();
        }
        let written = std::mem::take(&mut self.pending_records);
        if self.syncs && (written > 0 || self.unsynced) {
            // Group commit: one fsync for the whole batch.
            self.unsynced = true;
            self.sink.sync()?;
            self.unsynced = false;
        }
        // Everything taken is now written (and fsynced when the rule says so).
        let taken = self.taken;
        self.durable.send_if_modified(|d| {
            let moved = *d < taken;
            *d = taken;
            moved
        });
        Ok(written)
    }
}

/// The writer task: gather a batch, write it on the blocking pool, repeat;
/// on stop (or when every handle is gone) drain the queue, fsync and end.
async fn run(
    mut rx: mpsc::Receiver<AuditRecord>,
    mut writer: Writer,
    stop: CancellationToken,
    counters: Counters,
    mut gate: Option<watch::Receiver<bool>>,
    eager: bool,
) {
    let mut closing = false;
    // Consecutive failed writes (sets the pause), and those since closing.
    let mut failures = 0u32;
    let mut failures_closing = 0u32;
    let mut nats_stalls_closing = 0u32;
    loop {
        if let Some(g) = gate.as_mut() {
            // A dropped gate sender just opens the gate.
            let _ = g.wait_for(|paused| !*paused).await;
        }
        if !closing && writer.pending.len() < PENDING_LIMIT && !writer.nats_backlogged() {
            let retrying = !writer.pending.is_empty() || writer.nats_stalled() || writer.unsynced;
            let checkpoint = writer.lines.checkpoint_deadline().map(Instant::from_std);
            closing = gather(
                &mut rx,
                &mut writer.batch,
                &stop,
                retrying,
                checkpoint,
                eager,
            )
            .await;
        }
        if closing {
            // Once closed (or without senders) this returns what is queued without waiting.
            let room = MAX_BATCH.saturating_sub(writer.batch.len());
            if room > 0 {
                rx.recv_many(&mut writer.batch, room).await;
            }
            // The last batch ends with the seal.
            writer.seal = rx.is_empty();
        }
        counters
            .queue
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        if !writer.has_work() {
            if closing {
                break;
            }
            continue;
        }
        writer.closing = closing;
        let (back, result) = match tokio::task::spawn_blocking(move || {
            let r = writer.write();
            (writer, r)
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "audit writer failed; queued audit records are lost");
                counters.dropped.inc_by(rx.len() as u64);
                return;
            }
        };
        writer = back;
        match result {
            Ok(n) => {
                counters.records.inc_by(n);
                failures = 0;
                if writer.nats_stalled() {
                    // The NATS buffer is full (or its disk fails): wait for
                    // the publisher to make room rather than spin.
                    nats_stalls_closing += u32::from(closing);
                    if nats_stalls_closing >= SHUTDOWN_RETRIES {
                        let lost = writer.nats.as_mut().map_or(0, NatsFeed::discard);
                        tracing::error!(
                            records = lost,
                            "NATS audit buffer still failing at shutdown; records lost to the NATS sink"
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(NATS_STALL_PAUSE) => {}
                        _ = stop.cancelled(), if !closing => {
                            rx.close();
                            closing = true;
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                failures_closing += u32::from(closing);
                counters.write_errors.inc();
                tracing::error!(error = %e, unwritten_bytes = writer.pending.len(),
                    "audit log write failed; retrying");
                if failures_closing >= SHUTDOWN_RETRIES {
                    let lost = writer.pending_records + rx.len() as u64;
                    counters.dropped.inc_by(lost);
                    tracing::error!(
                        records = lost,
                        "audit log still failing at shutdown; records lost"
                    );
                    return;
                }
                let delay = RETRY_DELAY
                    .saturating_mul(1 << (failures - 1).min(6))
                    .min(MAX_RETRY_DELAY);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled(), if !closing => {
                        rx.close();
                        closing = true;
                    }
                }
            }
        }
    }
    counters.queue.set(0);
    let synced = tokio::task::spawn_blocking(move || {
        if let Some(Err(e)) = writer.nats.as_ref().map(NatsFeed::sync) {
            tracing::error!(error = %e, "NATS audit buffer fsync failed");
        }
        writer.sink.sync()
    })
    .await;
    match synced {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "audit log fsync failed"),
        Err(e) => tracing::error!(error = %e, "audit log fsync task failed"),
    }
}

/// Collects records into `batch` until it reaches [`TARGET_BATCH`] or the
/// first record has waited [`FLUSH_INTERVAL`]; with bytes already pending
/// (a failed write to retry) it takes only what is queued. An idle queue is
/// left at `checkpoint` (a checkpoint is due). `eager` (strict durability:
/// sessions wait for their records) writes whatever is queued at once; the
/// records arriving during one write and fsync make the next batch. Returns
/// true when the queue is closing.
async fn gather(
    rx: &mut mpsc::Receiver<AuditRecord>,
    batch: &mut Vec<AuditRecord>,
    stop: &CancellationToken,
    retrying: bool,
    checkpoint: Option<Instant>,
    eager: bool,
) -> bool {
    if retrying {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        if stop.is_cancelled() {
            rx.close();
            return true;
        }
        return false;
    }
    // Under load the writer polls the queue on a short tick instead of
    // waiting on it: a waiting receiver is woken by every send, which costs
    // each statement a cross-thread wake-up. Only an idle queue is waited on.
    let mut started = Instant::now();
    loop {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        if batch.len() >= TARGET_BATCH || (eager && !batch.is_empty()) {
            return false;
        }
        if stop.is_cancelled() {
            rx.close();
            return true;
        }
        if batch.is_empty() {
            // Idle: sleep until the first record (one wake-up per burst).
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    rx.close();
                    return true;
                }
                n = rx.recv_many(batch, MAX_BATCH) => {
                    if n == 0 {
                        return true;
                    }
                    started = Instant::now();
                }
                _ = tokio::time::sleep_until(checkpoint.unwrap_or_else(Instant::now)),
                    if checkpoint.is_some() => return false,
            }
            continue;
        }
        if started.elapsed() >= FLUSH_INTERVAL {
            return false;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                rx.close();
                return true;
            }
            _ = tokio::time::sleep(POLL_TICK) => {}
        }
    }
}
