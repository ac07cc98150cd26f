//! Configuration: serde structs with documented defaults, loaded and
//! validated once, then shared through an [`arc_swap::ArcSwap`] so a reload
//! swaps the whole thing atomically.

pub mod alerts;
mod audit_nats;
pub mod baseline;
pub mod budget;
mod duration;
pub mod load;

pub use alerts::AlertConfig;
pub use audit_nats::{AuditFormat, NatsConfig};
pub use baseline::BaselineConfig;
pub use budget::{BudgetConfig, BudgetStore};
pub use duration::HumanDuration;
pub use load::{load_file, ConfigError};

use serde::Deserialize;
use std::path::PathBuf;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where clients connect and how many may.
    pub proxy: ProxyConfig,
    /// Client-facing TLS.
    pub tls: TlsConfig,
    /// The PostgreSQL server pgwarden protects.
    pub upstream: UpstreamConfig,
    /// Prometheus metrics and health endpoint.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// pgwarden's own connection that reads PostgreSQL's catalog.
    pub catalog: CatalogConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Column-level policies.
    pub policy: PolicyConfig,
    /// Windowed counters for row and login budgets.
    pub budget: BudgetConfig,
    /// Alert webhooks.
    pub alerts: AlertConfig,
    /// Per-user behaviour baselines.
    pub baseline: BaselineConfig,
}

/// `[proxy]`: the listening side.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address clients connect to. Default `127.0.0.1:6432`.
    pub listen: String,
    /// Clients served at once; one more gets SQLSTATE 53300. Default 1000.
    pub max_clients: usize,
    /// Time a client has from connecting to being logged in. Default `10s`.
    pub startup_timeout: HumanDuration,
    /// Time sessions get to finish after SIGTERM/SIGINT. Default `30s`.
    pub shutdown_grace: HumanDuration,
    /// Largest message accepted from either side, in bytes. Default 256 MiB.
    pub max_message_size: usize,
    /// Threads relaying sessions, each with its own event loop; 0 means one
    /// per CPU. Default 0.
    pub workers: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6432".into(),
            max_clients: 1000,
            startup_timeout: HumanDuration::from_secs(10),
            shutdown_grace: HumanDuration::from_secs(30),
            max_message_size: 256 * 1024 * 1024,
            workers: 0,
        }
    }
}

/// `[tls]`: TLS toward clients. Without a certificate, SSLRequest gets 'N'.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Default none.
    pub cert_file: Option<PathBuf>,
    /// PEM private key. Default none.
    pub key_file: Option<PathBuf>,
    /// Refuse clients that do not use TLS (SQLSTATE 28000). Default false.
    pub require: bool,
}

/// How pgwarden talks TLS to PostgreSQL (libpq's sslmode values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Never.
    Disable,
    /// When the server offers it (default).
    #[default]
    Prefer,
    /// Always, without verifying the certificate.
    Require,
    /// Always, verifying the chain against `ca_file` and the host name.
    VerifyFull,
}

/// `[upstream]`: the PostgreSQL server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `HOST:PORT` of PostgreSQL, or the absolute path of its Unix socket
    /// (the socket file, or a directory holding `.s.PGSQL.5432`). Default
    /// `127.0.0.1:5432`.
    pub address: String,
    /// TLS mode. Default `prefer`.
    pub tls: UpstreamTls,
    /// CA bundle for `verify-full`; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Name checked against the certificate; the host of `address` when unset.
    pub server_name: Option<String>,
    /// Time allowed to connect to PostgreSQL. Default `5s`.
    pub connect_timeout: HumanDuration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:5432".into(),
            tls: UpstreamTls::Prefer,
            ca_file: None,
            server_name: None,
            connect_timeout: HumanDuration::from_secs(5),
        }
    }
}

impl UpstreamConfig {
    /// The host part of `address`, brackets of an IPv6 literal removed.
    pub fn host(&self) -> &str {
        let host = self
            .address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// `[metrics]`: Prometheus `/metrics` and `/healthz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `HOST:PORT` to serve on. Default: off.
    pub listen: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: diagnostics (not the audit trail).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `pgwarden=debug`; `RUST_LOG` wins. Default `info`.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// The environment variable whose value, when set, replaces `catalog.password`.
pub const CATALOG_PASSWORD_ENV: &str = "PGWARDEN_CATALOG_PASSWORD";

/// `[catalog]`: the service connection that reads PostgreSQL's catalog (to
/// `upstream.address`, with `upstream.tls`), one per database in use.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Role the service connection logs in as. Default `pgwarden`.
    pub user: String,
    /// Its password; the environment variable `PGWARDEN_CATALOG_PASSWORD`
    /// wins when set. Default none (for `trust` authentication).
    pub password: Option<String>,
    /// Time between periodic catalog reloads (DDL seen through the proxy
    /// also triggers one). Default `60s`.
    pub refresh_interval: HumanDuration,
    /// Time allowed to connect and log in. Default `5s`.
    pub connect_timeout: HumanDuration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            user: "pgwarden".into(),
            password: None,
            refresh_interval: HumanDuration::from_secs(60),
            connect_timeout: HumanDuration::from_secs(5),
        }
    }
}

