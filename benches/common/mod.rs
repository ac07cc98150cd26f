//! The bench's environment: a throwaway PostgreSQL cluster, the pgwarden
//! binary and (when installed) pgbouncer, each behind a guard that stops it
//! on drop, so a panic anywhere in the bench still cleans up.

pub mod run;

use pgwarden::cluster::{Binaries, Cluster, InitOptions};
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started process gets to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the bench started. Fields drop in declaration order, so the
/// proxies stop before the cluster, and the directory goes last.
pub struct Env {
    pub pgbouncer: Option<Service>,
    pub pgwarden: Option<Service>,
    /// pgwarden with statement analysis and the audit log on.
    pub pgwarden_audit: Option<Service>,
    /// pgwarden with the audit log and a demo-style policy.
    pub pgwarden_policy: Option<Service>,
    pub cluster: ClusterGuard,
    pub pgbench: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Makes the temp dir and starts the cluster.
    pub fn start_cluster(max_connections: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pgwarden-bench-")
            .tempdir()
            .expect("cannot create a temporary directory");
        // When we are root, PostgreSQL and pgbouncer run as `postgres` and
        // must be able to reach their files below this directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("cannot chmod the temporary directory");
        let bins = Binaries::find().unwrap_or_else(|e| panic!("{e}"));
        let pgbench = find_pgbench(&bins);
        let opts = InitOptions {
            port: free_port(),
            superuser: "postgres".into(),
            host_auth: "trust".into(),
            fast: true,
            // Enough for the idle-connection test plus pgbench and pgbouncer;
            // shared_buffers holds all of scale 10 so reads never touch disk.
            extra_conf: format!(
                "max_connections = {max_connections}\nshared_buffers = 256MB\n\
                 log_min_messages = warning\n"
            ),
        };
        let cluster = Cluster::init(bins, &dir.path().join("data"), &opts)
            .unwrap_or_else(|e| panic!("initdb failed: {e}"));
        cluster
            .start()
            .unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
        Self {
            pgbouncer: None,
            pgwarden: None,
            pgwarden_audit: None,
            pgwarden_policy: None,
            cluster: ClusterGuard(cluster),
            pgbench,
            dir,
        }
    }

    pub fn pg_port(&self) -> u16 {
        self.cluster.0.port
    }

    /// The cluster's Unix socket file (it listens in its data directory).
    pub fn pg_socket(&self) -> String {
        let c = &self.cluster.0;
        c.socket_dir()
            .join(format!(".s.PGSQL.{}", c.port))
            .display()
            .to_string()
    }

    /// The postmaster's pid, from the first line of postmaster.pid.
    pub fn postmaster_pid(&self) -> u32 {
        let p = self.cluster.0.data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{} has no pid on its first line", p.display()))
    }

