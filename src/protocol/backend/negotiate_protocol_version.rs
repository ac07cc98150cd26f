//! NegotiateProtocolVersion ('v'): tells a client which minor version and
//! `_pq_.` options the server (here: pgwarden) accepts.

use crate::protocol::frame::put_message;
use bytes::{BufMut, BytesMut};

/// Appends a NegotiateProtocolVersion offering 3.0 and rejecting `options`.
pub fn put(options: &[&str], out: &mut BytesMut) {
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(options.len() as i32);
    for o in options {
        b.put_slice(o.as_bytes());
        b.put_u8(0);
    }
    put_message(out, b'v', &b);
}
