//! What every task shares: the live configuration, TLS material, the cancel
//! registry, metrics and the shutdown signal.

use crate::alert::{Alert, AlertSink};
use crate::analyse::Analyser;
use crate::audit::AuditHandle;
use crate::audit::AuditRecord;
use crate::budget::Budgets;
use crate::cancel::CancelRegistry;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::mask::HashKey;
use crate::metrics::Metrics;
use crate::net::tls::{self, TlsError};
use crate::policy::PolicyStore;
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
    /// Distinct data subjects seen per user and limit, in sliding windows.
    pub distinct_subjects: crate::budget::distinct::DistinctWindows,
    /// Statement analyser and its cache.
    pub analyser: Arc<Analyser>,
    /// PostgreSQL catalogs, per database.
    pub catalogs: Arc<Catalogs>,
    /// Where audit records go (a no-op when auditing is off).
    pub audit: AuditHandle,
    /// Source of session ids for audit records.
    pub next_session_id: AtomicU64,
    /// The column-level policy in force.
    pub policy: PolicyStore,
    /// Key of `mask:hash`.
    pub mask_key: ArcSwap<HashKey>,
    /// Windowed counters (rows per user, failed logins), in memory or Redis.
    pub budgets: Budgets,
    /// Where alerts go (webhooks; every alert is also an audit record).
    pub alerts: AlertSink,
    /// Prepared change captures (rewritten texts), shared by sessions.
    pub captures: crate::capture::Preparer,
    /// Where sessions hand statements and logins to the baseline learner.
    pub baseline: crate::baseline::BaselineHandle,
}

impl Context {
    /// Builds the context for a validated configuration.
    pub fn new(
        config: Config,
        metrics: Metrics,
        audit: AuditHandle,
        budgets: Budgets,
        alerts: AlertSink,
        baseline: crate::baseline::BaselineHandle,
    ) -> Result<Arc<Self>, TlsError> {
        let tls = TlsMaterial::from_config(&config)?;
        let catalogs = Catalogs::new(&config);
        let key = mask_key(&config);
        Ok(Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            tls: ArcSwap::from_pointee(tls),
            cancel: Arc::default(),
            metrics,
            shutdown: Shutdown::default(),
            clients: AtomicUsize::new(0),
            distinct_subjects: Default::default(),
            analyser: Arc::new(Analyser::new(50_000)),
            catalogs,
            audit,
            next_session_id: AtomicU64::new(1),
            policy: PolicyStore::empty(),
            mask_key: ArcSwap::from_pointee(key),
            budgets,
            alerts,
            captures: crate::capture::Preparer::default(),
            baseline,
        }))
    }

    /// Now, for time conditions and baselines: `policy.fixed_time` when
    /// set (tests), else the clock.
    pub fn now(&self) -> std::time::SystemTime {
        self.config
            .load()
            .policy
            .fixed_time
            .unwrap_or_else(std::time::SystemTime::now)
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
        if std::env::var_os("PGWARDEN_MASK_KEY").is_some() || config.policy.hash_key.is_some() {
            // Without a configured key the random one stays: hashes must not
            // change under running sessions.
            self.mask_key.store(Arc::new(mask_key(&config)));
        }
        let policy_path = config.policy.path.clone();
        self.config.store(Arc::new(config));
        self.load_policy(policy_path.as_deref());
        Ok(())
    }

    /// Raises an alert: to the webhooks, and as an audit record of its own.
    pub fn raise_alert(&self, alert: Alert) {
        tracing::warn!(kind = %alert.kind, rule = %alert.rule, user = %alert.user, "alert");
        self.alerts.raise(alert.clone());
        if let Err(rec) = self.audit.try_send(AuditRecord::Alert(Arc::new(alert))) {
            // A full queue must not stall the session that raised it.
            let audit = self.audit.clone();
            tokio::spawn(async move { audit.send(rec).await });
        }
    }

    /// (Re)loads the policy; a bad file keeps the old policy in force and
    /// is logged with its file, line and field.
    pub fn load_policy(&self, path: Option<&std::path::Path>) -> bool {
        let Some(path) = path else { return true };
        match self.policy.load(path) {
            Ok(p) => {
                self.metrics.policy_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    path = %path.display(),
                    files = p.files.len(),
                    rules = p.rules.len(),
                    mode = ?p.mode.unwrap_or(crate::policy::Mode::Enforce),
                    "policy loaded"
                );
                true
            }
            Err(e) => {
                self.metrics
                    .policy_reloads
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(error = %e, "policy refused; keeping the policy in force");
                false
            }
        }
    }
}

/// The `mask:hash` key: `PGWARDEN_MASK_KEY`, else `policy.hash_key`, else
/// random for this process.
fn mask_key(config: &Config) -> HashKey {
    match std::env::var("PGWARDEN_MASK_KEY")
        .ok()
        .or_else(|| config.policy.hash_key.clone())
    {
        Some(k) => HashKey::new(k.as_bytes()),
        None => HashKey::new(&rand::random::<[u8; 32]>()),
    }
}
