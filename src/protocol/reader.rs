//! A bounds-checked cursor over a message body: every read returns an error
//! instead of panicking on short or malformed input from the network.

use super::ProtocolError;

/// Reads big-endian integers and C strings from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the message in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn err(&self) -> ProtocolError {
        ProtocolError::Malformed(self.what)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a big-endian i16.
    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian i32.
    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a NUL-terminated string (without the NUL) as raw bytes.
    pub fn cstr(&mut self) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(ProtocolError::Malformed(self.what))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Reads a NUL-terminated UTF-8 string.
    pub fn string(&mut self) -> Result<&'a str, ProtocolError> {
        let what = self.what;
        std::str::from_utf8(self.cstr()?).map_err(|_| ProtocolError::Malformed(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[0, 1], "test");
        assert!(r.i32().is_err());
        let mut r = Reader::new(b"abc", "test");
        assert!(r.cstr().is_err());
        let mut r = Reader::new(b"abc\0\0\0\0\x07", "test");
        assert_eq!(r.string().unwrap(), "abc");
        assert_eq!(r.i32().unwrap(), 7);
        assert!(r.u8().is_err());
    }
}
