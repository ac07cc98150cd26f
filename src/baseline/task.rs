//! The learner task: takes observations off the queue, learns or judges
//! them against the user's baseline, raises alerts (one per user, kind and
//! object per cooldown), and saves the baselines every `save_interval`
//! while they changed, and when stopped.

use super::model::{Baselines, Reads, UserBaseline};
use super::{learn, score, store, Observation};
use crate::alert::{Action, Alert, Severity};
use crate::analyse::{is_system_schema, Analysis};
use crate::audit::SessionContext;
use crate::context::Context;
use crate::policy::file::BaselineSpec;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Cooldown entries kept before old ones are pruned.
const MAX_COOLDOWNS: usize = 100_000;

/// The learner, ready to run once the shared context exists.
pub struct Learner {
    rx: mpsc::Receiver<Observation>,
    state: Baselines,
    path: PathBuf,
    save_every: Duration,
}

/// The running learner; [`BaselineTask::shutdown`] saves and stops it.
pub struct BaselineTask {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl BaselineTask {
    /// Learns what is still queued, saves the file, and stops.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.handle.await;
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The relations and columns a statement read (output and filter), user
/// tables only.
fn reads_of(a: &Analysis) -> Reads {
    a.accesses
        .iter()
        .filter(|acc| !is_system_schema(&acc.relation.schema))
        .filter(|acc| !acc.output.is_empty() || !acc.filter.is_empty())
        .map(|acc| {
            let cols = acc.output.union(&acc.filter).cloned().collect();
            (acc.relation.to_string(), cols)
        })
        .collect()
}

impl Learner {
    pub(super) fn new(
        rx: mpsc::Receiver<Observation>,
        state: Baselines,
        path: PathBuf,
        save_every: Duration,
    ) -> Self {
        Self {
            rx,
            state,
            path,
            save_every,
        }
    }

    /// Starts learning on the current runtime.
    pub fn spawn(self, ctx: Arc<Context>) -> BaselineTask {
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(self.run(ctx, stopped));
        BaselineTask {
            stop: Some(stop),
            handle,
        }
    }

    async fn run(mut self, ctx: Arc<Context>, mut stopped: oneshot::Receiver<()>) {
        let mut engine = Engine {
            ctx: ctx.clone(),
            state: std::mem::take(&mut self.state),
            cooldowns: HashMap::new(),
            dirty: false,
        };
        let mut tick = tokio::time::interval(self.save_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                o = self.rx.recv() => match o {
                    Some(o) => engine.observe(o),
                    None => break,
                },
                _ = tick.tick() => {
                    if engine.dirty {
                        engine.dirty = false;
                        save(&ctx, self.path.clone(), store::encode(&engine.state)).await;
                    }
                }
                // Stopped, or the server was dropped without stopping it.
                _ = &mut stopped => break,
            }
        }
        while let Ok(o) = self.rx.try_recv() {
            engine.observe(o);
        }
        save(&ctx, self.path.clone(), store::encode(&engine.state)).await;
    }
}

async fn save(ctx: &Context, path: PathBuf, bytes: Vec<u8>) {
    let r = tokio::task::spawn_blocking(move || store::save(&path, &bytes)).await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            ctx.metrics.baseline_save_errors.inc();
            tracing::error!(error = %e, "baselines not saved; retrying on the next period");
        }
        Err(e) => {
            ctx.metrics.baseline_save_errors.inc();
            tracing::error!(error = %e, "baseline save task failed");
        }
    }
}

/// Baselines, and when each (user, kind, object) last alerted.
struct Engine {
    ctx: Arc<Context>,
    state: Baselines,
    cooldowns: HashMap<(Arc<str>, &'static str, String), u64>,
    dirty: bool,
}

impl Engine {
    fn spec(&self) -> BaselineSpec {
        self.ctx
            .policy
            .current()
            .map(|p| p.baseline.clone())
            .unwrap_or_default()
    }

