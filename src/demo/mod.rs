//! `pgwarden demo`: a throwaway PostgreSQL with an HR database full of
//! sensitive columns, and the proxy in front of it, in one command.
//!
//! The pieces are public so the integration tests can build the same
//! database: [`load_hr`], [`schema_sql`], [`create_hr_database`] and the
//! deterministic generator [`data::generate`].

pub mod data;
mod run;
mod schema;
pub mod sql;
mod words;

pub use run::run;
pub use schema::{
    connect_superuser, create_database, create_hr_database, is_loaded, load_hr, schema_sql,
    HR_DATABASE, ROLES,
};

use std::path::PathBuf;
use thiserror::Error;

/// Options of `pgwarden demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port pgwarden listens on (127.0.0.1).
    #[arg(long, default_value_t = 6432)]
    pub port: u16,
    /// Port of the demo PostgreSQL (127.0.0.1).
    #[arg(long, default_value_t = 6543)]
    pub pg_port: u16,
    /// Where the demo cluster lives; reused when it already exists.
    #[arg(long, value_name = "DIR", default_value = ".pgwarden-demo")]
    pub data_dir: PathBuf,
    /// Number of synthetic employees in a new database.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub employees: usize,
    /// Seed of the synthetic data (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Append audit records (JSON lines) to this file, `-` for stdout [default: off].
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Policy directory [default: ./policies when it exists, else the built-in demo policy].
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
}

/// Why the demo could not be set up.
#[derive(Debug, Error)]
pub enum DemoError {
    /// initdb, pg_ctl or the data directory failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Talking to the demo PostgreSQL failed.
    #[error("demo database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The proxy could not start.
    #[error("cannot start the proxy: {0}")]
    Proxy(#[from] crate::server::StartError),
    /// A blocking helper task died.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Signal handling could not be set up.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    /// Ctrl-C or SIGTERM arrived before the demo was ready.
    #[error("interrupted during setup")]
    Interrupted,
    /// The built-in policy could not be written.
    #[error("cannot write the demo policy: {0}")]
    Policy(#[from] std::io::Error),
}
