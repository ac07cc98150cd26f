//! The policy in force: loaded once, swapped atomically on SIGHUP or when a
//! file changes; a bad file keeps the old policy running.

use super::{load, Policy, PolicyError};
use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The live policy and where it comes from.
#[derive(Debug, Default)]
pub struct PolicyStore {
    current: ArcSwapOption<Policy>,
    path: Mutex<Option<PathBuf>>,
    generation: AtomicU64,
    /// Modification times of the files at the last load (change detection).
    stamp: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
}

fn stamp_of(path: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut out: Vec<(PathBuf, Option<SystemTime>)> = load::policy_files(path)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, m)
        })
        .collect();
    // The directory's own time catches added and removed files.
    out.push((
        path.to_owned(),
        std::fs::metadata(path).and_then(|m| m.modified()).ok(),
    ));
    out
}

impl PolicyStore {
    /// A store with no policy (every statement passes, audited only).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads the policy at `path`; on error nothing changes.
    pub fn load(&self, path: &Path) -> Result<Arc<Policy>, PolicyError> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // Remember what was tried, so a bad file is reported once per change.
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp_of(path);
        *self.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_owned());
        let policy = Arc::new(load::load(path, generation)?);
        self.current.store(Some(policy.clone()));
        Ok(policy)
    }

    /// Installs an already compiled policy (tests, `policy test`).
    pub fn set(&self, policy: Policy) {
        self.current.store(Some(Arc::new(policy)));
    }

    /// Reloads from the same path (SIGHUP); `Ok(None)` when none is configured.
    pub fn reload(&self) -> Result<Option<Arc<Policy>>, PolicyError> {
        let path = self.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match path {
            Some(p) => self.load(&p).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a file changed since the last load.
    pub fn changed_on_disk(&self) -> bool {
        let path = self.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(path) = path else { return false };
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) != stamp_of(&path)
    }

    /// The policy in force, if any.
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    /// A fresh generation number (for policies installed with `set`).
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }
}
