//! Configuration: serde structs with documented defaults, loaded and
//! validated once, then shared through an [`arc_swap::ArcSwap`] so a reload
//! swaps the whole thing atomically.

mod duration;
pub mod load;

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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6432".into(),
            max_clients: 1000,
            startup_timeout: HumanDuration::from_secs(10),
            shutdown_grace: HumanDuration::from_secs(30),
            max_message_size: 256 * 1024 * 1024,
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
    /// `HOST:PORT` of PostgreSQL. Default `127.0.0.1:5432`.
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
