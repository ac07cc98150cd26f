//! The cost of change capture per UPDATE: pgbench running one primary-key
//! UPDATE per transaction against PostgreSQL directly, through pgwarden
//! with a policy and the audit trail, and through the same pgwarden with
//! the updated column captured (pre-image CTE, RETURNING, old and new
//! values recorded when the transaction commits).
//!
//! With `CAPTURE_STATEMENT=merge` the same change is a MERGE (captured
//! with a locked pre-image and a post-image around it).
//!
//! Run: `cargo bench --bench capture` (CAPTURE_SECS, CAPTURE_ROUNDS,
//! CAPTURE_STATEMENT).

// Shared with the pgbench bench, which uses all of it.
#[allow(dead_code)]
mod common;

use common::run::{failed_transactions, median, parse_tps, pgbench_cmd, pgbench_init};
use common::Env;
use std::collections::BTreeMap;

const POLICY: &str = r#"
[[rule]]
name = "everyone"
roles = ["*"]
on = ["*"]
read = "allow"
write = "allow"
"#;

const CAPTURE: &str = r#"
[capture]
changes = ["public.pgbench_accounts.abalance"]
"#;

const SCRIPT: &str = "\\set aid random(1, 100000 * :scale)\n\\set delta random(-5000, 5000)\n\
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n";

const MERGE_SCRIPT: &str =
    "\\set aid random(1, 100000 * :scale)\n\\set delta random(-5000, 5000)\n\
MERGE INTO pgbench_accounts a USING (SELECT :aid::int AS aid, :delta::int AS delta) s \
ON a.aid = s.aid WHEN MATCHED THEN UPDATE SET abalance = a.abalance + s.delta;\n";

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts a pgwarden with the policy, plus `[capture]` when `capture`.
fn start(env: &Env, name: &'static str, capture: bool) -> (u16, common::Service) {
    let text = if capture {
        format!("{POLICY}{CAPTURE}")
    } else {
        POLICY.to_owned()
    };
    env.spawn_with_policy(name, &text, "")
}

fn main() {
    let secs = env_num("CAPTURE_SECS", 10);
    let rounds = env_num("CAPTURE_ROUNDS", 3);
    let env = Env::start_cluster(100);
    pgbench_init(&env, 1);
    let merge = std::env::var("CAPTURE_STATEMENT").is_ok_and(|v| v == "merge");
    let (statement, text) = if merge {
        ("MERGE", MERGE_SCRIPT)
    } else {
        ("UPDATE", SCRIPT)
    };
    let script = env.dir.path().join("write.sql");
    std::fs::write(&script, text).expect("script");
    let (policy_port, _policy) = start(&env, "pgw-policy", false);
    let (capture_port, _capture) = start(&env, "pgw-capture", true);
    let targets = [
        ("direct", env.pg_port()),
        ("pgw+policy", policy_port),
        ("pgw+capture", capture_port),
    ];
    println!("{statement} by primary key, {secs}s per run, {rounds} round(s)");
    let mut tps: BTreeMap<(&str, &str, u32), Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for mode in ["simple", "prepared"] {
            for clients in [1u32, 4] {
                for (name, port) in targets {
                    let out = pgbench_cmd(&env, port)
                        .args(["-n", "-f"])
                        .arg(&script)
                        .args(["-T", &secs.to_string(), "-c", &clients.to_string()])
                        .args(["-j", &clients.min(2).to_string(), "-M", mode, "postgres"])
                        .output()
                        .expect("cannot run pgbench");
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success() && failed_transactions(&stdout).unwrap_or(0) == 0,
                        "pgbench against {name} failed:\n{stdout}{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let t = parse_tps(&stdout).expect("tps line");
                    tps.entry((name, mode, clients)).or_default().push(t);
                }
            }
        }
    }
    println!(
        "\n{:<12} {:<9} {:>7} {:>10} {:>8} {:>22}",
        "target", "mode", "clients", "median tps", "ratio", "capture cost per write"
    );
    for mode in ["simple", "prepared"] {
        for clients in [1u32, 4] {
            let direct = median(&tps[&("direct", mode, clients)]);
            let policy = median(&tps[&("pgw+policy", mode, clients)]);
            for (name, _) in targets {
                let t = median(&tps[&(name, mode, clients)]);
                // Latency added per UPDATE by capture, over the same proxy without it.
                let cost = if name == "pgw+capture" {
                    format!(
                        "{:.0} us",
                        (1.0 / t - 1.0 / policy) * 1e6 * f64::from(clients)
                    )
                } else {
                    "-".into()
                };
                println!(
                    "{name:<12} {mode:<9} {clients:>7} {t:>10.0} {:>8.3} {cost:>22}",
                    t / direct
                );
            }
        }
    }
}