impl CatalogConfig {
    /// The password to use: `PGWARDEN_CATALOG_PASSWORD` when set, else `password`.
    pub fn effective_password(&self) -> Option<String> {
        std::env::var(CATALOG_PASSWORD_ENV)
            .ok()
            .or_else(|| self.password.clone())
    }
}

// Hand-written so a logged configuration never shows the password.
impl std::fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogConfig")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("refresh_interval", &self.refresh_interval)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// What a full audit queue does to the session that sends one more record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOnFull {
    /// The session waits for room: no record is ever dropped (default).
    #[default]
    Block,
    /// The record is dropped, counted in `pgwarden_audit_records_dropped_total`
    /// and warned about (rate-limited).
    DropAndCount,
}

/// When a statement's completion may reach the client relative to its audit
/// record reaching the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDurability {
    /// Records are written in batches and left to the kernel to flush; a
    /// crash of the machine can lose the last ones (default, fastest).
    #[default]
    None,
    /// Every batch is fsynced once written; results do not wait for it.
    Batch,
    /// Every batch is fsynced, and a statement's completion (CommandComplete
    /// or ErrorResponse, and what follows) reaches the client only once its
    /// record is on disk.
    Strict,
}

/// `[audit]`: the audit trail, one JSON record per line (docs/audit-records.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// File to append to, `-` for stdout. Default none: auditing off.
    pub path: Option<PathBuf>,
    /// Size in bytes at which the file is rotated. Default 100 MiB.
    pub max_file_size: u64,
    /// Rotated files kept (`audit.log.1` ... `audit.log.N`). Default 10.
    pub keep_files: u32,
    /// Records queued between the sessions and the writer. Default 65,536.
    pub queue_capacity: usize,
    /// `block` (default) or `drop_and_count`.
    pub on_full: AuditOnFull,
    /// Also record the statement text with its literals. Default false.
    pub log_full_text: bool,
    /// Ed25519 private key (PEM PKCS#8, see `pgwarden audit keygen`) that
    /// signs checkpoints. Default none: the lines are hash-chained, unsigned.
    pub signing_key: Option<PathBuf>,
    /// Longest a line waits for a signed checkpoint. Default `10s`.
    pub sign_interval: HumanDuration,
    /// Lines between signed checkpoints at most. Default 1000.
    pub sign_interval_records: u64,
    /// How records are written to `path`: `native` (default), `ecs` or `ocsf`.
    pub format: AuditFormat,
    /// `[audit.nats]`: also publish every record to NATS JetStream. Default off.
    pub nats: Option<NatsConfig>,
    /// `none` (default), `batch` or `strict`: see [`AuditDurability`].
    pub durability: AuditDurability,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_file_size: 100 * 1024 * 1024,
            keep_files: 10,
            queue_capacity: 65_536,
            on_full: AuditOnFull::Block,
            log_full_text: false,
            signing_key: None,
            sign_interval: HumanDuration::from_secs(10),
            sign_interval_records: 1000,
            format: AuditFormat::Native,
            nats: None,
            durability: AuditDurability::None,
        }
    }
}

/// `[policy]`: where the policy files are and how masking hashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.toml` policy files (or one file). Default none: no
    /// policy, statements are only audited. `--policy` overrides it.
    pub path: Option<PathBuf>,
    /// Key for `mask:hash` (HMAC-SHA-256). The environment variable
    /// `PGWARDEN_MASK_KEY` wins over it; never put it in a policy file.
    /// Default none: a random key per start (hashes then differ across restarts).
    pub hash_key: Option<String>,
    /// How often the policy files are checked for changes. Default `2s`;
    /// `0s` turns watching off (SIGHUP still reloads).
    pub watch_interval: HumanDuration,
    /// A fixed "now" for time conditions, RFC 3339 (`2026-11-23T03:00:00Z`).
    /// For tests and `policy explain`; default none (the real clock).
    #[serde(deserialize_with = "duration::rfc3339_opt")]
    pub fixed_time: Option<std::time::SystemTime>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            path: None,
            hash_key: None,
            watch_interval: HumanDuration::from_secs(2),
            fixed_time: None,
        }
    }
}
