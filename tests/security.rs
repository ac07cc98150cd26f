//! Security events through the proxy: brute-force logins (alert, then the
//! address is refused for a cool-down), reads of classified data outside
//! office hours (time injected), bursts of refused statements, and privilege
//! changes. Every alert is an audit record of its own.

mod common;

use common::{hr_database, pg, SUPERUSER};
use pgwarden::config::Config;
use pgwarden::Server;
use serde_json::Value;
use std::path::PathBuf;
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

struct Watched {
    server: Option<Server>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Watched {
    async fn start(fixed_time: Option<&str>) -> Self {
        let pg = pg();
        static LOADED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        LOADED
            .get_or_init(|| async {
                hr_database(&pg, DB, 50).await;
            })
            .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.toml"), POLICY).unwrap();
        let log = dir.path().join("audit.log");
        let mut config: Config = common::config_for(&pg);
        config.audit.path = Some(log.clone());
        config.catalog.user = SUPERUSER.0.into();
        config.catalog.password = Some(SUPERUSER.1.into());
        config.policy.path = Some(dir.path().join("policies"));
        config.policy.fixed_time = fixed_time.map(|t| humantime::parse_rfc3339(t).unwrap());
        let server = Server::start(config).await.expect("proxy starts");
        Self {
            port: server.local_addr.port(),
            server: Some(server),
            log,
            _dir: dir,
        }
    }

    /// Stops the proxy; the alert records in the audit log.
    async fn alerts(mut self) -> Vec<Value> {
        let server = self.server.take().unwrap();
        server.shutdown();
        tokio::time::timeout(Duration::from_secs(30), server.wait())
            .await
            .expect("proxy stops");
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["event"]["kind"] == "alert")
            .collect()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.shutdown();
        }
    }
}

fn of_kind<'a>(alerts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["pgwarden"]["alert"]["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn brute_force_alerts_then_the_address_cools_down() {
    let w = Watched::start(None).await;
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
    let alerts = w.alerts().await;
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
    let w = Watched::start(Some("2026-11-22T02:00:00Z")).await;
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
    let alerts = w.alerts().await;
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
