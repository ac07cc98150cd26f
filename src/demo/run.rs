//! The `pgwarden demo` command: cluster, database, proxy, banner, shutdown.

use super::{schema, DemoArgs, DemoError};
use crate::cluster::{Binaries, Cluster, InitOptions};
use crate::config::{Config, LogFormat, UpstreamTls};
use crate::server::Server;
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Runs the demo until Ctrl-C or SIGTERM, then stops the proxy and the
/// PostgreSQL it started.
pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::cli::init_logging("info", LogFormat::Text);
    // Registered first so Ctrl-C during setup is seen (and the cluster
    // stopped) instead of killing the process half-way.
    let mut signals = Signals::new()?;
    let bins = Binaries::find()?;
    let dir = args.data_dir.clone();

    let (cluster, started_here) = if !Cluster::is_initialised(&dir) {
        println!("Creating a PostgreSQL cluster in {} ...", dir.display());
        let opts = InitOptions {
            port: args.pg_port,
            superuser: "postgres".into(),
            host_auth: "scram-sha-256".into(),
            fast: false,
            extra_conf: String::new(),
        };
        let cluster = blocking(move || Cluster::init(bins, &dir, &opts)).await??;
        start(&cluster).await?;
        (cluster, true)
    } else if let Some((pid, port)) = running_postmaster(&dir) {
        println!(
            "PostgreSQL is already running in {} (pid {pid}, port {port}); reusing it and leaving it running.",
            dir.display()
        );
        (Cluster::existing(bins, &dir, port)?, false)
    } else {
        let cluster = Cluster::existing(bins, &dir, args.pg_port)?;
        if configured_port(&cluster.data_dir) != Some(args.pg_port) {
            // The last setting in postgresql.conf wins.
            cluster.append_conf(&format!("port = {}\n", args.pg_port))?;
        }
        println!(
            "Reusing the PostgreSQL cluster in {} ...",
            cluster.data_dir.display()
        );
        start(&cluster).await?;
        (cluster, true)
    };

    // Also loads a reused cluster whose first load was interrupted.
    let setup = async {
        let admin = schema::connect_superuser(&cluster, "postgres").await?;
        schema::create_hr_database(&admin).await?;
        let hr = schema::connect_superuser(&cluster, schema::HR_DATABASE).await?;
        if !schema::is_loaded(&hr).await? {
            println!(
                "Loading the HR schema and {} synthetic employees (seed {}) ...",
                args.employees, args.seed
            );
            schema::load_hr(&hr, args.employees, args.seed).await?;
        }
        let mut config = Config::default();
        config.proxy.listen = format!("127.0.0.1:{}", args.port);
        config.proxy.shutdown_grace = crate::config::HumanDuration::from_secs(5);
        config.upstream.address = format!("127.0.0.1:{}", cluster.port);
        config.upstream.tls = UpstreamTls::Disable;
        config.audit.path = args.audit_log.clone();
        config.policy.path = Some(demo_policy(&args)?);
        // The schema creates this role for pgwarden's catalog reader.
        config.catalog.user = "pgwarden".into();
        config.catalog.password = Some("pgwarden".into());
        Ok(Server::start(config).await?)
    };
    let server = match signals.until(setup).await {
        Ok(server) => server,
        Err(e) => {
            if started_here {
                stop(&cluster).await;
            }
            return Err(e.into());
        }
    };

    print_banner(&server, &cluster, started_here);
    // run_until_signalled registers its own streams from here on.
    drop(signals);
    let result = crate::cli::run_until_signalled(server, None).await;
    if started_here {
        stop(&cluster).await;
    }
    println!("pgwarden demo stopped.");
    result
}

fn print_banner(server: &Server, cluster: &Cluster, started_here: bool) {
    let addr = server.local_addr;
    let width = schema::ROLES
        .iter()
        .map(|(r, _)| r.len())
        .max()
        .unwrap_or(0);
    let mut roles = String::new();
    for (role, what) in schema::ROLES {
        roles.push_str(&format!("    {role:width$}  {what}\n"));
    }
    let stop_line = if started_here {
        "Ctrl-C stops both."
    } else {
        "Ctrl-C stops pgwarden; PostgreSQL was already running and keeps running."
    };
    println!(
        "\npgwarden demo is ready.\n\n  \
         Connect through pgwarden:\n    \
         psql \"postgresql://hr_analyst:hr_analyst@{addr}/hr\"\n\n  \
         Roles (the password is the role name):\n{roles}\n  \
         PostgreSQL directly (bypassing pgwarden): 127.0.0.1:{pg_port}, database hr\n  \
         Data directory: {dir} (server log: {log})\n\n{stop_line}\n",
        pg_port = cluster.port,
        dir = cluster.data_dir.display(),
        log = cluster.log_file().display(),
    );
}

/// Runs a blocking cluster operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DemoError> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

async fn start(cluster: &Cluster) -> Result<(), DemoError> {
    let c = cluster.clone();
    blocking(move || c.start()).await??;
    Ok(())
}

/// Stops the cluster, reporting (not returning) a failure: this runs on the
/// way out, after the real outcome is known.
async fn stop(cluster: &Cluster) {
    let c = cluster.clone();
    match blocking(move || c.stop()).await {
        Ok(Ok(())) => println!("PostgreSQL stopped."),
        Ok(Err(e)) => eprintln!("pgwarden: stopping PostgreSQL: {e}"),
        Err(e) => eprintln!("pgwarden: stopping PostgreSQL: {e}"),
    }
}

/// SIGINT and SIGTERM during setup.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn new() -> Result<Self, DemoError> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(DemoError::Signals)?,
            term: signal(SignalKind::terminate()).map_err(DemoError::Signals)?,
        })
    }

    /// Runs `f`, giving up with [`DemoError::Interrupted`] on a signal.
    async fn until<T>(
        &mut self,
        f: impl Future<Output = Result<T, DemoError>>,
    ) -> Result<T, DemoError> {
        tokio::select! {
            r = f => r,
            _ = self.int.recv() => Err(DemoError::Interrupted),
            _ = self.term.recv() => Err(DemoError::Interrupted),
        }
    }
}

/// The pid and port of a live postmaster owning `data_dir`, from
/// postmaster.pid (line 1: pid, line 4: port).
fn running_postmaster(data_dir: &Path) -> Option<(i32, u16)> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.nth(2)?.trim().parse().ok()?;
    // Signal 0 only checks that the process exists; a stale file (after a
    // crash) is left for pg_ctl start to deal with.
    let alive = pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    alive.then_some((pid, port))
}

/// The port postgresql.conf sets (its last `port =` line), if any.
fn configured_port(data_dir: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(data_dir.join("postgresql.conf")).ok()?;
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next()?.trim();
            let (k, v) = l.split_once('=')?;
            (k.trim() == "port").then(|| v.trim().trim_matches('\'').parse().ok())?
        })
        .next_back()
}

/// The demo policy shipped with pgwarden (policies/hr.toml).
const DEMO_POLICY: &str = include_str!("../../policies/hr.toml");

/// The policy the demo runs with: `--policy`, else `./policies`, else the
/// built-in one written into the data directory.
fn demo_policy(args: &DemoArgs) -> Result<PathBuf, DemoError> {
    if let Some(p) = &args.policy {
        return Ok(p.clone());
    }
    let local = PathBuf::from("policies");
    if local.join("hr.toml").is_file() {
        return Ok(local);
    }
    let dir = args.data_dir.join("policies");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hr.toml"), DEMO_POLICY)?;
    Ok(dir)
}
