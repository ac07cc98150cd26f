//! `audit.durability = "strict"`: the real binary is SIGKILLed under load,
//! and every statement whose completion a client received has its record in
//! the audit log, which still verifies as a chain.

mod common;

use common::*;
use pgwarden::audit::verify::{verify_files, Severity, VerifyOptions};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

const CLIENTS: usize = 4;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "pgwarden did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the binary with `durability`, auditing to `dir/audit.log`.
fn spawn(dir: &std::path::Path, port: u16, durability: &str) -> Running {
    let pg = pg();
    let cfg = dir.join("pgwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\naddress = \"{}\"\n\n\
             [catalog]\nuser = \"{}\"\npassword = \"{}\"\n\n\
             [audit]\npath = \"{}\"\ndurability = \"{durability}\"\n",
            pg.addr(),
            SUPERUSER.0,
            SUPERUSER.1,
            dir.join("audit.log").display()
        ),
    )
    .expect("config");
    Running(
        Command::new(env!("CARGO_BIN_EXE_pgwarden"))
            .args(["serve", "--config", cfg.to_str().expect("utf-8 path")])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("pgwarden starts"),
    )
}

/// Client `i` inserts rows (simple protocol) and SELECTs them back
/// (extended protocol) until the proxy dies; returns the statements whose
/// answer it received in full.
async fn load(port: u16, i: usize, go: Arc<AtomicBool>) -> u64 {
    let conn = format!(
        "{} application_name=durable{i}",
        conn_str(port, SCRAM_USER.0, SCRAM_USER.1, "app")
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls)
        .await
        .expect("client connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut done = 0u64;
    while go.load(Ordering::Relaxed) {
        let sql = format!("INSERT INTO durable_t VALUES ({i}, {done})");
        if client.simple_query(&sql).await.is_err() {
            break;
        }
        done += 1;
        let n: i64 = match client
            .query_one(
                "SELECT count(*) FROM durable_t WHERE client = $1",
                &[&(i as i32)],
            )
            .await
        {
            Ok(r) => r.get(0),
            Err(_) => break,
        };
        assert!(n > 0);
        done += 1;
    }
    // Past the kill nothing more may be counted.
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_durability_loses_no_acknowledged_statement_on_sigkill() {
    let pg = pg();
    let admin = superuser(&pg, "app").await;
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS durable_t;
             CREATE TABLE durable_t (client int, n int);
             GRANT ALL ON durable_t TO scram_user;",
        )
        .await
        .expect("table");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut proxy = spawn(dir.path(), port, "strict");
    wait_listening(port).await;

    let go = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(load(port, i, go.clone())))
        .collect();
    // Let the load run, then kill the proxy in the middle of it.
    let log = dir.path().join("audit.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&log).map_or(0, |m| m.len()) < 200_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(proxy.0.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = proxy.0.wait();
    go.store(false, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for c in clients {
        acknowledged.push(c.await.expect("client task"));
    }

    let text = std::fs::read_to_string(&log).expect("audit log");
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for (i, &acked) in acknowledged.iter().enumerate() {
        let app = format!("durable{i}");
        let logged = records
            .iter()
            .filter(|r| {
                r.pointer("/event/action").and_then(Value::as_str) == Some("statement")
                    && r.pointer("/pgwarden/application_name")
                        .and_then(Value::as_str)
                        == Some(app.as_str())
                    && r.pointer("/event/outcome").and_then(Value::as_str) == Some("success")
                    && r.pointer("/db/operation/name")
                        .and_then(Value::as_str)
                        .is_some_and(|op| op == "INSERT" || op == "SELECT")
            })
            .count() as u64;
        assert!(acked > 10, "client {i} ran only {acked} statements");
        assert!(
            logged >= acked,
            "client {i}: {acked} statements acknowledged, {logged} recorded"
        );
    }

    // The chain of what was written holds; only the missing seal is noted.
    let report = verify_files(
        &[log],
        &VerifyOptions {
            public_key: None,
            strict: false,
        },
    )
    .expect("verify");
    let errors: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(report.records > 0);
}
