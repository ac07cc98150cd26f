//! The `pgwarden` binary itself: flags, config file, SIGHUP reload and
//! SIGTERM drain.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).expect("kill");
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

async fn try_login(port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (c, conn) =
        tokio_postgres::connect(&conn_str(port, SCRAM_USER.0, SCRAM_USER.1, "app"), NoTls).await?;
    tokio::spawn(conn);
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_sighup_and_drain_on_sigterm() {
    let pg = pg();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pgwarden.toml");
    let port = free_port();
    let write = |max: usize| {
        std::fs::write(
            &cfg,
            format!(
                "[proxy]\nlisten = \"127.0.0.1:{port}\"\nmax_clients = {max}\n\n[upstream]\naddress = \"{}\"\n",
                pg.addr()
            ),
        )
        .unwrap()
    };
    write(1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let running = Running(child);
    wait_listening(port).await;

    let first = try_login(port).await.unwrap();
    let err = try_login(port).await.err().unwrap();
    assert_eq!(err.as_db_error().unwrap().code().code(), "53300");

    // A broken file is refused on reload; the old config stays in force.
    std::fs::write(&cfg, "[proxy]\nmax_clients = \"many\"\n").unwrap();
    signal(&running.0, nix::sys::signal::Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(try_login(port).await.is_err());

    write(5);
    signal(&running.0, nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        if let Ok(c) = try_login(port).await {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "reload did not raise max_clients"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    second.simple_query("SELECT 1").await.unwrap();

    // SIGTERM: a running statement finishes, then the process exits 0.
    let slow = tokio::spawn(async move { first.query_one("SELECT pg_sleep(1), 5", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&running.0, nix::sys::signal::Signal::SIGTERM);
    let row = slow
        .await
        .unwrap()
        .expect("statement completes during drain");
    assert_eq!(row.get::<_, i32>(1), 5);
    let mut running = running;
    let status = tokio::task::spawn_blocking(move || {
        let s = running.0.wait();
        std::mem::forget(running);
        s
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success());
    let logs = logs.join().unwrap().join("\n");
    assert!(logs.contains("reload refused"), "{logs}");
    assert!(
        logs.contains("pgwarden.toml:2: proxy.max_clients"),
        "{logs}"
    );
    assert!(logs.contains("configuration reloaded"), "{logs}");
    assert!(logs.contains("pgwarden stopped"), "{logs}");
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pgwarden "));
    let out = Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve") && help.contains("demo"), "{help}");
}
