//! `pgwarden policy check | explain | test`: the security team's tools.

use super::condition::Env;
use super::tools;
use super::Policy;
use crate::config::{self, Config};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `pgwarden policy ...`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// Policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files; with a database connection, also report names that match nothing.
    Check {
        /// Policy directory or file.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show what a statement reads and writes, the decision, and the rule behind it.
    Explain {
        /// Role the statement runs as.
        #[arg(long)]
        role: String,
        /// The SQL text.
        #[arg(long)]
        sql: String,
        /// Client address for address conditions.
        #[arg(long, default_value = "127.0.0.1")]
        addr: std::net::IpAddr,
        /// application_name for application conditions.
        #[arg(long, default_value = "")]
        application: String,
        /// Time for time conditions (RFC 3339) [default: now].
        #[arg(long)]
        at: Option<String>,
        /// Policy directory or file.
        #[arg(long, default_value = "policies")]
        policy: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run a file of (role, statement, expected decision) cases against the policy.
    Test {
        /// Case file (TOML, `[[case]]` tables; see policies/tests/hr.toml).
        file: PathBuf,
        /// Policy directory or file.
        #[arg(long, default_value = "policies")]
        policy: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Where the catalog comes from (names resolve against the real database).
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// pgwarden config file: its [upstream] and [catalog] sections are used.
    #[arg(short, long, value_name = "FILE", env = "PGWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL server (overrides the config).
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// Role that reads the catalog (overrides catalog.user).
    #[arg(long)]
    pub user: Option<String>,
    /// Its password (or PGWARDEN_CATALOG_PASSWORD).
    #[arg(long, env = "PGWARDEN_CATALOG_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Database whose catalog is read.
    #[arg(long, default_value = "postgres")]
    pub database: String,
}

impl DbArgs {
    fn wanted(&self) -> bool {
        self.config.is_some() || self.upstream.is_some()
    }

    async fn catalog(&self) -> Result<crate::catalog::Catalog, String> {
        let mut c = match &self.config {
            Some(p) => config::load_file(p).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if let Some(u) = &self.upstream {
            c.upstream.address = u.clone();
            c.upstream.tls = config::UpstreamTls::Prefer;
        }
        if let Some(u) = &self.user {
            c.catalog.user = u.clone();
        }
        if let Some(p) = &self.password {
            c.catalog.password = Some(p.clone());
        }
        let client = crate::catalog::load::connect(&c, &self.database)
            .await
            .map_err(|e| e.to_string())?;
        crate::catalog::load::load(&client)
            .await
            .map_err(|e| e.to_string())
    }
}

fn load(dir: &std::path::Path) -> Result<Policy, String> {
    super::load::load(dir, 1).map_err(|e| e.to_string())
}

/// Runs a policy subcommand.
pub async fn run(args: PolicyArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgwarden policy: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_inner(args: PolicyArgs) -> Result<ExitCode, String> {
    match args.command {
        PolicyCommand::Check { dir, db } => {
            let policy = load(&dir)?;
            println!(
                "{}: {} file(s), {} classification(s), {} rule(s): valid",
                dir.display(),
                policy.files.len(),
                policy.classifications.len(),
                policy.rules.len()
            );
            if !db.wanted() {
                return Ok(ExitCode::SUCCESS);
            }
            let catalog = db.catalog().await?;
            let warnings = tools::check_against(&policy, &catalog);
            for w in &warnings {
                println!("warning: {w}");
            }
            if warnings.is_empty() {
                println!("every name matches the database \"{}\"", db.database);
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
        PolicyCommand::Explain {
            role,
            sql,
            addr,
            application,
            at,
            policy,
            db,
        } => {
            let p = load(&policy)?;
            let catalog = db.catalog().await?;
            let now = match at {
                Some(t) => humantime::parse_rfc3339_weak(&t).map_err(|e| format!("--at: {e}"))?,
                None => std::time::SystemTime::now(),
            };
            let env = Env {
                now,
                addr: Some(addr),
                application: &application,
            };
            print!("{}", tools::explain(&p, &catalog, &sql, &role, &env));
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { file, policy, db } => {
            let p = load(&policy)?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let cases: tools::TestFile =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let catalog = db.catalog().await?;
            let results = tools::run_tests(&p, &catalog, &cases);
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                let status = if r.passed { "ok  " } else { "FAIL" };
                println!("{status} case {}: {}", r.number, r.message);
            }
            println!(
                "\n{} passed, {failed} failed ({})",
                results.len() - failed,
                file.display()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
