//! SQLSTATE codes pgwarden sends itself (see PostgreSQL's errcodes.txt).

/// 08P01 protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// 08006 connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// 08001 sqlclient_unable_to_establish_sqlconnection.
pub const UNABLE_TO_CONNECT: &str = "08001";
/// 28000 invalid_authorization_specification.
pub const INVALID_AUTHORIZATION: &str = "28000";
/// 53300 too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// 57P01 admin_shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// 0A000 feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// 57014 query_canceled (also used for startup timeouts, as PostgreSQL does not have one).
pub const QUERY_CANCELED: &str = "57014";
/// insufficient_privilege: a policy refused the statement.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
