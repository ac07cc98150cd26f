//! Query cancellation: each client gets its own BackendKeyData, mapped here
//! to the real key of its PostgreSQL backend.

use crate::protocol::frontend::startup::CancelKey;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Entry {
    secret: i32,
    real: CancelKey,
    upstream: String,
}

/// Synthetic keys handed to clients and the real keys behind them.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    // Touched only at login, logout and cancel: a plain mutex is enough.
    map: Mutex<HashMap<i32, Entry>>,
}

/// Removes its key from the registry when the session ends.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    /// The synthetic key given to the client.
    pub key: CancelKey,
    /// The real key of the backend.
    pub real: CancelKey,
    upstream: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.key.pid);
        }
    }
}

impl Registration {
    /// Cancels whatever the session's backend is running now.
    pub async fn cancel_backend(&self) {
        send_cancel(&self.upstream, self.real).await;
    }

    /// The session's backend, to cancel from another task.
    pub fn target(&self) -> CancelTarget {
        CancelTarget {
            upstream: self.upstream.clone(),
            real: self.real,
        }
    }
}

/// A backend to cancel: where it is and its real key.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    upstream: String,
    real: CancelKey,
}

impl CancelTarget {
    /// Sends the CancelRequest to PostgreSQL on a fresh connection and
    /// returns once PostgreSQL has taken it (or after 5 s).
    pub async fn send(&self) {
        send_cancel(&self.upstream, self.real).await;
    }
}

impl CancelRegistry {
    /// Registers a backend's real key and returns the synthetic one for the client.
    pub fn register(self: &Arc<Self>, real: CancelKey, upstream: &str) -> Registration {
        let mut rng = rand::rng();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let pid = loop {
            // Positive, like a real pid, and unique among live sessions.
            let pid = rng.random_range(1..i32::MAX);
            if !map.contains_key(&pid) {
                break pid;
            }
        };
        let key = CancelKey {
            pid,
            secret: rng.random(),
        };
        map.insert(
            pid,
            Entry {
                secret: key.secret,
                real,
                upstream: upstream.to_owned(),
            },
        );
        Registration {
            registry: self.clone(),
            key,
            real,
            upstream: upstream.to_owned(),
        }
    }

    /// The backend a client's CancelRequest designates, when the key
    /// matches; an unknown key gets nothing, as in PostgreSQL.
    pub fn lookup(&self, key: CancelKey) -> Option<CancelTarget> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key.pid)
            .filter(|e| e.secret == key.secret)
            .map(|e| CancelTarget {
                upstream: e.upstream.clone(),
                real: e.real,
            })
    }

    /// Number of live sessions with a key.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sends a CancelRequest for `real` on a fresh connection to PostgreSQL.
async fn send_cancel(upstream: &str, real: CancelKey) {
    let attempt = async {
        let mut s = crate::upstream::dial::dial(upstream).await?;
        s.write_all(&real.encode_request()).await?;
        s.shutdown().await?;
        // PostgreSQL closes the connection after it has signalled the
        // backend: from then on the cancel is pending there, which is what
        // absorbing a stopped statement's cancel relies on.
        let mut sink = [0u8; 64];
        while s.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => tracing::debug!(pid = real.pid, "cancel request sent"),
        Ok(Err(e)) => tracing::warn!(pid = real.pid, error = %e, "cancel request failed"),
        Err(_) => tracing::warn!(pid = real.pid, "cancel request timed out"),
    }
}
