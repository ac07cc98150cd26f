//! Login relayed end to end: pgwarden holds no passwords. It forwards the
//! StartupMessage and every authentication exchange, and changes only two
//! things: it hides SCRAM-SHA-256-PLUS (the client never shares a TLS session
//! with PostgreSQL, so channel binding cannot succeed: a TLS client would bind
//! to pgwarden's certificate, and libpq refuses -PLUS offered over plaintext)
//! and it hands out its own BackendKeyData.

use super::connect::{connect, ConnectError};
use crate::cancel::Registration;
use crate::client::handshake::Login;
use crate::config::UpstreamTls;
use crate::context::Context;
use crate::net::conn::ConnError;
use crate::net::Conn;
use crate::protocol::backend::error_response::PgError;
use crate::protocol::backend::{
    self as be, authentication, backend_key_data, error_response, negotiate_protocol_version,
};
use crate::protocol::codes;
use crate::protocol::frontend::sasl_initial_response::SaslInitialResponse;
use crate::protocol::frontend::PASSWORD;
use crate::protocol::Frame;
use bytes::BytesMut;
use thiserror::Error;

/// A logged-in connection to PostgreSQL.
pub struct Upstream {
    /// The server connection, positioned after the first ReadyForQuery.
    pub conn: Conn,
    /// The client's synthetic cancel key and the real one behind it.
    pub cancel: Registration,
    /// The session's search_path as PostgreSQL resolved it at login (role
    /// and database defaults included), when asked for.
    pub search_path: Option<String>,
}

/// Why a login did not complete.
#[derive(Debug, Error)]
pub enum LoginError {
    /// PostgreSQL could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// PostgreSQL refused the login; its ErrorResponse was relayed as is.
    #[error("PostgreSQL refused the login: {code} {message}")]
    Refused {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
    },
    /// The client broke the protocol or went away.
    #[error("client: {0}")]
    Client(ConnError),
    /// PostgreSQL broke the protocol or went away.
    #[error("PostgreSQL: {0}")]
    Server(ConnError),
    /// SCRAM with channel-binding negotiation that cannot cross TLS on both sides.
    #[error("SCRAM channel binding cannot be relayed with upstream.tls = {0:?}")]
    ChannelBinding(UpstreamTls),
}

impl LoginError {
    /// Whether PostgreSQL refused the credentials (SQLSTATE class 28).
    pub fn is_auth_rejection(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code.starts_with("28"))
    }

    /// The error the client should get, when it has not been told already.
    pub fn to_pg(&self) -> Option<PgError> {
        match self {
            Self::Connect(e) => Some(PgError::fatal(codes::UNABLE_TO_CONNECT, e.to_string())),
            Self::Refused { .. } | Self::Client(ConnError::Io(_) | ConnError::Closed) => None,
            Self::Client(e) => Some(PgError::fatal(codes::PROTOCOL_VIOLATION, e.to_string())),
            Self::Server(_) => Some(PgError::fatal(
                codes::CONNECTION_FAILURE,
                "PostgreSQL closed the connection during login",
            )),
            Self::ChannelBinding(_) => Some(
                PgError::fatal(
                    codes::INVALID_AUTHORIZATION,
                    "SCRAM channel binding cannot pass through pgwarden's TLS termination",
                )
                .with_hint(
                    "Connect with channel_binding=disable, or set upstream.tls = \"prefer\" in pgwarden.",
                ),
            ),
        }
    }
}

/// Relays the login of `login` to PostgreSQL until the first ReadyForQuery.
/// With `probe_search_path`, pgwarden asks the new session for its
/// search_path before the client gets ReadyForQuery (the analyser needs it,
/// and ALTER ROLE/DATABASE ... SET can change it without any message).
pub async fn relay(
    ctx: &Context,
    login: &mut Login,
    probe_search_path: bool,
) -> Result<Upstream, LoginError> {
    let max = ctx.config.load().proxy.max_message_size;
    let startup = login.startup.encode_v3_0();
    let mut server = Conn::new(connect(ctx, false).await?, max);
    server
        .write_all(&startup)
        .await
        .map_err(LoginError::Server)?;
    let client = &mut login.conn;
    let client_tls = client.stream.is_tls();
    let mut out = BytesMut::with_capacity(1024);
    if let Some(options) = &login.unsupported {
        let names: Vec<&str> = options.iter().map(String::as_str).collect();
        negotiate_protocol_version::put(&names, &mut out);
    }
    let mut registration = None;

    loop {
        let raw = server.read_message().await.map_err(LoginError::Server)?;
        let msg = Frame::new(&raw);
        match msg.tag() {
            be::AUTHENTICATION => {
                let code =
                    authentication::code(msg.body()).map_err(|e| LoginError::Server(e.into()))?;
                if code == authentication::SASL {
                    authentication::put_sasl_without_plus(msg.body(), &mut out)
                        .map_err(|e| LoginError::Server(e.into()))?;
                } else {
                    out.extend_from_slice(msg.raw());
                }
                if authentication::expects_response(code) {
                    client.write_all(&out).await.map_err(LoginError::Client)?;
                    out.clear();
                    let answer = client.read_message().await.map_err(LoginError::Client)?;
                    if answer[0] != PASSWORD {
                        return Err(LoginError::Client(ConnError::Protocol(
                            crate::protocol::ProtocolError::UnknownType(answer[0]),
                        )));
                    }
                    if code == authentication::SASL && client_tls && server.stream.is_tls() {
                        server = rebind_for_scram(ctx, client, server, &startup, &answer).await?;
                    }
                    server
                        .write_all(&answer)
                        .await
                        .map_err(LoginError::Server)?;
                }
            }
            be::ERROR_RESPONSE => {
                out.extend_from_slice(msg.raw());
                return Err(refused(ctx, client, &out, msg.body()).await);
            }
            be::BACKEND_KEY_DATA => {
                let real = backend_key_data::parse(msg.body())
                    .map_err(|e| LoginError::Server(e.into()))?;
                let address = ctx.config.load().upstream.address.clone();
                let reg = ctx.cancel.register(real, &address);
                backend_key_data::put(reg.key, &mut out);
                registration = Some(reg);
            }
            be::READY_FOR_QUERY => {
                let search_path = if probe_search_path {
                    show_search_path(&mut server).await?
                } else {
                    None
                };
                out.extend_from_slice(msg.raw());
                client.write_all(&out).await.map_err(LoginError::Client)?;
                let cancel = match registration {
                    Some(r) => r,
                    // PostgreSQL always sends BackendKeyData; without one, cancel cannot work.
                    None => ctx.cancel.register(
                        crate::protocol::frontend::startup::CancelKey { pid: 0, secret: 0 },
                        &ctx.config.load().upstream.address,
                    ),
                };
                return Ok(Upstream {
                    conn: server,
                    cancel,
                    search_path,
                });
            }
            _ => out.extend_from_slice(msg.raw()),
        }
    }
}

