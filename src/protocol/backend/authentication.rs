//! Authentication request family ('R').

use crate::protocol::{frame::put_message, ProtocolError, Reader};
use bytes::{BufMut, BytesMut};

/// AuthenticationOk.
pub const OK: i32 = 0;
/// AuthenticationSASL: list of mechanisms.
pub const SASL: i32 = 10;
/// AuthenticationSASLFinal: no client response follows.
pub const SASL_FINAL: i32 = 12;
/// The mechanism that binds to the TLS certificate the client sees.
pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// The request code at the front of an 'R' body.
pub fn code(body: &[u8]) -> Result<i32, ProtocolError> {
    Reader::new(body, "Authentication").i32()
}

/// Whether the client must answer this request with a 'p' message.
pub fn expects_response(code: i32) -> bool {
    !matches!(code, OK | SASL_FINAL)
}

/// The mechanisms of an AuthenticationSASL body.
pub fn sasl_mechanisms(body: &[u8]) -> Result<Vec<&str>, ProtocolError> {
    let mut r = Reader::new(body, "AuthenticationSASL");
    r.i32()?;
    let mut out = Vec::new();
    loop {
        let m = r.string()?;
        if m.is_empty() {
            return Ok(out);
        }
        out.push(m);
    }
}

/// Re-encodes AuthenticationSASL without SCRAM-SHA-256-PLUS, appending it to `out`.
///
/// Channel binding ties SCRAM to the server certificate the client sees; when
/// pgwarden terminates the client's TLS that is pgwarden's certificate, so
/// offering -PLUS would make every binding client fail.
pub fn put_sasl_without_plus(body: &[u8], out: &mut BytesMut) -> Result<(), ProtocolError> {
    let mut b = BytesMut::with_capacity(body.len());
    b.put_i32(SASL);
    for m in sasl_mechanisms(body)?
        .into_iter()
        .filter(|m| *m != SCRAM_PLUS)
    {
        b.put_slice(m.as_bytes());
        b.put_u8(0);
    }
    b.put_u8(0);
    put_message(out, b'R', &b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_plus() {
        let body = b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
        let mut out = BytesMut::new();
        put_sasl_without_plus(body, &mut out).unwrap();
        assert_eq!(sasl_mechanisms(&out[5..]).unwrap(), vec!["SCRAM-SHA-256"]);
        assert!(sasl_mechanisms(b"\0\0\0\x0aSCRAM").is_err());
    }
}
