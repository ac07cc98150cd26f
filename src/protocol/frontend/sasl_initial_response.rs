//! SASLInitialResponse: the client's chosen mechanism and first SCRAM message.

use crate::protocol::{ProtocolError, Reader};

/// The parts of a SASLInitialResponse pgwarden looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// The mechanism, e.g. SCRAM-SHA-256.
    pub mechanism: &'a str,
    /// The client-first-message, if any.
    pub data: Option<&'a [u8]>,
}

impl<'a> SaslInitialResponse<'a> {
    /// Parses the body of a 'p' message sent in answer to AuthenticationSASL.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "SASLInitialResponse");
        let mechanism = r.string()?;
        let len = r.i32()?;
        let data = if len < 0 {
            None
        } else {
            Some(r.bytes(len as usize)?)
        };
        Ok(Self { mechanism, data })
    }

    /// Whether the SCRAM GS2 header says "client supports channel binding
    /// but thinks the server does not" ('y'). A TLS-terminated server rejects
    /// that as a downgrade, so the proxy must reach it over plaintext.
    pub fn claims_binding_unsupported_by_server(&self) -> bool {
        self.data.is_some_and(|d| d.first() == Some(&b'y'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gs2_flag() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        let first = b"y,,n=,r=abc";
        body.extend_from_slice(&(first.len() as i32).to_be_bytes());
        body.extend_from_slice(first);
        let m = SaslInitialResponse::parse(&body).unwrap();
        assert_eq!(m.mechanism, "SCRAM-SHA-256");
        assert!(m.claims_binding_unsupported_by_server());
        body.truncate(body.len() - 3);
        assert!(SaslInitialResponse::parse(&body).is_err());
    }
}
