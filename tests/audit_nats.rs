//! The NATS JetStream audit sink end to end: a real `nats-server -js` on a
//! free port, pgwarden in front of the test cluster with both the file sink
//! and the NATS sink, statements through tokio-postgres. Every record of the
//! audit file must be in the stream exactly once and in the same order,
//! also when nats-server is killed in the middle of a load and restarted.
//!
//! Skipped (with a notice) when /usr/sbin/nats-server is missing.

mod common;

use async_nats::jetstream;
use common::{pg, Pg, SCRAM_USER};
use pgwarden::config::{Config, HumanDuration, NatsConfig};
use pgwarden::Server;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const STREAM: &str = "PGWARDEN_AUDIT_TEST";
const SUBJECT: &str = "pgwarden.audit.test";

/// A nats-server with JetStream, on a fixed port and store dir so it can
/// be killed and started again with the same state.
struct Nats {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// Starts one, or `None` (after printing why) when the binary is missing.
    fn start(dir: &Path) -> Option<Self> {
        if !Path::new(NATS_SERVER).is_file() {
            eprintln!("SKIPPED: {NATS_SERVER} not found (apt-get install nats-server)");
            return None;
        }
        let mut n = Self {
            port: common::free_port(),
            store: dir.join("jetstream"),
            child: None,
        };
        n.up();
        Some(n)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// SIGKILLs the server (no clean shutdown, as in a crash).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A proxy auditing to `dir/audit.log` and to `nats`, buffering in
/// `dir/nats-buffer`, giving the publisher 30 s at shutdown.
async fn start_proxy(pg: &Pg, nats: &Nats, dir: &Path) -> Server {
    start_proxy_with_timeout(pg, nats, dir, 30).await
}

/// Stops the proxy; the NATS publisher sends what is buffered first.
async fn stop(server: Server) {
    server.shutdown();
    tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("proxy stops within 60 s");
}

/// The audit file's records without the hash chain's `seq` and `prev`,
/// which the NATS messages do not carry.
fn file_records(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("audit.log")).expect("audit log");
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("JSON line");
            let o = v.as_object_mut().expect("object");
            assert!(o.remove("seq").is_some() && o.remove("prev").is_some());
            v
        })
        .collect()
}

/// Every message of the stream, in stream order: (Nats-Msg-Id, record).
async fn stream_records(nats: &Nats) -> Vec<(String, Value)> {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.expect("stream exists");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.subjects, vec![SUBJECT.to_owned()]);
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .expect("Nats-Msg-Id")
            .to_string();
        out.push((
            id,
            serde_json::from_slice(&m.payload).expect("JSON payload"),
        ));
    }
    assert_eq!(out.len() as u64, info.state.messages);
    out
}

/// Asserts the stream holds exactly the file's records, in order, once each,
/// with ids `<replica>-1`, `<replica>-2`, ... of one replica.
fn assert_same(file: &[Value], stream: &[(String, Value)]) {
    let ids: HashSet<&str> = stream.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), stream.len(), "duplicate message ids");
    let (replica, _) = stream[0].0.rsplit_once('-').expect("id is <replica>-<seq>");
    for (i, (id, _)) in stream.iter().enumerate() {
        assert_eq!(id, &format!("{replica}-{}", i + 1), "ids in order");
    }
    assert_eq!(
        stream.len(),
        file.len(),
        "the stream has {} records, the file {}",
        stream.len(),
        file.len()
    );
    for (i, (f, (_, s))) in file.iter().zip(stream).enumerate() {
        assert_eq!(f, s, "record {i} differs");
    }
}

async fn client(server: &Server) -> tokio_postgres::Client {
    common::connect(server.local_addr.port(), SCRAM_USER.0, SCRAM_USER.1, "app").await
}

