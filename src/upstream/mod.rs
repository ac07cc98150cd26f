//! The server side of a connection: reaching PostgreSQL and relaying login.

pub mod connect;
pub mod dial;
pub mod login;

pub use login::Upstream;
