//! Cancelling a statement stopped by a row limit, without the cancel ever
//! reaching the client's next statement.
//!
//! A CancelRequest names a backend, not a statement: if the stopped
//! statement ends before the signal lands, PostgreSQL keeps the cancel
//! pending and aborts whatever runs next. So once the stopped request has
//! been answered and PostgreSQL has taken the cancel (it closes the cancel
//! connection after signalling the backend), pgwarden sends one statement of
//! its own that always fails. Any error clears a pending cancel in the
//! backend (PostgreSQL's error recovery resets it), and the signal was sent
//! before that statement arrived, so nothing is left to hit the client. The
//! client's next messages wait until then; the absorbing statement's
//! ReadyForQuery is the one the client sees, so its transaction status is
//! the aborted one an error implies.

use crate::cancel::CancelTarget;
use bytes::BytesMut;
use std::future::Future;
use std::pin::Pin;
use std::task::Context as TaskContext;
use tokio::sync::oneshot;

/// A statement that fails in parse analysis, before it can do anything.
const ABSORBING_STATEMENT: &str = "SELECT 'pgwarden: stopped statement'::pg_catalog.int4";

/// One stopped statement's cancellation, from the CancelRequest to the
/// absorbing statement's ReadyForQuery.
#[derive(Debug)]
pub struct Absorb {
    /// Resolves once PostgreSQL has taken the CancelRequest (or gave up).
    delivered: Option<oneshot::Receiver<()>>,
    /// The stopped request's ReadyForQuery arrived and was withheld.
    ready_held: bool,
    /// The absorbing statement was queued; its answer is not the client's.
    sent: bool,
}

impl Absorb {
    /// Sends the CancelRequest for `target` in the background.
    pub fn start(target: CancelTarget) -> Self {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            target.send().await;
            // A dropped receiver means the session already ended.
            let _ = tx.send(());
        });
        Self {
            delivered: Some(rx),
            ready_held: false,
            sent: false,
        }
    }

    /// Whether the absorbing statement is on its way: server messages from
    /// here to its ReadyForQuery answer it, not the client.
    pub fn answering_own(&self) -> bool {
        self.sent
    }

    /// The stopped request's ReadyForQuery arrived (and was withheld).
    pub fn hold_ready(&mut self) {
        self.ready_held = true;
    }

    /// Checks whether PostgreSQL has taken the cancel.
    pub fn poll_delivered(&mut self, cx: &mut TaskContext<'_>) {
        if let Some(rx) = self.delivered.as_mut() {
            // Ok or a dropped sender (the task panicked or the runtime is
            // ending) alike: the cancel is as delivered as it will be.
            if Pin::new(rx).poll(cx).is_ready() {
                self.delivered = None;
            }
        }
    }

    /// Queues the absorbing statement once both the cancel and the stopped
    /// request's answer are done; true if it queued it now.
    pub fn send_when_ready(&mut self, out: &mut BytesMut) -> bool {
        if self.sent || !self.ready_held || self.delivered.is_some() {
            return false;
        }
        super::capture::put_query(ABSORBING_STATEMENT, out);
        self.sent = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_statement_waits_for_the_cancel_and_the_answer() {
        let (tx, rx) = oneshot::channel();
        let mut a = Absorb {
            delivered: Some(rx),
            ready_held: false,
            sent: false,
        };
        let mut out = BytesMut::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        a.hold_ready();
        a.poll_delivered(&mut cx);
        assert!(!a.send_when_ready(&mut out), "cancel not delivered yet");
        tx.send(()).unwrap();
        a.poll_delivered(&mut cx);
        assert!(a.send_when_ready(&mut out));
        assert!(a.answering_own());
        assert_eq!(out[0], b'Q');
        assert!(!a.send_when_ready(&mut out), "sent once");
    }
}
