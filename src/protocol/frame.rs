//! Framing: split a byte stream into typed messages without copying them.

use super::ProtocolError;

/// Length of a regular message header: one type byte and a 4-byte length.
pub const HEADER_LEN: usize = 5;

/// The header of a regular (typed) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message type byte.
    pub tag: u8,
    /// Total size on the wire, type byte included.
    pub total_len: usize,
}

impl FrameHeader {
    /// Reads a header from the front of `buf`; `None` until 5 bytes are there.
    ///
    /// The length is checked against `max` before any buffer grows for it, so
    /// a peer cannot make the proxy allocate what it merely claims.
    pub fn parse(buf: &[u8], max: usize) -> Result<Option<FrameHeader>, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if len < 4 {
            return Err(ProtocolError::BadLength(len.into()));
        }
        let len = len as usize;
        if len > max {
            return Err(ProtocolError::TooLarge { len, max });
        }
        Ok(Some(FrameHeader {
            tag: buf[0],
            total_len: len + 1,
        }))
    }
}

/// One complete message, borrowed from the read buffer: the original bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    raw: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Wraps the raw bytes of one complete message (header included).
    pub fn new(raw: &'a [u8]) -> Self {
        debug_assert!(raw.len() >= HEADER_LEN);
        Self { raw }
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.raw[0]
    }

    /// The body, after type and length.
    pub fn body(&self) -> &'a [u8] {
        &self.raw[HEADER_LEN..]
    }

    /// The whole message as it arrived.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// Appends a message with the given tag and body to `out`.
pub fn put_message(out: &mut bytes::BytesMut, tag: u8, body: &[u8]) {
    use bytes::BufMut;
    out.reserve(HEADER_LEN + body.len());
    out.put_u8(tag);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        assert_eq!(FrameHeader::parse(b"Q\0\0", 100).unwrap(), None);
        let h = FrameHeader::parse(b"Q\0\0\0\x05x", 100).unwrap().unwrap();
        assert_eq!(h.tag, b'Q');
        assert_eq!(h.total_len, 6);
        assert!(matches!(
            FrameHeader::parse(b"Q\0\0\0\x03", 100),
            Err(ProtocolError::BadLength(3))
        ));
        assert!(matches!(
            FrameHeader::parse(b"Q\x7f\xff\xff\xff", 1 << 20),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            FrameHeader::parse(b"Q\xff\xff\xff\xff", 1 << 20),
            Err(ProtocolError::BadLength(-1))
        ));
    }
}
