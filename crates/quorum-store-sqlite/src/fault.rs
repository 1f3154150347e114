//! Faults of the storage under the database that callers hear of by name (507 for a full
//! disk, 503 for a filesystem turned read-only) rather than as internal errors.

use std::path::Path;

use quorum_store::{Result, StoreError};

/// A fault of the storage under the database, which callers hear of by name rather than as
/// an internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The disk (or SQLite's size limit) is full.
    Full,
    /// The filesystem has turned read-only.
    ReadOnly,
}

impl Fault {
    pub(crate) fn error(self) -> StoreError {
        match self {
            Fault::Full => StoreError::StorageFull,
            Fault::ReadOnly => StoreError::StorageReadOnly,
        }
    }

    pub(crate) fn of_result<T>(result: &Result<T>) -> Option<Fault> {
        match result {
            Err(StoreError::StorageFull) => Some(Fault::Full),
            Err(StoreError::StorageReadOnly) => Some(Fault::ReadOnly),
            _ => None,
        }
    }
}

/// The storage fault behind an SQLite error, if it is one. SQLite reports a write the
/// filesystem refused as read-only as a plain I/O error, so given the database's directory
/// (`dir`), an I/O error is checked by trying to create a file there.
pub(crate) fn fault_of(error: &rusqlite::Error, dir: Option<&Path>) -> Option<Fault> {
    let rusqlite::Error::SqliteFailure(failure, _) = error else {
        return None;
    };
    match failure.code {
        rusqlite::ErrorCode::DiskFull => Some(Fault::Full),
        rusqlite::ErrorCode::ReadOnly => Some(Fault::ReadOnly),
        rusqlite::ErrorCode::SystemIoFailure => {
            dir.filter(|d| read_only(d)).map(|_| Fault::ReadOnly)
        }
        _ => None,
    }
}

/// Whether files can no longer be created in `dir` because its filesystem is read-only.
pub(crate) fn read_only(dir: &Path) -> bool {
    let probe = dir.join(".quorum-write-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
    }
}
