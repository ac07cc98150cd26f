//! Column-level policy: which roles may read, see masked, or change which
//! columns. Files are loaded and validated completely (`load`), compiled
//! (`compiled`), and swapped atomically; sessions ask `decide` about each
//! statement.

pub mod command;
pub mod compiled;
pub mod condition;
pub mod decide;
pub mod file;
pub mod load;
pub mod pattern;
pub mod store;
pub mod subjects;
pub mod tools;

pub use compiled::{Policy, ReadAction, RoleSet};
pub use condition::Env;
pub use decide::{Asker, Decision, PlannedMask, Refusal};
pub use file::{Mode, Permit};
pub use store::PolicyStore;

use std::path::PathBuf;
use thiserror::Error;

/// Why a policy was refused.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value is malformed or inconsistent.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// Dotted field, e.g. `rule[2].read`.
        field: String,
        /// What is wrong.
        message: String,
    },
}
