//! POSTing one message to one URL, with retries and exponential backoff.

use crate::config::AlertConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::IntCounter;
use std::time::Duration;
use thiserror::Error;

/// Most of a response body read (only so the connection can be reused).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Why one try failed.
#[derive(Debug, Error)]
enum TryError {
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl TryError {
    /// Whether trying again may help: not after a 4xx other than 408 or 429.
    fn is_transient(&self) -> bool {
        match self {
            Self::Status(s) => {
                s.is_server_error()
                    || *s == StatusCode::TOO_MANY_REQUESTS
                    || *s == StatusCode::REQUEST_TIMEOUT
            }
            Self::Request(_) => false,
            Self::Timeout(_) | Self::Http(_) => true,
        }
    }
}

/// One webhook URL and how hard to try it.
#[derive(Debug, Clone)]
pub(super) struct Webhook {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    timeout: Duration,
}

impl Webhook {
    /// A webhook for `uri` with the retry settings of `config`.
    pub(super) fn new(uri: Uri, config: &AlertConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.request_timeout.0));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            uri,
            attempts: config.attempts.max(1),
            base_delay: config.base_delay.0,
            max_delay: config.max_delay.0,
            timeout: config.request_timeout.0,
        }
    }

    /// Host and port only: the path of a webhook URL often holds a secret.
    pub(super) fn target(&self) -> String {
        self.uri
            .authority()
            .map_or_else(String::new, |a| a.to_string())
    }

    /// Sends `body`, trying up to `attempts` times; each failed try counts in
    /// `failures`. Returns whether it was delivered.
    pub(super) async fn deliver(&self, body: Bytes, failures: &IntCounter) -> bool {
        for attempt in 1..=self.attempts {
            let e = match self.try_once(body.clone()).await {
                Ok(()) => return true,
                Err(e) => e,
            };
            failures.inc();
            if !e.is_transient() || attempt == self.attempts {
                tracing::warn!(webhook = %self.target(), error = %e, attempt,
                    "alert webhook failed; message dropped");
                return false;
            }
            tracing::debug!(webhook = %self.target(), error = %e, attempt,
                "alert webhook failed; retrying");
            tokio::time::sleep(self.delay(attempt)).await;
        }
        false
    }

    /// Pause after the `failed`-th failed try: base × 2^(failed-1), capped.
    fn delay(&self, failed: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << (failed.saturating_sub(1)).min(20))
            .min(self.max_delay)
    }

    async fn try_once(&self, body: Bytes) -> Result<(), TryError> {
        let req = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("pgwarden/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))?;
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            // Read (a bounded part of) the body so the connection can be reused.
            let _ = Limited::new(resp.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(TryError::Status(status))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TryError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = AlertConfig {
            base_delay: crate::config::HumanDuration(Duration::from_millis(100)),
            max_delay: crate::config::HumanDuration::from_secs(1),
            ..AlertConfig::default()
        };
        let w = Webhook::new(Uri::from_static("http://127.0.0.1:9/x"), &config);
        let ms: Vec<u128> = (1..=6).map(|n| w.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(w.delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(w.target(), "127.0.0.1:9");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(TryError::Status(StatusCode::SERVICE_UNAVAILABLE).is_transient());
        assert!(TryError::Status(StatusCode::TOO_MANY_REQUESTS).is_transient());
        assert!(!TryError::Status(StatusCode::NOT_FOUND).is_transient());
        assert!(TryError::Timeout(Duration::from_secs(1)).is_transient());
    }
}
