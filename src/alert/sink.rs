//! The sink: [`AlertSink::raise`] counts the alert and puts it on a bounded
//! queue without waiting; a full queue drops the new alert (those already
//! queued, usually the start of the incident, are kept) and counts it. One
//! task groups the alerts and serializes each message once; one task per URL
//! delivers them in order. A dead URL therefore fills only its own queue
//! (further messages for it are dropped and counted), never the callers'.

use super::group::{Grouper, Message};
use super::webhook::Webhook;
use super::{Alert, AlertError};
use crate::config::alerts::check_webhook_url;
use crate::config::AlertConfig;
use crate::metrics::Metrics;
use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most one "alerts dropped" warning per this many milliseconds.
const DROP_WARN_INTERVAL_MS: u64 = 10_000;

/// Raises alerts; cheap to clone, one per session.
#[derive(Debug, Clone)]
pub struct AlertSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// None without webhooks: alerts are only counted.
    tx: Option<mpsc::Sender<Alert>>,
    alerts: IntCounterVec,
    drops: Drops,
}

/// The running tasks; [`AlertTask::shutdown`] flushes them.
#[derive(Debug)]
pub struct AlertTask {
    stop: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    drops: Drops,
}

impl AlertSink {
    /// Starts the grouping and webhook tasks on the current tokio runtime;
    /// without webhooks the sink only counts and no task runs.
    pub fn start(config: &AlertConfig, metrics: &Metrics) -> Result<(Self, AlertTask), AlertError> {
        let drops = Drops::new(metrics.alerts_dropped.clone());
        let stop = CancellationToken::new();
        if config.webhooks.is_empty() {
            let task = AlertTask {
                stop,
                handles: Vec::new(),
                drops,
            };
            return Ok((Self::counting_only(metrics), task));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let mut hooks = Vec::with_capacity(config.webhooks.len());
        for url in &config.webhooks {
            let uri = check_webhook_url(url).map_err(AlertError::InvalidUrl)?;
            hooks.push(Webhook::new(uri, config));
        }
        // tokio panics on a zero capacity; validation refuses it, this is belt and braces.
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let mut outs = Vec::with_capacity(hooks.len());
        let mut delivery = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let (out, queue) = mpsc::channel(capacity);
            let failures = metrics.alert_webhook_failures.clone();
            delivery.push((hook, queue, failures));
            outs.push(out);
        }
        let grouper = Grouper::new(config.group_window.0);
        // The grouper comes first: shutdown waits for it before the deliveries.
        let mut handles =
            vec![runtime.spawn(group_all(rx, grouper, outs, stop.clone(), drops.clone()))];
        for (hook, queue, failures) in delivery {
            handles.push(runtime.spawn(deliver_all(hook, queue, failures, drops.clone())));
        }
        let sink = Self {
            inner: Arc::new(Inner {
                tx: Some(tx),
                alerts: metrics.alerts.clone(),
                drops: drops.clone(),
            }),
        };
        Ok((
            sink,
            AlertTask {
                stop,
                handles,
                drops,
            },
        ))
    }

    /// A sink that only counts alerts in `pgwarden_alerts_total`.
    pub fn counting_only(metrics: &Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                tx: None,
                alerts: metrics.alerts.clone(),
                drops: Drops::new(metrics.alerts_dropped.clone()),
            }),
        }
    }

    /// Counts and queues an alert; never blocks or awaits. A full queue
    /// drops this alert and counts it in `pgwarden_alerts_dropped_total`.
    pub fn raise(&self, alert: Alert) {
        let inner = &*self.inner;
        inner
            .alerts
            .with_label_values(&[alert.severity.as_str(), alert.rule.as_str()])
            .inc();
        let Some(tx) = &inner.tx else { return };
        match tx.try_send(alert) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => inner.drops.one("the alert queue is full"),
            Err(TrySendError::Closed(_)) => inner.drops.one("the alert sink is shut down"),
        }
    }
}

