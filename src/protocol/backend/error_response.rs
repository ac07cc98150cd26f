//! ErrorResponse ('E') and NoticeResponse ('N'): building pgwarden's own
//! errors and reading the severity of the server's.

use crate::protocol::frame::put_message;
use crate::protocol::{ProtocolError, Reader};
use bytes::{BufMut, BytesMut};

/// Error severities pgwarden sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }
}

/// An error pgwarden reports to a client in PostgreSQL's own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    /// ERROR or FATAL.
    pub severity: Severity,
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// Primary message.
    pub message: String,
    /// Optional DETAIL.
    pub detail: Option<String>,
    /// Optional HINT.
    pub hint: Option<String>,
}

impl PgError {
    /// A FATAL error: the connection closes after it.
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// An ERROR: the statement fails, the session continues.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            ..Self::fatal(code, message)
        }
    }

    /// Adds a HINT line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Appends the ErrorResponse to `out`.
    pub fn put(&self, out: &mut BytesMut) {
        let mut b = BytesMut::with_capacity(64 + self.message.len());
        let mut field = |t: u8, v: &str| {
            b.put_u8(t);
            // A NUL would end the field early; PostgreSQL never sends one either.
            b.put_slice(v.replace('\0', "").as_bytes());
            b.put_u8(0);
        };
        field(b'S', self.severity.as_str());
        field(b'V', self.severity.as_str());
        field(b'C', self.code);
        field(b'M', &self.message);
        if let Some(d) = &self.detail {
            field(b'D', d);
        }
        if let Some(h) = &self.hint {
            field(b'H', h);
        }
        b.put_u8(0);
        put_message(out, b'E', &b);
    }
}

/// The fields of a server's ErrorResponse that pgwarden looks at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// Non-localised severity ('V'), else the localised one ('S').
    pub severity: &'a str,
    /// SQLSTATE ('C').
    pub code: &'a str,
    /// Message ('M').
    pub message: &'a str,
}

impl ErrorFields<'_> {
    /// Whether the server ends the session with this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity, "FATAL" | "PANIC")
    }
}

/// Parses an ErrorResponse or NoticeResponse body.
pub fn parse(body: &[u8]) -> Result<ErrorFields<'_>, ProtocolError> {
    let mut r = Reader::new(body, "ErrorResponse");
    let mut f = ErrorFields::default();
    let mut localized = "";
    loop {
        let t = r.u8()?;
        if t == 0 {
            break;
        }
        let v = r.string()?;
        match t {
            b'V' => f.severity = v,
            b'S' => localized = v,
            b'C' => f.code = v,
            b'M' => f.message = v,
            _ => {}
        }
    }
    if f.severity.is_empty() {
        f.severity = localized;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let mut out = BytesMut::new();
        PgError::fatal("08P01", "bad\0thing")
            .with_hint("h")
            .put(&mut out);
        assert_eq!(out[0], b'E');
        let f = parse(&out[5..]).unwrap();
        assert_eq!(f.code, "08P01");
        assert_eq!(f.message, "badthing");
        assert!(f.is_fatal());
        assert!(parse(b"Sx").is_err());
    }
}
