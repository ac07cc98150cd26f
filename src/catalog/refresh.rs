//! Keeping one catalog snapshot per database fresh: loaded on first use,
//! reloaded on a period and after DDL, swapped atomically so readers never
//! wait, versioned so analyses cached against an older snapshot are never
//! served again.

use super::load::{self, CatalogError};
use super::model::Catalog;
use crate::config::Config;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OnceCell};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// Wait after a reload request before reloading, so that a burst of DDL
/// (a migration) costs one reload rather than one per statement.
const COALESCE_DELAY: Duration = Duration::from_millis(100);

/// Upper bound on one catalog read; the server-side `statement_timeout`
/// covers a busy server, this covers a silent network.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The catalogs of every database pgwarden has analysed statements for.
pub struct Catalogs {
    /// Database name to its state. Copied on insert (rare), read lock-free.
    dbs: ArcSwap<HashMap<String, Arc<DbCatalog>>>,
    /// Serialises inserts into `dbs` so none is lost.
    adding: Mutex<()>,
    /// What the refresh tasks share with this handle.
    shared: Arc<Shared>,
}

struct Shared {
    /// The configuration the next connection and sleep use.
    config: ArcSwap<Config>,
    /// Cancelled on `shutdown()` or when the `Catalogs` is dropped.
    stop: CancellationToken,
}

/// One database: its snapshot, refresh trigger and service connection.
struct DbCatalog {
    name: String,
    snapshot: ArcSwapOption<Catalog>,
    /// Set once the first load succeeded and the refresh task runs.
    started: OnceCell<()>,
    /// Reload requests; a stored permit coalesces any number of them.
    wake: Notify,
    /// The service connection; holding the lock serialises reloads, which
    /// is what keeps versions increasing.
    service: tokio::sync::Mutex<Option<Service>>,
}

/// An open service connection and the configuration it was opened with.
struct Service {
    client: Client,
    config: Arc<Config>,
}

impl Catalogs {
    /// Creates the (empty) set of catalogs; nothing connects until [`Self::get`].
    pub fn new(config: &Config) -> Arc<Catalogs> {
        Arc::new(Catalogs {
            dbs: ArcSwap::default(),
            adding: Mutex::new(()),
            shared: Arc::new(Shared {
                config: ArcSwap::from_pointee(config.clone()),
                stop: CancellationToken::new(),
            }),
        })
    }

    /// The current snapshot of `database`, loading it (once, however many
    /// callers ask at the same time) and starting its refresh on first use.
    pub async fn get(&self, database: &str) -> Result<Arc<Catalog>, CatalogError> {
        if let Some(c) = self.current(database) {
            return Ok(c);
        }
        if self.shared.stop.is_cancelled() {
            return Err(CatalogError::ShutDown);
        }
        let db = self.entry(database);
        db.started
            .get_or_try_init(|| async {
                reload(&self.shared, &db).await?;
                tokio::spawn(refresh_task(self.shared.clone(), db.clone()));
                Ok::<(), CatalogError>(())
            })
            .await?;
        // Set by the first load above (here or in a concurrent caller).
        db.snapshot.load_full().ok_or(CatalogError::ShutDown)
    }

    /// The current snapshot of `database` without waiting; `None` if it was
    /// never loaded.
    pub fn current(&self, database: &str) -> Option<Arc<Catalog>> {
        self.dbs.load().get(database)?.snapshot.load_full()
    }

    /// Asks for a reload of `database` soon (after DDL); never blocks, and a
    /// burst of requests gives one or two reloads. Ignored for a database
    /// never loaded: its first [`Self::get`] loads it fresh anyway.
    pub fn request_reload(&self, database: &str) {
        if let Some(db) = self.dbs.load().get(database) {
            db.wake.notify_one();
        }
    }

    /// Asks for a reload of every loaded database soon (roles are
    /// cluster-wide, so CREATE/ALTER/GRANT ROLE concerns them all).
    pub fn request_reload_all(&self) {
        for db in self.dbs.load().values() {
            db.wake.notify_one();
        }
    }

    /// Reloads `database` now and returns the resulting snapshot (the same
    /// `Arc` and version when nothing changed).
    pub async fn reload_now(&self, database: &str) -> Result<Arc<Catalog>, CatalogError> {
        if self.shared.stop.is_cancelled() {
            return Err(CatalogError::ShutDown);
        }
        let db = self.entry(database);
        if db.started.initialized() {
            reload(&self.shared, &db).await
        } else {
            // Never loaded: the first load is fresh and starts the refresh.
            self.get(database).await
        }
    }

