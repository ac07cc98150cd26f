//! The NATS sink through the audit writer, with NATS unreachable: the
//! buffer bound and `on_full`, and shutdown keeping every record.

use super::buffer::DiskBuffer;
use super::segment::read;
use crate::audit::record::{ConnectionEvent, ConnectionRecord, SessionContext};
use crate::audit::AuditLog;
use crate::config::{AuditConfig, AuditOnFull, HumanDuration, NatsConfig};
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn config(dir: &Path, on_full: AuditOnFull, max_bytes: u64) -> AuditConfig {
    AuditConfig {
        path: Some(dir.join("audit.log")),
        on_full,
        nats: Some(NatsConfig {
            // Nothing listens on port 1.
            url: "nats://127.0.0.1:1".into(),
            buffer_dir: dir.join("buffer"),
            buffer_max_bytes: max_bytes,
            shutdown_timeout: HumanDuration(std::time::Duration::from_millis(200)),
            ..NatsConfig::default()
        }),
        ..AuditConfig::default()
    }
}

fn record(i: u16) -> ConnectionRecord {
    let ctx = SessionContext::connecting(u64::from(i), "127.0.0.1:5000".parse().unwrap(), false);
    ConnectionRecord::new(Arc::new(ctx), ConnectionEvent::Connect)
}

/// The session ids of the records in the buffer, in order.
fn buffered(dir: &Path) -> Vec<u64> {
    let (b, _) = DiskBuffer::open(&dir.join("buffer"), u64::MAX).unwrap();
    let start = b.start();
    read(&Mutex::new(b), start, usize::MAX)
        .unwrap()
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
            v["pgwarden"]["session_id"].as_u64().unwrap()
        })
        .collect()
}

fn file_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("audit.log"))
        .unwrap()
        .lines()
        .count()
}

#[tokio::test]
async fn with_nats_down_block_keeps_every_record_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    // Room for a few records only: the rest wait in memory, then go in at shutdown.
    let (h, task) = AuditLog::start(&config(dir.path(), AuditOnFull::Block, 2000), &m).unwrap();
    for i in 0..100 {
        h.send(record(i)).await;
    }
    task.shutdown().await;
    assert_eq!(file_lines(dir.path()), 100, "the file sink is not held up");
    assert_eq!(buffered(dir.path()), (0..100).collect::<Vec<_>>());
    assert_eq!(m.audit_nats_dropped.get(), 0);
    assert_eq!(m.audit_nats_published.get(), 0);
    assert!(
        m.audit_nats_publish_errors.get() > 0,
        "connect failures are counted"
    );
    assert!(m.audit_nats_buffered_bytes.get() > 2000);
}

#[tokio::test]
async fn with_nats_down_drop_and_count_keeps_the_buffer_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let config = config(dir.path(), AuditOnFull::DropAndCount, 2000);
    let (h, task) = AuditLog::start(&config, &m).unwrap();
    for i in 0..100 {
        h.send(record(i)).await;
    }
    task.shutdown().await;
    assert_eq!(file_lines(dir.path()), 100, "the file gets everything");
    let kept = buffered(dir.path());
    assert!(!kept.is_empty() && kept.len() < 100, "{}", kept.len());
    // The oldest records are kept, the newest dropped and counted.
    assert_eq!(kept, (0..kept.len() as u64).collect::<Vec<_>>());
    assert_eq!(m.audit_nats_dropped.get(), 100 - kept.len() as u64);
    assert!(m.audit_nats_buffered_bytes.get() <= 2000);
}

#[tokio::test]
async fn the_nats_sink_has_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), AuditOnFull::Block, 1 << 20);
    if let Some(n) = config.nats.as_mut() {
        n.format = crate::config::AuditFormat::Ocsf;
    }
    let (h, task) = AuditLog::start(&config, &Metrics::new()).unwrap();
    h.send(record(3)).await;
    task.shutdown().await;
    let (b, _) = DiskBuffer::open(&dir.path().join("buffer"), u64::MAX).unwrap();
    let start = b.start();
    let frames = read(&Mutex::new(b), start, 10).unwrap();
    assert_eq!(frames.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&frames[0].payload).unwrap();
    assert_eq!(v["class_uid"], 4001);
    assert_eq!(v["unmapped"]["pgwarden"]["session_id"], 3);
    let line = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(
        line.contains("\"event\":{"),
        "the file stays native: {line}"
    );
}
