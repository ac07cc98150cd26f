//! The client side of a connection: from accept to a logged-in session.

pub mod handshake;

use crate::audit::{ConnectionEvent, ConnectionRecord, ErrorInfo, SessionContext};
use crate::context::Context;
use crate::protocol::backend::error_response::PgError;
use crate::protocol::codes;
use crate::session::observe::{self, Observer};
use crate::session::{Session, SessionInfo};
use crate::upstream::login::{self, LoginError};
use bytes::BytesMut;
use handshake::{HandshakeError, Opening};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Counts a client against `proxy.max_clients` for as long as it lives.
struct ClientSlot<'a>(&'a Context);

impl Drop for ClientSlot<'_> {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps the open-connections gauge right however the task ends.
struct OpenGauge<'a>(&'a Context);

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.metrics.connections_open.dec();
    }
}

/// Serves one accepted TCP connection to its end.
pub async fn serve(ctx: Arc<Context>, tcp: TcpStream, peer: SocketAddr) {
    ctx.metrics.connections_total.inc();
    ctx.metrics.connections_open.inc();
    let _gauge = OpenGauge(&ctx);
    let _ = tcp.set_nodelay(true);
    let config = ctx.config.load_full();
    let deadline = Instant::now() + config.proxy.startup_timeout.0;

    let opening = match timeout_at(deadline, handshake::open(tcp, &ctx)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            // A client that hangs up (e.g. after SSLRequest got 'N') is not a refusal.
            if !matches!(e, HandshakeError::Io(_)) {
                tracing::info!(%peer, error = %e, "connection refused during startup");
                ctx.metrics.refused.with_label_values(&[e.reason()]).inc();
            }
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "startup timed out");
            ctx.metrics.refused.with_label_values(&["timeout"]).inc();
            return;
        }
    };
    let mut login = match opening {
        Opening::Cancel(key) => {
            // Counted before sending, so the metric is current by the time
            // the cancelled client hears about it.
            let target = ctx.cancel.lookup(key);
            let result = if target.is_some() {
                "forwarded"
            } else {
                "unknown_key"
            };
            ctx.metrics.cancels.with_label_values(&[result]).inc();
            tracing::debug!(%peer, result, "cancel request");
            if let Some(t) = target {
                t.send().await;
            }
            return;
        }
        Opening::Login(l) => l,
    };

    let in_use = ctx.clients.fetch_add(1, Ordering::Relaxed);
    let _slot = ClientSlot(&ctx);
    if in_use >= config.proxy.max_clients {
        ctx.metrics
            .refused
            .with_label_values(&["too_many_clients"])
            .inc();
        tracing::warn!(%peer, max = config.proxy.max_clients, "too many clients");
        let mut out = BytesMut::new();
        PgError::fatal(
            codes::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        )
        .put(&mut out);
        let _ = login.conn.write_all(&out).await;
        return;
    }

    let user = login.startup.param("user").unwrap_or_default().to_owned();
    let database = login
        .startup
        .param("database")
        .or(login.startup.param("user"))
        .unwrap_or_default()
        .to_owned();
    // Statements are analysed when something needs them: the audit trail,
    // or policies (a configured policy path counts even while its policy is
    // empty, so a policy added later guards sessions already open).
    let observe = ctx.audit.is_enabled()
        || ctx.baseline.is_enabled()
        || ctx.policy.current().is_some()
        || ctx.config.load().policy.path.is_some();
    let session_id = ctx.next_session_id.fetch_add(1, Ordering::Relaxed);
    let mut audit_ctx = SessionContext::connecting(session_id, peer, login.conn.stream.is_tls());
    audit_ctx.user = Arc::from(user.as_str());
    audit_ctx.database = Arc::from(database.as_str());
    audit_ctx.application_name =
        Arc::from(login.startup.param("application_name").unwrap_or_default());
    let audit_ctx = Arc::new(audit_ctx);
    if observe {
        ctx.audit
            .send(ConnectionRecord::new(
                audit_ctx.clone(),
                ConnectionEvent::Connect,
            ))
            .await;
    }
    if let Some(failures) = crate::detect::login_blocked(&ctx, peer).await {
        let message = format!(
            "too many failed logins from {} ({failures}); try again later",
            peer.ip()
        );
        tracing::warn!(%peer, %user, "login refused: address in its failed-login cool-down");
        if observe {
            ctx.audit
                .send(ConnectionRecord::new(
                    audit_ctx.clone(),
                    ConnectionEvent::LoginFailed(ErrorInfo::new(
                        codes::INVALID_AUTHORIZATION,
                        message.clone(),
                    )),
                ))
                .await;
        }
        let mut out = BytesMut::new();
        PgError::fatal(codes::INVALID_AUTHORIZATION, message).put(&mut out);
        let _ = login.conn.write_all(&out).await;
        return;
    }
    let upstream = match timeout_at(deadline, login::relay(&ctx, &mut login, observe)).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            if observe {
                let (code, message) = match (&e, e.to_pg()) {
                    (LoginError::Refused { code, message }, _) => (code.clone(), message.clone()),
                    (_, Some(pg)) => (pg.code.to_owned(), pg.message),
                    (_, None) => ("08006".to_owned(), e.to_string()),
                };
                ctx.audit
                    .send(ConnectionRecord::new(
                        audit_ctx.clone(),
                        ConnectionEvent::LoginFailed(ErrorInfo::new(code, message)),
                    ))
                    .await;
            }
            tracing::info!(%peer, %user, error = %e, "login failed");
            if e.is_auth_rejection() {
                crate::detect::login_failed(&ctx, &user, peer).await;
            }
            if let Some(pg) = e.to_pg() {
                let mut out = BytesMut::new();
                pg.put(&mut out);
                let _ = login.conn.write_all(&out).await;
            }
            return;
        }
        Err(_) => {
            ctx.metrics.refused.with_label_values(&["timeout"]).inc();
            tracing::info!(%peer, %user, "authentication timed out");
            if observe {
                ctx.audit
                    .send(ConnectionRecord::new(
                        audit_ctx.clone(),
                        ConnectionEvent::LoginFailed(ErrorInfo::new(
                            codes::QUERY_CANCELED,
                            "canceling authentication due to timeout",
                        )),
                    ))
                    .await;
            }
            let mut out = BytesMut::new();
            PgError::fatal(
                codes::QUERY_CANCELED,
                "canceling authentication due to timeout",
            )
            .put(&mut out);
            let _ = login.conn.write_all(&out).await;
            return;
        }
    };

    let info = SessionInfo {
        user: user.clone(),
        database: database.clone(),
        application_name: login
            .startup
            .param("application_name")
            .unwrap_or_default()
            .to_owned(),
        client_addr: peer,
        client_tls: login.conn.stream.is_tls(),
        backend_pid: upstream.cancel.real.pid,
        transaction: crate::protocol::backend::TransactionStatus::Idle,
    };
    let observer = if observe {
        if let Err(e) = ctx.catalogs.get(&database).await {
            tracing::warn!(%database, error = %e, "catalog unavailable; statements will be recorded as unanalysed");
        }
        let mut s = (*audit_ctx).clone();
        s.backend_pid = Some(upstream.cancel.real.pid);
        let s = Arc::new(s);
        ctx.audit
            .send(ConnectionRecord::new(
                s.clone(),
                ConnectionEvent::LoginSucceeded,
            ))
            .await;
        ctx.baseline.observe(crate::baseline::Observation::Login {
            session: s.clone(),
            at: ctx.now(),
        });
        let settings = observe::initial_settings(&user, upstream.search_path.as_deref());
        let obs = Observer::new(ctx.clone(), s, settings);
        obs.limiter.prefetch(&ctx).await;
        Some(obs)
    } else {
        None
    };
    Session::new(ctx.clone(), info, login.conn, upstream, observer)
        .run()
        .await;
}
