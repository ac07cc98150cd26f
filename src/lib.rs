//! pgwarden: a transparent PostgreSQL wire-protocol proxy that audits and
//! enforces column-level policies.
//!
//! The path of a connection, one module per stage:
//! [`server`] accepts → [`client`] negotiates TLS and reads the startup →
//! [`upstream`] connects to PostgreSQL and relays the login → [`session`]
//! relays every message, framed by [`protocol`], until either side ends.

/// Every pgwarden binary, test and bench allocates through mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod alert;
pub mod analyse;
pub mod audit;
pub mod baseline;
pub mod budget;
pub mod cancel;
pub mod capture;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod context;
pub mod demo;
pub mod detect;
pub mod mask;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod protocol;
pub mod report;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod upstream;

pub use config::Config;
pub use server::Server;
