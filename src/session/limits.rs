//! Bulk extraction, inline: rows are counted as they stream back, per
//! statement and per user in sliding windows shared through the budget store
//! (memory, or Redis across replicas). A statement that would pass a block
//! limit is stopped mid-stream: no row past the limit reaches the client, the
//! rest of its answer is drained, and the client gets SQLSTATE 53400.
//!
//! Window totals come from the store asynchronously: fetched at login and
//! after every statement that counted rows, plus what this session counted
//! since. Another replica's rows therefore count from its next statement on.

use super::tracking::Pending;
use crate::alert::{Action, Alert, Severity};
use crate::audit::SessionContext;
use crate::context::Context;
use crate::policy::compiled::Limit;
use crate::protocol::backend::error_response::PgError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// configuration_limit_exceeded: the security team's row limit was hit.
pub const ROW_LIMIT_SQLSTATE: &str = "53400";

/// A window's total as last read from the store, and rows counted here
/// since that are not in it yet.
#[derive(Debug, Default, Clone, Copy)]
struct WindowUse {
    known: u64,
    pending: u64,
}

/// Per-session row counting against the policy's limits.
#[derive(Debug)]
pub struct Limiter {
    windows: Arc<Mutex<HashMap<String, WindowUse>>>,
    user: Arc<str>,
    /// Rows fetched so far per cursor or portal.
    carry: HashMap<String, u64>,
}

/// What to do with a DataRow.
#[derive(Debug)]
pub enum RowStep {
    /// Forward it.
    Pass,
    /// Withhold it (the statement is being stopped).
    Withhold,
    /// Withhold it: the statement is stopped from here on.
    Stop,
}

/// The budget-store key of a user's rows under one limit.
fn window_key(user: &str, limit: &Limit) -> String {
    format!("rows:{user}:{}", limit.name)
}

impl Limiter {
    /// A limiter for the session of `user` (the login user: budgets are per
    /// person, whatever role they switch to).
    pub fn new(user: &str) -> Self {
        Self {
            windows: Arc::default(),
            user: Arc::from(user),
            carry: HashMap::new(),
        }
    }

    /// Rows already fetched from a cursor or portal.
    pub fn carry(&self, origin: &str) -> u64 {
        self.carry.get(origin).copied().unwrap_or(0)
    }

    /// A cursor was declared or a portal bound afresh: its count restarts.
    pub fn reset(&mut self, origin: &str) {
        self.carry.remove(origin);
    }

    fn used(&self, limit: &Limit) -> u64 {
        if limit.block_rows_per_window.is_none() && limit.alert_rows_per_window.is_none() {
            return 0;
        }
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.get(&window_key(&self.user, limit))
            .map_or(0, |u| u.known + u.pending)
    }

    /// Reads this user's window totals for every window limit (at login).
    pub async fn prefetch(&self, ctx: &Context) {
        let Some(policy) = ctx.policy.current() else {
            return;
        };
        let now = SystemTime::now();
        for l in policy
            .limits
            .iter()
            .filter(|l| l.block_rows_per_window.is_some() || l.alert_rows_per_window.is_some())
        {
            let key = window_key(&self.user, l);
            match ctx.budgets.total(&key, l.window, now).await {
                Ok(total) => {
                    let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
                    w.entry(key).or_default().known = total;
                }
                Err(e) => {
                    tracing::warn!(error = %e, limit = %l.name, "budget store unavailable; window counts from this session only")
                }
            }
        }
    }

    /// Counts one DataRow of `p` (its row counter already includes it).
    pub fn on_row(&self, ctx: &Context, session: &SessionContext, p: &mut Pending) -> RowStep {
        if p.blocked.is_some() {
            return RowStep::Withhold;
        }
        let Some(v) = &p.verdict else {
            return RowStep::Pass;
        };
        let rows = p.carry + p.rows;
        if p.window_base.len() != v.decision.limits.len() {
            p.window_base = v
                .decision
                .limits
                .iter()
                .map(|(l, _)| self.used(l))
                .collect();
        }
        for (i, (limit, table)) in v.decision.limits.iter().enumerate() {
            let in_window = p.window_base.get(i).copied().unwrap_or(0) + rows;
            if limit.alert_rows.is_some_and(|a| rows == a + 1) {
                raise(
                    ctx,
                    session,
                    limit,
                    table,
                    "rows_per_statement",
                    rows,
                    limit.alert_rows,
                    Action::Alerted,
                    Severity::Warning,
                );
            }
            if limit
                .alert_rows_per_window
                .is_some_and(|a| in_window == a + 1)
            {
                raise(
                    ctx,
                    session,
                    limit,
                    table,
                    "rows_per_window",
                    in_window,
                    limit.alert_rows_per_window,
                    Action::Alerted,
                    Severity::Warning,
                );
            }
            let over_statement = limit.block_rows.is_some_and(|b| rows > b);
            let over_window = limit.block_rows_per_window.is_some_and(|b| in_window > b);
            if !(over_statement || over_window) {
                continue;
            }
            let (what, threshold, count) = if over_statement {
                ("block_rows", limit.block_rows, rows - 1)
            } else {
                (
                    "block_rows_per_window",
                    limit.block_rows_per_window,
                    in_window - 1,
                )
            };
            if v.monitor {
                if !p.limit_alerted {
                    p.limit_alerted = true;
                    raise(
                        ctx,
                        session,
                        limit,
                        table,
                        what,
                        count + 1,
                        threshold,
                        Action::Alerted,
                        Severity::Critical,
                    );
                }
                continue;
            }
            raise(
                ctx,
                session,
                limit,
                table,
                what,
                count + 1,
                threshold,
                Action::Blocked,
                Severity::Critical,
            );
            let window = if over_statement {
                String::new()
            } else {
                format!(" in {}", humantime::format_duration(limit.window))
            };
            p.blocked = Some((
                PgError::error(
                    ROW_LIMIT_SQLSTATE,
                    format!(
                        "pgwarden stopped the statement: more than {} rows of {table}{window} (limit \"{}\", {what})",
                        threshold.unwrap_or(0),
                        limit.name
                    ),
                )
                .with_hint("Narrow the query, or ask the security team for a higher limit."),
                limit.name.clone(),
            ));
            // The row that crossed the limit is not counted as delivered.
            p.rows -= 1;
            return RowStep::Stop;
        }
        RowStep::Pass
    }

