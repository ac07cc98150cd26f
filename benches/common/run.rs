//! Running pgbench against a target: shared by the pgbench and capture benches.

use super::Env;
use std::process::Command;

/// `pgbench -i` at the given scale.
pub fn pgbench_init(env: &Env, scale: u32) {
    let out = pgbench_cmd(env, env.pg_port())
        .args(["-i", "-q", "-s", &scale.to_string()])
        .arg("postgres")
        .output()
        .expect("cannot run pgbench -i");
    if !out.status.success() {
        panic!(
            "pgbench -i failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// pgbench with the connection options every run shares.
pub fn pgbench_cmd(env: &Env, port: u16) -> Command {
    let mut cmd = Command::new(&env.pgbench);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        // The same plain-TCP handshake for every target.
        .env("PGSSLMODE", "disable")
        .env("PGGSSENCMODE", "disable")
        .env_remove("PGPASSWORD")
        .env_remove("PGDATABASE");
    cmd
}

/// From "tps = 1234.5 (without initial connection time)".
pub fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter(|l| l.contains("without initial connection time"))
        .find_map(|l| l.split('=').nth(1)?.split_whitespace().next()?.parse().ok())
}

/// From "number of failed transactions: 0 (0.000%)"; older pgbench lacks it.
pub fn failed_transactions(out: &str) -> Option<u64> {
    field_after(out, "number of failed transactions:")
}

/// The number that follows `prefix` at the start of a line.
pub fn field_after(out: &str, prefix: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The median of `v`.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
