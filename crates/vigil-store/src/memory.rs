//! An in-memory [`KvStore`], for tests and the simulator.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::key::{check_both, check_namespace};
use crate::{layout, Batch, BatchOp, KvStore, StoreError};

type Map = BTreeMap<(String, String), Vec<u8>>;

/// A [`KvStore`] that keeps everything in memory. "Durable" means "until the
/// value is dropped".
#[derive(Debug)]
pub struct MemoryStore {
    map: Mutex<Map>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A new, empty store carrying the current layout version.
    pub fn new() -> Self {
        let store = Self { map: Mutex::new(BTreeMap::new()) };
        layout::init(&store).expect("writing a valid key to a memory store cannot fail");
        store
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while the lock is held cannot leave the map half-updated:
        // every mutation below is a single insert or remove, or a batch that
        // was validated before its first operation, so none of its
        // operations can fail midway.
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl KvStore for MemoryStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_both(namespace, key)?;
        Ok(self.map().get(&(namespace.to_owned(), key.to_owned())).cloned())
    }

    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_both(namespace, key)?;
        self.map().insert((namespace.to_owned(), key.to_owned()), value.to_vec());
        Ok(())
    }

    fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        check_both(namespace, key)?;
        self.map().remove(&(namespace.to_owned(), key.to_owned()));
        Ok(())
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.read_namespace(namespace)?.into_iter().map(|(key, _)| key).collect())
    }

    fn read_namespace(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_namespace(namespace)?;
        let start = (namespace.to_owned(), String::new());
        Ok(self
            .map()
            .range(start..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect())
    }

    fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        batch.validate()?;
        let mut map = self.map();
        for op in batch.ops() {
            match op {
                BatchOp::Write { namespace, key, value } => {
                    map.insert((namespace.clone(), key.clone()), value.clone());
                }
                BatchOp::Remove { namespace, key } => {
                    map.remove(&(namespace.clone(), key.clone()));
                }
            }
        }
        Ok(())
    }
}
