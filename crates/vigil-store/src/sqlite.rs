//! The SQLite [`KvStore`], Vigil's embedded default.
//!
//! One table, `kv(namespace, key, value)`, in WAL mode with
//! `synchronous=FULL`, so a write is on disk when the call returns.
//!
//! A new store file is created atomically: it is built under a temporary name,
//! given its schema and layout version, synced, and renamed into place. So a
//! file at the store's path has always been complete once, and an empty,
//! truncated or foreign file is reported as [`StoreError::Corrupt`] at open,
//! never silently replaced.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::key::{check_both, check_namespace};
use crate::{layout, Batch, BatchOp, KvStore, StoreError};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const SCHEMA: &str = "CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;";

/// A [`KvStore`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it if no file is there.
    ///
    /// The parent directory must exist.
    ///
    /// # Errors
    ///
    /// - [`StoreError::Corrupt`] if the file is empty, truncated, not an SQLite
    ///   database, fails SQLite's integrity check, or lacks Vigil's table;
    /// - [`StoreError::MissingLayout`] or [`StoreError::UnsupportedLayout`] if
    ///   its layout version is absent or unknown;
    /// - [`StoreError::Io`] or [`StoreError::Sqlite`] for other failures.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A WAL without its database would be replayed into a new,
                // empty file: the main file was lost, which is corruption.
                if let Some(orphan) = [wal_path(&path), shm_path(&path)].into_iter().find(|p| p.exists()) {
                    return Err(StoreError::Corrupt {
                        path: path.clone(),
                        detail: format!("the database file is missing but {} remains", orphan.display()),
                    });
                }
                create(&path)?;
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        check_file_header(&path)?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| corrupt_or(&path, e))?;
        configure(&conn).map_err(|e| corrupt_or(&path, e))?;
        integrity_check(&path, &conn)?;
        let store = Self { path, conn: Mutex::new(conn) };
        layout::check(&store)?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite keeps its own state consistent; a panic in another thread
        // while holding the lock leaves at worst an open transaction, which
        // rusqlite rolls back when it is dropped.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode=WAL was refused (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Builds a complete store under a temporary name, then renames it to `path`.
fn create(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension("creating");
    // A leftover from a crash during an earlier creation was never renamed
    // into place, so nothing depends on it.
    for leftover in [tmp.clone(), wal_path(&tmp), shm_path(&tmp)] {
        if leftover.exists() {
            fs::remove_file(&leftover).map_err(io)?;
        }
    }
    {
        let conn = Connection::open(&tmp)?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let store = SqliteStore { path: tmp.clone(), conn: Mutex::new(conn) };
        layout::init(&store)?;
        let conn = store.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        // Fold the WAL back into the main file so the rename moves everything.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        conn.close().map_err(|(_, e)| e)?;
    }
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

fn shm_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// Checks the 100-byte SQLite header before SQLite sees the file: the magic,
/// and that the file is not shorter than the size its header records.
fn check_file_header(path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(corrupt("the file is empty (truncated)".into()));
    }
    let mut header = [0u8; 100];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]).map_err(io)? {
            0 => break,
            n => read += n,
        }
    }
    if read < header.len() || &header[..16] != SQLITE_MAGIC {
        return Err(corrupt("not an SQLite database (bad header)".into()));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let change_counter = &header[24..28];
    let version_valid_for = &header[92..96];
    let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
    // The in-header size is only meaningful when it was written together with
    // the change counter (SQLite file format, section 1.3.7), and only when
    // no write-ahead log remains: a checkpoint cut short writes page 1 before
    // the pages that extend the file, and SQLite finishes it from the log.
    let wal_pending = wal_has_frames(&wal_path(path));
    if change_counter == version_valid_for && pages > 0 && len < pages * page_size && !wal_pending {
        return Err(corrupt(format!(
            "truncated: the file has {len} bytes but its header records {pages} pages of {page_size} bytes"
        )));
    }
    Ok(())
}

/// Whether `wal` is a write-ahead log with at least one frame: its magic
/// (SQLite file format, section 4.1) and more than its 32-byte header.
fn wal_has_frames(wal: &Path) -> bool {
    let Ok(mut file) = File::open(wal) else { return false };
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() {
        return false;
    }
    let is_wal = matches!(u32::from_be_bytes(magic), 0x377f_0682 | 0x377f_0683);
    is_wal && file.metadata().is_ok_and(|m| m.len() > 32)
}

fn integrity_check(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
    let mut stmt = conn.prepare("PRAGMA quick_check").map_err(|e| corrupt_or(path, e))?;
    let problems: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| corrupt_or(path, e))?;
    if problems != ["ok"] {
        return Err(corrupt(format!("integrity check failed: {}", problems.join("; "))));
    }
    let has_table: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE type='table' AND name='kv'", [], |r| r.get(0))
        .optional()
        .map_err(|e| corrupt_or(path, e))?;
    if has_table.is_none() {
        return Err(corrupt("it has no `kv` table: not a Vigil store".into()));
    }
    Ok(())
}

/// Maps SQLite's "corrupt" and "not a database" codes to
/// [`StoreError::Corrupt`], and anything else to [`StoreError::Sqlite`].
fn corrupt_or(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() }
        }
        _ => StoreError::Sqlite(e),
    }
}

impl KvStore for SqliteStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_both(namespace, key)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM kv WHERE namespace = ?1 AND key = ?2")?;
        Ok(stmt.query_row(params![namespace, key], |row| row.get(0)).optional()?)
    }

    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_both(namespace, key)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
        )?;
        stmt.execute(params![namespace, key, value])?;
        Ok(())
    }

    fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        check_both(namespace, key)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND key = ?2")?;
        stmt.execute(params![namespace, key])?;
        Ok(())
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        check_namespace(namespace)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT key FROM kv WHERE namespace = ?1 ORDER BY key")?;
        let keys = stmt.query_map(params![namespace], |row| row.get(0))?.collect::<Result<_, _>>()?;
        Ok(keys)
    }

    fn read_namespace(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_namespace(namespace)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT key, value FROM kv WHERE namespace = ?1 ORDER BY key")?;
        let rows = stmt
            .query_map(params![namespace], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        batch.validate()?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut write = tx.prepare_cached(
                "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            )?;
            let mut remove = tx.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND key = ?2")?;
            for op in batch.ops() {
                match op {
                    BatchOp::Write { namespace, key, value } => {
                        write.execute(params![namespace, key, value])?;
                    }
                    BatchOp::Remove { namespace, key } => {
                        remove.execute(params![namespace, key])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("s.sqlite")).expect("open");
        let conn = store.conn();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("pragma");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn leftover_temporary_file_is_replaced_on_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        fs::write(path.with_extension("creating"), b"half-written").expect("write");
        let store = SqliteStore::open(&path).expect("create despite the leftover");
        store.write("ns", "k", b"v").expect("write");
        assert!(!path.with_extension("creating").exists());
    }
}