    fn baseline(&mut self, user: &str, at: u64) -> &mut UserBaseline {
        if !self.state.users.contains_key(user) {
            self.state
                .users
                .insert(user.to_owned(), UserBaseline::new(at));
            self.ctx
                .metrics
                .baseline_users
                .set(self.state.users.len() as i64);
        }
        self.state.users.entry(user.to_owned()).or_default()
    }

    fn observe(&mut self, o: Observation) {
        let spec = self.spec();
        match o {
            Observation::Login { session, at } => self.login(&session, secs(at), &spec),
            Observation::Statement {
                session,
                analysis,
                rows,
                at,
            } => self.statement(&session, &analysis, rows, secs(at), &spec),
        }
    }

    fn login(&mut self, session: &Arc<SessionContext>, at: u64, spec: &BaselineSpec) {
        if session.user.is_empty() {
            return;
        }
        let addr = session.client_addr.ip().to_string();
        self.dirty = true;
        let b = self.baseline(&session.user, at);
        b.finish_if_due(at, spec);
        if !b.learned() {
            b.learn_login(&addr, at);
            return;
        }
        let mut found = Vec::new();
        if !b.addresses.contains_key(&addr) {
            let usual: Vec<&String> = b.addresses.keys().take(20).collect();
            found.push(score::Deviation {
                kind: "address",
                object: addr.clone(),
                score: 1.0,
                evidence: serde_json::json!({ "seen": addr, "usual_addresses": usual }),
            });
            // Used once, it is no longer an address never used.
            b.add_address(&addr);
        }
        found.extend(score::hour_of_day(b, learn::hour_of_day(at), spec));
        for d in found {
            self.alert(session, d, None, at, spec);
        }
    }

    fn statement(
        &mut self,
        session: &Arc<SessionContext>,
        a: &Analysis,
        rows: u64,
        at: u64,
        spec: &BaselineSpec,
    ) {
        let reads = reads_of(a);
        if reads.is_empty() || session.user.is_empty() {
            return;
        }
        self.dirty = true;
        let b = self.baseline(&session.user, at);
        b.finish_if_due(at, spec);
        if !b.learned() {
            b.learn_statement(&reads, rows, at);
            return;
        }
        let hour_rows = b.rows.add(at, rows, false);
        let found = score::statement(b, &reads, learn::hour_of_day(at), hour_rows, spec);
        for d in found {
            self.alert(session, d, Some(&a.normalized), at, spec);
        }
    }

    /// Raises `d` unless the same user, kind and object alerted within the
    /// cooldown.
    fn alert(
        &mut self,
        session: &Arc<SessionContext>,
        d: score::Deviation,
        statement: Option<&str>,
        at: u64,
        spec: &BaselineSpec,
    ) {
        let cooldown = spec.cooldown.0.as_secs();
        let key = (session.user.clone(), d.kind, d.object.clone());
        if self
            .cooldowns
            .get(&key)
            .is_some_and(|&last| at.saturating_sub(last) < cooldown && at >= last)
        {
            return;
        }
        if self.cooldowns.len() >= MAX_COOLDOWNS {
            self.cooldowns
                .retain(|_, last| at.saturating_sub(*last) < cooldown);
        }
        self.cooldowns.insert(key, at);
        let mut evidence = serde_json::json!({
            "score": d.score,
            "deviation": d.kind,
        });
        if let (Some(map), serde_json::Value::Object(extra)) =
            (evidence.as_object_mut(), d.evidence)
        {
            map.extend(extra);
            if let Some(s) = statement {
                map.insert("statement".into(), s.into());
            }
        }
        let (kind, rule) = match d.kind {
            "address" => ("new_address", "baseline.new_address".to_owned()),
            k => ("baseline_deviation", format!("baseline.{k}")),
        };
        self.ctx.raise_alert(Alert {
            kind: kind.into(),
            rule,
            severity: Severity::Warning,
            user: session.user.to_string(),
            session_id: Some(session.session_id),
            client_addr: Some(session.client_addr),
            evidence,
            action: Action::Alerted,
            timestamp: SystemTime::now(),
        });
    }
}
