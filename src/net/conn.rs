//! A connection that owns its framing: read whole messages, write bytes.
//!
//! Used while a session is being set up, where each side is read in turn.
//! The streaming relay after login drives the same buffers without awaiting
//! one side at a time (see `session::relay`).

use super::Stream;
use crate::protocol::{FrameHeader, ProtocolError};
use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Initial read buffer size; grows only as data actually arrives.
pub const READ_CHUNK: usize = 8 * 1024;

/// Why reading a message failed.
#[derive(Debug, Error)]
pub enum ConnError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// The peer broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A stream with a read buffer that yields complete messages.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: Stream,
    /// Bytes read but not yet consumed.
    pub rbuf: BytesMut,
    max_message: usize,
}

impl Conn {
    /// Wraps a stream; messages above `max_message` bytes are refused.
    pub fn new(stream: Stream, max_message: usize) -> Self {
        Self {
            stream,
            rbuf: BytesMut::new(),
            max_message,
        }
    }

    /// Reads one complete typed message (header included).
    pub async fn read_message(&mut self) -> Result<Bytes, ConnError> {
        loop {
            if let Some(h) = FrameHeader::parse(&self.rbuf, self.max_message)? {
                if self.rbuf.len() >= h.total_len {
                    return Ok(self.rbuf.split_to(h.total_len).freeze());
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(ConnError::Closed);
            }
        }
    }

    /// Writes and flushes `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }
}
