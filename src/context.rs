//! What every task shares: the live configuration, TLS material, the cancel
//! registry, metrics and the shutdown signal.

use crate::analyse::Analyser;
use crate::audit::AuditHandle;
use crate::cancel::CancelRegistry;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::tls::{self, TlsError};
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use rustls::pki_types::ServerName;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

/// TLS material built from one configuration, swapped as a whole on reload.
pub struct TlsMaterial {
    /// Acceptor for client TLS, when a certificate is configured.
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    /// Connector for PostgreSQL.
    pub connector: tokio_rustls::TlsConnector,
    /// Name to verify PostgreSQL's certificate against.
    pub server_name: ServerName<'static>,
}

impl TlsMaterial {
    /// Builds the material a configuration asks for.
    pub fn from_config(config: &Config) -> Result<Self, TlsError> {
        Ok(Self {
            acceptor: tls::acceptor(config)?,
            connector: tls::connector(config)?,
            server_name: tls::server_name(config)?,
        })
    }
}

/// State shared by the listener, every session and the admin endpoint.
pub struct Context {
    /// The configuration in force.
    pub config: ArcSwap<Config>,
    /// TLS material for the configuration in force.
    pub tls: ArcSwap<TlsMaterial>,
    /// Synthetic-to-real cancel keys.
    pub cancel: Arc<CancelRegistry>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Shutdown phases.
    pub shutdown: Shutdown,
    /// Clients past the startup packet (counted against `proxy.max_clients`).
    pub clients: AtomicUsize,
    /// Statement analyser and its cache.
    pub analyser: Arc<Analyser>,
    /// PostgreSQL catalogs, per database.
    pub catalogs: Arc<Catalogs>,
    /// Where audit records go (a no-op when auditing is off).
    pub audit: AuditHandle,
    /// Source of session ids for audit records.
    pub next_session_id: AtomicU64,
}

impl Context {
    /// Builds the context for a validated configuration.
    pub fn new(
        config: Config,
        metrics: Metrics,
        audit: AuditHandle,
    ) -> Result<Arc<Self>, TlsError> {
        let tls = TlsMaterial::from_config(&config)?;
        let catalogs = Catalogs::new(&config);
        Ok(Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            tls: ArcSwap::from_pointee(tls),
            cancel: Arc::default(),
            metrics,
            shutdown: Shutdown::default(),
            clients: AtomicUsize::new(0),
            analyser: Arc::new(Analyser::new(50_000)),
            catalogs,
            audit,
            next_session_id: AtomicU64::new(1),
        }))
    }

    /// Swaps in a new configuration; on error the old one stays in force.
    /// Listening addresses are bound once and need a restart to change.
    pub fn reload(&self, config: Config) -> Result<(), TlsError> {
        let tls = TlsMaterial::from_config(&config)?;
        let old = self.config.load();
        if old.proxy.listen != config.proxy.listen || old.metrics.listen != config.metrics.listen {
            tracing::warn!("listen addresses changed in the config; they take effect on restart");
        }
        self.tls.store(Arc::new(tls));
        self.catalogs.update_config(&config);
        self.config.store(Arc::new(config));
        Ok(())
    }
}
