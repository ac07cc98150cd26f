//! Security events through the proxy: brute-force logins (alert, then the
//! address is refused for a cool-down), reads of classified data outside
//! office hours (time injected), bursts of refused statements, and privilege
//! changes. Every alert is an audit record of its own.

mod common;

use common::guarded::{policy_dir, Guarded};
use common::{hr_database, pg, SUPERUSER};
use serde_json::Value;
use std::time::Duration;

const DB: &str = "security_hr";

const POLICY: &str = r#"
[classifications]
personal = ["hr.employees"]

[[rule]]
name = "analyst-reads"
roles = ["hr_analyst"]
on = ["hr.employees"]
read = "allow"

[[rule]]
name = "analyst-no-ssn"
roles = ["hr_analyst"]
on = ["hr.employees.ssn"]
read = "deny"

[security]
failed_logins_alert = 5
failed_logins_window = "5m"
failed_logins_block = 20
block_cooldown = "10m"
refusals_alert = 3
refusals_window = "5m"
office_hours = { days = ["mon", "tue", "wed", "thu", "fri"], hours = "08:00-18:00", timezone = "Europe/Berlin" }
"#;

/// A proxy with [`POLICY`], time fixed at `fixed_time` when given.
async fn watched(fixed_time: Option<&str>) -> (Guarded, tempfile::TempDir) {
    static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    LOADED
        .get_or_init(|| async {
            hr_database(&pg(), DB, 50).await;
        })
        .await;
    let dir = policy_dir(POLICY);
    let fixed = fixed_time.map(|t| humantime::parse_rfc3339(t).expect("RFC 3339"));
    let g = Guarded::start(DB, dir.path(), |c| c.policy.fixed_time = fixed).await;
    (g, dir)
}

/// Stops the proxy; the alert records in its audit log.
async fn alerts(g: Guarded) -> Vec<Value> {
    g.records()
        .await
        .into_iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .collect()
}

fn of_kind<'a>(alerts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["pgwarden"]["alert"]["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn brute_force_alerts_then_the_address_cools_down() {
    let (w, _policy) = watched(None).await;
    for _ in 0..20 {
        let e = common::login_error(w.port, "hr_analyst", "wrong", DB).await;
        assert_eq!(e.code().code(), "28P01");
    }
    // The right password from the same address is now refused.
    let e = common::login_error(w.port, "hr_analyst", "hr_analyst", DB).await;
    assert_eq!(e.code().code(), "28000", "{}", e.message());
    assert!(
        e.message().contains("too many failed logins"),
        "{}",
        e.message()
    );
    let alerts = alerts(w).await;
    let failed = of_kind(&alerts, "failed_logins");
    let rules: Vec<&str> = failed
        .iter()
        .filter_map(|a| a["pgwarden"]["alert"]["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"security.failed_logins_per_user"),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"security.failed_logins_per_address"),
        "{rules:?}"
    );
    assert!(rules.contains(&"security.failed_logins_block"), "{rules:?}");
    let user_alert = failed
        .iter()
        .find(|a| a["pgwarden"]["alert"]["rule"] == "security.failed_logins_per_user")
        .unwrap();
    assert_eq!(user_alert["pgwarden"]["alert"]["evidence"]["failures"], 6);
    assert_eq!(user_alert["user"]["name"], "hr_analyst");
}

#[tokio::test]
async fn off_hours_reads_probing_and_privilege_changes_alert() {
    // Sunday 2026-11-22, 03:00 in Berlin.
    let (w, _policy) = watched(Some("2026-11-22T02:00:00Z")).await;
    let a = common::connect(w.port, "hr_analyst", "hr_analyst", DB).await;
    a.simple_query("SELECT first_name FROM hr.employees LIMIT 1")
        .await
        .unwrap();
    for _ in 0..4 {
        a.simple_query("SELECT ssn FROM hr.employees")
            .await
            .unwrap_err();
    }
    let pg = pg();
    let su = common::connect(w.port, SUPERUSER.0, SUPERUSER.1, DB).await;
    su.simple_query("GRANT hr_analyst TO hr_admin")
        .await
        .unwrap();
    su.simple_query("REVOKE hr_analyst FROM hr_admin")
        .await
        .unwrap();
    drop((a, su, pg));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = alerts(w).await;
    let off = of_kind(&alerts, "off_hours_access");
    assert!(!off.is_empty(), "off-hours alert: {alerts:?}");
    assert!(off[0]["pgwarden"]["alert"]["evidence"]["columns"]
        .to_string()
        .contains("hr.employees.first_name"));
    let probing = of_kind(&alerts, "probing");
    assert_eq!(probing.len(), 1, "one probing alert at the 4th refusal");
    assert_eq!(probing[0]["pgwarden"]["alert"]["evidence"]["refusals"], 4);
    let grants = of_kind(&alerts, "privilege_change");
    assert!(grants.len() >= 2, "GRANT and REVOKE: {grants:?}");
}
