//! PostgreSQL going away under the proxy: restarts and crashes. These tests
//! stop their own cluster, so they live apart from the shared one.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restart_and_crash() {
    let pg = new_cluster();
    let proxy = start_proxy_with(config_for(&pg), false).await;
    let victim = connect(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app").await;
    victim.simple_query("SELECT 1").await.unwrap();

    // A fast shutdown: PostgreSQL tells the client itself (57P01).
    pg.cluster.stop().unwrap();
    let err = victim.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        victim.is_closed() || err.is_closed() || err.code().is_some(),
        "{err}"
    );
    // While PostgreSQL is down, new clients get a clear FATAL, not a hang.
    assert_eq!(
        login_error(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app")
            .await
            .code()
            .code(),
        "08001"
    );

    pg.cluster.start().unwrap();
    let c = connect(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app").await;
    c.simple_query("SELECT 1").await.unwrap();

    // A crash (immediate stop): pgwarden sends the FATAL itself.
    let mut raw = raw::Raw::login_trust(proxy.port(), TRUST_USER, "app").await;
    pg.cluster.stop_immediate().unwrap();
    let mut sqlstates = Vec::new();
    while let Some(m) = raw.recv().await {
        if m.tag == b'E' {
            sqlstates.push(m.sqlstate().unwrap_or_default());
        }
    }
    assert!(
        sqlstates
            .iter()
            .any(|s| s == "08006" || s == "57P01" || s == "57P02"),
        "{sqlstates:?}"
    );
    pg.cluster.start().unwrap();
    // The proxy kept serving: a new session works after the restart.
    let mut ok = false;
    for _ in 0..50 {
        if let Ok((c, conn)) = tokio_postgres::connect(
            &conn_str(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app"),
            tokio_postgres::NoTls,
        )
        .await
        {
            tokio::spawn(conn);
            ok = c.simple_query("SELECT 1").await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok);
}
