//! What a baseline holds per login user: the tables and columns read, the
//! hours of day and client addresses seen, and rows per hour, counted
//! while learning. Serialized as the baseline file (`store.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the file format.
pub const FORMAT_VERSION: u32 = 1;

/// Most tables, columns per table, and addresses one user's baseline keeps;
/// past it nothing new is learnt (a bound on memory and file size).
pub const MAX_ENTRIES: usize = 4096;

/// Every user's baseline: the content of the baseline file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Login user → baseline.
    pub users: BTreeMap<String, UserBaseline>,
}

/// One user's baseline. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserBaseline {
    /// First observation: learning starts here.
    pub first_seen: u64,
    /// When learning ended; `None` while learning.
    pub learned_at: Option<u64>,
    /// Statements learnt from.
    pub statements: u64,
    /// Logins learnt from.
    pub logins: u64,
    /// `schema.table` → how often it was read, and its columns.
    pub tables: BTreeMap<String, TableUse>,
    /// Statements and logins per hour of day (UTC).
    pub hours: [u64; 24],
    /// Client address → logins from it.
    pub addresses: BTreeMap<String, u64>,
    /// Rows returned per hour.
    pub rows: RowUse,
}

/// How often a table and its columns were read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableUse {
    /// Statements that read it.
    pub reads: u64,
    /// Column → statements that read it.
    pub columns: BTreeMap<String, u64>,
}

/// Rows returned per clock hour: the hour being counted, and the learnt
/// hours folded into a total and a maximum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowUse {
    /// Learnt hours with any rows.
    pub active_hours: u64,
    /// Rows over the learnt hours.
    pub total: u64,
    /// Rows in the busiest learnt hour: the usual ceiling.
    pub max_hour: u64,
    /// The clock hour being counted (hours since the epoch).
    pub bucket_hour: u64,
    /// Rows in it so far.
    pub bucket_rows: u64,
}

impl RowUse {
    /// Mean rows per active learnt hour.
    pub fn mean(&self) -> u64 {
        self.total.checked_div(self.active_hours).unwrap_or(0)
    }
}

/// What one statement read: `schema.table` and the columns.
pub type Reads = Vec<(String, Vec<String>)>;