impl AlertTask {
    /// Stops taking alerts, closes every open group (sending its summary)
    /// and delivers what is queued, for at most `deadline`; messages still
    /// undelivered then are dropped and counted.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.cancel();
        let until = Instant::now() + deadline;
        let mut late = false;
        for mut h in self.handles {
            if !late && tokio::time::timeout_at(until, &mut h).await.is_ok() {
                continue;
            }
            late = true;
            h.abort();
            // Settles the undelivered count before it is read.
            let _ = h.await;
        }
        let lost = self.drops.undelivered.swap(0, Ordering::Relaxed);
        if lost > 0 {
            self.drops.counter.inc_by(lost);
            tracing::warn!(
                messages = lost,
                "alert messages still undelivered at shutdown; dropped"
            );
        }
    }
}

/// Drop accounting shared by the sink and its tasks.
#[derive(Debug, Clone)]
struct Drops {
    counter: IntCounter,
    /// Messages queued for a webhook and not yet delivered or given up.
    undelivered: Arc<AtomicU64>,
    epoch: std::time::Instant,
    /// Milliseconds after `epoch` before which no drop warning is logged.
    next_warn_ms: Arc<AtomicU64>,
}

impl Drops {
    fn new(counter: IntCounter) -> Self {
        Self {
            counter,
            undelivered: Arc::default(),
            epoch: std::time::Instant::now(),
            next_warn_ms: Arc::default(),
        }
    }

    /// Counts one drop and warns, at most once per [`DROP_WARN_INTERVAL_MS`].
    fn one(&self, why: &'static str) {
        self.counter.inc();
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_warn_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_warn_ms
                .compare_exchange(
                    next,
                    now + DROP_WARN_INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(dropped_total = self.counter.get(), "alerts dropped: {why}");
        }
    }
}

/// The grouping task: alerts in, serialized messages out to every URL's
/// queue; on stop (or when every sink is gone) it drains, closes all groups
/// and ends, which lets the delivery tasks finish their queues.
async fn group_all(
    mut rx: mpsc::Receiver<Alert>,
    mut grouper: Grouper,
    outs: Vec<mpsc::Sender<Bytes>>,
    stop: CancellationToken,
    drops: Drops,
) {
    let mut due = Vec::new();
    loop {
        let deadline = grouper.next_deadline();
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            alert = rx.recv() => match alert {
                Some(a) => due.extend(grouper.offer(a, Instant::now())),
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
        grouper.close_due(Instant::now(), &mut due);
        for m in due.drain(..) {
            fan_out(&m, &outs, &drops);
        }
    }
    rx.close();
    while let Some(a) = rx.recv().await {
        due.extend(grouper.offer(a, Instant::now()));
    }
    grouper.close_all(&mut due);
    for m in due.drain(..) {
        fan_out(&m, &outs, &drops);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}

/// Serializes `m` once and queues it for every URL.
fn fan_out(m: &Message, outs: &[mpsc::Sender<Bytes>], drops: &Drops) {
    let body = match serde_json::to_vec(m) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            // Cannot happen with these types.
            tracing::error!(error = %e, "alert could not be serialized");
            drops.counter.inc();
            return;
        }
    };
    for out in outs {
        // Counted before it is queued, so the delivery task never sees it negative.
        drops.undelivered.fetch_add(1, Ordering::Relaxed);
        if out.try_send(body.clone()).is_err() {
            drops.undelivered.fetch_sub(1, Ordering::Relaxed);
            drops.one("a webhook's queue is full");
        }
    }
}

/// One URL's delivery task: its messages in order, each with retries.
async fn deliver_all(
    hook: Webhook,
    mut rx: mpsc::Receiver<Bytes>,
    failures: IntCounter,
    drops: Drops,
) {
    while let Some(body) = rx.recv().await {
        let delivered = hook.deliver(body, &failures).await;
        drops.undelivered.fetch_sub(1, Ordering::Relaxed);
        if !delivered {
            drops.counter.inc();
        }
    }
}
