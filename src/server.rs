//! The accept loop: it only routes each connection to its own task, and on
//! shutdown stops accepting, waits out the grace period, then closes the rest.

use crate::client;
use crate::config::Config;
use crate::context::Context;
use crate::net::tls::TlsError;
use crate::shutdown::Phase;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Why the proxy could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The policy files are invalid.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The budget store could not be set up.
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
    /// The alert sink could not be set up.
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
    /// The baseline file could not be read.
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
}

/// A running proxy.
pub struct Server {
    /// Shared state (config, metrics, shutdown).
    pub ctx: Arc<Context>,
    /// Where clients connect.
    pub local_addr: SocketAddr,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    accept: JoinHandle<()>,
    audit_task: crate::audit::AuditTask,
    alert_task: crate::alert::AlertTask,
    baseline_task: Option<crate::baseline::BaselineTask>,
}

impl Server {
    /// Binds the listeners and starts serving.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let listen = config.proxy.listen.clone();
        let metrics_listen = config.metrics.listen.clone();
        let metrics = crate::metrics::Metrics::new();
        let (audit, audit_task) = crate::audit::AuditLog::start(&config.audit, &metrics)?;
        let policy_path = config.policy.path.clone();
        let budgets = crate::budget::Budgets::from_config(&config.budget)?;
        let (alerts, alert_task) = crate::alert::AlertSink::start(&config.alerts, &metrics)?;
        let (baseline, learner) = crate::baseline::start(&config.baseline, &metrics)?;
        let ctx = Context::new(config, metrics, audit, budgets, alerts, baseline)?;
        if let Some(path) = &policy_path {
            // At start a bad policy is fatal: never serve unprotected.
            let p = ctx.policy.load(path)?;
            ctx.metrics.policy_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(path = %path.display(), rules = p.rules.len(), "policy loaded");
        }
        tokio::spawn(watch_policy(ctx.clone()));
        let baseline_task = learner.map(|l| l.spawn(ctx.clone()));
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen.clone(),
            source,
        })?;
        let mut metrics_addr = None;
        if let Some(m) = metrics_listen {
            let l = TcpListener::bind(&m)
                .await
                .map_err(|source| StartError::Bind {
                    addr: m.clone(),
                    source,
                })?;
            metrics_addr = l.local_addr().ok();
            tokio::spawn(crate::metrics::serve(ctx.clone(), l));
        }
        tracing::info!(%local_addr, upstream = %ctx.config.load().upstream.address, "pgwarden listening");
        let accept = tokio::spawn(accept_loop(ctx.clone(), listener));
        Ok(Self {
            ctx,
            local_addr,
            metrics_addr,
            accept,
            audit_task,
            alert_task,
            baseline_task,
        })
    }

    /// Begins a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&self) {
        self.ctx.shutdown.advance(Phase::Draining);
    }

    /// Waits until every session has ended after shutdown, then flushes
    /// every queued audit record.
    pub async fn wait(self) {
        let _ = self.accept.await;
        // The learner may still raise alerts: before the sinks drain.
        if let Some(b) = self.baseline_task {
            b.shutdown().await;
        }
        self.alert_task.shutdown(Duration::from_secs(5)).await;
        self.audit_task.shutdown().await;
        self.ctx.catalogs.shutdown();
    }
}

/// Session threads, each running a single-threaded event loop. A session
/// lives on one thread for its whole life, so a round trip never hops
/// between threads (no cross-thread wake-ups), as in PgBouncer's design but
/// on every core.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    next: usize,
    // Dropping the senders stops the threads' event loops.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Workers {
    fn start(count: usize) -> std::io::Result<Self> {
        let count = if count == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            count
        };
        let mut handles = Vec::with_capacity(count);
        let mut stop = Vec::with_capacity(count);
        for i in 0..count {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("pgwarden-worker-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                })?;
        }
        Ok(Self {
            handles,
            next: 0,
            _stop: stop,
        })
    }

    fn pick(&mut self) -> &tokio::runtime::Handle {
        let h = &self.handles[self.next % self.handles.len()];
        self.next = self.next.wrapping_add(1);
        h
    }
}

async fn accept_loop(ctx: Arc<Context>, listener: TcpListener) {
    let tracker = TaskTracker::new();
    let mut workers = match Workers::start(ctx.config.load().proxy.workers) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "cannot start worker threads; serving on the main runtime");
            None
        }
    };
    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|p| *p != Phase::Running).await; } => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let ctx = ctx.clone();
                    match (workers.as_mut(), tcp.into_std()) {
                        (Some(w), Ok(std_tcp)) => {
                            // The socket moves to the worker's own event loop.
                            w.pick().spawn(tracker.track_future(async move {
                                match tokio::net::TcpStream::from_std(std_tcp) {
                                    Ok(tcp) => client::serve(ctx, tcp, peer).await,
                                    Err(e) => tracing::warn!(%peer, error = %e, "cannot register connection"),
                                }
                            }));
                        }
                        (_, Ok(std_tcp)) => {
                            if let Ok(tcp) = tokio::net::TcpStream::from_std(std_tcp) {
                                tracker.spawn(client::serve(ctx, tcp, peer));
                            }
                        }
                        (_, Err(e)) => tracing::warn!(%peer, error = %e, "accepted connection unusable"),
                    }
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tracker.close();
    let grace = ctx.config.load().proxy.shutdown_grace.0;
    tracing::info!(
        sessions = tracker.len(),
        grace_s = grace.as_secs_f64(),
        "shutting down: no new connections; sessions end when idle"
    );
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            sessions = tracker.len(),
            "grace period over; closing sessions"
        );
        ctx.shutdown.advance(Phase::Closing);
        let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    }
    ctx.shutdown.advance(Phase::Closing);
    drop(workers);
    tracing::info!("pgwarden stopped");
}

/// Reloads the policy when its files change (checked every
/// `policy.watch_interval`), until shutdown.
async fn watch_policy(ctx: Arc<Context>) {
    let mut phase = ctx.shutdown.subscribe();
    loop {
        let every = ctx.config.load().policy.watch_interval.0;
        let pause = if every.is_zero() {
            Duration::from_secs(1)
        } else {
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            r = phase.changed() => if r.is_err() || *phase.borrow() != Phase::Running { return },
        }
        if !every.is_zero() && ctx.policy.changed_on_disk() {
            let path = ctx.config.load().policy.path.clone();
            ctx.load_policy(path.as_deref());
        }
    }
}