    /// Takes a new configuration (SIGHUP): credentials, address and TLS apply
    /// from the next reload on, the interval from the next wait.
    pub fn update_config(&self, config: &Config) {
        self.shared.config.store(Arc::new(config.clone()));
    }

    /// Stops every refresh task and closes the service connections; snapshots
    /// already loaded stay readable, nothing is loaded any more.
    pub fn shutdown(&self) {
        self.shared.stop.cancel();
    }

    /// The state of `database`, created empty when new.
    fn entry(&self, database: &str) -> Arc<DbCatalog> {
        if let Some(db) = self.dbs.load().get(database) {
            return db.clone();
        }
        // A poisoned lock only means another insert panicked; the map is intact.
        let _guard = self.adding.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.dbs.load_full();
        if let Some(db) = map.get(database) {
            return db.clone();
        }
        let db = Arc::new(DbCatalog {
            name: database.to_owned(),
            snapshot: ArcSwapOption::empty(),
            started: OnceCell::new(),
            wake: Notify::new(),
            service: tokio::sync::Mutex::new(None),
        });
        let mut next = HashMap::clone(&map);
        next.insert(database.to_owned(), db.clone());
        self.dbs.store(Arc::new(next));
        db
    }
}

impl Drop for Catalogs {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Reloads on the period and on request until stopped, then closes the
/// service connection.
async fn refresh_task(shared: Arc<Shared>, db: Arc<DbCatalog>) {
    let stop = &shared.stop;
    loop {
        let interval = shared.config.load().catalog.refresh_interval.0;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
            () = db.wake.notified() => {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(COALESCE_DELAY) => {}
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            result = reload(&shared, &db) => {
                if let Err(e) = result {
                    tracing::warn!(database = %db.name, error = %e,
                        "catalog reload failed; keeping the last snapshot");
                }
            }
        }
    }
    *db.service.lock().await = None;
}

/// The next catalog version, shared by every database.
static NEXT_VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Loads `db` afresh and publishes the result: the previous snapshot when
/// nothing changed, else a new one with the next version.
async fn reload(shared: &Shared, db: &DbCatalog) -> Result<Arc<Catalog>, CatalogError> {
    let mut service = db.service.lock().await;
    if shared.stop.is_cancelled() {
        return Err(CatalogError::ShutDown);
    }
    let config = shared.config.load_full();
    let reused = service
        .as_ref()
        .is_some_and(|s| !s.client.is_closed() && Arc::ptr_eq(&s.config, &config));
    let mut result = load_with(&mut service, &config, &db.name).await;
    if reused && result.is_err() {
        // A kept connection may have died unnoticed (server restart, idle
        // timeout); one fresh attempt tells that apart from a real failure.
        result = load_with(&mut service, &config, &db.name).await;
    }
    let mut catalog = result?;
    let previous = db.snapshot.load_full();
    if let Some(p) = &previous {
        if same_content(p, &catalog) {
            return Ok(p.clone());
        }
    }
    // Versions are unique across databases: caches keyed by the version
    // (analyses, policy decisions) can then never mix two databases up.
    catalog.version = NEXT_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let catalog = Arc::new(catalog);
    db.snapshot.store(Some(catalog.clone()));
    tracing::debug!(database = %db.name, version = catalog.version, "catalog loaded");
    Ok(catalog)
}

/// One load over the kept connection, (re)connecting first when there is
/// none, it broke or the configuration changed; a failed load drops the
/// connection so that the next one starts clean.
async fn load_with(
    service: &mut Option<Service>,
    config: &Arc<Config>,
    database: &str,
) -> Result<Catalog, CatalogError> {
    let usable = service
        .as_ref()
        .is_some_and(|s| !s.client.is_closed() && Arc::ptr_eq(&s.config, config));
    if !usable {
        *service = None;
        let client = load::connect(config, database).await?;
        *service = Some(Service {
            client,
            config: config.clone(),
        });
    }
    let Some(s) = service.as_ref() else {
        return Err(CatalogError::ShutDown);
    };
    let result = match tokio::time::timeout(LOAD_TIMEOUT, load::load(&s.client)).await {
        Ok(r) => r,
        Err(_) => Err(CatalogError::Timeout(LOAD_TIMEOUT)),
    };
    if result.is_err() {
        *service = None;
    }
    result
}

/// Whether two snapshots hold the same objects (versions aside).
fn same_content(a: &Catalog, b: &Catalog) -> bool {
    // Destructured so that a field added to Catalog cannot be forgotten here.
    let Catalog {
        version: _,
        schemas,
        relations,
        by_name,
        functions,
        roles,
    } = a;
    *schemas == b.schemas
        && *relations == b.relations
        && *by_name == b.by_name
        && *functions == b.functions
        && *roles == b.roles
}
