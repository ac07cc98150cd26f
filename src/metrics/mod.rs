//! Prometheus metrics. Sessions count locally and add to these counters in
//! batches, so the per-message path touches no shared cache line.

mod http;

pub use http::serve;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

/// Every metric pgwarden exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Client connections open now.
    pub connections_open: IntGauge,
    /// Client connections accepted since start.
    pub connections_total: IntCounter,
    /// Logins PostgreSQL refused.
    pub auth_failures: IntCounter,
    /// Clients refused by pgwarden itself, by reason.
    pub refused: IntCounterVec,
    /// Messages from clients to PostgreSQL.
    pub messages_frontend: IntCounter,
    /// Messages from PostgreSQL to clients.
    pub messages_backend: IntCounter,
    /// Bytes from clients to PostgreSQL.
    pub bytes_frontend: IntCounter,
    /// Bytes from PostgreSQL to clients.
    pub bytes_backend: IntCounter,
    /// Cancel requests, by outcome.
    pub cancels: IntCounterVec,
    /// Time a statement's bytes spent inside pgwarden, both directions.
    pub proxy_time: Histogram,
    /// Statements fully analysed.
    pub statements_analysed: IntCounter,
    /// Statements recorded as unanalysed (parse or resolution failed).
    pub statements_unanalysed: IntCounter,
    /// Audit records written to the sink.
    pub audit_records: IntCounter,
    /// Audit records dropped (`on_full = "drop_and_count"`, or sent after shutdown).
    pub audit_dropped: IntCounter,
    /// Audit records waiting for the writer.
    pub audit_queue: IntGauge,
    /// Failed writes to the audit sink (retried).
    pub audit_write_errors: IntCounter,
    /// Audit records JetStream acknowledged (`[audit.nats]`).
    pub audit_nats_published: IntCounter,
    /// Bytes in the NATS disk buffer not yet acknowledged.
    pub audit_nats_buffered_bytes: IntGauge,
    /// Failed NATS connects, publishes and buffer writes (all retried).
    pub audit_nats_publish_errors: IntCounter,
    /// Records left out of the NATS sink (buffer full with `drop_and_count`).
    pub audit_nats_dropped: IntCounter,
    /// Statements refused by a policy.
    pub statements_refused: IntCounter,
    /// DataRows whose cells a policy masked.
    pub masked_rows: IntCounter,
    /// Statements stopped by a row limit whose backend query was cancelled.
    pub stopped_cancelled: IntCounter,
    /// Policy loads and reloads, by result (ok, error).
    pub policy_reloads: IntCounterVec,
    /// Alerts raised, by severity and rule.
    pub alerts: IntCounterVec,
    /// Failed webhook tries (each retry counts).
    pub alert_webhook_failures: IntCounter,
    /// Alert messages lost: queue full, or given up on a webhook.
    pub alerts_dropped: IntCounter,
    /// Observations the baseline learner could not take (queue full).
    pub baseline_dropped: IntCounter,
    /// Users with a behaviour baseline.
    pub baseline_users: IntGauge,
    /// Failed saves of the baseline file (retried on the next period).
    pub baseline_save_errors: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers all metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let connections_open = IntGauge::new(
            "pgwarden_client_connections_open",
            "Client connections open now.",
        )
        .expect("static metric");
        let connections_total = IntCounter::new(
            "pgwarden_client_connections_total",
            "Client connections accepted since start.",
        )
        .expect("static metric");
        let auth_failures = IntCounter::new(
            "pgwarden_auth_failures_total",
            "Logins refused by PostgreSQL.",
        )
        .expect("static metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "pgwarden_clients_refused_total",
                "Clients refused by pgwarden (too_many_clients, tls_required, protocol, timeout).",
            ),
            &["reason"],
        )
        .expect("static metric");
        let messages = IntCounterVec::new(
            Opts::new("pgwarden_messages_total", "Protocol messages relayed."),
            &["direction"],
        )
        .expect("static metric");
        let bytes = IntCounterVec::new(
            Opts::new("pgwarden_bytes_total", "Bytes relayed."),
            &["direction"],
        )
        .expect("static metric");
        let cancels = IntCounterVec::new(
            Opts::new(
                "pgwarden_cancel_requests_total",
                "Cancel requests received.",
            ),
            &["result"],
        )
        .expect("static metric");
        let proxy_time = Histogram::with_opts(
            HistogramOpts::new(
                "pgwarden_statement_proxy_seconds",
                "Time a statement's messages spent inside pgwarden (both directions).",
            )
            .buckets(exponential_buckets(5e-6, 2.0, 16).expect("static buckets")),
        )
        .expect("static metric");
        let audit_records =
            IntCounter::new("pgwarden_audit_records_total", "Audit records written.")
                .expect("static metric");
        let audit_dropped = IntCounter::new(
            "pgwarden_audit_records_dropped_total",
            "Audit records dropped because the queue was full or closed.",
        )
        .expect("static metric");
        let audit_queue = IntGauge::new(
            "pgwarden_audit_queue_length",
            "Audit records waiting for the writer.",
        )
        .expect("static metric");
        let audit_write_errors = IntCounter::new(
            "pgwarden_audit_write_errors_total",
            "Failed writes to the audit sink (retried).",
        )
        .expect("static metric");
        let alerts = IntCounterVec::new(
            Opts::new("pgwarden_alerts_total", "Alerts raised."),
            &["severity", "rule"],
        )
        .expect("static metric");
        let alert_webhook_failures = IntCounter::new(
            "pgwarden_alert_webhook_failures_total",
            "Failed alert webhook requests (each retry counts).",
        )
        .expect("static metric");
        let alerts_dropped = IntCounter::new(
            "pgwarden_alerts_dropped_total",
            "Alert messages lost: a queue was full, or a webhook was given up on.",
        )
        .expect("static metric");
        let audit_nats_published = IntCounter::new(
            "pgwarden_audit_nats_published_total",
            "Audit records published to NATS JetStream and acknowledged.",
        )
        .expect("static metric");
        let audit_nats_buffered_bytes = IntGauge::new(
            "pgwarden_audit_nats_buffered_bytes",
            "Bytes in the NATS disk buffer waiting for an acknowledgement.",
        )
        .expect("static metric");
        let audit_nats_publish_errors = IntCounter::new(
            "pgwarden_audit_nats_publish_errors_total",
            "Failed NATS connects, publishes and buffer writes (retried).",
        )
        .expect("static metric");
        let audit_nats_dropped = IntCounter::new(
            "pgwarden_audit_nats_dropped_total",
            "Audit records left out of the NATS sink because its buffer was full.",
        )
        .expect("static metric");
        let statements = IntCounterVec::new(
            Opts::new(
                "pgwarden_statements_total",
                "Statements analysed, by result (analysed, unanalysed).",
            ),
            &["analysis"],
        )
        .expect("static metric");
        let statements_refused = IntCounter::new(
            "pgwarden_statements_refused_total",
            "Statements refused by a policy (SQLSTATE 42501).",
        )
        .expect("static metric");
        let masked_rows = IntCounter::new(
            "pgwarden_masked_rows_total",
            "Result rows whose cells a policy masked.",
        )
        .expect("static metric");
        let stopped_cancelled = IntCounter::new(
            "pgwarden_stopped_statements_cancelled_total",
            "Statements stopped by a row limit whose backend query pgwarden cancelled.",
        )
        .expect("static metric");
        let baseline_dropped = IntCounter::new(
            "pgwarden_baseline_dropped_total",
            "Observations the baseline learner could not take because its queue was full.",
        )
        .expect("static metric");
        let baseline_users = IntGauge::new(
            "pgwarden_baseline_users",
            "Users with a behaviour baseline.",
        )
        .expect("static metric");
        let baseline_save_errors = IntCounter::new(
            "pgwarden_baseline_save_errors_total",
            "Failed saves of the baseline file (retried on the next period).",
        )
        .expect("static metric");
        let policy_reloads = IntCounterVec::new(
            Opts::new(
                "pgwarden_policy_reloads_total",
                "Policy loads and reloads, by result (ok, error).",
            ),
            &["result"],
        )
        .expect("static metric");
        for c in [
            Box::new(statements.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(statements_refused.clone()),
            Box::new(masked_rows.clone()),
            Box::new(stopped_cancelled.clone()),
            Box::new(policy_reloads.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_total.clone()),
            Box::new(auth_failures.clone()),
            Box::new(refused.clone()),
            Box::new(messages.clone()),
            Box::new(bytes.clone()),
            Box::new(cancels.clone()),
            Box::new(proxy_time.clone()),
            Box::new(audit_records.clone()),
            Box::new(audit_dropped.clone()),
            Box::new(audit_queue.clone()),
            Box::new(audit_write_errors.clone()),
            Box::new(alerts.clone()),
            Box::new(alert_webhook_failures.clone()),
            Box::new(alerts_dropped.clone()),
            Box::new(audit_nats_published.clone()),
            Box::new(audit_nats_buffered_bytes.clone()),
            Box::new(audit_nats_publish_errors.clone()),
            Box::new(audit_nats_dropped.clone()),
            Box::new(baseline_dropped.clone()),
            Box::new(baseline_users.clone()),
            Box::new(baseline_save_errors.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Self {
            registry,
            connections_open,
            connections_total,
            auth_failures,
            refused,
            messages_frontend: messages.with_label_values(&["frontend"]),
            messages_backend: messages.with_label_values(&["backend"]),
            bytes_frontend: bytes.with_label_values(&["frontend"]),
            bytes_backend: bytes.with_label_values(&["backend"]),
            cancels,
            proxy_time,
            audit_records,
            audit_dropped,
            audit_queue,
            audit_write_errors,
            alerts,
            alert_webhook_failures,
            alerts_dropped,
            audit_nats_published,
            audit_nats_buffered_bytes,
            audit_nats_publish_errors,
            audit_nats_dropped,
            baseline_dropped,
            baseline_users,
            baseline_save_errors,
            statements_analysed: statements.with_label_values(&["analysed"]),
            statements_unanalysed: statements.with_label_values(&["unanalysed"]),
            statements_refused,
            masked_rows,
            stopped_cancelled,
            policy_reloads,
        }
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let enc = prometheus::TextEncoder::new();
        enc.encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
