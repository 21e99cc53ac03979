//! The stores both implementations write to, and what they count.
//!
//! Vigil and LDK write to the *same* store engine in every scenario: the
//! in-memory [`MemoryStore`] for `-mem` scenarios, or one [`SqliteStore`]
//! file per node (WAL, `synchronous=FULL`: every transaction is fsynced
//! before it returns) for durable ones. LDK reaches it through its own
//! `KVStoreSync` trait ([`LdkKv`]), Vigil through `KvStore`. So the
//! difference measured is what each architecture writes and how often it
//! commits, not the storage engine.
//!
//! [`CountingStore`] wraps either and counts transactions (one fsync each
//! on SQLite), values written and their bytes.

use lightning::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lightning::util::persist::KVStoreSync;
use vigil_store::{Batch, BatchOp, KvStore, MemoryStore, SqliteStore, StoreError};

/// Which store a scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In memory: no IO at all.
    Memory,
    /// A SQLite file per node, every transaction fsynced.
    Sqlite,
}

/// What a store was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Transactions committed (each a single write, removal or batch): one
    /// fsync each on SQLite.
    pub transactions: u64,
    /// Values written.
    pub writes: u64,
    /// Bytes of the values written.
    pub bytes: u64,
}

impl StoreCounts {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &StoreCounts) -> StoreCounts {
        StoreCounts {
            transactions: self.transactions - earlier.transactions,
            writes: self.writes - earlier.writes,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

/// A store that counts what goes through it.
#[derive(Debug)]
pub struct CountingStore {
    inner: Box<dyn KvStore>,
    transactions: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
}

impl CountingStore {
    /// A store of `kind`; a SQLite one lives at `dir/<name>.sqlite`.
    ///
    /// # Errors
    ///
    /// The SQLite store could not be opened.
    pub fn open(kind: StoreKind, dir: &Path, name: &str) -> Result<Arc<Self>, StoreError> {
        let inner: Box<dyn KvStore> = match kind {
            StoreKind::Memory => Box::new(MemoryStore::new()),
            StoreKind::Sqlite => Box::new(SqliteStore::open(dir.join(format!("{name}.sqlite")))?),
        };
        Ok(Arc::new(Self {
            inner,
            transactions: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }))
    }

    /// The counts so far.
    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn count(&self, writes: u64, bytes: u64) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl KvStore for CountingStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read(namespace, key)
    }
    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.write(namespace, key, value)?;
        self.count(1, value.len() as u64);
        Ok(())
    }
    fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.inner.remove(namespace, key)?;
        self.count(0, 0);
        Ok(())
    }
    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(namespace)
    }
    fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.write_batch(batch)?;
        let (mut writes, mut bytes) = (0, 0);
        for op in batch.ops() {
            if let BatchOp::Write { value, .. } = op {
                writes += 1;
                bytes += value.len() as u64;
            }
        }
        self.count(writes, bytes);
        Ok(())
    }
}

/// LDK's `KVStoreSync` over a Vigil store: LDK's `primary/secondary`
/// namespaces become `ldk/<primary>/<secondary>` (empty parts dropped).
///
/// A removal LDK marks `lazy` (the `MonitorUpdatingPersister` deletes the
/// updates a full monitor supersedes that way) waits, and goes to the store
/// in the same transaction as the next write, as LDK allows: a good backend
/// does not pay an fsync for each of them.
#[derive(Debug)]
pub struct LdkKv {
    store: Arc<CountingStore>,
    lazy_removals: std::sync::Mutex<Vec<(String, String)>>,
}

impl LdkKv {
    /// LDK's view of `store`.
    pub fn new(store: Arc<CountingStore>) -> Self {
        LdkKv { store, lazy_removals: std::sync::Mutex::new(Vec::new()) }
    }

    /// `op` in one transaction with the removals waiting.
    fn with_removals(&self, op: impl FnOnce(&mut Batch)) -> Result<(), io::Error> {
        let mut pending = self.lazy_removals.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::new();
        for (ns, key) in pending.iter() {
            batch.remove(ns, key);
        }
        op(&mut batch);
        self.store.write_batch(&batch).map_err(io_error)?;
        pending.clear();
        Ok(())
    }
}

fn ldk_namespace(primary: &str, secondary: &str) -> String {
    let mut ns = String::from("ldk");
    for part in [primary, secondary] {
        if !part.is_empty() {
            ns.push('/');
            ns.push_str(part);
        }
    }
    ns
}

fn io_error(e: StoreError) -> io::Error {
    io::Error::new(io::ErrorKind::Other, e.to_string())
}

impl KVStoreSync for LdkKv {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> Result<Vec<u8>, io::Error> {
        self.store
            .read(&ldk_namespace(primary, secondary), key)
            .map_err(io_error)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {primary}/{secondary}/{key}")))
    }
    fn write(&self, primary: &str, secondary: &str, key: &str, buf: Vec<u8>) -> Result<(), io::Error> {
        // Removals first: a write to a key whose removal waits wins.
        self.with_removals(|b| {
            b.write(&ldk_namespace(primary, secondary), key, buf);
        })
    }
    fn remove(&self, primary: &str, secondary: &str, key: &str, lazy: bool) -> Result<(), io::Error> {
        let ns = ldk_namespace(primary, secondary);
        if lazy {
            self.lazy_removals.lock().unwrap_or_else(|e| e.into_inner()).push((ns, key.to_string()));
            return Ok(());
        }
        self.with_removals(|b| {
            b.remove(&ns, key);
        })
    }
    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, io::Error> {
        self.store.list(&ldk_namespace(primary, secondary)).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_transactions_writes_and_bytes_and_ldk_keys_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CountingStore::open(StoreKind::Sqlite, dir.path(), "n").expect("open");
        let mut batch = Batch::new();
        batch.write("a", "x", vec![1, 2, 3]).write("a", "y", vec![4]).remove("a", "z");
        store.write_batch(&batch).expect("batch");
        let ldk = LdkKv::new(store.clone());
        ldk.write("", "", "manager", vec![9; 10]).expect("write");
        ldk.write("monitors", "upd", "1", vec![7; 5]).expect("write");
        assert_eq!(store.counts(), StoreCounts { transactions: 3, writes: 4, bytes: 19 });
        // A lazy removal waits for the next write, and shares its
        // transaction.
        ldk.write("monitors", "upd", "2", vec![7; 5]).expect("write");
        ldk.remove("monitors", "upd", "1", true).expect("lazy remove");
        assert_eq!(store.counts().transactions, 4, "no transaction for a lazy removal");
        ldk.write("", "", "manager", vec![8; 10]).expect("write");
        assert_eq!(store.counts().transactions, 5, "it went with the write");
        assert_eq!(ldk.list("monitors", "upd").expect("list"), vec!["2".to_string()]);
        ldk.remove("monitors", "upd", "2", false).expect("remove");
        assert!(ldk.list("monitors", "upd").expect("list").is_empty());
        assert_eq!(ldk.read("", "", "manager").expect("read"), vec![8; 10], "the latest write");
        let missing = ldk.read("monitors", "", "nope").expect_err("absent");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "LDK relies on NotFound for absent keys");
    }
}
