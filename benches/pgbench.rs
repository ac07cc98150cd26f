//! Speed and memory benchmark: pgbench select-only throughput direct to
//! PostgreSQL, through pgwarden and (when installed) through pgbouncer, and
//! pgwarden's resident memory per idle connection. See benches/README.md.
//!
//! Run: `cargo bench --bench pgbench` (PGBENCH_QUICK=1 for a smoke run).

mod common;

use common::run::{failed_transactions, field_after, median, parse_tps, pgbench_cmd, pgbench_init};
use common::{children_of, rss_kib, status_field_kib, Env};
use std::collections::BTreeMap;
use std::time::Duration;

/// Goals, as ratios of pgwarden's TPS to direct TPS.
const GOAL_RATIO_MANY: f64 = 0.95;
const GOAL_RATIO_ONE: f64 = 0.90;
/// Goal for pgwarden's resident memory per idle connection.
const GOAL_KIB_PER_CONN: f64 = 64.0;
/// Client counts measured; the goal for 1 client is looser because the
/// extra hop is a larger share of a lone client's round trip.
const CLIENTS: [u32; 2] = [1, 8];
const MODES: [&str; 2] = ["simple", "prepared"];

/// Knobs read from the environment.
struct Settings {
    secs: u32,
    rounds: usize,
    scale: u32,
    idle_conns: usize,
}

