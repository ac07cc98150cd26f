//! Messages sent by clients.

pub mod bind;
pub mod sasl_initial_response;
pub mod startup;

use super::ProtocolError;

/// Query: a simple-protocol query string.
pub const QUERY: u8 = b'Q';
/// Parse: prepare a statement.
pub const PARSE: u8 = b'P';
/// Bind: create a portal.
pub const BIND: u8 = b'B';
/// Describe a statement or portal (the same byte is DataRow from a server).
pub const DESCRIBE: u8 = b'D';
/// Execute a portal.
pub const EXECUTE: u8 = b'E';
/// Close a statement or portal.
pub const CLOSE: u8 = b'C';
/// Sync: end of an extended-protocol request.
pub const SYNC: u8 = b'S';
/// Flush: send what is pending without a Sync.
pub const FLUSH: u8 = b'H';
/// FunctionCall: the fast-path function call.
pub const FUNCTION_CALL: u8 = b'F';
/// CopyData.
pub const COPY_DATA: u8 = b'd';
/// CopyDone.
pub const COPY_DONE: u8 = b'c';
/// CopyFail.
pub const COPY_FAIL: u8 = b'f';
/// Terminate.
pub const TERMINATE: u8 = b'X';
/// The password family: PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
pub const PASSWORD: u8 = b'p';

/// Checks that `tag` is a message a client may send after startup.
pub fn check_tag(tag: u8) -> Result<(), ProtocolError> {
    match tag {
        QUERY | PARSE | BIND | DESCRIBE | EXECUTE | CLOSE | SYNC | FLUSH | FUNCTION_CALL
        | COPY_DATA | COPY_DONE | COPY_FAIL | TERMINATE | PASSWORD => Ok(()),
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// Whether this message asks the server for a ReadyForQuery at its end.
pub fn ends_request(tag: u8) -> bool {
    matches!(tag, QUERY | SYNC | FUNCTION_CALL)
}