/// `sessions` clients running `each` statements each, concurrently.
async fn load(server: &Server, sessions: usize, each: usize, tag: &str) {
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let c = client(server).await;
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let q = format!("SELECT {s} AS session, {i} AS n, '{tag}' AS tag");
                c.simple_query(&q).await.expect("statement");
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_the_stream_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(nats) = Nats::start(dir.path()) else {
        return;
    };
    let pg = pg();
    let server = start_proxy(&pg, &nats, dir.path()).await;
    load(&server, 3, 40, "steady").await;
    let metrics = server.ctx.metrics.clone();
    stop(server).await;
    let file = file_records(dir.path());
    // 3 × (connect, login, 40 statements, disconnect).
    assert_eq!(file.len(), 3 * 43, "records in the file");
    let stream = stream_records(&nats).await;
    assert_same(&file, &stream);
    assert_eq!(metrics.audit_nats_published.get(), file.len() as u64);
    assert_eq!(metrics.audit_nats_buffered_bytes.get(), 0);
    let statement = stream
        .iter()
        .find(|(_, r)| r["event"]["action"] == "statement")
        .expect("a statement record");
    assert_eq!(
        statement.1["db"]["query"]["text"],
        "SELECT $1 AS session, $2 AS n, $3 AS tag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(mut nats) = Nats::start(dir.path()) else {
        return;
    };
    let pg = pg();
    let server = start_proxy(&pg, &nats, dir.path()).await;
    let metrics = server.ctx.metrics.clone();
    let (sessions, each) = (4, 400);
    let running = {
        let port = server.local_addr.port();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for s in 0..sessions {
                let c = common::connect(port, SCRAM_USER.0, SCRAM_USER.1, "app").await;
                tasks.push(tokio::spawn(async move {
                    for i in 0..each {
                        let q = format!("SELECT {s} AS session, {i} AS n");
                        c.simple_query(&q)
                            .await
                            .expect("statement during the outage");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("load task");
            }
        })
    };
    // Kill nats-server once part of the load is published.
    let waited = tokio::time::Instant::now();
    while metrics.audit_nats_published.get() < 200 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "nothing published"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nats.kill();
    let at_kill = metrics.audit_records.get();
    // Statements go on while NATS is down: they fill the disk buffer.
    let waited = tokio::time::Instant::now();
    while metrics.audit_records.get() < at_kill + 300 && !running.is_finished() {
        assert!(waited.elapsed() < Duration::from_secs(30), "load stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        metrics.audit_nats_buffered_bytes.get() > 0,
        "records wait in the buffer while NATS is down"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.up();
    running.await.expect("load");
    stop(server).await;
    assert!(
        metrics.audit_nats_publish_errors.get() > 0,
        "the outage was noticed"
    );
    let file = file_records(dir.path());
    assert_eq!(file.len(), sessions * (each + 3), "records in the file");
    let stream = stream_records(&nats).await;
    assert_same(&file, &stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_buffered_while_nats_is_down_survive_a_proxy_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(mut nats) = Nats::start(dir.path()) else {
        return;
    };
    nats.kill();
    let pg = pg();
    // NATS down from the start: the proxy still starts and serves.
    let mut server = start_proxy_with_timeout(&pg, &nats, dir.path(), 1).await;
    load(&server, 2, 20, "before").await;
    stop(server).await;
    let unsent = std::fs::read_dir(dir.path().join("nats-buffer"))
        .expect("buffer dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .count();
    assert!(unsent > 0, "records wait in segment files");
    nats.up();
    server = start_proxy_with_timeout(&pg, &nats, dir.path(), 30).await;
    load(&server, 1, 10, "after").await;
    stop(server).await;
    let file = file_records(dir.path());
    assert_eq!(file.len(), 2 * 23 + 13);
    let stream = stream_records(&nats).await;
    assert_same(&file, &stream);
}

/// [`start_proxy`] with a shutdown timeout of `secs` for the publisher.
async fn start_proxy_with_timeout(pg: &Pg, nats: &Nats, dir: &Path, secs: u64) -> Server {
    let mut config: Config = common::config_for(pg);
    config.audit.path = Some(dir.join("audit.log"));
    config.audit.nats = Some(NatsConfig {
        url: nats.url(),
        subject: SUBJECT.into(),
        stream: STREAM.into(),
        buffer_dir: dir.join("nats-buffer"),
        ack_timeout: HumanDuration(Duration::from_secs(1)),
        shutdown_timeout: HumanDuration::from_secs(secs),
        ..NatsConfig::default()
    });
    pgwarden::config::load::validate(&config).expect("valid test config");
    Server::start(config).await.expect("proxy starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_resent_after_a_crash_are_dropped_by_the_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(nats) = Nats::start(dir.path()) else {
        return;
    };
    let pg = pg();
    let server = start_proxy(&pg, &nats, dir.path()).await;
    load(&server, 2, 15, "first").await;
    stop(server).await;
    let first = file_records(dir.path()).len();
    assert_eq!(stream_records(&nats).await.len(), first);
    // A crash after JetStream acknowledged the records but before the
    // buffer saved that: the next start sends them all again.
    let acked = dir.path().join("nats-buffer").join("acked");
    assert_eq!(
        std::fs::read_to_string(&acked).expect("acked").trim(),
        first.to_string()
    );
    std::fs::write(&acked, "0\n").expect("roll the cursor back");
    let server = start_proxy(&pg, &nats, dir.path()).await;
    let metrics = server.ctx.metrics.clone();
    load(&server, 1, 5, "second").await;
    stop(server).await;
    let file = file_records(dir.path());
    assert_eq!(file.len(), first + 8);
    assert_eq!(
        metrics.audit_nats_published.get(),
        file.len() as u64,
        "the old records were sent again"
    );
    assert_same(&file, &stream_records(&nats).await);
}
