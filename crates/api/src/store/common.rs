//! What every aggregate's module uses: the store's error, the time the
//! backends keep, stored JSON passed on unparsed, and text-stored enums.

use chrono::{DateTime, SubsecRound, Utc};

/// A status or kind stored as text (one definition for both services'
/// stores, in `myloware-db`).
pub(crate) use myloware_db::text_enum;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a run with id {0} already exists")]
    DuplicateRun(String),
    /// `MAX_ACTIVE_RUNS` runs have not ended yet.
    #[error("{active} runs are active, the most MAX_ACTIVE_RUNS ({cap}) allows; start again when one ends")]
    AtCapacity { active: i64, cap: u32 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The current time at the precision both backends keep (microseconds), so a
/// value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A JSON document as stored: passed on without being parsed.
pub type RawJson = Box<serde_json::value::RawValue>;
