//! A logged-in session: what is known about it and the relay that carries
//! its messages between client and PostgreSQL.

mod absorb;
mod answers;
mod capture;
mod enforce;
mod limits;
pub mod observe;
mod relay;
pub mod settings;
mod state;
pub mod tracking;

mod durable;
mod subjects;

pub use relay::Session;
pub use state::SessionInfo;
