//! A pgwarden guarding a database with a policy and writing an audit log of
//! its own: the harness of the policy, limit and security-event tests.

use pgwarden::config::Config;
use pgwarden::Server;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::Client;

/// The proxy, its audit log and the database its sessions use.
pub struct Guarded {
    server: Option<Server>,
    /// Where clients connect.
    pub port: u16,
    log: PathBuf,
    db: &'static str,
    _dir: tempfile::TempDir,
}

impl Guarded {
    /// Starts a proxy in front of the shared cluster with the policy at
    /// `policy`, the catalog read as the superuser, `tweak` applied last.
    pub async fn start(db: &'static str, policy: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let pg = super::pg();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.log");
        let mut config = super::config_for(&pg);
        config.audit.path = Some(log.clone());
        config.catalog.user = super::SUPERUSER.0.into();
        config.catalog.password = Some(super::SUPERUSER.1.into());
        config.policy.path = Some(policy.to_owned());
        tweak(&mut config);
        let server = Server::start(config).await.expect("proxy starts");
        Self {
            port: server.local_addr.port(),
            server: Some(server),
            log,
            db,
            _dir: dir,
        }
    }

    /// Logs in as a demo role (password = name).
    pub async fn login(&self, role: &str) -> Client {
        super::connect(self.port, role, role, self.db).await
    }

    /// The running server (metrics address, context).
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Stops the proxy (the audit queue drains) and returns every record.
    pub async fn records(mut self) -> Vec<Value> {
        let server = self.server.take().expect("running");
        server.shutdown();
        tokio::time::timeout(Duration::from_secs(30), server.wait())
            .await
            .expect("proxy stops within 30 s");
        std::fs::read_to_string(&self.log)
            .expect("audit log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.shutdown();
        }
    }
}

/// A policy directory holding one file with `text`.
pub fn policy_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("policy.toml"), text).expect("policy file");
    dir
}
