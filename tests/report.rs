//! `pgwarden report` end to end: real clients run a known set of statements
//! (reads, a masked read, a refusal, a failure, a salary update, failed
//! logins) through pgwarden with the demo policy and the audit log on; the
//! report built from that log must count exactly those. The HTML report must
//! be self-contained, and headless Chromium must draw its charts.

mod common;

use common::{crate_path, hr_database, pg, SUPERUSER};
use pgwarden::report::{self, Format, Report, ReportOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, SimpleQueryMessage};

const DB: &str = "report_hr";

/// What the scenario left behind: the audit file and facts to compare with.
struct Scenario {
    log: PathBuf,
    /// Salary rows of employee 1, which the UPDATE changed.
    salary_rows: u64,
    _dir: tempfile::TempDir,
}

/// Runs the scenario once per test binary.
async fn scenario() -> &'static Scenario {
    static ONCE: OnceCell<Scenario> = OnceCell::const_new();
    ONCE.get_or_init(run_scenario).await
}

async fn run_scenario() -> Scenario {
    let pg = pg();
    let su = hr_database(&pg, DB, 50).await;
    let salary_rows: i64 = su
        .query_one(
            "SELECT count(*) FROM hr.salaries WHERE employee_id = 1",
            &[],
        )
        .await
        .expect("count salaries")
        .get(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("audit.log");
    let mut config = common::config_for(&pg);
    config.audit.path = Some(log.clone());
    config.catalog.user = SUPERUSER.0.into();
    config.catalog.password = Some(SUPERUSER.1.into());
    config.policy.path = Some(crate_path("policies"));
    config.policy.hash_key = Some("test-key".into());
    let server = pgwarden::Server::start(config).await.expect("proxy starts");
    let port = server.local_addr.port();

    let admin = common::connect(port, "hr_admin", "hr_admin", DB).await;
    assert_eq!(
        rows(
            &admin,
            "SELECT id, first_name FROM hr.employees ORDER BY id LIMIT 5"
        )
        .await,
        5
    );
    assert_eq!(rows(&admin, "SELECT count(*) FROM hr.departments").await, 1);
    admin
        .simple_query("SELECT 1/0")
        .await
        .expect_err("division by zero");

    let analyst = common::connect(port, "hr_analyst", "hr_analyst", DB).await;
    let e = analyst
        .simple_query("SELECT ssn FROM hr.employees LIMIT 1")
        .await
        .expect_err("ssn refused for analysts");
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");

    let payroll = common::connect(port, "payroll", "payroll", DB).await;
    let msgs = payroll
        .simple_query("SELECT ssn FROM hr.employees ORDER BY id LIMIT 3")
        .await
        .expect("masked read");
    let masked: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(masked.len(), 3);
    assert!(
        masked.iter().all(|s| s.starts_with("*******")),
        "{masked:?}"
    );
    let updated = payroll
        .simple_query("UPDATE hr.salaries SET bonus = bonus + 1 WHERE employee_id = 1")
        .await
        .expect("payroll updates salaries");
    assert!(updated
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(n) if *n == salary_rows as u64)));

    for _ in 0..2 {
        let e = common::login_error(port, "hr_analyst", "not-the-password", DB).await;
        assert_eq!(e.code().code(), "28P01");
    }
    drop((admin, analyst, payroll));
    server.shutdown();
    tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("proxy stops within 30 s");
    Scenario {
        log,
        salary_rows: salary_rows as u64,
        _dir: dir,
    }
}

/// Rows a simple query returned.
async fn rows(c: &Client, sql: &str) -> usize {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count()
}

