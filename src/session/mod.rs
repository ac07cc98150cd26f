//! A logged-in session: what is known about it and the relay that carries
//! its messages between client and PostgreSQL.

mod relay;
mod state;

pub use relay::Session;
pub use state::SessionInfo;