impl Settings {
    fn from_env() -> Self {
        let quick = std::env::var("PGBENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Self {
            secs: env_num("PGBENCH_SECS", if quick { 2 } else { 6 }),
            rounds: env_num("PGBENCH_ROUNDS", if quick { 1 } else { 3 }),
            scale: env_num("PGBENCH_SCALE", if quick { 1 } else { 10 }),
            idle_conns: env_num("PGBENCH_IDLE_CONNS", 500),
        }
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

/// One place pgbench connects to.
#[derive(Clone)]
struct Target {
    name: &'static str,
    port: u16,
    /// The proxy's pid, whose CPU time is charged per transaction.
    pid: Option<u32>,
}

/// (target, mode, clients) → TPS of each round.
type Results = BTreeMap<(&'static str, &'static str, u32), Vec<f64>>;

/// What the rounds measured.
#[derive(Default)]
struct Measured {
    /// Transactions per second.
    tps: Results,
    /// The proxy's CPU time (user + system) per transaction, in us. Unlike
    /// TPS this barely moves when other work shares the machine.
    cpu_us: Results,
}

fn main() {
    let s = Settings::from_env();
    // Idle test + pgbench clients + pgbouncer's pool, with room to spare.
    let max_connections = s.idle_conns as u32 + 100;
    println!(
        "pgbench: {}s per run, {} round(s), scale {}, {} idle connections",
        s.secs, s.rounds, s.scale, s.idle_conns
    );
    let mut env = Env::start_cluster(max_connections);
    println!(
        "PostgreSQL on port {}; initialising pgbench data...",
        env.pg_port()
    );
    pgbench_init(&env, s.scale);

    let mut targets = vec![Target {
        name: "direct",
        port: env.pg_port(),
        pid: None,
    }];
    let port = env.start_pgwarden();
    targets.push(Target {
        name: "pgwarden",
        port,
        pid: env.pgwarden.as_ref().map(|p| p.pid()),
    });
    let port = env.start_pgwarden_audited();
    targets.push(Target {
        name: "pgw+audit",
        port,
        pid: env.pgwarden_audit.as_ref().map(|p| p.pid()),
    });
    // The same over PostgreSQL's Unix socket, as when pgwarden runs on the
    // database host: the server side of every message skips the TCP stack.
    let (port, audit_unix) = env.spawn_audited_via("pgw+audit/unix", &env.pg_socket(), "");
    targets.push(Target {
        name: "pgw+audit/unix",
        port,
        pid: Some(audit_unix.pid()),
    });
    let port = env.start_pgwarden_policy();
    targets.push(Target {
        name: "pgw+policy",
        port,
        pid: env.pgwarden_policy.as_ref().map(|p| p.pid()),
    });
    // Detection: the same policy with a row limit on every read of
    // pgbench_accounts (thresholds never reached), so each row is counted
    // per statement and each statement adds to the user's hourly window;
    // in memory, and in Redis when redis-server is installed.
    let (port, service) = env.spawn_with_policy("pgw+limits", &limits_policy(), "");
    targets.push(Target {
        name: "pgw+limits",
        port,
        pid: Some(service.pid()),
    });
    let mut detection = vec![service];
    let redis = common::start_redis(&env);
    if let Some((url, _)) = &redis {
        let extra = format!("[budget]\nstore = \"redis\"\nredis_url = \"{url}\"\n");
        let (port, service) = env.spawn_with_policy("pgw+redis", &limits_policy(), &extra);
        targets.push(Target {
            name: "pgw+redis",
            port,
            pid: Some(service.pid()),
        });
        detection.push(service);
    } else {
        println!("pgw+redis: redis-server not installed, skipped");
    }
    // The audit durability rules: fsync per batch, and results held until
    // their records are fsynced (group commit).
    let mut durable = Vec::new();
    for (name, rule) in [("pgw+batch", "batch"), ("pgw+strict", "strict")] {
        let (port, service) = env.spawn_audited(name, &format!("durability = \"{rule}\"\n"));
        targets.push(Target {
            name,
            port,
            pid: Some(service.pid()),
        });
        durable.push(service);
    }
    match env.start_pgbouncer() {
        Some(port) => targets.push(Target {
            name: "pgbouncer",
            port,
            pid: env.pgbouncer.as_ref().map(|p| p.pid()),
        }),
        None => println!("pgbouncer: not installed, skipped (apt-get install pgbouncer adds it)"),
    }
    let bouncer_unix = env.spawn_pgbouncer("pgbouncer/unix", true);
    if let Some((port, service)) = &bouncer_unix {
        targets.push(Target {
            name: "pgbouncer/unix",
            port: *port,
            pid: Some(service.pid()),
        });
    }

    // PGBENCH_ONLY=pgw+audit,pgw+strict measures only those (and direct).
    if let Ok(only) = std::env::var("PGBENCH_ONLY") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        targets.retain(|t| t.name == "direct" || only.contains(&t.name));
    }
    print_load("before measuring");
    let m = measure(&env, &targets, &s);
    print_load("after measuring");
    print_table(&m, &targets);
    print_goals(&m.tps);
    print_durability(&m.tps);
    print_detection(&m);
    drop((durable, detection, redis, audit_unix, bouncer_unix));
    if std::env::var_os("PGBENCH_ONLY").is_some() {
        return;
    }

    // A fresh pgwarden for memory, so allocator caches left by the
    // throughput runs cannot hide the cost of new sessions.
    env.pgwarden = None;
    env.pgwarden_audit = None;
    env.pgwarden_policy = None;
    env.pgbouncer = None;
    let port = env.start_pgwarden();
    measure_idle_memory(&env, port, s.idle_conns);
    // `env` drops here: pgwarden, then the cluster, then the directory.
}

/// Every (clients, mode) for every target, targets interleaved and repeated
/// in rounds so that drift (caches, CPU frequency, neighbours) hits all alike.
fn measure(env: &Env, targets: &[Target], s: &Settings) -> Measured {
    let mut m = Measured::default();
    for round in 1..=s.rounds {
        for &clients in &CLIENTS {
            for &mode in &MODES {
                for t in targets {
                    let cpu_before = t.pid.map(cpu_us);
                    let run = run_select_only(env, t, clients, mode, s.secs);
                    let key = (t.name, mode, clients);
                    let mut line = format!(
                        "round {round}/{}: {:<9} {mode:<8} c={clients}  {:>10.0} tps",
                        s.rounds, t.name, run.tps
                    );
                    if let (Some(pid), Some(before)) = (t.pid, cpu_before) {
                        let used = cpu_us(pid).saturating_sub(before) as f64;
                        let per_txn = used / run.transactions.max(1) as f64;
                        line.push_str(&format!("  {per_txn:>5.1} us proxy CPU/txn"));
                        m.cpu_us.entry(key).or_default().push(per_txn);
                    }
                    println!("{line}");
                    m.tps.entry(key).or_default().push(run.tps);
                }
            }
        }
    }
    m
}

/// User + system CPU time of a process so far, in us (from /proc/<pid>/stat).
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // Skip past the command name, which may itself hold spaces and ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000 / hz
}

/// One pgbench run's result.
struct Run {
    tps: f64,
    transactions: u64,
}

