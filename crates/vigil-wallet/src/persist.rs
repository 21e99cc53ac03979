//! BDK's wallet changes, persisted in a [`KvStore`].
//!
//! BDK returns every change to the wallet as a `ChangeSet` value; this
//! persister appends each one under `wallet/changesets/<sequence>` and, every
//! [`COMPACT_AFTER`] appends, replaces them all with their merge in one atomic
//! batch. Loading merges them back in order.
//!
//! Each value is a version byte followed by the changeset in JSON (BDK's
//! serde encoding). Version history: `1`: JSON.

use std::sync::Arc;

use bdk_wallet::chain::Merge;
use bdk_wallet::{ChangeSet, WalletPersister};
use vigil_store::{Batch, KvStore, StoreError};

/// The namespace of the wallet's changesets.
pub const NAMESPACE: &str = "wallet/changesets";
/// Appends before the changesets are merged into one.
pub const COMPACT_AFTER: usize = 64;
const VERSION: u8 = 1;

/// Why the wallet's data could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored changeset does not decode; it was left untouched.
    #[error("stored wallet changeset {key} is corrupt: {detail}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// A [`WalletPersister`] over a [`KvStore`].
#[derive(Debug)]
pub struct KvPersister {
    store: Arc<dyn KvStore>,
    next_seq: u64,
    stored: usize,
}

impl KvPersister {
    /// A persister writing into `store`.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Self { store, next_seq: 0, stored: 0 }
    }

    fn key(seq: u64) -> String {
        format!("{seq:020}")
    }

    fn encode(changeset: &ChangeSet) -> Vec<u8> {
        let mut out = vec![VERSION];
        serde_json::to_writer(&mut out, changeset).expect("a wallet changeset always serializes to JSON");
        out
    }

    fn decode(key: &str, bytes: &[u8]) -> Result<ChangeSet, PersistError> {
        let corrupt = |detail: String| PersistError::Corrupt { key: key.to_owned(), detail };
        match bytes.split_first() {
            Some((&VERSION, json)) => serde_json::from_slice(json).map_err(|e| corrupt(e.to_string())),
            Some((v, _)) => Err(corrupt(format!("unknown version {v}"))),
            None => Err(corrupt("empty value".into())),
        }
    }

    /// Reads and merges every stored changeset.
    fn load(&mut self) -> Result<(ChangeSet, Vec<String>), PersistError> {
        let mut merged = ChangeSet::default();
        let mut keys = Vec::new();
        for (key, bytes) in self.store.read_namespace(NAMESPACE)? {
            let seq: u64 = key.parse().map_err(|_| PersistError::Corrupt {
                key: key.clone(),
                detail: "the key is not a sequence number".into(),
            })?;
            merged.merge(Self::decode(&key, &bytes)?);
            let after = seq.checked_add(1).ok_or_else(|| PersistError::Corrupt {
                key: key.clone(),
                detail: "the sequence number is exhausted".into(),
            })?;
            self.next_seq = self.next_seq.max(after);
            keys.push(key);
        }
        self.stored = keys.len();
        Ok((merged, keys))
    }

    /// Replaces every stored changeset with their merge, atomically.
    fn compact(&mut self) -> Result<(), PersistError> {
        let (merged, keys) = self.load()?;
        let mut batch = Batch::new();
        for key in &keys {
            batch.remove(NAMESPACE, key);
        }
        batch.write(NAMESPACE, &Self::key(self.next_seq), Self::encode(&merged));
        self.store.write_batch(&batch)?;
        self.next_seq += 1;
        self.stored = 1;
        Ok(())
    }
}

impl WalletPersister for KvPersister {
    type Error = PersistError;

    fn initialize(persister: &mut Self) -> Result<ChangeSet, Self::Error> {
        Ok(persister.load()?.0)
    }

    fn persist(persister: &mut Self, changeset: &ChangeSet) -> Result<(), Self::Error> {
        if changeset.is_empty() {
            return Ok(());
        }
        let key = Self::key(persister.next_seq);
        persister.store.write(NAMESPACE, &key, &Self::encode(changeset))?;
        persister.next_seq += 1;
        persister.stored += 1;
        if persister.stored > COMPACT_AFTER {
            persister.compact()?;
        }
        Ok(())
    }
}
