//! The store's error type.

use std::path::PathBuf;

/// Why a store operation failed. A failed operation changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A namespace or key breaks the naming rules of [`crate::check_key`].
    #[error("invalid store key {namespace:?}/{key:?}: {reason}")]
    InvalidKey {
        /// The namespace given.
        namespace: String,
        /// The key given (empty when the namespace itself is invalid).
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The store file exists but is damaged or truncated. Vigil never
    /// replaces it; restore it from a backup or move it away to start afresh.
    #[error("store {path} is corrupt: {detail}; it was left untouched (restore it from a backup, or move it away to start afresh)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The store was written by a version of Vigil with another storage
    /// layout.
    #[error("store layout version {found} is not supported (this build reads version {supported})")]
    UnsupportedLayout {
        /// The version found in the store.
        found: String,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The store has no layout version: it was not created by Vigil, or it
    /// lost its metadata.
    #[error("store has no layout version: it was not created by Vigil or it is damaged")]
    MissingLayout,
    /// An I/O error from the filesystem.
    #[error("store I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the SQLite backend.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The backend refused or failed the operation for another reason.
    #[error("store backend error: {0}")]
    Backend(String),
}
