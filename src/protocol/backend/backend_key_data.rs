//! BackendKeyData ('K'): the key a client uses to cancel its query.

use crate::protocol::frame::put_message;
use crate::protocol::frontend::startup::CancelKey;
use crate::protocol::{ProtocolError, Reader};
use bytes::BytesMut;

/// Parses a protocol 3.0 BackendKeyData body.
pub fn parse(body: &[u8]) -> Result<CancelKey, ProtocolError> {
    let mut r = Reader::new(body, "BackendKeyData");
    let pid = r.i32()?;
    let secret = r.i32()?;
    Ok(CancelKey { pid, secret })
}

/// Appends a BackendKeyData message for `key` to `out`.
pub fn put(key: CancelKey, out: &mut BytesMut) {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&key.pid.to_be_bytes());
    body[4..].copy_from_slice(&key.secret.to_be_bytes());
    put_message(out, b'K', &body);
}
