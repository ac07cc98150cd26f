//! Sockets and TLS: the byte streams under both sides of a session.

pub mod conn;
pub mod stream;
pub mod tls;

pub use conn::Conn;
pub use stream::Stream;
