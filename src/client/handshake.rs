//! The opening of a client connection: SSLRequest/GSSENCRequest negotiation,
//! TLS, then the StartupMessage or a CancelRequest.

use crate::context::Context;
use crate::net::{Conn, Stream};
use crate::protocol::backend::error_response::PgError;
use crate::protocol::codes;
use crate::protocol::frontend::startup::{self, CancelKey, StartupMessage, StartupPacket};
use crate::protocol::ProtocolError;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a client's opening failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// Socket error or the client went away.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// `tls.require` is set and the client did not ask for TLS.
    #[error("TLS is required")]
    TlsRequired,
    /// The startup packet names no user.
    #[error("no user name in startup packet")]
    NoUser,
}

impl HandshakeError {
    /// The error to send to the client, if it can still be told anything.
    pub fn to_pg(&self) -> Option<PgError> {
        match self {
            Self::Io(_) | Self::Tls(_) => None,
            Self::Protocol(ProtocolError::UnsupportedVersion { .. }) => Some(PgError::fatal(
                codes::FEATURE_NOT_SUPPORTED,
                self.to_string(),
            )),
            Self::Protocol(e) => Some(PgError::fatal(codes::PROTOCOL_VIOLATION, e.to_string())),
            Self::TlsRequired => Some(
                PgError::fatal(
                    codes::INVALID_AUTHORIZATION,
                    "pgwarden accepts only TLS connections",
                )
                .with_hint("Connect with sslmode=require (or stricter)."),
            ),
            Self::NoUser => Some(PgError::fatal(
                codes::INVALID_AUTHORIZATION,
                "no PostgreSQL user name specified in startup packet",
            )),
        }
    }

    /// Label for the refused-clients metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::Tls(_) => "tls_handshake",
            Self::TlsRequired => "tls_required",
            Self::Protocol(_) | Self::NoUser => "protocol",
        }
    }
}

/// What the client opened the connection for.
pub enum Opening {
    /// A login: the stream (possibly now TLS) and its StartupMessage.
    Login(Login),
    /// A cancel request for a running query.
    Cancel(CancelKey),
}

/// A client ready to log in.
pub struct Login {
    /// The client connection.
    pub conn: Conn,
    /// Its StartupMessage.
    pub startup: StartupMessage,
    /// Options to reject with NegotiateProtocolVersion (3.x with x > 0, `_pq_.`).
    pub unsupported: Option<Vec<String>>,
}

/// Reads one opening packet; a malformed one is answered with a FATAL error.
async fn read_packet(stream: &mut Stream) -> Result<StartupPacket, HandshakeError> {
    // Read exactly one packet: after an SSLRequest the TLS handshake follows
    // on the same socket, so nothing may be read ahead.
    let mut word = [0u8; 4];
    stream.read_exact(&mut word).await?;
    let parsed = match startup::packet_len(word) {
        Ok(len) => {
            let mut body = vec![0u8; len - 4];
            stream.read_exact(&mut body).await?;
            startup::parse(&body)
        }
        Err(e) => Err(e),
    };
    match parsed {
        Ok(p) => Ok(p),
        Err(e) => {
            let e = HandshakeError::Protocol(e);
            if let Some(pg) = e.to_pg() {
                let mut out = bytes::BytesMut::new();
                pg.put(&mut out);
                let _ = stream.write_all(&out).await;
                let _ = stream.flush().await;
            }
            Err(e)
        }
    }
}

/// Reads opening packets until a StartupMessage or CancelRequest arrives.
pub async fn open(tcp: TcpStream, ctx: &Context) -> Result<Opening, HandshakeError> {
    let mut stream = Stream::Plain(tcp);
    loop {
        match read_packet(&mut stream).await? {
            StartupPacket::SslRequest => {
                let acceptor = ctx.tls.load().acceptor.clone();
                match (acceptor, stream) {
                    (Some(acceptor), Stream::Plain(mut tcp)) => {
                        tcp.write_all(b"S").await?;
                        let tls = acceptor.accept(tcp).await.map_err(HandshakeError::Tls)?;
                        stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
                    }
                    (None, Stream::Plain(mut tcp)) => {
                        tcp.write_all(b"N").await?;
                        stream = Stream::Plain(tcp);
                    }
                    (_, Stream::Tls(_) | Stream::Unix(_)) => {
                        return Err(ProtocolError::Malformed("SSLRequest inside TLS").into())
                    }
                }
            }
            StartupPacket::GssEncRequest => stream.write_all(b"N").await?,
            StartupPacket::Cancel(key) => return Ok(Opening::Cancel(key)),
            StartupPacket::Startup(startup) => {
                let max = ctx.config.load().proxy.max_message_size;
                let mut conn = Conn::new(stream, max);
                let checked = check_startup(ctx, &conn, &startup);
                if let Err(e) = checked {
                    if let Some(pg) = e.to_pg() {
                        let mut out = bytes::BytesMut::new();
                        pg.put(&mut out);
                        let _ = conn.write_all(&out).await;
                    }
                    return Err(e);
                }
                let unsupported: Vec<String> = startup
                    .params
                    .iter()
                    .filter(|(k, _)| k.starts_with("_pq_."))
                    .map(|(k, _)| k.clone())
                    .collect();
                let unsupported =
                    (startup.minor > 0 || !unsupported.is_empty()).then_some(unsupported);
                return Ok(Opening::Login(Login {
                    conn,
                    startup,
                    unsupported,
                }));
            }
        }
    }
}

fn check_startup(
    ctx: &Context,
    conn: &Conn,
    startup: &StartupMessage,
) -> Result<(), HandshakeError> {
    if ctx.config.load().tls.require && !conn.stream.is_tls() {
        return Err(HandshakeError::TlsRequired);
    }
    if startup.param("user").is_none_or(str::is_empty) {
        return Err(HandshakeError::NoUser);
    }
    Ok(())
}
