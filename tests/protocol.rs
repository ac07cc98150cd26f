//! The proxy's own protocol rules: limits, malformed input, startup
//! negotiation, timeouts, client limits, disconnects, shutdown and metrics.

mod common;

use common::raw::Raw;
use common::*;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_gets_fatal_08p01() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.proxy.max_message_size = 64 * 1024;
    let proxy = start_proxy_with(cfg, false).await;
    let mut r = Raw::login_trust(proxy.port(), TRUST_USER, "app").await;
    // Claims 1 GiB: refused from the header alone, nothing is allocated for it.
    r.send(&[b'Q', 0x3f, 0xff, 0xff, 0xff]).await;
    let m = r.recv_until(b'E').await.expect("an ErrorResponse");
    assert_eq!(m.sqlstate().as_deref(), Some("08P01"));
    assert_eq!(m.field(b'S').as_deref(), Some("FATAL"));
    assert!(m.field(b'M').unwrap().contains("exceeds the maximum"));
    assert!(r.closed().await);
    // A message just under the limit is fine.
    let c = connect(proxy.port(), TRUST_USER, "unused", "app").await;
    let big = "x".repeat(60 * 1024);
    let n: i32 = c
        .query_one(&format!("SELECT length('{big}')"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 60 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_fatal_08p01() {
    let proxy = start_proxy().await;
    // Unknown message type after login.
    let mut r = Raw::login_trust(proxy.port(), TRUST_USER, "app").await;
    r.send_msg(b'!', b"").await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("08P01"));
    assert!(m
        .field(b'M')
        .unwrap()
        .contains("invalid frontend message type 33"));
    assert!(r.closed().await);
    // A length smaller than the length field itself.
    let mut r = Raw::login_trust(proxy.port(), TRUST_USER, "app").await;
    r.send(&[b'Q', 0, 0, 0, 2]).await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("08P01"));
    // A startup packet over 10,000 bytes.
    let mut r = Raw::connect(proxy.port()).await;
    r.send(&20_000i32.to_be_bytes()).await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("08P01"));
    assert!(m.field(b'M').unwrap().contains("startup packet"));
    // A startup packet with an unterminated parameter list.
    let mut r = Raw::connect(proxy.port()).await;
    r.send(&[0, 0, 0, 13, 0, 3, 0, 0, b'u', b's', b'e', b'r', 0])
        .await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("08P01"));
    // Protocol 2 is not spoken.
    let mut r = Raw::connect(proxy.port()).await;
    r.send(&[0, 0, 0, 9, 0, 2, 0, 0, 0]).await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("0A000"));
    // No user name.
    let mut r = Raw::connect(proxy.port()).await;
    r.startup(0, &[("database", "app")]).await;
    let m = r.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("28000"));
    // The proxy still serves everyone else.
    let c = connect_app(&proxy).await;
    c.simple_query("SELECT 1").await.unwrap();
    let (_, body) = http_get(proxy.server.metrics_addr.unwrap(), "/metrics").await;
    assert!(metric(&body, "pgwarden_clients_refused_total{reason=\"protocol\"}") >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gssenc_requests_without_tls() {
    let proxy = start_proxy().await;
    let mut r = Raw::connect(proxy.port()).await;
    // GSSENCRequest gets 'N', then SSLRequest gets 'N', then the startup proceeds.
    r.send(&[0, 0, 0, 8, 4, 210, 22, 48]).await;
    let mut b = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut r.s, &mut b)
        .await
        .unwrap();
    assert_eq!(&b, b"N");
    r.send(&[0, 0, 0, 8, 4, 210, 22, 47]).await;
    tokio::io::AsyncReadExt::read_exact(&mut r.s, &mut b)
        .await
        .unwrap();
    assert_eq!(&b, b"N");
    r.startup(0, &[("user", TRUST_USER), ("database", "app")])
        .await;
    assert_eq!(r.recv_until(b'Z').await.unwrap().tag, b'Z');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_minor_version_is_negotiated_down() {
    let proxy = start_proxy().await;
    let mut r = Raw::connect(proxy.port()).await;
    r.startup(
        2,
        &[
            ("user", TRUST_USER),
            ("database", "app"),
            ("_pq_.future_option", "on"),
        ],
    )
    .await;
    let v = r.recv().await.unwrap();
    assert_eq!(v.tag, b'v', "NegotiateProtocolVersion first");
    assert_eq!(&v.body[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&v.body[8..], b"_pq_.future_option\0");
    let z = r.recv_until(b'Z').await.unwrap();
    assert_eq!(z.body, b"I");
    r.send_msg(b'Q', b"SELECT 1\0").await;
    let d = r.recv_until(b'D').await.unwrap();
    assert_eq!(&d.body[6..], b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_knows_its_backend_key_is_synthetic() {
    let proxy = start_proxy().await;
    let mut r = Raw::connect(proxy.port()).await;
    r.startup(0, &[("user", TRUST_USER), ("database", "app")])
        .await;
    let k = r.recv_until(b'K').await.unwrap();
    let pid = i32::from_be_bytes(k.body[..4].try_into().unwrap());
    r.recv_until(b'Z').await.unwrap();
    r.send_msg(b'Q', b"SELECT pg_backend_pid()\0").await;
    let d = r.recv_until(b'D').await.unwrap();
    let real: i32 = String::from_utf8_lossy(&d.body[6..]).parse().unwrap();
    assert_ne!(pid, real, "the client must not see the real backend key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_timeout_closes_silent_connections() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.proxy.startup_timeout = pgwarden::config::HumanDuration(Duration::from_millis(500));
    let proxy = start_proxy_with(cfg, false).await;
    let started = Instant::now();
    let mut r = Raw::connect(proxy.port()).await;
    assert!(r.closed().await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Half a startup packet is no better.
    let mut r = Raw::connect(proxy.port()).await;
    r.send(&[0, 0, 0, 40, 0, 3]).await;
    assert!(r.closed().await);
    let (_, body) = http_get(proxy.server.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(
        metric(&body, "pgwarden_clients_refused_total{reason=\"timeout\"}"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_answers_53300() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.proxy.max_clients = 2;
    let proxy = start_proxy_with(cfg, false).await;
    let a = connect_app(&proxy).await;
    let b = connect_app(&proxy).await;
    let err = tokio_postgres::connect(
        &conn_str(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app"),
        NoTls,
    )
    .await
    .err()
    .unwrap();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "53300");
    assert_eq!(db.message(), "sorry, too many clients already");
    drop(a);
    // The slot frees once the session is gone.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_postgres::connect(
            &conn_str(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app"),
            NoTls,
        )
        .await
        .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a slot must free up after a client leaves");
    b.simple_query("SELECT 1").await.unwrap();
}

async fn backend_alive(admin: &tokio_postgres::Client, pid: i32) -> bool {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_query_cancels_and_closes_backend() {
    let pg = pg();
    let proxy = start_proxy().await;
    let admin = connect(pg.port, SUPERUSER.0, SUPERUSER.1, "postgres").await;
    let mut r = Raw::login_trust(proxy.port(), TRUST_USER, "app").await;
    r.send_msg(b'Q', b"SELECT pg_backend_pid()\0").await;
    let d = r.recv_until(b'D').await.unwrap();
    let pid: i32 = String::from_utf8_lossy(&d.body[6..]).parse().unwrap();
    r.recv_until(b'Z').await.unwrap();
    r.send_msg(b'Q', b"SELECT pg_sleep(60)\0").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(backend_alive(&admin, pid).await);
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend_alive(&admin, pid).await {
        assert!(
            Instant::now() < deadline,
            "backend {pid} still alive after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_running_queries_finish() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.proxy.shutdown_grace = pgwarden::config::HumanDuration(Duration::from_secs(10));
    let proxy = start_proxy_with(cfg, false).await;
    let port = proxy.port();
    let mut idle = Raw::login_trust(port, TRUST_USER, "app").await;
    let busy = connect_app(&proxy).await;
    let running = tokio::spawn(async move { busy.query_one("SELECT pg_sleep(1.5), 7", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = proxy.server.metrics_addr.unwrap();
    let Proxy { server, .. } = &proxy;
    server.shutdown();
    // The idle session is told at once, with PostgreSQL's shutdown SQLSTATE.
    let m = idle.recv_until(b'E').await.unwrap();
    assert_eq!(m.sqlstate().as_deref(), Some("57P01"));
    // New clients are refused (the listener is closed).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    let (status, _) = http_get(metrics, "/readyz").await;
    assert_eq!(status, 503);
    // The running statement completes with its result.
    let row = running
        .await
        .unwrap()
        .expect("query finishes during the grace period");
    assert_eq!(row.get::<_, i32>(1), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_expiry_closes_busy_sessions() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.proxy.shutdown_grace = pgwarden::config::HumanDuration(Duration::from_millis(500));
    let proxy = start_proxy_with(cfg, false).await;
    let busy = connect_app(&proxy).await;
    let running = tokio::spawn(async move { busy.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    proxy.server.shutdown();
    let r = running.await.unwrap();
    let err = r.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.code().map(|c| c.code()), Some("57P01"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints() {
    let proxy = start_proxy().await;
    let m = proxy.server.metrics_addr.unwrap();
    let c = connect_app(&proxy).await;
    for _ in 0..5 {
        c.simple_query("SELECT 1").await.unwrap();
    }
    // A statement's proxy time is observed just after its last bytes are
    // written, which can be a moment after the client already has them.
    let mut body = String::new();
    for _ in 0..50 {
        let (status, b) = http_get(m, "/metrics").await;
        assert_eq!(status, 200);
        body = b;
        if metric(&body, "pgwarden_statement_proxy_seconds_count") >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&body, "pgwarden_client_connections_open"), 1.0);
    assert!(metric(&body, "pgwarden_client_connections_total") >= 1.0);
    assert!(metric(&body, "pgwarden_messages_total{direction=\"frontend\"}") >= 5.0);
    assert!(metric(&body, "pgwarden_bytes_total{direction=\"backend\"}") > 100.0);
    assert!(metric(&body, "pgwarden_statement_proxy_seconds_count") >= 5.0);
    let (status, body) = http_get(m, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    // With nothing listening upstream, health fails.
    let mut cfg = config_for(&pg());
    cfg.upstream.address = format!("127.0.0.1:{}", free_port());
    let dead = start_proxy_with(cfg, false).await;
    let (status, body) = http_get(dead.server.metrics_addr.unwrap(), "/healthz").await;
    assert_eq!(status, 503, "{body}");
    // And a client gets a clear FATAL instead of a hang.
    assert_eq!(
        login_error(dead.port(), SCRAM_USER.0, SCRAM_USER.1, "app")
            .await
            .code()
            .code(),
        "08001"
    );
}

#[test]
fn bad_config_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[proxy]\nlisten = \"127.0.0.1:6432\"\nmax_clients = \"lots\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .args(["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: proxy.max_clients", p.display())),
        "{err}"
    );
    // The shipped example parses.
    pgwarden::config::load_file(&crate_path("deploy/pgwarden.toml"))
        .expect("deploy/pgwarden.toml is valid");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--config", "--listen", "--upstream", "--metrics"] {
        assert!(help.contains(flag), "{help}");
    }
}
