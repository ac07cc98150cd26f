//! Messages sent by the PostgreSQL server.

pub mod authentication;
pub mod backend_key_data;
pub mod error_response;
pub mod negotiate_protocol_version;
pub mod parameter_status;
pub mod row_description;

/// Authentication family ('R').
pub const AUTHENTICATION: u8 = b'R';
/// BackendKeyData ('K').
pub const BACKEND_KEY_DATA: u8 = b'K';
/// ParameterStatus ('S').
pub const PARAMETER_STATUS: u8 = b'S';
/// ReadyForQuery ('Z').
pub const READY_FOR_QUERY: u8 = b'Z';
/// ErrorResponse ('E').
pub const ERROR_RESPONSE: u8 = b'E';
/// NoticeResponse ('N').
pub const NOTICE_RESPONSE: u8 = b'N';
/// NotificationResponse ('A').
pub const NOTIFICATION_RESPONSE: u8 = b'A';
/// NegotiateProtocolVersion ('v').
pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';

/// The transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InTransaction,
    /// 'E': in a failed transaction block.
    Failed,
}

impl TransactionStatus {
    /// Reads the status from a ReadyForQuery body; unknown bytes count as idle.
    pub fn from_ready_for_query(body: &[u8]) -> Self {
        match body.first() {
            Some(b'T') => Self::InTransaction,
            Some(b'E') => Self::Failed,
            _ => Self::Idle,
        }
    }

    /// The protocol byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}
/// DataRow (the same byte is Describe from a client).
pub const DATA_ROW: u8 = b'D';
/// RowDescription.
pub const ROW_DESCRIPTION: u8 = b'T';
