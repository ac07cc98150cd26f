//! Errors found while framing or decoding a message.

use thiserror::Error;

/// A peer broke the wire protocol; the connection cannot continue.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The length field is smaller than the length field itself.
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// The message is larger than the configured maximum.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Claimed length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The startup packet is shorter than 8 or longer than 10,000 bytes.
    #[error("invalid length of startup packet: {0}")]
    BadStartupLength(i64),
    /// A message type this direction of the protocol does not have.
    #[error("invalid frontend message type {0}")]
    UnknownType(u8),
    /// The startup packet asks for a protocol major version we do not speak.
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedVersion {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
    /// The body of a message does not match its declared shape.
    #[error("malformed {0} message")]
    Malformed(&'static str),
}
