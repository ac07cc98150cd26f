//! Command line: `pgwarden serve`, `pgwarden demo`, `pgwarden policy`,
//! `pgwarden audit` and `pgwarden report`.

use crate::config::{self, Config, LogFormat};
use crate::server::Server;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// pgwarden: a transparent PostgreSQL proxy that audits who reads and changes
/// which columns, and enforces column-level policies.
#[derive(Debug, Parser)]
#[command(name = "pgwarden", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of a PostgreSQL server.
    Serve(ServeArgs),
    /// Start a throwaway PostgreSQL with the HR demo database and the proxy in front of it.
    Demo(crate::demo::DemoArgs),
    /// Check, explain and test column-level policies.
    Policy(crate::policy::command::PolicyArgs),
    /// Audit log tools: make a signing key, verify the log's integrity,
    /// list who saw a data subject.
    Audit(crate::audit::cli::AuditArgs),
    /// Compliance report over audit files: per user, table, column and
    /// classification; largest extractions; off-hours; failed logins; trends.
    Report(crate::report::cli::ReportArgs),
}

/// Options of `pgwarden serve`; flags override the config file.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see deploy/pgwarden.toml). Without it, defaults and flags apply.
    #[arg(short, long, value_name = "FILE", env = "PGWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address clients connect to [default: 127.0.0.1:6432].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// PostgreSQL server to protect [default: 127.0.0.1:5432].
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// Serve Prometheus /metrics and /healthz here [default: off].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// Append audit records (JSON lines) to this file, `-` for stdout [default: off].
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Policy directory (or file) [default: policy.path from the config, else ./policies when it exists].
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
}

impl ServeArgs {
    /// Loads the config file (if any) and applies the flags on top, validated.
    pub fn resolve(&self) -> Result<Config, config::ConfigError> {
        let mut c = match &self.config {
            Some(p) => config::load_file(p)?,
            None => Config::default(),
        };
        if let Some(v) = &self.listen {
            c.proxy.listen = v.clone();
        }
        if let Some(v) = &self.upstream {
            c.upstream.address = v.clone();
        }
        if let Some(v) = &self.metrics {
            c.metrics.listen = Some(v.clone());
        }
        if let Some(v) = &self.audit_log {
            c.audit.path = Some(v.clone());
        }
        if let Some(v) = &self.policy {
            c.policy.path = Some(v.clone());
        } else if c.policy.path.is_none() && std::path::Path::new("policies").is_dir() {
            c.policy.path = Some("policies".into());
        }
        config::load::validate(&c).map_err(|(field, message)| config::ConfigError::Invalid {
            path: "command line".into(),
            line: 0,
            field,
            message,
        })?;
        Ok(c)
    }
}

/// Parses arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgwarden: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Demo(args) => runtime.block_on(crate::demo::run(args)),
        // Tools with exit codes of their own (0 fine, 1 findings, 2 errors).
        Command::Policy(args) => return runtime.block_on(crate::policy::command::run(args)),
        Command::Audit(args) => return crate::audit::cli::run(args),
        Command::Report(args) => crate::report::cli::run(args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgwarden: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up logging once; later calls are ignored.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the proxy until SIGTERM or SIGINT, reloading the config on SIGHUP.
pub async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.resolve()?;
    init_logging(&config.log.level, config.log.format);
    let server = Server::start(config).await?;
    run_until_signalled(server, Some(args)).await
}

/// Waits for signals: SIGHUP reloads (when `reload` is given), SIGTERM/SIGINT
/// drain and stop.
pub async fn run_until_signalled(
    server: Server,
    reload: Option<ServeArgs>,
) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let Some(args) = &reload else { continue };
                match args.resolve() {
                    Ok(c) => match server.ctx.reload(c) {
                        Ok(()) => tracing::info!("configuration reloaded"),
                        Err(e) => tracing::error!(error = %e, "reload refused; keeping the old configuration"),
                    },
                    Err(e) => tracing::error!(error = %e, "reload refused; keeping the old configuration"),
                }
            }
        }
    }
    tracing::info!("signal received; draining");
    server.shutdown();
    let ctx = server.ctx.clone();
    tokio::select! {
        _ = server.wait() => {}
        // A second signal skips the grace period.
        _ = term.recv() => ctx.shutdown.advance(crate::shutdown::Phase::Closing),
        _ = int.recv() => ctx.shutdown.advance(crate::shutdown::Phase::Closing),
    }
    Ok(())
}
