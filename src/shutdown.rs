//! Shutdown phases. The listener and admin tasks wait on a watch channel;
//! sessions read an atomic on every turn (no lock on the message path) and
//! are woken through their own registered waker when the phase changes.

use atomic_waker::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
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

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Running,
            1 => Self::Draining,
            _ => Self::Closing,
        }
    }
}

/// The shutdown signal, owned by the shared context.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
    phase: AtomicU8,
    sessions: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: watch::channel(Phase::Running).0,
            phase: AtomicU8::new(0),
            sessions: Mutex::new(Vec::new()),
        }
    }
}

impl Shutdown {
    /// Moves to `phase` unless already past it, and wakes every session.
    pub fn advance(&self, phase: Phase) {
        let moved = self.tx.send_if_modified(|p| {
            if *p < phase {
                *p = phase;
                true
            } else {
                false
            }
        });
        if moved {
            self.phase.store(phase as u8, Ordering::Release);
            let sessions = self.sessions.lock().map(|s| s.clone()).unwrap_or_default();
            for w in sessions.iter().filter_map(Weak::upgrade) {
                w.wake();
            }
        }
    }

    /// The current phase (one atomic load).
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// A receiver that wakes on every phase change.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// A waker slot for one session: woken on every phase change.
    pub fn register_session(&self) -> Arc<AtomicWaker> {
        let w = Arc::new(AtomicWaker::new());
        if let Ok(mut list) = self.sessions.lock() {
            if list.len() >= 64 && list.len().is_power_of_two() {
                list.retain(|w| w.strong_count() > 0);
            }
            list.push(Arc::downgrade(&w));
        }
        w
    }
}
