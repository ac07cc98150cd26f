//! `[alerts]`: where alerts are sent and how hard pgwarden tries.

use super::HumanDuration;
use serde::Deserialize;
use std::time::Duration;

/// `[alerts]`: the webhook sink (see [`crate::alert`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// `http://` URLs every alert is POSTed to as JSON. Default none: alerts
    /// are only counted in `pgwarden_alerts_total`.
    pub webhooks: Vec<String>,
    /// Alerts waiting to be grouped, and messages waiting per URL; past it
    /// new ones are dropped and counted. Default 4096.
    pub queue_capacity: usize,
    /// Tries per message and URL, the first included. Default 5.
    pub attempts: u32,
    /// Pause after the first failed try; doubled after each further one.
    /// Default `500ms`.
    pub base_delay: HumanDuration,
    /// Longest pause between tries. Default `30s`.
    pub max_delay: HumanDuration,
    /// Time one POST may take, response included. Default `5s`.
    pub request_timeout: HumanDuration,
    /// Alerts of one kind, rule and user within this time of the first go
    /// out as that first one plus one summary with a count. `0s` sends every
    /// alert. Default `60s`.
    pub group_window: HumanDuration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            queue_capacity: 4096,
            attempts: 5,
            base_delay: HumanDuration(Duration::from_millis(500)),
            max_delay: HumanDuration::from_secs(30),
            request_timeout: HumanDuration::from_secs(5),
            group_window: HumanDuration::from_secs(60),
        }
    }
}

/// Checks the section; returns the offending field and why.
pub fn validate(a: &AlertConfig) -> Result<(), (String, String)> {
    let bad = |f: &str, m: String| Err((f.to_owned(), m));
    for (i, url) in a.webhooks.iter().enumerate() {
        if let Err(m) = check_webhook_url(url) {
            return bad("alerts.webhooks", format!("entry {}: {m}", i + 1));
        }
    }
    if a.queue_capacity == 0 || a.queue_capacity > (1 << 20) {
        return bad(
            "alerts.queue_capacity",
            "must be between 1 and 1048576".into(),
        );
    }
    if a.attempts == 0 || a.attempts > 100 {
        return bad("alerts.attempts", "must be between 1 and 100".into());
    }
    if a.base_delay.0.is_zero() {
        return bad("alerts.base_delay", "must be more than 0s".into());
    }
    if a.max_delay.0 < a.base_delay.0 {
        return bad(
            "alerts.max_delay",
            "must be at least alerts.base_delay".into(),
        );
    }
    if a.request_timeout.0.is_zero() {
        return bad("alerts.request_timeout", "must be more than 0s".into());
    }
    if a.group_window.0 > Duration::from_secs(24 * 3600) {
        return bad("alerts.group_window", "must be at most 24h".into());
    }
    Ok(())
}

/// A webhook URL must be plain `http://` with a host (no TLS client is built in).
pub fn check_webhook_url(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url:?} must start with http:// (https is not supported)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}
