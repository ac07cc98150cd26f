//! The untyped packets that open a connection: SSLRequest, GSSENCRequest,
//! CancelRequest and StartupMessage.

use crate::protocol::{ProtocolError, Reader};
use bytes::{BufMut, BytesMut};

/// PostgreSQL refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: usize = 10_000;
const CANCEL_CODE: i32 = 80_877_102;
const SSL_CODE: i32 = 80_877_103;
const GSSENC_CODE: i32 = 80_877_104;

/// One opening packet, classified by its protocol code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// SSLRequest: the client wants TLS.
    SslRequest,
    /// GSSENCRequest: the client wants GSSAPI encryption.
    GssEncRequest,
    /// CancelRequest on a fresh connection.
    Cancel(CancelKey),
    /// StartupMessage for protocol 3.x.
    Startup(StartupMessage),
}

/// The key that identifies a backend for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    /// Process id (synthetic when given out by pgwarden).
    pub pid: i32,
    /// Secret.
    pub secret: i32,
}

impl CancelKey {
    /// Encodes a CancelRequest packet carrying this key.
    pub fn encode_request(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&16i32.to_be_bytes());
        out[4..8].copy_from_slice(&CANCEL_CODE.to_be_bytes());
        out[8..12].copy_from_slice(&self.pid.to_be_bytes());
        out[12..].copy_from_slice(&self.secret.to_be_bytes());
        out
    }
}

/// A StartupMessage with its parameters in the order the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Requested major protocol version.
    pub major: u16,
    /// Requested minor protocol version.
    pub minor: u16,
    /// Parameters (user, database, options, application_name, ...).
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The value of a parameter, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes the message for protocol 3.0, leaving out `_pq_.` options.
    pub fn encode_v3_0(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0);
        out.put_u16(3);
        out.put_u16(0);
        for (k, v) in self.params.iter().filter(|(k, _)| !k.starts_with("_pq_.")) {
            out.put_slice(k.as_bytes());
            out.put_u8(0);
            out.put_slice(v.as_bytes());
            out.put_u8(0);
        }
        out.put_u8(0);
        let len = out.len() as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out
    }
}

/// Validates the length word of an opening packet (4 bytes, big-endian).
pub fn packet_len(word: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = i32::from_be_bytes(word);
    if !(8..=MAX_STARTUP_LEN as i32).contains(&len) {
        return Err(ProtocolError::BadStartupLength(len.into()));
    }
    Ok(len as usize)
}

/// Parses the body of an opening packet (everything after the length word).
pub fn parse(body: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut r = Reader::new(body, "startup packet");
    let code = r.i32()?;
    match code {
        SSL_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_CODE => {
            let pid = r.i32()?;
            let secret = r.i32()?;
            Ok(StartupPacket::Cancel(CancelKey { pid, secret }))
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(ProtocolError::UnsupportedVersion { major, minor });
            }
            let mut params = Vec::new();
            loop {
                let key = r.string()?;
                if key.is_empty() {
                    break;
                }
                let value = r.string()?;
                params.push((key.to_owned(), value.to_owned()));
            }
            Ok(StartupPacket::Startup(StartupMessage {
                major,
                minor,
                params,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let msg = StartupMessage {
            major: 3,
            minor: 0,
            params: vec![
                ("user".into(), "alice".into()),
                ("_pq_.x".into(), "1".into()),
            ],
        };
        let enc = msg.encode_v3_0();
        let len = packet_len([enc[0], enc[1], enc[2], enc[3]]).unwrap();
        assert_eq!(len, enc.len());
        match parse(&enc[4..]).unwrap() {
            StartupPacket::Startup(m) => {
                assert_eq!(m.param("user"), Some("alice"));
                assert_eq!(m.params.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&[0, 3, 0, 0, b'u', b's']).is_err());
        assert!(packet_len(20_000i32.to_be_bytes()).is_err());
        assert!(packet_len(4i32.to_be_bytes()).is_err());
        assert!(matches!(
            parse(&[0, 2, 0, 0, 0]),
            Err(ProtocolError::UnsupportedVersion { major: 2, .. })
        ));
        let key = CancelKey { pid: 7, secret: -3 };
        assert_eq!(
            parse(&key.encode_request()[4..]).unwrap(),
            StartupPacket::Cancel(key)
        );
    }
}
