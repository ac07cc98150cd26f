//! Reaching PostgreSQL's listening socket: TCP at `HOST:PORT`, or the Unix
//! socket when `upstream.address` is a path (pgwarden on the database host
//! skips the TCP stack on the server side of every message).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The socket file PostgreSQL creates in a directory, for port 5432.
const DEFAULT_SOCKET_FILE: &str = ".s.PGSQL.5432";

/// Whether `address` names a Unix socket (an absolute path) rather than
/// `HOST:PORT`.
pub fn is_unix(address: &str) -> bool {
    address.starts_with('/')
}

/// The socket file for a Unix `address`: the path itself, or PostgreSQL's
/// default socket file in it when it is a directory (as libpq's `host=/dir`).
pub fn unix_path(address: &str) -> PathBuf {
    let path = Path::new(address);
    if path.is_dir() {
        path.join(DEFAULT_SOCKET_FILE)
    } else {
        path.to_path_buf()
    }
}

/// A connected socket to PostgreSQL, before any TLS.
#[derive(Debug)]
pub enum Socket {
    /// `HOST:PORT`.
    Tcp(TcpStream),
    /// A Unix socket path.
    Unix(UnixStream),
}

/// Connects to `address` (see [`is_unix`]); TCP sockets get `TCP_NODELAY`,
/// since every relayed message is a complete unit the peer is waiting for.
pub async fn dial(address: &str) -> io::Result<Socket> {
    if is_unix(address) {
        return Ok(Socket::Unix(UnixStream::connect(unix_path(address)).await?));
    }
    let tcp = TcpStream::connect(address).await?;
    let _ = tcp.set_nodelay(true);
    Ok(Socket::Tcp(tcp))
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unix_sockets() {
        assert!(is_unix("/var/run/postgresql"));
        assert!(!is_unix("127.0.0.1:5432"));
        assert!(!is_unix("[::1]:5432"));
        let dir = std::env::temp_dir();
        assert_eq!(unix_path(dir.to_str().unwrap()), dir.join(".s.PGSQL.5432"));
        assert_eq!(
            unix_path("/nonexistent/.s.PGSQL.6000"),
            PathBuf::from("/nonexistent/.s.PGSQL.6000")
        );
    }
}
