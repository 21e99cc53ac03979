//! Vigil's durable key-value store.
//!
//! Everything Vigil keeps on disk goes through the [`KvStore`] trait: monitors,
//! the wallet, the embedded chain, and later the payment store. A write is
//! durable when the call returns, and [`KvStore::write_batch`] applies several
//! writes and removals atomically.
//!
//! Backends:
//! - [`MemoryStore`], for tests and the simulator;
//! - [`SqliteStore`], the embedded default (WAL, `synchronous=FULL`).
//!
//! Every store carries a layout version ([`layout`]), checked when it is opened.
//! The [`conformance`] suite is the contract every backend must pass.
#![deny(missing_docs)]

pub mod conformance;
mod error;
mod key;
pub mod layout;
mod memory;
mod sqlite;

pub use error::StoreError;
pub use key::{check_key, check_namespace, MAX_KEY_LEN};
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// One operation of an atomic [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Write `value` under `(namespace, key)`, replacing any previous value.
    Write {
        /// The namespace of the key.
        namespace: String,
        /// The key inside its namespace.
        key: String,
        /// The bytes to store.
        value: Vec<u8>,
    },
    /// Remove `(namespace, key)`; removing an absent key is not an error.
    Remove {
        /// The namespace of the key.
        namespace: String,
        /// The key inside its namespace.
        key: String,
    },
}

/// A list of writes and removals applied all together or not at all.
///
/// Operations apply in order, so a later operation on the same key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a write of `value` under `(namespace, key)`.
    pub fn write(&mut self, namespace: &str, key: &str, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Write {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value: value.into(),
        });
        self
    }

    /// Adds a removal of `(namespace, key)`.
    pub fn remove(&mut self, namespace: &str, key: &str) -> &mut Self {
        self.ops.push(BatchOp::Remove { namespace: namespace.to_owned(), key: key.to_owned() });
        self
    }

    /// The operations, in the order they apply.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks every namespace and key of the batch.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] for the first invalid namespace or key.
    pub fn validate(&self) -> Result<(), StoreError> {
        for op in &self.ops {
            let (namespace, key) = match op {
                BatchOp::Write { namespace, key, .. } | BatchOp::Remove { namespace, key } => {
                    (namespace, key)
                }
            };
            check_namespace(namespace)?;
            check_key(namespace, key)?;
        }
        Ok(())
    }
}

/// A namespaced, durable key-value store.
///
/// Keys live in namespaces; both are short ASCII strings (see [`check_key`]).
/// Every mutating call is durable when it returns `Ok`: a crash right after
/// cannot lose it. A call that returns `Err` changed nothing.
///
/// Implementations are shared between threads.
pub trait KvStore: Send + Sync + std::fmt::Debug {
    /// Reads the value under `(namespace, key)`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] for a malformed namespace or key, or a
    /// backend error.
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes `value` under `(namespace, key)`, durably.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] for a malformed namespace or key, or a
    /// backend error; then nothing was written.
    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Removes `(namespace, key)`, durably. Removing an absent key succeeds.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] for a malformed namespace or key, or a
    /// backend error.
    fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError>;

    /// Lists the keys of `namespace`, in ascending byte order.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] for a malformed namespace, or a backend
    /// error.
    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError>;

    /// Reads every `(key, value)` of `namespace`, in ascending key order.
    ///
    /// # Errors
    ///
    /// As [`KvStore::list`] and [`KvStore::read`].
    fn read_namespace(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for key in self.list(namespace)? {
            if let Some(value) = self.read(namespace, &key)? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Applies every operation of `batch` atomically and durably: after a
    /// crash, either all of them or none of them are visible.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidKey`] if any namespace or key is malformed, or a
    /// backend error; then nothing of the batch was applied.
    fn write_batch(&self, batch: &Batch) -> Result<(), StoreError>;
}

impl<T: KvStore + ?Sized> KvStore for std::sync::Arc<T> {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).read(namespace, key)
    }
    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).write(namespace, key, value)
    }
    fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        (**self).remove(namespace, key)
    }
    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(namespace)
    }
    fn read_namespace(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).read_namespace(namespace)
    }
    fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        (**self).write_batch(batch)
    }
}