/// The report over the last and next day, classified by the demo policy.
fn build(s: &Scenario) -> Report {
    let now = chrono::Utc::now();
    let mut o = ReportOptions::new(
        now - chrono::TimeDelta::days(1),
        now + chrono::TimeDelta::days(1),
    );
    o.policy = Some(Arc::new(
        pgwarden::policy::load::load(&crate_path("policies"), 1).expect("demo policy"),
    ));
    report::build(&[&s.log], o).expect("report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_counts_what_the_proxy_saw() {
    let s = scenario().await;
    let r = build(s);
    let t = &r.totals;
    assert_eq!(
        (
            t.statements,
            t.reads,
            t.writes,
            t.refusals,
            t.errors,
            t.masks
        ),
        (6, 3, 1, 1, 1, 1),
        "{t:?}"
    );
    assert_eq!(
        (t.rows_returned, t.rows_affected),
        (5 + 1 + 3, s.salary_rows)
    );
    assert_eq!((t.logins, t.login_failures, t.users), (3, 2, 3));
    assert_eq!(r.input.malformed, 0);

    let user = |name: &str| {
        r.users
            .iter()
            .find(|u| u.user == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let admin = user("hr_admin");
    assert_eq!(
        (
            admin.statements,
            admin.reads,
            admin.errors,
            admin.rows_returned
        ),
        (3, 2, 1, 6)
    );
    assert_eq!(admin.tables, ["hr.departments", "hr.employees"]);
    let analyst = user("hr_analyst");
    assert_eq!(
        (analyst.statements, analyst.refusals, analyst.reads),
        (1, 1, 0)
    );
    let payroll = user("payroll");
    assert_eq!(
        (
            payroll.statements,
            payroll.reads,
            payroll.writes,
            payroll.masks
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(
        (payroll.rows_returned, payroll.rows_affected),
        (3, s.salary_rows)
    );

    let employees = r
        .tables
        .iter()
        .find(|t| t.table == "hr.employees")
        .expect("employees");
    assert_eq!(
        (employees.reads, employees.refusals, employees.masks),
        (2, 1, 1)
    );
    let ssn = employees
        .columns
        .iter()
        .find(|c| c.column == "ssn")
        .expect("ssn");
    assert_eq!((ssn.output_reads, ssn.refusals, ssn.masks), (1, 1, 1));
    assert_eq!(
        ssn.users,
        [("hr_analyst".to_owned(), 1), ("payroll".to_owned(), 1)].into()
    );
    let salaries = r
        .tables
        .iter()
        .find(|t| t.table == "hr.salaries")
        .expect("salaries");
    assert_eq!(
        (salaries.reads, salaries.writes, salaries.filter_reads),
        (1, 1, 1)
    );

    let restricted = r
        .classifications
        .groups
        .iter()
        .find(|g| g.name == "restricted")
        .expect("restricted");
    assert_eq!(
        (restricted.reads, restricted.refusals, restricted.masks),
        (1, 1, 1)
    );
    let confidential = r
        .classifications
        .groups
        .iter()
        .find(|g| g.name == "confidential")
        .expect("confidential");
    assert_eq!((confidential.reads, confidential.writes), (1, 1));

    let rules: Vec<(&str, &str, u64)> = r
        .rules
        .iter()
        .map(|x| (x.rule.as_str(), x.action.as_str(), x.statements))
        .collect();
    assert_eq!(
        rules,
        [
            ("analyst-no-identifiers", "deny", 1),
            ("payroll-ssn-last-4", "mask", 1)
        ]
    );
    let top: Vec<(&str, u64)> = r
        .largest_extractions
        .iter()
        .map(|e| (e.user.as_str(), e.rows))
        .collect();
    assert_eq!(top, [("hr_admin", 5), ("payroll", 3), ("hr_admin", 1)]);

    let ch = &r.changes;
    assert_eq!((ch.statements.len(), ch.with_values), (1, false));
    assert_eq!(ch.statements[0].operation, "UPDATE");
    assert_eq!(ch.statements[0].user, "payroll");
    assert_eq!(ch.statements[0].rows_affected, s.salary_rows);
    assert_eq!(
        ch.statements[0].query,
        "UPDATE hr.salaries SET bonus = bonus + $1 WHERE employee_id = $2"
    );

    let f: Vec<(&str, &str, u64)> = r
        .login_failures
        .iter()
        .map(|f| (f.user.as_str(), f.source_ip.as_str(), f.failures))
        .collect();
    assert_eq!(f, [("hr_analyst", "127.0.0.1", 2)]);
    assert_eq!(r.login_failures[0].sqlstates, ["28P01"]);
    let statements_per_day: u64 = r.days.iter().map(|d| d.statements).sum();
    assert_eq!(statements_per_day, 6);
}

/// Renders the HTML report of the scenario into a temp file.
async fn html_file(dir: &std::path::Path) -> (PathBuf, String) {
    let html = report::render(&build(scenario().await), Format::Html).expect("html");
    let path = dir.join("report.html");
    std::fs::write(&path, &html).expect("write report");
    (path, html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_is_self_contained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, html) = html_file(dir.path()).await;
    for banned in [
        "http://",
        "https://",
        "<script src",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(banned), "{banned} in the HTML report");
    }
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
    assert!(html.contains("analyst-no-identifiers"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_draws_in_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| which(c))
    else {
        eprintln!("NOTICE: chromium is not installed (apt-get install chromium); skipping the browser check");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, html) = html_file(dir.path()).await;
    let bars = html.matches("<rect class=\"bar\"").count();
    // Users (3), the refusal rule (1), statements per day and the refusal
    // of the day: at least 6 bars, all of them drawn.
    assert!(bars >= 6, "only {bars} bars in the HTML");
    let out = tokio::task::spawn_blocking({
        let profile = dir.path().join("profile");
        let url = format!("file://{}", path.display());
        let chromium = chromium.to_owned();
        move || {
            std::process::Command::new("timeout")
                .arg("120")
                .arg(chromium)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(url)
                .output()
        }
    })
    .await
    .expect("join")
    .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The script in the report counts the marks the browser laid out with
    // a non-zero size: every bar and the rows line.
    assert_eq!(attr(&dom, "data-drawn-bars"), Some(bars), "{}", head(&dom));
    assert_eq!(attr(&dom, "data-drawn-lines"), Some(1), "{}", head(&dom));
    // The SVG stayed SVG (no HTML parser recovery moved the bars out).
    assert_eq!(dom.matches("<rect class=\"bar\"").count(), bars);
}

fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The number in `name="N"` on the root element.
fn attr(dom: &str, name: &str) -> Option<usize> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    let len = dom.get(start..)?.find('"')?;
    dom.get(start..start + len)?.parse().ok()
}

fn head(dom: &str) -> &str {
    dom.get(..dom.len().min(400)).unwrap_or(dom)
}