    /// Starts the real pgwarden binary in front of the cluster.
    pub fn start_pgwarden(&mut self) -> u16 {
        let port = free_port();
        let log = self.dir.path().join("pgwarden.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgwarden"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &format!("127.0.0.1:{}", self.pg_port())])
            // Per-session info logs would cost time on the measured path.
            .env("RUST_LOG", "warn")
            .env_remove("PGWARDEN_CONFIG");
        self.pgwarden = Some(Service::spawn("pgwarden", cmd, port, &log));
        port
    }

    /// Starts a pgwarden named `name` from a config file with the audit
    /// trail on (a file in the bench directory) and `extra` TOML appended.
    pub fn spawn_audited(&self, name: &'static str, extra: &str) -> (u16, Service) {
        let upstream = format!("127.0.0.1:{}", self.pg_port());
        self.spawn_audited_via(name, &upstream, extra)
    }

    /// [`Env::spawn_audited`] with `upstream.address` = `upstream` (a
    /// `HOST:PORT` or [`Env::pg_socket`]).
    pub fn spawn_audited_via(
        &self,
        name: &'static str,
        upstream: &str,
        extra: &str,
    ) -> (u16, Service) {
        let port = free_port();
        let log = self.dir.path().join(format!("{name}.log"));
        let config = self.dir.path().join(format!("{name}.toml"));
        let audit = self.dir.path().join(format!("{name}-audit.log"));
        std::fs::write(
            &config,
            format!(
                "[proxy]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\naddress = \"{upstream}\"\ntls = \"disable\"\n\n\
                 [catalog]\nuser = \"postgres\"\n\n[audit]\npath = \"{}\"\nmax_file_size = 1073741824\n\n{extra}",
                audit.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {name}'s config: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgwarden"));
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env_remove("PGWARDEN_CONFIG");
        (port, Service::spawn(name, cmd, port, &log))
    }

    /// Starts a second pgwarden with the audit trail on (every statement
    /// analysed and written to a file in the bench directory).
    pub fn start_pgwarden_audited(&mut self) -> u16 {
        let (port, s) = self.spawn_audited("pgwarden+audit", "");
        self.pgwarden_audit = Some(s);
        port
    }

    /// Starts pgwarden with the audit trail and a demo-style policy over
    /// the pgbench tables: every statement is decided, and `abalance` is
    /// masked (bucket) in every row returned.
    pub fn start_pgwarden_policy(&mut self) -> u16 {
        let (port, s) = self.spawn_with_policy("pgwarden+policy", BENCH_POLICY, "");
        self.pgwarden_policy = Some(s);
        port
    }

    /// Starts an audited pgwarden whose policy directory holds `policy`,
    /// with `extra` appended to its config.
    pub fn spawn_with_policy(
        &self,
        name: &'static str,
        policy: &str,
        extra: &str,
    ) -> (u16, Service) {
        let policies = self.dir.path().join(format!("{name}-policies"));
        std::fs::create_dir_all(&policies).expect("policy dir");
        std::fs::write(policies.join("bench.toml"), policy).expect("policy file");
        let extra = format!(
            "[policy]\npath = \"{}\"\nhash_key = \"bench\"\n\n{extra}",
            policies.display()
        );
        self.spawn_audited(name, &extra)
    }

    /// Starts pgbouncer in session mode if it is installed; `None` if not.
    pub fn start_pgbouncer(&mut self) -> Option<u16> {
        let (port, service) = self.spawn_pgbouncer("pgbouncer", false)?;
        self.pgbouncer = Some(service);
        Some(port)
    }

    /// Starts a pgbouncer named `name` in session mode, reaching PostgreSQL
    /// over its Unix socket when `unix`; `None` if it is not installed.
    pub fn spawn_pgbouncer(&self, name: &'static str, unix: bool) -> Option<(u16, Service)> {
        let exe = find_pgbouncer()?;
        let port = free_port();
        let dir = self.dir.path().join(name.replace('/', "-"));
        std::fs::create_dir_all(&dir).expect("cannot create the pgbouncer directory");
        let host = if unix {
            self.cluster.0.socket_dir().display().to_string()
        } else {
            "127.0.0.1".to_owned()
        };
        let ini = write_pgbouncer_files(&dir, port, &host, self.pg_port());
        let run_as = postgres_user_if_root();
        if let Some((uid, gid)) = run_as {
            // pgbouncer refuses to run as root; it runs as `postgres`, which
            // must own its log file.
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("cannot chown the pgbouncer directory");
        }
        let mut cmd = Command::new(exe);
        cmd.arg(&ini);
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid).current_dir("/");
        }
        let log = dir.join("stderr.log");
        Some((port, Service::spawn(name, cmd, port, &log)))
    }
}

/// Starts a throwaway redis-server for `env` if one is installed; its URL
/// and the process (stopped on drop).
pub fn start_redis(env: &Env) -> Option<(String, Service)> {
    let exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .arg("--dir")
        .arg(env.dir.path());
    let log = env.dir.path().join("redis.log");
    let service = Service::spawn("redis-server", cmd, port, &log);
    Some((format!("redis://127.0.0.1:{port}"), service))
}