/// One `pgbench -S` run; returns TPS without initial connection time.
fn run_select_only(env: &Env, t: &Target, clients: u32, mode: &str, secs: u32) -> Run {
    let threads = clients.min(2);
    let out = pgbench_cmd(env, t.port)
        .args(["-S", "-n", "-T", &secs.to_string()])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-M", mode, "postgres"])
        .output()
        .expect("cannot run pgbench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!("pgbench -S -c {clients} -M {mode} against {}", t.name);
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(failed) = failed_transactions(&stdout) {
        assert!(
            failed == 0,
            "{what}: {failed} failed transactions:\n{stdout}"
        );
    }
    Run {
        tps: parse_tps(&stdout)
            .unwrap_or_else(|| panic!("{what}: no tps line in its output:\n{stdout}")),
        transactions: field_after(&stdout, "number of transactions actually processed:")
            .unwrap_or(0),
    }
}

/// Spread of the rounds as a share of the median: how far to trust a ratio.
fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hi - lo) / median(v)
}

fn ratio_to_direct(r: &Results, target: &str, mode: &str, clients: u32) -> Option<f64> {
    let direct = median(r.get(&("direct", mode, clients))?);
    let key = r
        .keys()
        .find(|k| k.0 == target && k.1 == mode && k.2 == clients)?;
    Some(median(&r[key]) / direct)
}

fn print_table(m: &Measured, targets: &[Target]) {
    let r = &m.tps;
    println!();
    println!(
        "{:<14} {:<9} {:>7} {:>12} {:>8} {:>8} {:>14}",
        "target", "mode", "clients", "median tps", "spread", "ratio", "proxy CPU/txn"
    );
    for &mode in &MODES {
        for &clients in &CLIENTS {
            for t in targets {
                let Some(v) = r.get(&(t.name, mode, clients)) else {
                    continue;
                };
                let ratio = ratio_to_direct(r, t.name, mode, clients).unwrap_or(f64::NAN);
                let cpu = m
                    .cpu_us
                    .get(&(t.name, mode, clients))
                    .map_or("-".to_string(), |c| format!("{:.1} us", median(c)));
                println!(
                    "{:<14} {mode:<9} {clients:>7} {:>12.0} {:>7.1}% {ratio:>8.3} {cpu:>14}",
                    t.name,
                    median(v),
                    spread(v) * 100.0
                );
            }
        }
    }
}

/// The bench policy plus a row limit that counts every read of
/// pgbench_accounts and never fires.
fn limits_policy() -> String {
    format!(
        "{}\n[[limit]]\nname = \"bench-accounts\"\nroles = [\"*\"]\non = [\"public.pgbench_accounts\"]\n\
         alert_rows = 1000000000\nblock_rows = 1000000000\nwindow = \"1h\"\n\
         alert_rows_per_window = 1000000000000\nblock_rows_per_window = 1000000000000\n",
        common::BENCH_POLICY
    )
}

/// The cost of row counting and window updates: TPS and proxy CPU per
/// transaction of pgw+limits (and pgw+redis) against pgw+policy, the same
/// build and policy without limits. The goal: under 2 % of TPS.
fn print_detection(m: &Measured) {
    println!();
    println!("detection cost (against pgw+policy: median tps ratio, proxy CPU/txn difference):");
    for &mode in &MODES {
        for &clients in &CLIENTS {
            let Some(base) = m.tps.get(&("pgw+policy", mode, clients)) else {
                continue;
            };
            let base_cpu = m
                .cpu_us
                .get(&("pgw+policy", mode, clients))
                .map(|c| median(c));
            for target in ["pgw+limits", "pgw+redis"] {
                let Some(v) = m.tps.get(&(target, mode, clients)) else {
                    continue;
                };
                let cpu = m.cpu_us.get(&(target, mode, clients)).map(|c| median(c));
                let cpu_delta = match (cpu, base_cpu) {
                    (Some(c), Some(b)) => format!("{:+.1} us", c - b),
                    _ => "-".into(),
                };
                println!(
                    "  {target:<10} {mode:<8} c={clients}: {:.3} of pgw+policy's tps ({:+.1} %), CPU/txn {cpu_delta}",
                    median(v) / median(base),
                    (median(v) / median(base) - 1.0) * 100.0
                );
            }
        }
    }
}

/// TPS of the audit durability rules relative to `none` (pgw+audit).
fn print_durability(r: &Results) {
    println!();
    println!("audit durability (median tps / pgw+audit's):");
    for &mode in &MODES {
        for &clients in &CLIENTS {
            let Some(none) = ratio_to_direct(r, "pgw+audit", mode, clients) else {
                continue;
            };
            for target in ["pgw+batch", "pgw+strict"] {
                if let Some(ratio) = ratio_to_direct(r, target, mode, clients) {
                    println!(
                        "  {target:<10} {mode:<8} c={clients}: {:.3} of none ({ratio:.3} of direct)",
                        ratio / none
                    );
                }
            }
        }
    }
}

