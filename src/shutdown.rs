//! Shutdown phases, broadcast to every task through a watch channel.

use tokio::sync::watch;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// No new clients; sessions end as soon as they are idle.
    Draining,
    /// Grace period over: every session closes now.
    Closing,
}

/// The sending side, owned by the shared context.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: watch::channel(Phase::Running).0,
        }
    }
}

impl Shutdown {
    /// Moves to `phase` unless already past it.
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            if *p < phase {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// A receiver that wakes on every phase change.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}
