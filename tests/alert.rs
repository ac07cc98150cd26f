//! The alert webhook sink against local HTTP servers that record what they
//! receive: JSON delivery, retries, grouping of a burst, a dead URL, and the
//! flush at shutdown.

mod common;

use common::hook::Hook;
use pgwarden::alert::{Action, Alert, AlertSink, Severity};
use pgwarden::config::{AlertConfig, HumanDuration};
use pgwarden::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::net::TcpListener;

fn config(urls: Vec<String>) -> AlertConfig {
    AlertConfig {
        webhooks: urls,
        attempts: 3,
        base_delay: HumanDuration(Duration::from_millis(20)),
        max_delay: HumanDuration(Duration::from_millis(100)),
        request_timeout: HumanDuration(Duration::from_millis(500)),
        group_window: HumanDuration(Duration::ZERO),
        ..AlertConfig::default()
    }
}

fn alert(user: &str, n: u64) -> Alert {
    Alert {
        kind: "row_budget".into(),
        rule: "hr_rows_per_hour".into(),
        severity: Severity::Warning,
        user: user.into(),
        session_id: Some(n),
        client_addr: Some("10.1.2.3:51000".parse().unwrap()),
        evidence: json!({ "table": "hr.employees", "rows": 50_000 + n, "limit": 10_000 }),
        action: Action::Blocked,
        timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
    }
}

#[tokio::test]
async fn alerts_arrive_as_json() {
    let hook = Hook::start(0).await;
    let metrics = Metrics::new();
    let (sink, task) = AlertSink::start(&config(vec![hook.url()]), &metrics).unwrap();
    sink.raise(alert("alice", 7));
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        got[0].body,
        json!({
            "type": "alert",
            "kind": "row_budget",
            "rule": "hr_rows_per_hour",
            "severity": "warning",
            "user": "alice",
            "session_id": 7,
            "client_addr": "10.1.2.3:51000",
            "evidence": { "table": "hr.employees", "rows": 50_007, "limit": 10_000 },
            "action": "blocked",
            "timestamp": "2023-11-14T22:13:20.250Z",
        })
    );
    task.shutdown(Duration::from_secs(2)).await;
    let raised = metrics
        .alerts
        .with_label_values(&["warning", "hr_rows_per_hour"]);
    assert_eq!(raised.get(), 1);
    assert_eq!(metrics.alerts_dropped.get(), 0);
    assert_eq!(metrics.alert_webhook_failures.get(), 0);
    let text = metrics.render();
    assert!(
        text.contains(r#"pgwarden_alerts_total{rule="hr_rows_per_hour",severity="warning"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_failing_server_gets_the_alert_on_the_third_try() {
    let hook = Hook::start(2).await;
    let metrics = Metrics::new();
    let (sink, task) = AlertSink::start(&config(vec![hook.url()]), &metrics).unwrap();
    sink.raise(alert("alice", 1));
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].body["evidence"]["rows"], 50_001);
    assert_eq!(hook.requests.load(Ordering::SeqCst), 3);
    assert_eq!(metrics.alert_webhook_failures.get(), 2);
    task.shutdown(Duration::from_secs(2)).await;
    assert_eq!(metrics.alerts_dropped.get(), 0);
}