fn print_goals(r: &Results) {
    println!();
    println!("goals (pgwarden / direct, median tps):");
    for &mode in &MODES {
        for &clients in &CLIENTS {
            let goal = if clients > 1 {
                GOAL_RATIO_MANY
            } else {
                GOAL_RATIO_ONE
            };
            let Some(ratio) = ratio_to_direct(r, "pgwarden", mode, clients) else {
                continue;
            };
            println!(
                "  {} pgwarden  {mode:<8} c={clients}: {ratio:.3} (goal >= {goal:.2})",
                pass(ratio >= goal)
            );
            // With every statement analysed and audited: 0.90 at 8 clients.
            // With every statement analysed, audited and (pgw+policy)
            // decided and masked: 0.90 at 8 clients.
            if clients > 1 {
                for target in ["pgw+audit", "pgw+audit/unix", "pgw+policy"] {
                    if let Some(ratio) = ratio_to_direct(r, target, mode, clients) {
                        println!(
                            "  {} {target:<14} {mode:<8} c={clients}: {ratio:.3} (goal >= 0.90)",
                            pass(ratio >= 0.90)
                        );
                    }
                }
            }
        }
    }
}

/// Other work on the machine skews every ratio (the proxy competes for the
/// same cores as pgbench and PostgreSQL), so say how busy it was.
fn print_load(when: &str) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one_min = load.split_whitespace().next().unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("load average {when}: {one_min} on {cores} cores");
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Opens `n` idle sessions through pgwarden and reports its RSS growth per
/// session. PostgreSQL's backends are separate processes, reported aside.
fn measure_idle_memory(env: &Env, port: u16, n: usize) {
    let warden = env.pgwarden.as_ref().expect("pgwarden is running");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime");
    // One session first, so one-time costs (lazy statics, the first
    // upstream resolution) are not charged to the measured connections.
    drop(runtime.block_on(open_sessions(port, 1)));
    std::thread::sleep(Duration::from_millis(500));
    let postmaster = env.postmaster_pid();
    let before = rss_kib(warden.pid());
    let pg_before = children_of(postmaster);
    let sessions = runtime.block_on(open_sessions(port, n));
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(warden.pid());
    let pg_new: Vec<u32> = children_of(postmaster)
        .into_iter()
        .filter(|pid| !pg_before.contains(pid))
        .collect();
    let pg_new_anon: u64 = pg_new
        .iter()
        .filter_map(|&pid| status_field_kib(pid, "RssAnon:"))
        .sum();
    drop(sessions);

    let per_conn = (after as f64 - before as f64) / n as f64;
    println!();
    println!("memory: {n} idle sessions through pgwarden (each logged in and ran SELECT 1)");
    println!("  pgwarden VmRSS: {before} KiB before, {after} KiB after");
    println!(
        "  {} {per_conn:.1} KiB per idle connection (goal < {GOAL_KIB_PER_CONN:.0} KiB)",
        pass(per_conn < GOAL_KIB_PER_CONN)
    );
    println!(
        "  aside, not counted: PostgreSQL started {} backend processes, \
         {:.0} KiB private (RssAnon) each on average",
        pg_new.len(),
        pg_new_anon as f64 / pg_new.len().max(1) as f64
    );
}

/// Open sessions, kept alive while the value lives: each client with the
/// task that drives its connection.
type Sessions = Vec<(tokio_postgres::Client, tokio::task::JoinHandle<()>)>;

/// Logs in `n` times through `port` (a bounded number at once, as a pool
/// warming up would) and runs one query on each.
async fn open_sessions(port: u16, n: usize) -> Sessions {
    const AT_ONCE: usize = 32;
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(30));
    let mut sessions = Sessions::with_capacity(n);
    while sessions.len() < n {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..AT_ONCE.min(n - sessions.len()) {
            let config = config.clone();
            batch.spawn(async move { open_one(&config).await });
        }
        while let Some(done) = batch.join_next().await {
            sessions.push(done.expect("a connect task panicked"));
        }
    }
    sessions
}

async fn open_one(
    config: &tokio_postgres::Config,
) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot log in through pgwarden: {e}"));
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("warning: an idle session failed: {e}");
        }
    });
    client
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("SELECT 1 through pgwarden failed: {e}"));
    (client, task)
}
