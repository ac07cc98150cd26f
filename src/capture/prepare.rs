//! Preparing the capture of a statement text, once per text, role,
//! policy and catalog: whether the role may read back what it changes (a
//! RETURNING it may not read would make its statement fail, so such writes
//! run unchanged and their record says why), and the rewritten text.

use super::copy::{layout, Columns, Layout};
use super::merge::Images;
use super::plan::{Plan, Wanted};
use super::rewrite::{self, Rewritten, Target};
use crate::config::Config;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

/// The capture of one text: the text to send and a plan per statement.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The rewritten text (`None`: send the client's).
    pub text: Option<String>,
    /// Per statement, in order; `None` where nothing is captured.
    pub plans: Vec<Option<Arc<Plan>>>,
}

/// A capture to prepare before a message can be forwarded.
#[derive(Debug)]
pub struct Request {
    /// Cache key.
    pub key: Key,
    /// The role whose privileges count.
    pub role: String,
    /// The client's text.
    pub text: String,
    /// Per statement, what it writes of the captured columns.
    pub wanted: Vec<Option<Wanted>>,
    /// Per statement, the written table's oid.
    pub oids: Vec<Option<u32>>,
    /// Per COPY FROM statement, the table's columns (name, type oid) in
    /// attnum order; `None` for any other statement.
    pub copy_tables: Vec<Option<Columns>>,
    /// The text came in a Parse: a MERGE's images run beside it.
    pub extended: bool,
}

/// The cache key of a prepared capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u64);

/// How long a privilege check is trusted: GRANT and REVOKE do not change
/// the catalog version, so a revoked read-back fails a write for at most
/// this long (and a new grant is used after it).
const PRIVILEGES_TTL: Duration = Duration::from_secs(30);

