//! Test harness: one throwaway PostgreSQL cluster per test binary (initdb in a
//! temp dir, free port, TLS with a generated certificate, users for every
//! auth method) and an in-process pgwarden per test.

#![allow(dead_code)]

pub mod guarded;
pub mod hook;
pub mod raw;
pub mod redis;

use pgwarden::cluster::{Binaries, Cluster, InitOptions};
use pgwarden::config::{Config, UpstreamTls};
use pgwarden::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_postgres::{Client, NoTls};

/// Users created in every test cluster, named after how they authenticate.
pub const SCRAM_USER: (&str, &str) = ("scram_user", "scram_pw");
/// Stored as an MD5 hash, pg_hba method md5.
pub const MD5_USER: (&str, &str) = ("md5_user", "md5_pw");
/// pg_hba method password (cleartext over the wire).
pub const PASSWORD_USER: (&str, &str) = ("password_user", "password_pw");
/// pg_hba method trust.
pub const TRUST_USER: &str = "trust_user";
/// Superuser, SCRAM over TCP.
pub const SUPERUSER: (&str, &str) = ("postgres", "postgres");

/// A running throwaway cluster.
pub struct Pg {
    /// The cluster.
    pub cluster: Cluster,
    /// Its TCP port.
    pub port: u16,
    /// Temp dir holding the data dir, certificates and logs.
    pub dir: PathBuf,
    /// The CA (PEM) that signed the server's certificate (for localhost/127.0.0.1).
    pub ca_pem: String,
}

