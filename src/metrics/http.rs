//! The HTTP endpoint: `/metrics`, `/healthz` (200 while PostgreSQL accepts
//! TCP connections) and `/readyz` (also 503 while shutting down).

use crate::context::Context;
use crate::shutdown::Phase;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the endpoint on `listener` until shutdown begins.
pub async fn serve(ctx: Arc<Context>, listener: TcpListener) {
    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        let (tcp, _) = tokio::select! {
            _ = async { let _ = shutdown.wait_for(|p| *p == Phase::Closing).await; } => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&ctx, req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

async fn route<B>(ctx: &Context, req: Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, ctx.metrics.render()),
        "/healthz" => health(ctx).await,
        "/readyz" if ctx.shutdown.phase() != Phase::Running => {
            reply(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
        }
        "/readyz" => health(ctx).await,
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

async fn health(ctx: &Context) -> Response<Full<Bytes>> {
    let addr = ctx.config.load().upstream.address.clone();
    match tokio::time::timeout(Duration::from_secs(2), crate::upstream::dial::dial(&addr)).await {
        Ok(Ok(_)) => reply(StatusCode::OK, "ok\n".into()),
        Ok(Err(e)) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("upstream {addr} unreachable: {e}\n"),
        ),
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("upstream {addr} unreachable: timeout\n"),
        ),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