/// Prepared captures, shared by every session.
pub struct Preparer {
    cache: moka::sync::Cache<Key, Arc<Prepared>>,
    /// (database, role, table, columns) → may read them back. Keyed apart
    /// from the text: simple-protocol writes differ in every literal, and
    /// each check would otherwise cost a connection.
    privileges: moka::sync::Cache<u64, bool>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Preparer {
    fn default() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(PRIVILEGES_TTL)
                .build(),
            privileges: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(PRIVILEGES_TTL)
                .build(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl Preparer {
    /// The key of `text` run by `role` in `database` under a policy
    /// generation and catalog version (a change of either is a new key),
    /// in a Parse (`extended`) or a Query: a MERGE is captured in a Query
    /// only.
    pub fn key(
        &self,
        text: &str,
        database: &str,
        role: &str,
        generation: u64,
        version: u64,
        extended: bool,
    ) -> Key {
        Key(self
            .hasher
            .hash_one((text, database, role, generation, version, extended)))
    }

    /// A prepared capture, if this key has one.
    pub fn cached(&self, key: Key) -> Option<Arc<Prepared>> {
        self.cache.get(&key)
    }

    /// Prepares and caches the capture `req` asks for, in `database`.
    pub async fn prepare(&self, config: &Config, database: &str, req: Request) -> Arc<Prepared> {
        let Request {
            key,
            role,
            text,
            wanted,
            oids,
            copy_tables,
            extended,
        } = req;
        let (role, text) = (role.as_str(), text.as_str());
        let mut reasons: Vec<Option<String>> = wanted
            .iter()
            .map(|w| w.as_ref().and_then(|w| w.unavailable.clone()))
            .collect();
        let is_copy = |i: usize| copy_tables.get(i).is_some_and(Option::is_some);
        let copy_layouts = copy_layouts(text, &wanted, &copy_tables, &mut reasons).await;
        // A COPY's values come from the client's own data: nothing is read
        // back, so no privilege is needed and nothing is rewritten.
        let mut checks: Vec<usize> = (0..wanted.len())
            .filter(|&i| wanted[i].is_some() && reasons[i].is_none() && !is_copy(i))
            .collect();
        let refused = |role: &str| {
            Some(format!(
                "role {role} may not read back the captured columns"
            ))
        };
        let privilege_key = |i: usize| {
            let w = wanted[i].as_ref()?;
            let oid = oids[i]?;
            Some(
                self.hasher
                    .hash_one((database, role, oid, &w.key, &w.columns, w.merge)),
            )
        };
        checks.retain(
            |&i| match privilege_key(i).and_then(|k| self.privileges.get(&k)) {
                Some(true) => false,
                Some(false) => {
                    reasons[i] = refused(role);
                    false
                }
                None => true,
            },
        );
        if !checks.is_empty() {
            match crate::catalog::load::connect(config, database).await {
                Ok(client) => {
                    for &i in &checks {
                        let (Some(w), Some(oid)) = (&wanted[i], oids[i]) else {
                            reasons[i] = Some("the table is not in the catalog".into());
                            continue;
                        };
                        let cols: Vec<String> = w.key.iter().chain(&w.columns).cloned().collect();
                        reasons[i] = match readable(&client, role, oid, &cols, w.merge).await {
                            Ok(may) => {
                                if let Some(k) = privilege_key(i) {
                                    self.privileges.insert(k, may);
                                }
                                if may {
                                    None
                                } else {
                                    refused(role)
                                }
                            }
                            Err(e) => Some(format!("privileges could not be checked: {e}")),
                        };
                    }
                }
                Err(e) => {
                    for &i in &checks {
                        reasons[i] = Some(format!("privileges could not be checked: {e}"));
                    }
                }
            }
        }
        let all_targets: Vec<Target> = (0..wanted.len())
            .filter_map(|i| {
                let w = wanted[i].as_ref()?;
                (reasons[i].is_none() && !is_copy(i)).then(|| Target {
                    index: i,
                    key: w.key.clone(),
                    columns: w.columns.clone(),
                    key_casts: w.key_casts.clone(),
                })
            })
            .collect();
        // A prepared MERGE keeps its text; its images run beside it.
        let (image_targets, targets): (Vec<Target>, Vec<Target>) = all_targets
            .into_iter()
            .partition(|t| extended && wanted[t.index].as_ref().is_some_and(|w| w.merge));
        let mut images: Vec<Option<Arc<Images>>> = vec![None; wanted.len()];
        if !image_targets.is_empty() {
            let owned = text.to_owned();
            let done = crate::analyse::parse::on_parser_thread(move || {
                image_targets
                    .iter()
                    .map(|t| (t.index, rewrite::merge_images(&owned, t)))
                    .collect::<Vec<_>>()
            })
            .await;
            match done {
                Ok(done) => {
                    for (i, r) in done {
                        match r {
                            Ok(im) => images[i] = Some(Arc::new(im)),
                            Err(e) => reasons[i] = Some(e.to_string()),
                        }
                    }
                }
                Err(e) => {
                    for (i, w) in wanted.iter().enumerate() {
                        if w.as_ref().is_some_and(|w| w.merge) {
                            reasons[i].get_or_insert_with(|| format!("not captured: {e}"));
                        }
                    }
                }
            }
        }
        let mut rewritten: Vec<Option<Rewritten>> = vec![None; wanted.len()];
        let mut out_text = None;
        if !targets.is_empty() {
            let owned = text.to_owned();
            let t2 = targets.clone();
            let result = crate::analyse::parse::on_parser_thread(move || {
                // All at once (one parse), the usual case; if that fails,
                // each on its own, so one that cannot be rewritten does not
                // stop the others.
                if let Ok(done) = rewrite::rewrite(&owned, &t2) {
                    return (Some(Ok(done)), Vec::new());
                }
                let mut ok = Vec::new();
                let mut failed = Vec::new();
                for t in t2 {
                    match rewrite::rewrite(&owned, std::slice::from_ref(&t)) {
                        Ok(_) => ok.push(t),
                        Err(e) => failed.push((t.index, e.to_string())),
                    }
                }
                let all = (!ok.is_empty()).then(|| rewrite::rewrite(&owned, &ok));
                (all, failed)
            })
            .await;
            match result {
                Ok((all, failed)) => {
                    for (i, e) in failed {
                        reasons[i] = Some(e);
                    }
                    match all {
                        Some(Ok((new_text, done))) => {
                            for r in done {
                                if let Some(slot) = rewritten.get_mut(r.index) {
                                    *slot = Some(r);
                                }
                            }
                            out_text = Some(new_text);
                        }
                        Some(Err(e)) => {
                            for t in &targets {
                                reasons[t.index].get_or_insert_with(|| e.to_string());
                            }
                        }
                        None => {}
                    }
                }
                Err(e) => {
                    for t in &targets {
                        reasons[t.index] = Some(format!("not captured: {e}"));
                    }
                }
            }
        }
        let plans = wanted
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                Some(Arc::new(Plan {
                    wanted: Arc::new(w?),
                    rewritten: rewritten[i],
                    reason: reasons[i].take(),
                    copy: copy_layouts.get(i).cloned().flatten(),
                    merge: images[i].take(),
                }))
            })
            .collect();
        let prepared = Arc::new(Prepared {
            text: out_text,
            plans,
        });
        self.cache.insert(key, prepared.clone());
        prepared
    }
}

/// Per statement, the layout of a captured COPY FROM STDIN; a COPY whose
/// layout cannot be read gets its reason instead.
async fn copy_layouts(
    text: &str,
    wanted: &[Option<Wanted>],
    tables: &[Option<Columns>],
    reasons: &mut [Option<String>],
) -> Vec<Option<Arc<Layout>>> {
    let jobs: Vec<(usize, Vec<String>, Vec<String>, Columns)> = wanted
        .iter()
        .zip(tables)
        .enumerate()
        .filter(|(i, _)| reasons.get(*i).is_some_and(Option::is_none))
        .filter_map(|(i, (w, t))| {
            let (w, t) = (w.as_ref()?, t.as_ref()?);
            Some((i, w.key.clone(), w.columns.clone(), t.clone()))
        })
        .collect();
    let mut out = vec![None; wanted.len()];
    if jobs.is_empty() {
        return out;
    }
    let owned = text.to_owned();
    let done = crate::analyse::parse::on_parser_thread(move || {
        jobs.into_iter()
            .map(|(i, key, columns, table)| (i, layout(&owned, i, &key, &columns, &table)))
            .collect::<Vec<_>>()
    })
    .await;
    match done {
        Ok(done) => {
            for (i, l) in done {
                match l {
                    Ok(l) => {
                        if let Some(slot) = out.get_mut(i) {
                            *slot = Some(Arc::new(l));
                        }
                    }
                    Err(e) => {
                        if let Some(r) = reasons.get_mut(i) {
                            *r = Some(e.to_string());
                        }
                    }
                }
            }
        }
        Err(e) => {
            for (i, t) in tables.iter().enumerate() {
                if t.is_some() {
                    if let Some(r) = reasons.get_mut(i) {
                        r.get_or_insert_with(|| format!("not captured: {e}"));
                    }
                }
            }
        }
    }
    out
}

/// Whether `role` may SELECT every one of `columns` of relation `oid`;
/// with `lock` (a MERGE's images read row versions and lock rows) also the
/// whole table (system columns have no column privileges) and UPDATE on
/// some column (`FOR UPDATE` needs it).
async fn readable(
    client: &tokio_postgres::Client,
    role: &str,
    oid: u32,
    columns: &[String],
    lock: bool,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT COALESCE(pg_catalog.bool_and(
                        pg_catalog.has_column_privilege($1::text::pg_catalog.name,
                            $2::text::pg_catalog.oid, c, 'SELECT')), true)
                    AND (NOT $4::pg_catalog.bool OR (
                        pg_catalog.has_table_privilege($1::text::pg_catalog.name,
                            $2::text::pg_catalog.oid, 'SELECT')
                        AND pg_catalog.has_any_column_privilege($1::text::pg_catalog.name,
                            $2::text::pg_catalog.oid, 'UPDATE')))
             FROM pg_catalog.unnest($3::text[]) AS c",
            &[&role, &oid.to_string(), &columns, &lock],
        )
        .await?;
    row.try_get(0)
}
