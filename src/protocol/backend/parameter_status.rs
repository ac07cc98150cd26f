//! ParameterStatus ('S'): a server setting the client should know about.

use crate::protocol::{ProtocolError, Reader};

/// Parses a ParameterStatus body into name and value.
pub fn parse(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    let mut r = Reader::new(body, "ParameterStatus");
    Ok((r.string()?, r.string()?))
}