/// PostgreSQL refused the login: count it, then relay its ErrorResponse
/// (`out` ends with it) exactly as sent. Counting first means the metric
/// is up to date by the time the client sees the refusal.
async fn refused(ctx: &Context, client: &mut Conn, out: &[u8], body: &[u8]) -> LoginError {
    let f = error_response::parse(body).unwrap_or_default();
    let e = LoginError::Refused {
        code: f.code.to_owned(),
        message: f.message.to_owned(),
    };
    if e.is_auth_rejection() {
        ctx.metrics.auth_failures.inc();
    }
    let _ = client.write_all(out).await;
    e
}

/// A TLS client answering SCRAM without -PLUS sends the GS2 flag 'y' ("I can
/// bind, the server cannot"); PostgreSQL on TLS rejects that as a downgrade.
/// In `prefer` mode pgwarden reconnects in plaintext, where 'y' is valid, and
/// replays the startup; the client's SCRAM exchange has not begun yet.
async fn rebind_for_scram(
    ctx: &Context,
    client: &mut Conn,
    server: Conn,
    startup: &[u8],
    answer: &[u8],
) -> Result<Conn, LoginError> {
    let Ok(initial) = SaslInitialResponse::parse(&answer[5..]) else {
        return Ok(server);
    };
    if !initial.claims_binding_unsupported_by_server() {
        return Ok(server);
    }
    let mode = ctx.config.load().upstream.tls;
    if mode != UpstreamTls::Prefer {
        return Err(LoginError::ChannelBinding(mode));
    }
    drop(server);
    tracing::debug!("SCRAM client sent GS2 'y'; reconnecting to PostgreSQL without TLS");
    let max = ctx.config.load().proxy.max_message_size;
    let mut plain = Conn::new(connect(ctx, true).await?, max);
    plain.write_all(startup).await.map_err(LoginError::Server)?;
    loop {
        let raw = plain.read_message().await.map_err(LoginError::Server)?;
        let msg = Frame::new(&raw);
        match msg.tag() {
            be::AUTHENTICATION
                if authentication::code(msg.body()).ok() == Some(authentication::SASL) =>
            {
                return Ok(plain)
            }
            be::ERROR_RESPONSE => return Err(refused(ctx, client, msg.raw(), msg.body()).await),
            be::NOTICE_RESPONSE => continue,
            _ => {
                return Err(LoginError::Server(ConnError::Protocol(
                    crate::protocol::ProtocolError::Malformed("login after reconnect"),
                )))
            }
        }
    }
}

/// Runs `SHOW search_path` on a fresh session and returns the value.
async fn show_search_path(server: &mut Conn) -> Result<Option<String>, LoginError> {
    let mut q = BytesMut::new();
    crate::protocol::frame::put_message(&mut q, b'Q', b"SHOW search_path\0");
    server.write_all(&q).await.map_err(LoginError::Server)?;
    let mut value = None;
    loop {
        let raw = server.read_message().await.map_err(LoginError::Server)?;
        let msg = Frame::new(&raw);
        match msg.tag() {
            b'D' => {
                let mut r = crate::protocol::Reader::new(msg.body(), "DataRow");
                if r.i16().ok() == Some(1) {
                    if let Ok(len) = r.i32() {
                        if let Ok(bytes) = r.bytes(usize::try_from(len).unwrap_or(0)) {
                            value = Some(String::from_utf8_lossy(bytes).into_owned());
                        }
                    }
                }
            }
            be::READY_FOR_QUERY => return Ok(value),
            _ => {}
        }
    }
}
