//! A local PostgreSQL cluster made with `initdb`, for the demo and the tests.
//!
//! When pgwarden runs as root, PostgreSQL (which refuses to run as root) is
//! run as the `postgres` OS user and the data directory is given to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use thiserror::Error;

/// Why a cluster could not be made, started or stopped.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in pg_config --bindir, \
         /usr/lib/postgresql/*/bin or PATH.\n  Install them, e.g.: sudo apt-get install postgresql \
         (Debian/Ubuntu), sudo dnf install postgresql-server (Fedora/RHEL), brew install postgresql (macOS)"
    )]
    NoBinaries,
    /// Running as root but there is no `postgres` user to run the server as.
    #[error("running as root, but there is no 'postgres' OS user to run PostgreSQL as (create one with: useradd -r postgres)")]
    NoPostgresUser,
    /// A command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its output or error.
        detail: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory holding initdb, pg_ctl and postgres.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The bin directory.
    pub dir: PathBuf,
}

impl Binaries {
    /// Looks in `pg_config --bindir`, then /usr/lib/postgresql/*/bin (newest
    /// first), then PATH.
    pub fn find() -> Result<Self, ClusterError> {
        let complete = |d: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| d.join(b).is_file())
        };
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && complete(&dir) {
                return Ok(Self { dir });
            }
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .filter(|(_, d)| complete(d))
                .collect();
            versions.sort();
            if let Some((_, dir)) = versions.pop() {
                return Ok(Self { dir });
            }
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            if complete(&dir) {
                return Ok(Self { dir });
            }
        }
        Err(ClusterError::NoBinaries)
    }

    /// Path of one program.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The OS user PostgreSQL runs as, when pgwarden is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, ClusterError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some(RunAs {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        _ => Err(ClusterError::NoPostgresUser),
    }
}

/// How to initialise a cluster.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// TCP port.
    pub port: u16,
    /// Superuser name (trust over the Unix socket in the data directory).
    pub superuser: String,
    /// Method for TCP connections in the default pg_hba.conf.
    pub host_auth: String,
    /// Turn off fsync and friends (throwaway clusters only).
    pub fast: bool,
    /// Extra postgresql.conf lines.
    pub extra_conf: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            port: 5432,
            superuser: "postgres".into(),
            host_auth: "scram-sha-256".into(),
            fast: false,
            extra_conf: String::new(),
        }
    }
}

/// A cluster's data directory and how to run it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Server binaries.
    pub bins: Binaries,
    /// Data directory.
    pub data_dir: PathBuf,
    /// TCP port (also the socket name in `data_dir`).
    pub port: u16,
    run_as: Option<RunAs>,
}

impl Cluster {
    /// An existing data directory.
    pub fn existing(bins: Binaries, data_dir: &Path, port: u16) -> Result<Self, ClusterError> {
        Ok(Self {
            bins,
            data_dir: absolute(data_dir)?,
            port,
            run_as: run_as()?,
        })
    }

    /// Whether `data_dir` already holds a cluster.
    pub fn is_initialised(data_dir: &Path) -> bool {
        data_dir.join("PG_VERSION").is_file()
    }

    /// Runs initdb in `data_dir` (created if missing) and writes the config.
    pub fn init(bins: Binaries, data_dir: &Path, opts: &InitOptions) -> Result<Self, ClusterError> {
        let data_dir = absolute(data_dir)?;
        let cluster = Self {
            bins,
            data_dir: data_dir.clone(),
            port: opts.port,
            run_as: run_as()?,
        };
        std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
        cluster.give_to_postgres(&data_dir)?;
        let mut cmd = cluster.command("initdb");
        cmd.arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                &opts.superuser,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .arg("--auth-local=trust")
            .arg(format!("--auth-host={}", opts.host_auth));
        if opts.fast {
            cmd.arg("--no-sync");
        }
        run(cmd, "initdb")?;
        let mut conf = format!(
            "\n# written by pgwarden\nport = {}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\npassword_encryption = 'scram-sha-256'\n",
            opts.port,
            data_dir.display()
        );
        if opts.fast {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        conf.push_str(&opts.extra_conf);
        cluster.append_conf(&conf)?;
        Ok(cluster)
    }

    /// Appends lines to postgresql.conf.
    pub fn append_conf(&self, text: &str) -> Result<(), ClusterError> {
        use std::io::Write;
        let p = self.data_dir.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .map_err(io_err(&p))?;
        f.write_all(text.as_bytes()).map_err(io_err(&p))
    }

    /// Replaces pg_hba.conf.
    pub fn write_hba(&self, text: &str) -> Result<(), ClusterError> {
        let p = self.data_dir.join("pg_hba.conf");
        std::fs::write(&p, text).map_err(io_err(&p))?;
        self.give_to_postgres(&p)
    }

    /// Writes a file into the data directory, owned by the server's user, mode 0600.
    pub fn write_private_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, ClusterError> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.data_dir.join(name);
        std::fs::write(&p, contents).map_err(io_err(&p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io_err(&p))?;
        self.give_to_postgres(&p)?;
        Ok(p)
    }

    /// The server log file.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"]);
        run(cmd, "pg_ctl start").map_err(|e| self.with_log(e))
    }

    /// Stops the server (fast mode: clients are disconnected).
    pub fn stop(&self) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(cmd, "pg_ctl stop")
    }

    /// Stops the server immediately, as a crash would.
    pub fn stop_immediate(&self) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", "immediate", "stop"]);
        run(cmd, "pg_ctl stop")
    }

    /// A libpq-style connection string for the superuser over the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.data_dir
    }

    fn with_log(&self, e: ClusterError) -> ClusterError {
        let tail = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        match e {
            ClusterError::Command { command, detail } => ClusterError::Command {
                command,
                detail: format!(
                    "{detail}\n--- last lines of {} ---\n{}",
                    self.log_file().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            },
            other => other,
        }
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.bins.bin(program));
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid);
            // initdb and pg_ctl look at HOME and the cwd; give them ones they can read.
            cmd.current_dir("/").env("HOME", &self.data_dir);
        }
        cmd.env("LC_ALL", "C").env_remove("PGDATA");
        cmd
    }

    fn give_to_postgres(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some(r) = self.run_as {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(r.uid)),
                Some(nix::unistd::Gid::from_raw(r.gid)),
            )
            .map_err(|e| ClusterError::Io {
                path: path.to_owned(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> Result<PathBuf, ClusterError> {
    std::path::absolute(p).map_err(io_err(p))
}

fn run(mut cmd: Command, what: &str) -> Result<(), ClusterError> {
    let out = cmd.output().map_err(|e| ClusterError::Command {
        command: what.into(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ClusterError::Command {
        command: what.into(),
        detail: format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}
