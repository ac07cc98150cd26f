//! A webhook receiver for tests: records the JSON POSTed to it, and can
//! fail its first requests.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// One request the hook server saw.
#[derive(Debug, Clone)]
pub struct Received {
    /// Content-Type header.
    pub content_type: Option<String>,
    /// Parsed JSON body.
    pub body: Value,
}

/// A webhook receiver that answers 503 to its first `fail_first` requests.
pub struct Hook {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests seen, failed ones included.
    pub requests: Arc<AtomicUsize>,
}

impl Hook {
    /// Starts a receiver that answers 503 to its first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (rec, reqs) = (received.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (rec, reqs) = (rec.clone(), reqs.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (rec, reqs) = (rec.clone(), reqs.clone());
                            async move {
                                let content_type = req
                                    .headers()
                                    .get(hyper::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                let bytes = req.into_body().collect().await?.to_bytes();
                                let status = if reqs.fetch_add(1, Ordering::SeqCst) < fail_first {
                                    StatusCode::SERVICE_UNAVAILABLE
                                } else {
                                    let body =
                                        serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                    rec.lock().unwrap().push(Received { content_type, body });
                                    StatusCode::NO_CONTENT
                                };
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = status;
                                Ok::<_, hyper::Error>(r)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            requests,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/pgwarden", self.addr)
    }

    /// What it accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` messages were accepted (panics after 10 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
