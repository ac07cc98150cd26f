//! Records per second one audit writer sustains to a file: a sender task
//! queues realistic statement records (3 relations, a dozen columns) as fast
//! as it can; each sample ends with `shutdown`, so the time includes draining
//! and the final fsync. Goal: at least 200,000 records/s. Every line is
//! hash-chained; `_signed` adds Ed25519 checkpoints every 1000 records
//! (`audit.signing_key`), and `chain_hash`/`sign_checkpoint` time those
//! two costs alone.
//!
//! `cargo bench --bench audit_writer`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::Signer as _;
use pgwarden::analyse::{Analysis, OpaqueCall, RelationAccess, RelationName, StatementKind};
use pgwarden::audit::checkpoint::signed_message;
use pgwarden::audit::{chain, keys, AuditLog, AuditRecord, SessionContext, StatementRecord};
use pgwarden::config::AuditConfig;
use pgwarden::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn access(name: &str, output: &[&str], filter: &[&str]) -> RelationAccess {
    let set = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
    RelationAccess {
        relation: RelationName {
            schema: "hr".into(),
            name: name.into(),
        },
        oid: Some(16_400),
        output: set(output),
        filter: set(filter),
        written: Default::default(),
        deletes_rows: false,
    }
}

/// A join of employees, salaries and departments: 12 columns.
fn analysis() -> Arc<Analysis> {
    Arc::new(Analysis {
        kind: StatementKind::Select,
        command: "SELECT".into(),
        accesses: vec![
            access(
                "employees",
                &["first_name", "last_name", "email", "hire_date", "ssn"],
                &["id", "department_id"],
            ),
            access(
                "salaries",
                &["amount", "currency"],
                &["employee_id", "valid_to"],
            ),
            access("departments", &["name"], &["id"]),
        ],
        opaque_calls: vec![OpaqueCall {
            function: "hr.mask_ssn".into(),
            columns: vec!["hr.employees.ssn".into()],
        }],
        unanalysed: None,
        normalized: Arc::from(
            "SELECT e.first_name, e.last_name, e.email, e.hire_date, hr.mask_ssn(e.ssn), \
             s.amount, s.currency, d.name FROM hr.employees e JOIN hr.salaries s ON \
             s.employee_id = e.id AND s.valid_to IS NULL JOIN hr.departments d ON \
             d.id = e.department_id WHERE e.department_id = $1 ORDER BY e.last_name LIMIT $2",
        ),
        fingerprint: Arc::from("9f3c2a17b04e55d1"),
        effects: vec![],
        refers_to: None,
        inner_kind: None,
        results: None,
        shape: Default::default(),
    })
}

fn session() -> Arc<SessionContext> {
    Arc::new(SessionContext {
        backend_pid: Some(31_337),
        user: Arc::from("hr_analyst"),
        database: Arc::from("hr"),
        application_name: Arc::from("payroll-report"),
        ..SessionContext::connecting(1, "10.20.30.40:50123".parse().expect("addr"), true)
    })
}

fn record(session: &Arc<SessionContext>, analysis: &Arc<Analysis>, i: u64) -> StatementRecord {
    let mut r = StatementRecord::new(session.clone(), analysis.clone());
    r.duration = Duration::from_micros(850 + i % 100);
    r.bytes_returned = 4_096;
    r.rows_returned = Some(25);
    r
}

/// Queues `n` records and shuts the writer down; returns the elapsed time
/// and the bytes written. `signed` adds a signing key.
fn run(rt: &tokio::runtime::Runtime, n: u64, signed: bool) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("audit.key");
    if signed {
        keys::generate(&key).expect("keygen");
    }
    let config = AuditConfig {
        path: Some(dir.path().join("audit.log")),
        signing_key: signed.then_some(key),
        ..AuditConfig::default()
    };
    let analysis = analysis();
    let session = session();
    let elapsed = rt.block_on(async move {
        let metrics = Metrics::new();
        let (handle, task) = AuditLog::start(&config, &metrics).expect("audit log");
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for i in 0..n {
                handle.send(record(&session, &analysis, i)).await;
            }
        });
        sender.await.expect("sender");
        task.shutdown().await;
        let elapsed = start.elapsed();
        assert_eq!(metrics.audit_records.get(), n);
        elapsed
    });
    let bytes = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    (elapsed, bytes)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Plain figures first, easy to quote.
    let n = 500_000;
    for signed in [false, true] {
        let (t, bytes) = run(&rt, n, signed);
        println!(
            "audit writer{}: {n} records of {} bytes in {:.2?} = {:.0} records/s ({:.0} MB/s)",
            if signed { " (signed)" } else { "" },
            bytes / n,
            t,
            n as f64 / t.as_secs_f64(),
            bytes as f64 / t.as_secs_f64() / 1e6
        );
    }
    let mut g = c.benchmark_group("audit_writer");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("statement_records_to_file", |b| {
        b.iter_custom(|iters| run(&rt, iters, false).0)
    });
    g.bench_function("statement_records_to_file_signed", |b| {
        b.iter_custom(|iters| run(&rt, iters, true).0)
    });
    // The CPU part alone: what one core can format, without the file.
    let (session, analysis) = (session(), analysis());
    let mut buf = Vec::with_capacity(4096);
    g.bench_function("serialize_only", |b| {
        b.iter(|| {
            buf.clear();
            let r = AuditRecord::from(record(&session, &analysis, 1));
            serde_json::to_writer(&mut buf, &r).expect("serialize");
            std::hint::black_box(&buf);
        })
    });
    // What chaining adds to a record: the SHA-256 of its line.
    buf.clear();
    let r = AuditRecord::from(record(&session, &analysis, 1));
    serde_json::to_writer(&mut buf, &r).expect("serialize");
    g.bench_function("chain_hash", |b| {
        b.iter(|| std::hint::black_box(chain::line_hash(std::hint::black_box(&buf))))
    });
    // What one checkpoint costs (one per `sign_interval_records` records).
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let checkpoint = [b'x'; 420];
    g.bench_function("sign_checkpoint", |b| {
        b.iter(|| std::hint::black_box(key.sign(&signed_message(&checkpoint))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
