//! Opening a connection to PostgreSQL, with TLS per `upstream.tls`.

use super::dial::{dial, Socket};
use crate::config::UpstreamTls;
use crate::context::Context;
use crate::net::Stream;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// Why PostgreSQL could not be reached.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// TCP connect or I/O failed.
    #[error("could not connect to PostgreSQL at {addr}: {source}")]
    Io {
        /// The address tried.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The connect did not finish in time.
    #[error("could not connect to PostgreSQL at {0}: timeout")]
    Timeout(String),
    /// TLS is required but the server does not offer it.
    #[error("PostgreSQL at {0} does not support TLS, but upstream.tls requires it")]
    TlsRefused(String),
    /// The server's answer to SSLRequest was not 'S' or 'N'.
    #[error("PostgreSQL at {0} sent an invalid answer to SSLRequest")]
    BadSslAnswer(String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS with PostgreSQL at {addr} failed: {source}")]
    Tls {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Connects to PostgreSQL; `force_plain` skips TLS whatever the mode says.
pub async fn connect(ctx: &Context, force_plain: bool) -> Result<Stream, ConnectError> {
    let config = ctx.config.load();
    let addr = config.upstream.address.clone();
    let io = |source| ConnectError::Io {
        addr: addr.clone(),
        source,
    };
    let socket = tokio::time::timeout(config.upstream.connect_timeout.0, dial(&addr))
        .await
        .map_err(|_| ConnectError::Timeout(addr.clone()))?
        .map_err(io)?;
    let mut tcp = match socket {
        Socket::Tcp(tcp) => tcp,
        // PostgreSQL never offers TLS on its Unix socket; the config check
        // refuses a mode that would require it.
        Socket::Unix(unix) => return Ok(Stream::Unix(unix)),
    };
    let mode = config.upstream.tls;
    if mode == UpstreamTls::Disable || force_plain {
        return Ok(Stream::Plain(tcp));
    }
    tcp.write_all(&SSL_REQUEST).await.map_err(io)?;
    let answer = tcp.read_u8().await.map_err(io)?;
    match answer {
        b'S' => {
            let tls = ctx.tls.load();
            let s = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|source| ConnectError::Tls {
                    addr: addr.clone(),
                    source,
                })?;
            Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(s))))
        }
        b'N' if mode == UpstreamTls::Prefer => Ok(Stream::Plain(tcp)),
        b'N' => Err(ConnectError::TlsRefused(addr)),
        _ => Err(ConnectError::BadSslAnswer(addr)),
    }
}
