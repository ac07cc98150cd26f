//! `[audit] format` and `[audit.nats]`: the output format of each audit sink
//! and the NATS JetStream sink (see `src/audit/nats/`).

use super::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;

/// How an audit sink writes a record (docs/audit-formats.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// pgwarden's JSON: ECS names, OTel `db.*`, `pgwarden.*` (default).
    #[default]
    Native,
    /// The native record plus the ECS fields it leaves out (`observer`, `related`, ...).
    Ecs,
    /// OCSF 1.3 events (Datastore Activity, Authentication, Network Activity).
    Ocsf,
}

/// `[audit.nats]`: publish every record to a JetStream stream, buffered on disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL. Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// Subject records are published to. Default `pgwarden.audit`.
    pub subject: String,
    /// Stream that stores them, created (subjects = [subject]) when missing.
    /// Default `PGWARDEN_AUDIT`.
    pub stream: String,
    /// The stream's de-duplication window, used when pgwarden creates it. Default `2m`.
    pub duplicate_window: HumanDuration,
    /// Directory of the disk buffer holding records until NATS acknowledges
    /// them. Default `/var/lib/pgwarden/nats-buffer`.
    pub buffer_dir: PathBuf,
    /// Most bytes the buffer holds; past it `audit.on_full` applies. Default 1 GiB.
    pub buffer_max_bytes: u64,
    /// `native` (default), `ecs` or `ocsf`.
    pub format: AuditFormat,
    /// This proxy's name in message ids (`<replica>-<seq>`). Default: the host
    /// name. Kept in `buffer_dir` on first start with a random suffix.
    pub replica_id: Option<String>,
    /// Publishes awaiting acknowledgement at once. Default 256.
    pub max_in_flight: usize,
    /// Longest wait for one acknowledgement before the connection is
    /// replaced and the rest re-sent. Default `5s`.
    pub ack_timeout: HumanDuration,
    /// Time given at shutdown to publish what is buffered (the rest is sent
    /// after the next start). Default `5s`.
    pub shutdown_timeout: HumanDuration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            subject: "pgwarden.audit".into(),
            stream: "PGWARDEN_AUDIT".into(),
            duplicate_window: HumanDuration::from_secs(120),
            buffer_dir: PathBuf::from("/var/lib/pgwarden/nats-buffer"),
            buffer_max_bytes: 1 << 30,
            format: AuditFormat::Native,
            replica_id: None,
            max_in_flight: 256,
            ack_timeout: HumanDuration::from_secs(5),
            shutdown_timeout: HumanDuration::from_secs(5),
        }
    }
}
