//! Real clients through pgwarden to a real PostgreSQL: tokio-postgres
//! (simple, extended, pipelined, COPY, cancel, LISTEN/NOTIFY, TLS, every auth
//! method), psql and pgbench.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use std::time::{Duration, Instant};
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_with_several_statements() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    let msgs = c
        .simple_query("SELECT 1 AS a; SELECT 'x' || 'y' AS b; CREATE TEMP TABLE t(i int); INSERT INTO t VALUES (1),(2)")
        .await
        .unwrap();
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec!["1", "xy"]);
    let completions: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(completions, vec![1, 1, 0, 2]);
    // An error in a multi-statement string reaches the client with its SQLSTATE,
    // and the session stays usable.
    let err = c
        .simple_query("SELECT 1; SELECT * FROM nope")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    assert_eq!(
        c.query_one("SELECT 41 + 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        42
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_named_statements_and_binary() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    let stmt = c
        .prepare("SELECT $1::int8 * 2, $2::text, now()::date")
        .await
        .unwrap();
    for i in 0..20i64 {
        let row = c.query_one(&stmt, &[&i, &"v"]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), i * 2);
        assert_eq!(row.get::<_, &str>(1), "v");
    }
    // Binary results of several types decode correctly (tokio-postgres uses binary).
    let row = c
        .query_one(
            "SELECT 1.5::float8, true, '\\x0102'::bytea, ARRAY[1,2,3]::int4[], '{\"a\":1}'::text",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, f64>(0), 1.5);
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![1, 2]);
    assert_eq!(row.get::<_, Vec<i32>>(3), vec![1, 2, 3]);
    // Errors in the extended protocol leave the session usable.
    let err = c.query("SELECT 1/$1::int", &[&0i32]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    assert_eq!(
        c.query_one(&stmt, &[&5i64, &"w"])
            .await
            .unwrap()
            .get::<_, i64>(0),
        10
    );
    // Portals with a row limit (Execute with max rows) inside a transaction.
    let mut c = c;
    let tx = c.transaction().await.unwrap();
    let portal = tx
        .bind("SELECT g FROM generate_series(1, 10) g", &[])
        .await
        .unwrap();
    let first = tx.query_portal(&portal, 3).await.unwrap();
    let rest = tx.query_portal(&portal, 100).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(rest.len(), 7);
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_arrive_in_order() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    let stmt = c
        .prepare("SELECT $1::int4, repeat('x', $1::int4)")
        .await
        .unwrap();
    // tokio-postgres pipelines requests whose futures are polled together.
    let futures = (0..200).map(|i| {
        let c = &c;
        let stmt = &stmt;
        async move { c.query_one(stmt, &[&(i * 50)]).await }
    });
    let rows = futures_util::future::join_all(futures).await;
    for (i, r) in rows.into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.get::<_, i32>(0), i as i32 * 50);
        assert_eq!(r.get::<_, &str>(1).len(), i * 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    c.batch_execute("CREATE TEMP TABLE c(id int, name text)")
        .await
        .unwrap();
    let sink = c.copy_in("COPY c FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    let mut data = String::new();
    for i in 0..10_000 {
        data.push_str(&format!("{i}\tname {i}\n"));
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 10_000);
    let out = c
        .copy_out("COPY (SELECT * FROM c ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    let text: String = chunks.iter().map(|b| String::from_utf8_lossy(b)).collect();
    assert_eq!(text.lines().count(), 10_000);
    assert_eq!(text.lines().nth(9_999), Some("9999\tname 9999"));
    // A failing COPY FROM reports the error and the session goes on.
    let sink = c.copy_in("COPY c FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"notanumber\tx\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22P02");
    assert_eq!(
        c.query_one("SELECT count(*) FROM c", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        10_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_cancels_the_right_query() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    let other = connect_app(&proxy).await;
    let token = c.cancel_token();
    let started = Instant::now();
    let slow = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other session keeps working and is not cancelled.
    let other_slow = tokio::spawn(async move {
        other
            .simple_query("SELECT pg_sleep(1)")
            .await
            .map(|_| other)
    });
    token.cancel_query(NoTls).await.unwrap();
    let err = slow.await.unwrap().unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    assert!(started.elapsed() < Duration::from_secs(10));
    let other = other_slow.await.unwrap().expect("other session unaffected");
    assert_eq!(
        other
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let (_, body) = http_get(proxy.server.metrics_addr.unwrap(), "/metrics").await;
    assert!(
        metric(
            &body,
            "pgwarden_cancel_requests_total{result=\"forwarded\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_unknown_key_does_nothing() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    let mut raw = raw::Raw::connect(proxy.port()).await;
    // A CancelRequest with a key pgwarden never gave out.
    let mut pkt = vec![0, 0, 0, 16, 4, 210, 22, 46];
    pkt.extend_from_slice(&12345i32.to_be_bytes());
    pkt.extend_from_slice(&678i32.to_be_bytes());
    raw.send(&pkt).await;
    assert!(raw.closed().await);
    let r = c.simple_query("SELECT pg_sleep(0.5)").await;
    assert!(r.is_ok(), "query must not be cancelled: {r:?}");
    let (_, body) = http_get(proxy.server.metrics_addr.unwrap(), "/metrics").await;
    assert!(
        metric(
            &body,
            "pgwarden_cancel_requests_total{result=\"unknown_key\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_reaches_an_idle_client() {
    let proxy = start_proxy().await;
    let (listener, mut conn) = tokio_postgres::connect(
        &conn_str(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app"),
        NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("LISTEN hr_events").await.unwrap();
    let notifier = connect_app(&proxy).await;
    notifier
        .batch_execute("NOTIFY hr_events, 'salary changed'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("notification within 5 s")
        .unwrap();
    assert_eq!(got, ("hr_events".to_owned(), "salary changed".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_method_passes_through() {
    let proxy = start_proxy().await;
    for (user, pw) in [
        SCRAM_USER,
        MD5_USER,
        PASSWORD_USER,
        (TRUST_USER, "ignored"),
        SUPERUSER,
    ] {
        let c = connect(proxy.port(), user, pw, "app").await;
        let who: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_relayed_and_counted() {
    let proxy = start_proxy().await;
    for (user, _) in [SCRAM_USER, MD5_USER, PASSWORD_USER] {
        let err = tokio_postgres::connect(&conn_str(proxy.port(), user, "wrong", "app"), NoTls)
            .await
            .err()
            .expect("login must fail");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "28P01");
        assert_eq!(
            db.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let (_, body) = http_get(proxy.server.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(metric(&body, "pgwarden_auth_failures_total"), 3.0);
    // A database that does not exist: PostgreSQL's own error, unchanged.
    assert_eq!(
        login_error(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "nodb")
            .await
            .code()
            .code(),
        "3D000"
    );
}

async fn tls_connect(proxy: &Proxy, user: &str, pw: &str) -> tokio_postgres::Client {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_trusting(
        proxy.cert_pem.as_deref().unwrap(),
    ));
    let (c, conn) = tokio_postgres::connect(
        &format!(
            "{} sslmode=require",
            conn_str(proxy.port(), user, pw, "app")
        ),
        tls,
    )
    .await
    .unwrap_or_else(|e| panic!("TLS connect as {user}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_with_scram_and_upstream_tls() {
    let pg = pg();
    // Upstream TLS preferred (the server has TLS on): SCRAM from a TLS client
    // whose driver supports channel binding must still log in.
    let proxy = start_proxy_with(config_for(&pg), true).await;
    for (user, pw) in [SCRAM_USER, MD5_USER, PASSWORD_USER] {
        let c = tls_connect(&proxy, user, pw).await;
        assert_eq!(
            c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
            1
        );
    }
    // Upstream TLS required: md5 and password work over TLS both ways.
    let mut cfg = config_for(&pg);
    cfg.upstream.tls = pgwarden::config::UpstreamTls::Require;
    let strict = start_proxy_with(cfg, true).await;
    let c = tls_connect(&strict, MD5_USER.0, MD5_USER.1).await;
    let ssl: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        ssl,
        "upstream connection must be TLS with upstream.tls = require"
    );
    // psql with sslmode=require and SCRAM (libpq offers channel binding).
    let out = run_pg_tool(
        &pg,
        "psql",
        &[
            "-X",
            "-At",
            &format!(
                "host=127.0.0.1 port={} user={} dbname=app sslmode=require",
                proxy.port(),
                SCRAM_USER.0
            ),
            "-c",
            "SELECT 'tls ok'",
        ],
        SCRAM_USER.1,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tls ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plaintext() {
    let pg = pg();
    let mut cfg = config_for(&pg);
    cfg.tls.require = true;
    let proxy = start_proxy_with(cfg, true).await;
    assert_eq!(
        login_error(proxy.port(), SCRAM_USER.0, SCRAM_USER.1, "app")
            .await
            .code()
            .code(),
        "28000"
    );
    let c = tls_connect(&proxy, SCRAM_USER.0, SCRAM_USER.1).await;
    assert_eq!(
        c.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_and_parameter_status() {
    let proxy = start_proxy().await;
    let c = connect_app(&proxy).await;
    c.batch_execute("SET application_name = 'payroll-batch'; SET search_path = pg_catalog")
        .await
        .unwrap();
    let app: String = c
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "payroll-batch");
    c.batch_execute("BEGIN; CREATE TEMP TABLE x(i int); INSERT INTO x VALUES (1)")
        .await
        .unwrap();
    let err = c.batch_execute("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    // In a failed transaction PostgreSQL refuses everything until ROLLBACK.
    let err = c.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25P02");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        c.query_one("SELECT 3", &[]).await.unwrap().get::<_, i32>(0),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_scripts_copy_and_large_objects() {
    let pg = pg();
    let proxy = start_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let lo_file = dir.path().join("lo.bin");
    std::fs::write(&lo_file, b"large object payload").unwrap();
    let script = format!(
        "CREATE TEMP TABLE p(id int, v text);\n\
         \\copy p FROM stdin\n1\tone\n2\ttwo\n\\.\n\
         SELECT count(*) FROM p;\n\
         \\copy (SELECT v FROM p ORDER BY id) TO stdout\n\
         BEGIN;\n\\lo_import {}\n\
         SELECT length(lo_get(:LASTOID));\n\
         ROLLBACK;\n",
        lo_file.display()
    );
    let script_path = dir.path().join("s.sql");
    std::fs::write(&script_path, script).unwrap();
    let out = run_pg_tool(
        &pg,
        "psql",
        &[
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            &format!(
                "host=127.0.0.1 port={} user={} dbname=app",
                proxy.port(),
                SCRAM_USER.0
            ),
            "-f",
            script_path.to_str().unwrap(),
        ],
        SCRAM_USER.1,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    // The count, the two copied rows, and the length of the large object that
    // \lo_import wrote through libpq's fast-path FunctionCall messages.
    assert_eq!(lines, ["2", "one", "two", "20"]);
}

fn pgbench(pg: &Pg, port: u16, args: &[&str]) -> String {
    let mut all = vec!["-h", "127.0.0.1"];
    let port = port.to_string();
    all.extend(["-p", &port, "-U", SUPERUSER.0]);
    all.extend(args);
    all.push("app");
    let out = run_pg_tool(pg, "pgbench", &all, SUPERUSER.1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_without_failed_transactions() {
    let pg = pg();
    let proxy = start_proxy().await;
    let port = proxy.port();
    tokio::task::spawn_blocking(move || {
        pgbench(&pg, port, &["-i", "-s", "1", "-q"]);
        for mode in ["simple", "extended", "prepared"] {
            let out = pgbench(
                &pg,
                port,
                &["-S", "-n", "-T", "3", "-c", "4", "-j", "2", "-M", mode],
            );
            assert!(
                out.contains("number of failed transactions: 0"),
                "{mode}:\n{out}"
            );
            let tps: f64 = out
                .lines()
                .find(|l| l.starts_with("tps = "))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            assert!(tps > 50.0, "{mode}: implausible tps {tps}\n{out}");
        }
        // The TPC-B-like write mix too, briefly.
        let out = pgbench(&pg, port, &["-n", "-T", "2", "-c", "2", "-M", "prepared"]);
        assert!(out.contains("number of failed transactions: 0"), "{out}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_verify_full_checks_the_certificate() {
    let pg = pg();
    let ca = pg.dir.join("upstream-ca.pem");
    std::fs::write(&ca, &pg.ca_pem).unwrap();
    let mut cfg = config_for(&pg);
    cfg.upstream.tls = pgwarden::config::UpstreamTls::VerifyFull;
    cfg.upstream.ca_file = Some(ca.clone());
    let proxy = start_proxy_with(cfg.clone(), false).await;
    let c = connect_app(&proxy).await;
    let ssl: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    // A name the certificate does not carry is refused with a clear FATAL.
    cfg.upstream.server_name = Some("db.example.org".into());
    let wrong = start_proxy_with(cfg, false).await;
    let err = tokio_postgres::connect(
        &conn_str(wrong.port(), SCRAM_USER.0, SCRAM_USER.1, "app"),
        NoTls,
    )
    .await
    .err()
    .unwrap();
    let db = err.as_db_error().expect("a FATAL from pgwarden");
    assert_eq!(db.code().code(), "08001");
    assert!(db.message().contains("TLS"), "{}", db.message());
}
