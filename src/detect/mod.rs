//! Security events: failed logins per user and per address (brute force,
//! password spraying, with an optional cool-down refusal), bursts of refused
//! statements (probing), reads of classified data outside office hours, and
//! privilege changes. Thresholds come from the policy's `[security]`;
//! counters live in the budget store, so replicas sharing Redis see one count.
//! Statements that look like extraction are flagged before they run
//! ([`extraction`]).

pub mod extraction;

use crate::alert::{Action, Alert, Severity};
use crate::analyse::Analysis;
use crate::audit::SessionContext;
use crate::context::Context;
use crate::policy::{Env, Policy};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// Commands that change who may do what.
const PRIVILEGE_COMMANDS: &[&str] = &[
    "GRANT",
    "GRANT ROLE",
    "CREATE ROLE",
    "ALTER ROLE",
    "ALTER ROLE SET",
    "DROP ROLE",
];

// One flat constructor keeps every call site readable as a table row.
#[allow(clippy::too_many_arguments)]
fn alert(
    kind: &str,
    rule: &str,
    severity: Severity,
    user: &str,
    session_id: Option<u64>,
    addr: Option<SocketAddr>,
    evidence: serde_json::Value,
    action: Action,
) -> Alert {
    Alert {
        kind: kind.into(),
        rule: rule.into(),
        severity,
        user: user.into(),
        session_id,
        client_addr: addr,
        evidence,
        action,
        timestamp: SystemTime::now(),
    }
}

fn cooldown_key(addr: SocketAddr) -> String {
    format!("login_fail:addr:{}:cooldown", addr.ip())
}

/// Whether logins from `addr` are in their cool-down after too many
/// failures (`Some(failures)`), per `[security] failed_logins_block`.
pub async fn login_blocked(ctx: &Context, addr: SocketAddr) -> Option<u64> {
    let policy = ctx.policy.current()?;
    let limit = policy.security.failed_logins_block?;
    let key = cooldown_key(addr);
    let window = policy.security.block_cooldown.0;
    match ctx.budgets.total(&key, window, SystemTime::now()).await {
        Ok(n) if n >= limit => Some(n),
        Ok(_) => None,
        Err(e) => {
            // Fail open: a budget store outage must not lock everyone out.
            tracing::warn!(error = %e, "budget store unavailable; login cool-down not checked");
            None
        }
    }
}

/// PostgreSQL refused a login's credentials: count it per user and per
/// address, alert when a count crosses `failed_logins_alert`.
pub async fn login_failed(ctx: &Context, user: &str, addr: SocketAddr) {
    let Some(policy) = ctx.policy.current() else {
        return;
    };
    let s = &policy.security;
    let now = SystemTime::now();
    let keys = [
        (
            "user",
            format!("login_fail:user:{user}"),
            s.failed_logins_window.0,
        ),
        (
            "address",
            format!("login_fail:addr:{}", addr.ip()),
            s.failed_logins_window.0,
        ),
    ];
    for (by, key, window) in keys {
        let n = match ctx.budgets.add(&key, 1, window, now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "budget store unavailable; failed login not counted");
                return;
            }
        };
        if s.failed_logins_alert.is_some_and(|a| n == a + 1) {
            ctx.raise_alert(alert(
                "failed_logins",
                &format!("security.failed_logins_per_{by}"),
                Severity::Critical,
                user,
                None,
                Some(addr),
                serde_json::json!({
                    "failures": n,
                    "by": by,
                    "address": addr.ip().to_string(),
                    "window": humantime::format_duration(window).to_string(),
                }),
                Action::Alerted,
            ));
        }
    }
    if by_address_block(&policy, ctx, addr).await {
        ctx.raise_alert(alert(
            "failed_logins",
            "security.failed_logins_block",
            Severity::Critical,
            user,
            None,
            Some(addr),
            serde_json::json!({
                "address": addr.ip().to_string(),
                "cooldown": humantime::format_duration(s.block_cooldown.0).to_string(),
            }),
            Action::Blocked,
        ));
    }
}