#[tokio::test]
async fn a_server_failing_every_try_costs_one_dropped_message() {
    let hook = Hook::start(usize::MAX).await;
    let metrics = Metrics::new();
    let (sink, task) = AlertSink::start(&config(vec![hook.url()]), &metrics).unwrap();
    sink.raise(alert("alice", 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.alerts_dropped.get() == 0 {
        assert!(Instant::now() < deadline, "the message was never given up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hook.requests.load(Ordering::SeqCst), 3, "attempts = 3");
    assert_eq!(metrics.alert_webhook_failures.get(), 3);
    task.shutdown(Duration::from_secs(2)).await;
    assert_eq!(metrics.alerts_dropped.get(), 1);
}

#[tokio::test]
async fn a_burst_is_one_message_and_one_summary() {
    let hook = Hook::start(0).await;
    let metrics = Metrics::new();
    let config = AlertConfig {
        group_window: HumanDuration(Duration::from_millis(400)),
        ..config(vec![hook.url()])
    };
    let (sink, task) = AlertSink::start(&config, &metrics).unwrap();
    for n in 0..1000 {
        sink.raise(alert("alice", n));
    }
    let got = hook.wait_for(2).await;
    // Nothing else follows the summary.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got_later = hook.received();
    assert_eq!(got_later.len(), 2, "{got_later:?}");
    assert_eq!(got[0].body["type"], "alert");
    assert_eq!(got[0].body["session_id"], 0);
    let summary = &got[1].body;
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["count"], 999);
    assert_eq!(
        (&summary["kind"], &summary["rule"], &summary["user"]),
        (
            &json!("row_budget"),
            &json!("hr_rows_per_hour"),
            &json!("alice")
        )
    );
    assert_eq!(summary["window_seconds"], 0.4);
    assert_eq!(summary["last"]["session_id"], 999);
    assert_eq!(summary["first_timestamp"], "2023-11-14T22:13:20.250Z");
    // A new alert after the window opens a new group and is sent at once.
    sink.raise(alert("alice", 1000));
    let got = hook.wait_for(3).await;
    assert_eq!(got[2].body["type"], "alert");
    assert_eq!(got[2].body["session_id"], 1000);
    task.shutdown(Duration::from_secs(2)).await;
    let raised = metrics
        .alerts
        .with_label_values(&["warning", "hr_rows_per_hour"]);
    assert_eq!(raised.get(), 1001);
    assert_eq!(metrics.alerts_dropped.get(), 0);
}

#[tokio::test]
async fn shutdown_sends_the_summaries_of_open_groups() {
    let hook = Hook::start(0).await;
    let metrics = Metrics::new();
    let config = AlertConfig {
        group_window: HumanDuration::from_secs(3600),
        ..config(vec![hook.url()])
    };
    let (sink, task) = AlertSink::start(&config, &metrics).unwrap();
    for n in 0..3 {
        sink.raise(alert("bob", n));
    }
    hook.wait_for(1).await;
    task.shutdown(Duration::from_secs(5)).await;
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (&got[1].body["type"], &got[1].body["count"]),
        (&json!("summary"), &json!(2))
    );
    // After shutdown, raising still returns at once and is counted as dropped.
    sink.raise(alert("bob", 9));
    assert_eq!(metrics.alerts_dropped.get(), 1);
}

#[tokio::test]
async fn a_dead_url_never_blocks_raise() {
    // Accepts connections and never answers: the worst kind of dead.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hook", black_hole.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((tcp, _)) = black_hole.accept().await {
            conns.push(tcp);
        }
    });
    let live = Hook::start(0).await;
    let metrics = Metrics::new();
    let config = AlertConfig {
        queue_capacity: 16,
        request_timeout: HumanDuration(Duration::from_millis(200)),
        ..config(vec![dead, live.url()])
    };
    let (sink, task) = AlertSink::start(&config, &metrics).unwrap();
    // A few alerts reach the live URL while the dead one hangs.
    for n in 0..5 {
        sink.raise(alert("carol", n));
    }
    let got = live.wait_for(5).await;
    let ids: Vec<&Value> = got.iter().map(|r| &r.body["session_id"]).collect();
    assert_eq!(ids, [&json!(0), &json!(1), &json!(2), &json!(3), &json!(4)]);
    // A flood returns at once although nothing gets through to the dead URL.
    let started = Instant::now();
    for n in 0..10_000 {
        sink.raise(alert("carol", n));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "raising 10,000 alerts took {took:?}"
    );
    assert!(metrics.alerts_dropped.get() > 0);
    let started = Instant::now();
    task.shutdown(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // Every alert is lost for the dead URL and counted: once when the first
    // queue was full (lost for both URLs), else once per URL it missed.
    let dropped = metrics.alerts_dropped.get();
    assert!(dropped >= 10_005, "dropped {dropped}");
    let raised = metrics
        .alerts
        .with_label_values(&["warning", "hr_rows_per_hour"]);
    assert_eq!(raised.get(), 10_005);
}