    /// A statement ended: its delivered rows go to the window counters.
    pub fn on_finished(&mut self, ctx: &Arc<Context>, session: &Arc<SessionContext>, p: &Pending) {
        if let Some(o) = &p.origin {
            if self.carry.len() > 1024 {
                self.carry.clear();
            }
            self.carry.insert(o.clone(), p.carry + p.rows);
        }
        let Some(v) = &p.verdict else { return };
        if p.rows == 0 {
            return;
        }
        for (limit, table) in &v.decision.limits {
            if limit.block_rows_per_window.is_none() && limit.alert_rows_per_window.is_none() {
                continue;
            }
            let key = window_key(&self.user, limit);
            let rows = p.rows;
            {
                let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
                w.entry(key.clone()).or_default().pending += rows;
            }
            let now = SystemTime::now();
            // The memory store answers at once: no task per statement.
            if let Some(result) = ctx.budgets.add_in_process(&key, rows, limit.window, now) {
                settle(&self.windows, key, rows, result, ctx, session, limit, table);
                continue;
            }
            let (ctx, session, limit, table, windows) = (
                ctx.clone(),
                session.clone(),
                limit.clone(),
                table.clone(),
                self.windows.clone(),
            );
            tokio::spawn(async move {
                let result = ctx.budgets.add(&key, rows, limit.window, now).await;
                settle(&windows, key, rows, result, &ctx, &session, &limit, &table);
            });
        }
    }
}

/// Takes a window's new total from the store (or, when it failed, counts
/// locally) and alerts when rows counted elsewhere crossed a threshold.
#[allow(clippy::too_many_arguments)]
fn settle(
    windows: &Mutex<HashMap<String, WindowUse>>,
    key: String,
    rows: u64,
    result: Result<u64, crate::budget::BudgetError>,
    ctx: &Context,
    session: &SessionContext,
    limit: &Limit,
    table: &str,
) {
    let mut w = windows.lock().unwrap_or_else(|e| e.into_inner());
    let u = w.entry(key).or_default();
    u.pending = u.pending.saturating_sub(rows);
    match result {
        Ok(total) => {
            let before = u.known;
            u.known = total;
            drop(w);
            // Crossed by rows counted elsewhere (other sessions or
            // replicas) since the last read: alert once.
            if let Some(a) = limit.alert_rows_per_window {
                if before <= a && total > a && total - rows <= a {
                    raise(
                        ctx,
                        session,
                        limit,
                        table,
                        "rows_per_window",
                        total,
                        Some(a),
                        Action::Alerted,
                        Severity::Warning,
                    );
                }
            }
        }
        Err(e) => {
            // Keep counting locally; the store is retried next time.
            u.known += rows;
            tracing::warn!(error = %e, "budget store unavailable; counting locally");
        }
    }
}

/// Raises an alert (webhook and audit trail).
#[allow(clippy::too_many_arguments)]
fn raise(
    ctx: &Context,
    session: &SessionContext,
    limit: &Limit,
    table: &str,
    what: &str,
    rows: u64,
    threshold: Option<u64>,
    action: Action,
    severity: Severity,
) {
    ctx.raise_alert(Alert {
        kind: "bulk_extraction".into(),
        rule: limit.name.to_string(),
        severity,
        user: session.user.to_string(),
        session_id: Some(session.session_id),
        client_addr: Some(session.client_addr),
        evidence: serde_json::json!({
            "table": table,
            "rows": rows,
            "threshold": threshold,
            "measure": what,
            "window": humantime::format_duration(limit.window).to_string(),
            "effective_role": session.effective_user.as_deref().unwrap_or(&session.user),
        }),
        action,
        timestamp: SystemTime::now(),
    });
}
