//! The NATS JetStream audit sink. The writer appends every record, in the
//! configured format, to a disk buffer ([`buffer`]) and goes on; a
//! publisher task ([`publish`]) sends the buffer in order, each record with
//! `Nats-Msg-Id: <replica>-<seq>`, awaits JetStream's acknowledgement and
//! only then forgets it. A NATS outage or a crash therefore loses nothing:
//! the records wait on disk and are re-sent, and the stream drops the
//! copies it already has (within its duplicate window).

mod buffer;
mod feed;
mod frame;
mod publish;
mod segment;

pub(crate) use feed::NatsFeed;

use crate::config::{AuditOnFull, NatsConfig};
use crate::metrics::Metrics;
use buffer::DiskBuffer;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use thiserror::Error;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the NATS sink could not start.
#[derive(Debug, Error)]
pub enum NatsError {
    /// The disk buffer (or its replica id) could not be opened.
    #[error("audit.nats.buffer_dir {}: {source}", dir.display())]
    Buffer {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// What the writer's feed and the publisher share.
#[derive(Debug)]
struct Shared {
    buffer: Mutex<DiskBuffer>,
    /// Wakes the publisher when records were appended.
    wake: Notify,
}

impl Shared {
    /// The buffer; a panic elsewhere while holding it leaves it consistent
    /// enough (every change is one field update after the I/O), so poisoning is ignored.
    fn buffer(&self) -> MutexGuard<'_, DiskBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running publisher; [`NatsTask::shutdown`] stops it.
#[derive(Debug)]
pub struct NatsTask {
    join: JoinHandle<()>,
    finish: CancellationToken,
}

impl NatsTask {
    /// Publishes what is buffered for at most `shutdown_timeout`, then stops;
    /// call it after the writer has drained (the rest is sent after the next start).
    pub async fn shutdown(self) {
        self.finish.cancel();
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "NATS audit publisher failed");
        }
    }
}

/// Opens the buffer in `config.buffer_dir` and spawns the publisher on `runtime`.
pub(crate) fn start(
    config: &NatsConfig,
    on_full: AuditOnFull,
    metrics: &Metrics,
    runtime: &tokio::runtime::Handle,
) -> Result<(NatsFeed, NatsTask), NatsError> {
    let dir = &config.buffer_dir;
    let err = |source| NatsError::Buffer {
        dir: dir.clone(),
        source,
    };
    let (buffer, recovered) = DiskBuffer::open(dir, config.buffer_max_bytes).map_err(err)?;
    let replica = replica_id(dir, config.replica_id.as_deref()).map_err(err)?;
    if recovered.cut_bytes > 0 {
        tracing::warn!(dir = %dir.display(), bytes = recovered.cut_bytes,
            "NATS audit buffer: cut a half-written or damaged tail (a crash mid-write)");
    }
    if recovered.records > 0 {
        tracing::info!(
            records = recovered.records,
            "NATS audit buffer: re-sending records not yet acknowledged"
        );
    }
    metrics
        .audit_nats_buffered_bytes
        .set(i64::try_from(buffer.unacked_bytes()).unwrap_or(i64::MAX));
    let shared = Arc::new(Shared {
        buffer: Mutex::new(buffer),
        wake: Notify::new(),
    });
    let finish = CancellationToken::new();
    let publisher =
        publish::Publisher::new(config, replica, shared.clone(), metrics, finish.clone());
    let join = runtime.spawn(publisher.run());
    let feed = NatsFeed::new(shared, config.format, on_full, metrics);
    Ok((feed, NatsTask { join, finish }))
}

/// The replica id kept in `dir/replica_id`; made on first start from
/// `configured` (or the host name) and a random suffix, so a wiped buffer
/// directory, whose numbering starts again at 1, never reuses message ids.
fn replica_id(dir: &Path, configured: Option<&str>) -> io::Result<String> {
    let path = dir.join("replica_id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let base = configured.map_or_else(hostname, str::to_owned);
    let id = format!("{base}-{:08x}", rand::random::<u32>());
    let tmp = dir.join("replica_id.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{id}\n").as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(
            || "pgwarden".to_owned(),
            |h| h.replace(char::is_whitespace, "_"),
        )
}

#[cfg(test)]
mod tests;
