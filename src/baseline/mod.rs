//! Behaviour baselines: per login user, learnt from what their sessions do
//! (statements and logins, handed over off the hot path), kept on disk
//! across restarts (`[baseline] path`), and judged once learnt: a table or
//! column outside the usual scope, far more rows in an hour than usual, an
//! unusual hour of day raise an alert with a score and the evidence, and a
//! login from an address the user never used raises one too.
//!
//! Sessions call [`BaselineHandle::observe`], which never waits: a full
//! queue drops the observation and counts it. One task ([`task`]) learns,
//! scores ([`score`]) and saves ([`store`]); the model is in [`model`] and
//! [`learn`].

pub mod learn;
pub mod model;
pub mod score;
pub mod store;
mod task;

pub use task::{BaselineTask, Learner};

use crate::analyse::Analysis;
use crate::audit::SessionContext;
use crate::config::BaselineConfig;
use crate::metrics::Metrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use thiserror::Error;
use tokio::sync::mpsc;

/// Why the baseline file could not be used.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// The file exists but could not be read.
    #[error("baseline.path {}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a baseline file this pgwarden understands.
    #[error("baseline.path {}: not a baseline file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file could not be written.
    #[error("baseline.path {}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Something a session did that baselines learn from and judge.
#[derive(Debug)]
pub enum Observation {
    /// PostgreSQL accepted a login.
    Login {
        /// The session.
        session: Arc<SessionContext>,
        /// When (the clock, or `policy.fixed_time`).
        at: SystemTime,
    },
    /// A statement succeeded.
    Statement {
        /// The session.
        session: Arc<SessionContext>,
        /// What it read.
        analysis: Arc<Analysis>,
        /// Rows it returned.
        rows: u64,
        /// When (the clock, or `policy.fixed_time`).
        at: SystemTime,
    },
}

/// Where sessions hand observations to the learner (a no-op when
/// baselines are off).
#[derive(Debug, Clone)]
pub struct BaselineHandle {
    tx: Option<mpsc::Sender<Observation>>,
    dropped: prometheus::IntCounter,
}

impl BaselineHandle {
    /// A handle that takes nothing.
    pub fn disabled(metrics: &Metrics) -> Self {
        Self {
            tx: None,
            dropped: metrics.baseline_dropped.clone(),
        }
    }

    /// Whether baselines are learnt.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands an observation over without waiting; a full queue drops it.
    pub fn observe(&self, o: Observation) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(o).is_err() {
            // Baselines are statistics: losing one observation is better
            // than stalling the session that made it.
            self.dropped.inc();
            let n = self.dropped.get();
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "baseline queue full; observations dropped (pgwarden_baseline_dropped_total)"
                );
            }
        }
    }
}

/// Opens the baseline file when `[baseline] path` is set: the handle for
/// sessions, and the learner to spawn once the context exists.
pub fn start(
    config: &BaselineConfig,
    metrics: &Metrics,
) -> Result<(BaselineHandle, Option<Learner>), BaselineError> {
    let Some(path) = &config.path else {
        return Ok((BaselineHandle::disabled(metrics), None));
    };
    let state = store::load(path)?;
    metrics.baseline_users.set(state.users.len() as i64);
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let handle = BaselineHandle {
        tx: Some(tx),
        dropped: metrics.baseline_dropped.clone(),
    };
    Ok((
        handle,
        Some(Learner::new(
            rx,
            state,
            path.clone(),
            config.save_interval.0,
        )),
    ))
}
