//! `audit.durability = "strict"`: a statement's completion (its
//! CommandComplete or ErrorResponse, and everything queued to the client
//! after it) is held in the client's write queue until the audit writer
//! reports the statement's record written and fsynced. The session never
//! waits for it: the relay writes up to the first held byte, and a waker
//! on the writer's watermark resumes it when the watermark moves.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::sync::watch;

/// A place in the client's output that waits for a record.
#[derive(Debug, Clone, Copy)]
struct Hold {
    /// Offset in everything ever queued to the client.
    at: u64,
    /// The record's ticket; `None` while the record waits in the session's
    /// outbox for room in the audit queue (it gets one when sent).
    ticket: Option<u64>,
}

/// A pending wake-up on the watermark.
type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The holds of one session's client output.
#[derive(Default)]
pub struct Holds {
    /// The writer's watermark; `None` unless durability is strict.
    watermark: Option<watch::Receiver<u64>>,
    queue: VecDeque<Hold>,
    /// Resolves once the watermark passes `waiting_for` (or the writer is gone).
    wait: Option<(u64, Wait)>,
    /// The writer ended: nothing will ever be confirmed, so nothing is held.
    writer_gone: bool,
}

impl Holds {
    /// Holds driven by `watermark` (`None`: durability is not strict, and
    /// nothing is ever held).
    pub fn new(watermark: Option<watch::Receiver<u64>>) -> Self {
        Self {
            watermark,
            ..Self::default()
        }
    }

    /// Whether output is held at all (strict durability).
    pub fn active(&self) -> bool {
        self.watermark.is_some()
    }

    /// Output from offset `at` on waits for the record with `ticket`.
    pub fn push(&mut self, at: u64, ticket: Option<u64>) {
        if self.watermark.is_some() {
            self.queue.push_back(Hold { at, ticket });
        }
    }

    /// A record from the outbox was queued with `ticket`: the oldest hold
    /// still without one is its (outbox and holds keep the same order).
    pub fn fill(&mut self, ticket: u64) {
        if let Some(h) = self.queue.iter_mut().find(|h| h.ticket.is_none()) {
            h.ticket = Some(ticket);
        }
    }

    /// Drops the holds the watermark has passed; returns the offset of the
    /// first one still held.
    fn first_held(&mut self) -> Option<u64> {
        if self.writer_gone {
            self.queue.clear();
            return None;
        }
        if self.queue.is_empty() {
            return None;
        }
        let durable = *self.watermark.as_ref()?.borrow();
        while let Some(h) = self.queue.front() {
            match h.ticket {
                Some(t) if t <= durable => {
                    self.queue.pop_front();
                }
                _ => return Some(h.at),
            }
        }
        None
    }

    /// How many bytes of the client's queue (whose first byte is at offset
    /// `written`) may be written now. When some are held, the task is woken
    /// once the watermark moves past the first hold.
    pub fn writable(&mut self, written: u64, cx: &mut TaskContext<'_>) -> usize {
        loop {
            let Some(at) = self.first_held() else {
                self.wait = None;
                return usize::MAX;
            };
            let allowed = usize::try_from(at.saturating_sub(written)).unwrap_or(usize::MAX);
            let Some(ticket) = self.queue.front().and_then(|h| h.ticket) else {
                // Still in the outbox: the relay sends it and fills the ticket.
                return allowed;
            };
            if self.wait.as_ref().is_none_or(|(t, _)| *t != ticket) {
                let Some(mut rx) = self.watermark.clone() else {
                    return usize::MAX;
                };
                let wait: Wait = Box::pin(async move {
                    // A gone writer resolves it too, with the value unmet:
                    // `writable` then sees that.
                    let _ = rx.wait_for(|d| *d >= ticket).await;
                });
                self.wait = Some((ticket, wait));
            }
            let Some((_, wait)) = self.wait.as_mut() else {
                return allowed;
            };
            match wait.as_mut().poll(cx) {
                Poll::Pending => return allowed,
                Poll::Ready(()) => {
                    self.wait = None;
                    let durable = self.watermark.as_ref().map_or(u64::MAX, |w| *w.borrow());
                    if durable < ticket {
                        tracing::error!(
                            "the audit writer has stopped; results are no longer held for their records"
                        );
                        self.writer_gone = true;
                    }
                }
            }
        }
    }

    /// Waits (at most `limit`) until nothing is held; returns the offset of
    /// the first byte still held after that, if any.
    pub async fn settle(&mut self, limit: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let at = self.first_held()?;
            let (Some(ticket), Some(mut rx)) = (
                self.queue.front().and_then(|h| h.ticket),
                self.watermark.clone(),
            ) else {
                return Some(at);
            };
            let reached = tokio::time::timeout_at(deadline, rx.wait_for(|d| *d >= ticket))
                .await
                .is_ok_and(|r| r.is_ok());
            if !reached {
                return Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn output_is_held_until_the_watermark_passes_its_record() {
        let (tx, rx) = watch::channel(0u64);
        let mut h = Holds::new(Some(rx));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert_eq!(h.writable(0, &mut cx), usize::MAX);
        h.push(10, Some(1));
        h.push(25, None);
        assert_eq!(h.writable(0, &mut cx), 10);
        assert_eq!(h.writable(4, &mut cx), 6);
        tx.send_replace(1);
        // The second hold has no ticket yet (its record is in the outbox).
        assert_eq!(h.writable(4, &mut cx), 21);
        h.fill(2);
        assert_eq!(h.writable(25, &mut cx), 0);
        tx.send_replace(5);
        assert_eq!(h.writable(25, &mut cx), usize::MAX);
    }

    #[test]
    fn nothing_is_held_unless_strict() {
        let mut h = Holds::new(None);
        h.push(0, Some(1));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert_eq!(h.writable(0, &mut cx), usize::MAX);
        assert!(!h.active());
    }

    #[test]
    fn a_stopped_writer_releases_what_it_held() {
        let (tx, rx) = watch::channel(0u64);
        let mut h = Holds::new(Some(rx));
        h.push(3, Some(1));
        drop(tx);
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert_eq!(h.writable(0, &mut cx), usize::MAX);
    }
}
