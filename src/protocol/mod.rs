//! The PostgreSQL wire protocol, as far as pgwarden needs it.
//!
//! Messages are framed, never fully decoded unless a stage must look inside:
//! an untouched message is forwarded as the original bytes. Frontend (client)
//! and backend (server) messages live in separate modules because a tag means
//! different things in each direction ('D' is Describe from a client and
//! DataRow from a server).

pub mod backend;
pub mod codes;
pub mod error;
pub mod frame;
pub mod frontend;
pub mod reader;

pub use error::ProtocolError;
pub use frame::{Frame, FrameHeader};
pub use reader::Reader;