impl Pg {
    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

static CLUSTER: OnceLock<Arc<Pg>> = OnceLock::new();
static TO_STOP: Mutex<Vec<(Cluster, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_clusters() {
    if let Ok(mut list) = TO_STOP.lock() {
        for (c, dir) in list.drain(..) {
            let _ = c.stop_immediate();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The shared cluster of this test binary, made on first use.
pub fn pg() -> Arc<Pg> {
    CLUSTER.get_or_init(|| Arc::new(new_cluster())).clone()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A test CA and a certificate it signed for localhost/127.0.0.1:
/// (CA PEM, cert PEM, key PEM).
pub fn ca_signed() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgwarden test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).expect("signed cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A self-signed certificate for `localhost`/127.0.0.1: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

fn make_tempdir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("pgwarden-test-")
        .tempdir()
        .expect("temp dir")
        .keep();
    // PostgreSQL runs as the postgres user when tests run as root.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Makes, configures and starts a new cluster, stopped when the test binary exits.
pub fn new_cluster() -> Pg {
    let bins = Binaries::find().expect("PostgreSQL server binaries (install postgresql)");
    let dir = make_tempdir();
    let port = free_port();
    let opts = InitOptions {
        port,
        superuser: "postgres".into(),
        host_auth: "scram-sha-256".into(),
        fast: true,
        extra_conf: "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                     max_connections = 120\nlog_connections = on\n"
            .into(),
    };
    let cluster = Cluster::init(bins, &dir.join("data"), &opts).expect("initdb");
    let (ca, cert, key) = ca_signed();
    cluster
        .write_private_file("server.crt", cert.as_bytes())
        .expect("cert");
    cluster
        .write_private_file("server.key", key.as_bytes())
        .expect("key");
    cluster
        .write_hba(
            "local all all trust\n\
             host all md5_user 127.0.0.1/32 md5\n\
             host all password_user 127.0.0.1/32 password\n\
             host all trust_user 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba");
    cluster.start().expect("start PostgreSQL");
    {
        let mut list = TO_STOP.lock().expect("lock");
        if list.is_empty() {
            // SAFETY: registering a plain extern "C" fn with atexit has no preconditions.
            unsafe {
                libc::atexit(stop_clusters);
            }
        }
        list.push((cluster.clone(), dir.clone()));
    }
    let pg = Pg {
        cluster,
        port,
        dir,
        ca_pem: ca,
    };
    setup_users(&pg);
    pg
}

/// Runs SQL as superuser over the Unix socket, synchronously (for setup).
pub fn psql_admin(pg: &Pg, db: &str, sql: &str) -> String {
    let out = std::process::Command::new(pg.cluster.bins.bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h"])
        .arg(pg.cluster.socket_dir())
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup_users(pg: &Pg) {
    psql_admin(
        pg,
        "postgres",
        &format!(
            "ALTER ROLE postgres PASSWORD '{}';
             CREATE ROLE {} LOGIN PASSWORD '{}';
             SET password_encryption = 'md5';
             CREATE ROLE {} LOGIN PASSWORD '{}';
             RESET password_encryption;
             CREATE ROLE {} LOGIN PASSWORD '{}';
             CREATE ROLE {} LOGIN;",
            SUPERUSER.1,
            SCRAM_USER.0,
            SCRAM_USER.1,
            MD5_USER.0,
            MD5_USER.1,
            PASSWORD_USER.0,
            PASSWORD_USER.1,
            TRUST_USER
        ),
    );
    psql_admin(pg, "postgres", "CREATE DATABASE app");
    psql_admin(pg, "app", "GRANT ALL ON SCHEMA public TO PUBLIC;");
}

/// A pgwarden running in-process in front of a cluster.
pub struct Proxy {
    /// The server handle.
    pub server: Server,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Temp files (TLS material) of this proxy.
    pub dir: PathBuf,
    /// The proxy's own certificate (PEM), when TLS is on.
    pub cert_pem: Option<String>,
}

impl Proxy {
    /// Port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The base test configuration for a cluster: free ports, metrics on.
pub fn config_for(pg: &Pg) -> Config {
    let mut c = Config::default();
    c.proxy.listen = "127.0.0.1:0".into();
    c.upstream.address = pg.addr();
    c.upstream.tls = UpstreamTls::Prefer;
    c.metrics.listen = Some("127.0.0.1:0".into());
    c
}

/// Starts a proxy with `config`; with `tls` it also gets a fresh certificate.
pub async fn start_proxy_with(mut config: Config, tls: bool) -> Proxy {
    init_test_logging();
    let dir = make_tempdir();
    let mut cert_pem = None;
    if tls {
        let (cert, key) = self_signed();
        let cp = dir.join("proxy.crt");
        let kp = dir.join("proxy.key");
        std::fs::write(&cp, &cert).expect("write cert");
        std::fs::write(&kp, &key).expect("write key");
        config.tls.cert_file = Some(cp);
        config.tls.key_file = Some(kp);
        cert_pem = Some(cert);
    }
    pgwarden::config::load::validate(&config).expect("valid test config");
    let server = Server::start(config).await.expect("proxy starts");
    let addr = server.local_addr;
    Proxy {
        server,
        addr,
        dir,
        cert_pem,
    }
}

/// Starts a plaintext proxy in front of the shared cluster.
pub async fn start_proxy() -> Proxy {
    let pg = pg();
    start_proxy_with(config_for(&pg), false).await
}

fn init_test_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A libpq-style connection string through `port`.
pub fn conn_str(port: u16, user: &str, password: &str, db: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname={db} connect_timeout=10"
    )
}

/// Connects with tokio-postgres without TLS and drives the connection in a task.
pub async fn connect(port: u16, user: &str, password: &str, db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&conn_str(port, user, password, db), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Connects as the SCRAM user to database `app` through the proxy.
pub async fn connect_app(proxy: &Proxy) -> Client {
    connect(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app").await
}

/// A rustls client config that trusts exactly `cert_pem`.
pub fn rustls_trusting(cert_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Runs a program from the PostgreSQL bin dir (psql, pgbench) and returns its output.
pub fn run_pg_tool(pg: &Pg, program: &str, args: &[&str], password: &str) -> std::process::Output {
    let bin = pg.cluster.bins.bin(program);
    let bin = if bin.is_file() {
        bin
    } else {
        PathBuf::from(program)
    };
    std::process::Command::new(bin)
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Fetches an HTTP path from the metrics endpoint: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Reads one counter or gauge value from a Prometheus text body.
pub fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| {
            l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && !l.starts_with('#')
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Path helper for files in the crate.
pub fn crate_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A superuser connection to `db` on the cluster, over TCP.
pub async fn superuser(pg: &Pg, db: &str) -> Client {
    connect(pg.port, SUPERUSER.0, SUPERUSER.1, db).await
}

/// Creates database `name` holding the HR demo schema with `employees`
/// employees and returns a superuser connection to it.
pub async fn hr_database(pg: &Pg, name: &str, employees: usize) -> Client {
    // load_hr creates and alters cluster-wide roles: two loads at once race.
    static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = LOADING.lock().await;
    let admin = superuser(pg, "postgres").await;
    pgwarden::demo::create_database(&admin, name)
        .await
        .expect("create database");
    let client = superuser(pg, name).await;
    pgwarden::demo::load_hr(&client, employees, 1)
        .await
        .expect("load HR");
    client
}

/// Tries to log in through `port` and returns the server error the login
/// fails with.
pub async fn login_error(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> tokio_postgres::error::DbError {
    let err = tokio_postgres::connect(&conn_str(port, user, password, db), NoTls)
        .await
        .err()
        .expect("login must fail");
    err.as_db_error()
        .cloned()
        .unwrap_or_else(|| panic!("not a server error: {err}"))
}
