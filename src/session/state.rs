//! Per-session facts and the protocol state the relay tracks.

use crate::protocol::backend::TransactionStatus;
use crate::protocol::frontend;
use std::net::SocketAddr;

/// Who is connected, from where, and where their transaction stands.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Login role from the StartupMessage.
    pub user: String,
    /// Database.
    pub database: String,
    /// application_name, updated from ParameterStatus.
    pub application_name: String,
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// Whether the client connected with TLS.
    pub client_tls: bool,
    /// The real PostgreSQL backend pid.
    pub backend_pid: i32,
    /// From the last ReadyForQuery.
    pub transaction: TransactionStatus,
}

/// Tracks whether the server still owes the client a ReadyForQuery.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestTracker {
    /// ReadyForQuery messages the server still owes.
    pub pending_ready: u32,
    /// Extended-protocol messages sent since the last Sync.
    pub unsynced: bool,
}

impl RequestTracker {
    /// Notes a message forwarded to the server.
    pub fn on_frontend(&mut self, tag: u8) {
        if frontend::ends_request(tag) {
            self.pending_ready += 1;
            self.unsynced = false;
        } else if matches!(
            tag,
            frontend::PARSE
                | frontend::BIND
                | frontend::DESCRIBE
                | frontend::EXECUTE
                | frontend::CLOSE
                | frontend::FLUSH
        ) {
            self.unsynced = true;
        }
    }

    /// Notes a ReadyForQuery from the server.
    pub fn on_ready(&mut self) {
        self.pending_ready = self.pending_ready.saturating_sub(1);
    }

    /// Whether the server may be working for the client right now.
    pub fn busy(&self) -> bool {
        self.pending_ready > 0 || self.unsynced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_are_tracked() {
        let mut t = RequestTracker::default();
        for tag in *b"PBDES" {
            t.on_frontend(tag);
        }
        t.on_frontend(b'Q');
        assert!(t.busy());
        t.on_ready();
        assert!(t.busy());
        t.on_ready();
        assert!(!t.busy());
        t.on_frontend(b'P');
        t.on_frontend(b'H');
        assert!(t.busy());
    }
}