/// True exactly when this failure put the address into its cool-down.
async fn by_address_block(policy: &Policy, ctx: &Context, addr: SocketAddr) -> bool {
    let Some(limit) = policy.security.failed_logins_block else {
        return false;
    };
    // The cool-down window counts its own failures (a budget is kept per
    // key and window).
    matches!(
        ctx.budgets
            .add(&cooldown_key(addr), 1, policy.security.block_cooldown.0, SystemTime::now())
            .await,
        Ok(n) if n == limit
    )
}

/// pgwarden refused a statement: alert on bursts (probing).
pub fn statement_refused(ctx: &Arc<Context>, session: &Arc<SessionContext>) {
    let Some(policy) = ctx.policy.current() else {
        return;
    };
    let Some(threshold) = policy.security.refusals_alert else {
        return;
    };
    let window = policy.security.refusals_window.0;
    let (ctx, session) = (ctx.clone(), session.clone());
    tokio::spawn(async move {
        let key = format!("refusals:{}", session.user);
        if let Ok(n) = ctx.budgets.add(&key, 1, window, SystemTime::now()).await {
            if n == threshold + 1 {
                ctx.raise_alert(alert(
                    "probing",
                    "security.refusals",
                    Severity::Warning,
                    &session.user,
                    Some(session.session_id),
                    Some(session.client_addr),
                    serde_json::json!({
                        "refusals": n,
                        "window": humantime::format_duration(window).to_string(),
                    }),
                    Action::Alerted,
                ));
            }
        }
    });
}

/// A statement is about to run: privilege changes, reads of classified
/// data outside office hours, and extraction flags (returned for the
/// statement's audit record).
pub fn statement_started(
    ctx: &Context,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    session: &SessionContext,
    a: &Analysis,
    env: &Env<'_>,
    privileged_role: Option<&str>,
) -> extraction::FlagSet {
    let flags = extraction::flags(policy, catalog, a);
    if !flags.is_empty() {
        ctx.raise_alert(alert(
            "extraction_suspected",
            "security.extraction",
            Severity::Warning,
            &session.user,
            Some(session.session_id),
            Some(session.client_addr),
            serde_json::json!({
                "flags": flags.flags,
                "tables": flags.tables,
                "limit": flags.limit,
                "fetch": if flags.fetch_all { serde_json::json!("ALL") } else { serde_json::json!(flags.fetch) },
                "statement": &*a.normalized,
            }),
            Action::Alerted,
        ));
    }
    other_events(ctx, policy, session, a, env, privileged_role);
    flags.flags
}

/// Privilege changes and off-hours reads of classified data.
fn other_events(
    ctx: &Context,
    policy: &Policy,
    session: &SessionContext,
    a: &Analysis,
    env: &Env<'_>,
    privileged_role: Option<&str>,
) {
    if policy.security.privilege_changes
        && (PRIVILEGE_COMMANDS.contains(&a.command.as_str()) || privileged_role.is_some())
    {
        ctx.raise_alert(alert(
            "privilege_change",
            "security.privilege_changes",
            Severity::Warning,
            &session.user,
            Some(session.session_id),
            Some(session.client_addr),
            serde_json::json!({
                "command": a.command,
                "statement": &*a.normalized,
                "role": privileged_role,
            }),
            Action::Alerted,
        ));
    }
    let Some(hours) = &policy.office_hours else {
        return;
    };
    if hours.holds(env) {
        return;
    }
    let classified: Vec<String> = a
        .accesses
        .iter()
        .flat_map(|acc| {
            acc.output.iter().chain(&acc.filter).filter_map(move |c| {
                let (s, t) = (&acc.relation.schema, &acc.relation.name);
                policy.classify(s, t, c).map(|_| format!("{s}.{t}.{c}"))
            })
        })
        .collect();
    if classified.is_empty() {
        return;
    }
    ctx.raise_alert(alert(
        "off_hours_access",
        "security.office_hours",
        Severity::Warning,
        &session.user,
        Some(session.session_id),
        Some(session.client_addr),
        serde_json::json!({
            "columns": classified,
            "statement": &*a.normalized,
        }),
        Action::Alerted,
    ));
}