/// Stops the cluster on drop.
pub struct ClusterGuard(pub Cluster);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("warning: stopping PostgreSQL failed: {e}");
        }
    }
}

/// A child process listening on a port; SIGTERM, then SIGKILL, on drop.
pub struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Spawns `cmd` with output to `log` and waits until `port` accepts.
    fn spawn(name: &'static str, mut cmd: Command, port: u16, log: &Path) -> Self {
        let out =
            File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("cannot duplicate a log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut svc = Self {
            name,
            child,
            log: log.to_owned(),
        };
        svc.wait_ready(port);
        svc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before accepting connections:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not accept connections on port {port} within {READY_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first so it closes its upstream sessions cleanly.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: {} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the kernel picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a local port")
        .port()
}

/// pgbench from the server's bin directory (same version), else PATH.
fn find_pgbench(bins: &Binaries) -> PathBuf {
    let beside = bins.bin("pgbench");
    if beside.is_file() {
        return beside;
    }
    which("pgbench").expect("pgbench was not found beside initdb nor in PATH (apt-get install postgresql-contrib or postgresql-client)")
}

fn find_pgbouncer() -> Option<PathBuf> {
    which("pgbouncer").or_else(|| {
        let p = PathBuf::from("/usr/sbin/pgbouncer");
        p.is_file().then_some(p)
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `postgres` user's uid and gid when we are root (whom PostgreSQL tools refuse).
fn postgres_user_if_root() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("running as root but there is no 'postgres' OS user to run pgbouncer as");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Writes pgbouncer.ini and its userlist; returns the ini's path.
/// pgbouncer's files; `host` is an address or, starting with `/`, the
/// directory of PostgreSQL's Unix socket.
fn write_pgbouncer_files(dir: &Path, port: u16, host: &str, pg_port: u16) -> PathBuf {
    let userlist = dir.join("userlist.txt");
    // auth_type = trust still requires the user to be listed.
    std::fs::write(&userlist, "\"postgres\" \"\"\n").expect("cannot write pgbouncer's userlist");
    let ini = dir.join("pgbouncer.ini");
    let text = format!(
        "[databases]\n\
         postgres = host={host} port={pg_port} dbname=postgres\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {userlist}\n\
         pool_mode = session\n\
         max_client_conn = 200\n\
         default_pool_size = 20\n\
         logfile = {log}\n\
         log_connections = 0\n\
         log_disconnections = 0\n",
        userlist = userlist.display(),
        log = dir.join("pgbouncer.log").display(),
    );
    std::fs::write(&ini, text).expect("cannot write pgbouncer.ini");
    ini
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_field_kib(pid, "VmRSS:").unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

/// A `kB` field of /proc/<pid>/status; `None` if the process is gone.
pub fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Pids of a process's direct children (PostgreSQL backends are the postmaster's).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("PPid:"))?;
    line["PPid:".len()..].trim().parse().ok()
}

/// The policy of the "pgw+policy" runs: shaped like the demo policy
/// (classifications, role rules, a mask), over the pgbench tables.
pub const BENCH_POLICY: &str = r#"
mode = "enforce"

[classifications]
confidential = ["public.pgbench_accounts.abalance", "public.pgbench_tellers.tbalance", "public.pgbench_branches.bbalance"]
internal = ["public.pgbench_*"]

[[rule]]
name = "bench-reads-internal"
roles = ["*"]
on = ["internal"]
read = "allow"
write = "allow"

[[rule]]
name = "bench-balances-bucketed"
roles = ["postgres"]
on = ["confidential"]
read = "mask:bucket:1000"
write = "allow"

[[rule]]
name = "others-no-balances"
roles = ["*"]
except_roles = ["postgres"]
on = ["confidential"]
read = "deny"
write = "deny"
"#;
